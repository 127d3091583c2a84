//! Switch policies as a pure state machine: latencies are observed, loads
//! are given, and `choose` picks a variant. No clock is read here, so tests
//! drive it with injected observations; the graph feeds it real latencies.
//!
//! Variants are ranked by declared quality (ties: declaration order). A
//! policy measures each variant (latency-slo: p95 of its last `window` runs
//! plus its current queue wait; load: its queue depth) and takes the best
//! variant whose measure fits the limit. A variant better than the current
//! one must fit a stricter limit, `limit × (1 − hysteresis)`, so that
//! measures oscillating between the two limits do not make it flap.
//!
//! A `feedback` policy instead routes by its trial (`graph::trial`): the
//! champion, the challenger's share, and the outcome of their comparison.

use std::collections::VecDeque;

use crate::graph::spec::PolicySpec;
use crate::graph::trial::{Decision, Trial, TrialStats};
use crate::monitor::feedback::{Refusal, Truth};
use crate::tensor::OutputTensor;

/// A switch policy, with its parameters in engine units.
#[derive(Clone, Debug, PartialEq)]
pub enum Policy {
    /// Best quality whose p95 + queue wait fits `slo_us`.
    LatencySlo {
        /// The SLO, µs.
        slo_us: u64,
        /// A better variant is taken back below `slo_us × (1 − hysteresis)`.
        hysteresis: f64,
        /// Observations per variant that p95 is taken over.
        window: usize,
        /// While degraded, every this-many-th decision probes the next better variant (0: never).
        probe_every: u64,
    },
    /// Best quality whose queue depth is below `max_queue`.
    Load {
        /// A variant fits while its queue depth is below this.
        max_queue: usize,
        /// A better variant is taken back below `max_queue × (1 − hysteresis)`.
        hysteresis: f64,
    },
    /// Chosen per request (the best quality when not given).
    Explicit,
    /// Champion and challenger by outcomes; the state is the switch's trial.
    Feedback,
}

impl Policy {
    /// The policy a spec describes.
    pub fn from_spec(spec: &PolicySpec) -> Policy {
        match *spec {
            PolicySpec::LatencySlo { slo_ms, hysteresis, window, probe_every } => {
                Policy::LatencySlo { slo_us: (slo_ms * 1000.0).max(0.0) as u64, hysteresis, window: window.max(1), probe_every }
            }
            PolicySpec::Load { max_queue, hysteresis } => Policy::Load { max_queue, hysteresis },
            PolicySpec::Explicit {} => Policy::Explicit,
            PolicySpec::Feedback(_) => Policy::Feedback,
        }
    }

    /// The policy's name as the spec writes it.
    pub fn name(&self) -> &'static str {
        match self {
            Policy::LatencySlo { .. } => "latency-slo",
            Policy::Load { .. } => "load",
            Policy::Explicit => "explicit",
            Policy::Feedback => "feedback",
        }
    }
}

/// A variant's load when a choice is made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Load {
    /// Estimated wait in its queue, µs.
    pub queue_wait_us: u64,
    /// Requests queued or running.
    pub queue_depth: usize,
}

/// A change of the current variant.
#[derive(Clone, Debug, PartialEq)]
pub struct SwitchEvent {
    /// The decision (counted from 1) that made the change.
    pub decision: u64,
    /// The variant left.
    pub from: usize,
    /// The variant taken.
    pub to: usize,
    /// The measure of `from` then: µs (latency-slo) or queue depth (load).
    pub measure: u64,
}

/// One variant's record.
#[derive(Clone, Debug, PartialEq)]
pub struct VariantStats {
    /// The variant's name.
    pub name: String,
    /// Its declared quality.
    pub quality: f64,
    /// Requests routed to it (probes included).
    pub chosen: u64,
    /// Latencies observed in all.
    pub runs: u64,
    /// Median over the window of observations, µs.
    pub p50_us: Option<u64>,
    /// p95 over the window, µs.
    pub p95_us: Option<u64>,
    /// The latest observation, µs.
    pub last_us: Option<u64>,
}

/// A switch's decisions and latencies, for `stats()` and metrics.
#[derive(Clone, Debug, PartialEq)]
pub struct SwitchStats {
    /// The switch node's name.
    pub node: String,
    /// The policy's name ("latency-slo", "load", "explicit").
    pub policy: &'static str,
    /// The variant a request gets now, absent load changes.
    pub current: usize,
    /// Variants chosen so far.
    pub decisions: u64,
    /// Changes of the current variant.
    pub switches: u64,
    /// Requests sent to a better variant to refresh its latency.
    pub probes: u64,
    /// Per variant, in spec order.
    pub variants: Vec<VariantStats>,
    /// The latest changes (up to 64), oldest first.
    pub events: Vec<SwitchEvent>,
    /// A `feedback` policy's trial.
    pub trial: Option<TrialStats>,
}

const EVENTS: usize = 64;
const STATS_WINDOW: usize = 200;

/// The state of one switch node.
#[derive(Clone, Debug)]
pub struct SwitchState {
    node: String,
    policy: Policy,
    names: Vec<String>,
    quality: Vec<f64>,
    /// Variant indices, best quality first.
    ranked: Vec<usize>,
    windows: Vec<VecDeque<u64>>,
    current: usize,
    decisions: u64,
    switches: u64,
    probes: u64,
    since_probe: u64,
    chosen: Vec<u64>,
    runs: Vec<u64>,
    events: VecDeque<SwitchEvent>,
    trial: Option<Trial>,
}

/// Nearest-rank percentile (q in 0..=1) of unsorted `xs`.
fn percentile(xs: &VecDeque<u64>, q: f64) -> Option<u64> {
    if xs.is_empty() {
        return None;
    }
    let mut v: Vec<u64> = xs.iter().copied().collect();
    v.sort_unstable();
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

impl SwitchState {
    /// A switch `node` over variants (name, declared quality), starting on
    /// the best quality.
    pub fn new(node: &str, policy: Policy, variants: &[(String, f64)]) -> Self {
        let mut ranked: Vec<usize> = (0..variants.len()).collect();
        ranked.sort_by(|&a, &b| variants[b].1.total_cmp(&variants[a].1));
        let n = variants.len();
        SwitchState {
            node: node.to_string(),
            policy,
            names: variants.iter().map(|v| v.0.clone()).collect(),
            quality: variants.iter().map(|v| v.1).collect(),
            current: ranked.first().copied().unwrap_or(0),
            ranked,
            windows: vec![VecDeque::new(); n],
            decisions: 0,
            switches: 0,
            probes: 0,
            since_probe: 0,
            chosen: vec![0; n],
            runs: vec![0; n],
            events: VecDeque::new(),
            trial: None,
        }
    }

    /// A switch whose `feedback` policy runs `trial` (starting on its champion).
    pub fn with_trial(mut self, trial: Trial) -> Self {
        self.current = trial.leader();
        self.trial = Some(trial);
        self
    }

    /// The trial of a `feedback` policy.
    pub fn trial(&self) -> Option<&Trial> {
        self.trial.as_ref()
    }

    /// Records what `variant` predicted for request `id`, when a trial wants
    /// it; a late arm scored against an outcome already given may decide.
    pub fn record(&mut self, id: &str, variant: usize, outputs: &[OutputTensor]) {
        let decided = self.trial.as_mut().and_then(|t| t.record(id, variant, outputs)).is_some();
        if decided {
            self.follow_trial();
        }
    }

    /// Makes the trial's leader current, recording the change.
    fn follow_trial(&mut self) {
        let Some(leader) = self.trial.as_ref().map(Trial::leader) else { return };
        if leader != self.current {
            self.push_event(SwitchEvent { decision: self.decisions, from: self.current, to: leader, measure: 0 });
            self.current = leader;
        }
    }

    /// Checks an outcome for `id` without applying it.
    pub fn check(&self, id: &str, truths: &[Truth]) -> Result<(), Refusal> {
        match &self.trial {
            Some(t) => t.check(id, truths).map(|_| ()),
            None => Err(Refusal::UnknownId(format!("switch '{}' takes no feedback", self.node))),
        }
    }

    /// Counts a shadow run's outcome.
    pub fn shadowed(&mut self, ok: bool) {
        if let Some(t) = &mut self.trial {
            t.shadowed(ok);
        }
    }

    /// Feeds the outcome of request `id` to the trial; a decision that ends
    /// it is recorded as a change when it promotes the challenger.
    pub fn answer(&mut self, id: &str, truths: &[Truth]) -> Result<Option<Decision>, Refusal> {
        let Some(t) = &mut self.trial else { return Err(Refusal::UnknownId(format!("switch '{}' takes no feedback", self.node))) };
        let d = t.answer(id, truths)?;
        if d.is_some() {
            self.follow_trial();
        }
        Ok(d)
    }

    fn push_event(&mut self, event: SwitchEvent) {
        if self.events.len() >= EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event);
        self.switches += 1;
    }

    fn window(&self) -> usize {
        match self.policy {
            Policy::LatencySlo { window, .. } => window,
            _ => STATS_WINDOW,
        }
    }

    /// Records that a run of `variant` took `latency_us`.
    pub fn observe(&mut self, variant: usize, latency_us: u64) {
        let cap = self.window();
        let Some(w) = self.windows.get_mut(variant) else { return };
        if w.len() >= cap {
            w.pop_front();
        }
        w.push_back(latency_us);
        self.runs[variant] += 1;
    }

    /// The p95 latency of `variant` over its window.
    pub fn p95(&self, variant: usize) -> Option<u64> {
        self.windows.get(variant).and_then(|w| percentile(w, 0.95))
    }

    /// The variant now current.
    pub fn current(&self) -> usize {
        self.current
    }

    /// Picks the variant for one request, given each variant's load (missing
    /// entries count as idle) and the request's explicit choice, if any (an
    /// index, honoured under every policy without changing the current one).
    pub fn choose(&mut self, load: &[Load], explicit: Option<usize>) -> usize {
        self.choose_for(load, explicit, None).0
    }

    /// `choose` for a request with an id or without; also returns the
    /// variant that shadows it (a `feedback` trial in shadow mode).
    pub fn choose_for(&mut self, load: &[Load], explicit: Option<usize>, id: Option<&str>) -> (usize, Option<usize>) {
        self.decisions += 1;
        let n = self.names.len();
        if let Some(v) = explicit.filter(|&v| v < n) {
            if self.policy == Policy::Explicit {
                self.current = v;
            }
            self.chosen[v] += 1;
            return (v, None);
        }
        if let Some(t) = &mut self.trial {
            let (v, shadow) = t.route(id);
            self.chosen[v] += 1;
            return (v, shadow);
        }
        let load_of = |v: usize| load.get(v).copied().unwrap_or_default();
        // (measure, limit, stricter limit to move up); measures "fit" below
        // or at the limit, and strictly below the stricter one.
        let measure = |s: &Self, v: usize| -> u64 {
            match s.policy {
                Policy::LatencySlo { .. } => s.p95(v).unwrap_or(0).saturating_add(load_of(v).queue_wait_us),
                Policy::Load { .. } => load_of(v).queue_depth as u64,
                Policy::Explicit | Policy::Feedback => 0,
            }
        };
        let fits = |s: &Self, m: u64, upgrade: bool| -> bool {
            match s.policy {
                Policy::LatencySlo { slo_us, hysteresis, .. } => {
                    if upgrade {
                        (m as f64) < slo_us as f64 * (1.0 - hysteresis)
                    } else {
                        m <= slo_us
                    }
                }
                Policy::Load { max_queue, hysteresis } => {
                    if upgrade {
                        (m as f64) < max_queue as f64 * (1.0 - hysteresis)
                    } else {
                        m < max_queue as u64
                    }
                }
                Policy::Explicit | Policy::Feedback => true,
            }
        };
        let pick = if matches!(self.policy, Policy::Explicit | Policy::Feedback) {
            self.ranked[0]
        } else {
            let here = self.ranked.iter().position(|&v| v == self.current).unwrap_or(0);
            let found = self.ranked.iter().enumerate().find(|&(rank, &v)| fits(self, measure(self, v), rank < here)).map(|(_, &v)| v);
            // Nothing fits: the variant expected to be fastest (the better on ties).
            found.unwrap_or_else(|| *self.ranked.iter().min_by_key(|&&v| measure(self, v)).unwrap_or(&0))
        };
        if pick != self.current {
            let event = SwitchEvent { decision: self.decisions, from: self.current, to: pick, measure: measure(self, self.current) };
            self.push_event(event);
            self.current = pick;
            self.since_probe = 0;
        }
        let mut chosen = pick;
        // Degraded: now and then one request refreshes the next better
        // variant's latency, which would otherwise never change.
        if let Policy::LatencySlo { probe_every, .. } = self.policy {
            let rank = self.ranked.iter().position(|&v| v == pick).unwrap_or(0);
            if probe_every > 0 && rank > 0 {
                self.since_probe += 1;
                if self.since_probe >= probe_every {
                    self.since_probe = 0;
                    self.probes += 1;
                    chosen = self.ranked[rank - 1];
                }
            }
        }
        self.chosen[chosen] += 1;
        (chosen, None)
    }

    /// The variant index of `name`, if one is called that.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Decisions and latencies so far.
    pub fn stats(&self) -> SwitchStats {
        SwitchStats {
            node: self.node.clone(),
            policy: self.policy.name(),
            current: self.current,
            decisions: self.decisions,
            switches: self.switches,
            probes: self.probes,
            variants: (0..self.names.len())
                .map(|v| VariantStats {
                    name: self.names[v].clone(),
                    quality: self.quality[v],
                    chosen: self.chosen[v],
                    runs: self.runs[v],
                    p50_us: percentile(&self.windows[v], 0.5),
                    p95_us: percentile(&self.windows[v], 0.95),
                    last_us: self.windows[v].back().copied(),
                })
                .collect(),
            events: self.events.iter().cloned().collect(),
            trial: self.trial.as_ref().map(Trial::stats),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCURATE: usize = 0;
    const FAST: usize = 1;

    fn slo(probe_every: u64) -> SwitchState {
        let policy = Policy::LatencySlo { slo_us: 20_000, hysteresis: 0.1, window: 20, probe_every };
        SwitchState::new("s", policy, &[("accurate".into(), 0.9), ("fast".into(), 0.6)])
    }

    fn feed(s: &mut SwitchState, v: usize, us: &[u64], times: usize) {
        for _ in 0..times {
            for &u in us {
                s.observe(v, u);
            }
        }
    }

    fn idle() -> [Load; 2] {
        [Load::default(); 2]
    }

    #[test]
    fn moves_to_fast_when_accurate_breaks_the_slo_and_returns_when_it_fits() {
        let mut s = slo(0);
        feed(&mut s, ACCURATE, &[15_000], 20);
        feed(&mut s, FAST, &[3_000], 20);
        assert_eq!(s.choose(&idle(), None), ACCURATE);
        // The accurate variant's tail goes past the SLO.
        feed(&mut s, ACCURATE, &[25_000], 5);
        assert_eq!(s.p95(ACCURATE), Some(25_000));
        assert_eq!(s.choose(&idle(), None), FAST);
        // Fitting again, but inside the hysteresis band (18-20 ms): stays on fast.
        feed(&mut s, ACCURATE, &[19_000], 20);
        assert_eq!(s.choose(&idle(), None), FAST);
        // Below SLO × (1 − hysteresis): back.
        feed(&mut s, ACCURATE, &[15_000], 20);
        assert_eq!(s.choose(&idle(), None), ACCURATE);
        let st = s.stats();
        assert_eq!((st.decisions, st.switches), (4, 2));
        assert_eq!(st.events.iter().map(|e| (e.from, e.to)).collect::<Vec<_>>(), vec![(ACCURATE, FAST), (FAST, ACCURATE)]);
        assert_eq!(st.events[0].measure, 25_000);
        assert_eq!((st.variants[ACCURATE].chosen, st.variants[FAST].chosen), (2, 2));
        assert_eq!(st.variants[ACCURATE].runs, 65);
    }

    #[test]
    fn queue_wait_counts_toward_the_slo() {
        let mut s = slo(0);
        feed(&mut s, ACCURATE, &[15_000], 20);
        feed(&mut s, FAST, &[3_000], 20);
        let wait = |us| [Load { queue_wait_us: us, queue_depth: 0 }, Load::default()];
        assert_eq!(s.choose(&wait(4_000), None), ACCURATE);
        assert_eq!(s.choose(&wait(6_000), None), FAST); // 21 ms > 20
        assert_eq!(s.choose(&wait(4_000), None), FAST); // 19 ms: inside the band
        assert_eq!(s.choose(&wait(2_000), None), ACCURATE); // 17 ms < 18
    }

    #[test]
    fn does_not_flap_on_oscillation_inside_the_band() {
        let mut s = slo(0);
        feed(&mut s, FAST, &[3_000], 20);
        // On accurate, oscillating 18.5-19.9 ms: always fits the SLO, stays.
        for i in 0..200 {
            s.observe(ACCURATE, if i % 2 == 0 { 18_500 } else { 19_900 });
            assert_eq!(s.choose(&idle(), None), ACCURATE);
        }
        // Pushed off once, the same oscillation never brings it back.
        feed(&mut s, ACCURATE, &[30_000], 2);
        assert_eq!(s.choose(&idle(), None), FAST);
        for i in 0..200 {
            s.observe(ACCURATE, if i % 2 == 0 { 18_500 } else { 19_900 });
            assert_eq!(s.choose(&idle(), None), FAST);
        }
        assert_eq!(s.stats().switches, 1);
    }

    #[test]
    fn nothing_fits_picks_the_fastest_and_probes_refresh_the_better_one() {
        let mut s = slo(10);
        feed(&mut s, ACCURATE, &[50_000], 20);
        feed(&mut s, FAST, &[30_000], 20);
        assert_eq!(s.choose(&idle(), None), FAST);
        let picks: Vec<usize> = (0..20).map(|_| s.choose(&idle(), None)).collect();
        assert_eq!(picks.iter().filter(|&&v| v == ACCURATE).count(), 2, "{picks:?}");
        assert_eq!(s.stats().probes, 2);
        assert_eq!(s.current(), FAST);
    }

    #[test]
    fn load_policy_and_explicit_choice() {
        let mut s = SwitchState::new("s", Policy::Load { max_queue: 10, hysteresis: 0.5 }, &[("fast".into(), 0.1), ("accurate".into(), 0.9)]);
        let depth = |d| [Load::default(), Load { queue_wait_us: 0, queue_depth: d }];
        assert_eq!(s.choose(&depth(3), None), 1);
        assert_eq!(s.choose(&depth(10), None), 0);
        assert_eq!(s.choose(&depth(7), None), 0); // not below 5
        assert_eq!(s.choose(&depth(4), None), 1);
        assert_eq!(s.choose(&depth(40), Some(1)), 1, "an explicit choice is honoured");
        let mut e = SwitchState::new("e", Policy::Explicit, &[("a".into(), 0.1), ("b".into(), 0.9)]);
        assert_eq!(e.choose(&[], None), 1);
        assert_eq!(e.choose(&[], Some(0)), 0);
        assert_eq!(e.index_of("b"), Some(1));
    }
}
