//! Drift monitoring: each monitored feature's last `window` values, compared
//! with a reference profile every `check_every` records. A feature drifts
//! when a test is significant (p below `alpha`: for numbers KS on the values
//! or chi-square on the missing share, for categories chi-square) and the
//! shift is material (PSI, missing values included, or Jensen–Shannon at or
//! above its threshold); a change either way is an event.

pub mod business;
pub mod feedback;
pub mod log;
pub mod profile;
pub mod sequential;
pub mod stats;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

pub use profile::{Distribution, Feature, Profile, Role, Values};

use crate::error::{Error, Result};

fn default_window() -> usize {
    1000
}
fn default_every() -> usize {
    250
}
fn default_interval() -> u64 {
    100
}

/// When a feature counts as drifted.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Thresholds {
    /// Significance of the KS or chi-square test.
    pub alpha: f64,
    /// Smallest PSI that counts (numbers).
    pub psi: f64,
    /// Smallest Jensen–Shannon divergence, in bits, that counts (categories).
    pub js: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { alpha: 1e-3, psi: 0.1, js: 0.05 }
    }
}

/// A spec's `monitor` section.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MonitorSpec {
    /// The reference profile drift is measured against (none: no drift checks).
    #[serde(default)]
    pub reference: Profile,
    /// Records compared with the reference: the most recent this many.
    #[serde(default = "default_window")]
    pub window: usize,
    /// A time window as well: values older than this many ms leave the
    /// window (0: none, by count only).
    #[serde(default)]
    pub window_ms: u64,
    /// Records between checks (each costs about 50 µs per monitored number
    /// and less per category, off the request's path).
    #[serde(default = "default_every")]
    pub check_every: usize,
    /// The least time between checks, in ms, so that their cost stays
    /// bounded however fast records arrive (0: none).
    #[serde(default = "default_interval")]
    pub min_interval_ms: u64,
    #[serde(default)]
    pub thresholds: Thresholds,
    /// Outcomes fed back by prediction id, and online quality.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<feedback::FeedbackSpec>,
    /// The durable prediction log (SQLite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<log::LogSpec>,
    /// Business metrics over inputs and outputs, over `window` rows and in total.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<business::MetricSpec>,
}

/// One feature's statistics at a check.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FeatureDrift {
    pub name: String,
    pub role: Role,
    /// Values in the window.
    pub records: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ks: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ks_p: Option<f64>,
    /// A number's missing share against the reference's (chi-square on
    /// present/missing counts), when either has missing values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chi2: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chi2_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub js: Option<f64>,
    pub drifted: bool,
    /// The reference's and the window's counts, bin by bin (absent for an empty window).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub histogram: Option<Histogram>,
}

/// Counts per bin, for charts: a number's bins are split by the
/// reference's deciles `edges` (bin i holds values below `edges[i]` and at
/// or above the edge before it; the last numeric bin, those at or above the
/// last edge); a category's bins are `categories`, reference ones first.
/// The last bin of both counts missing values.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Histogram {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edges: Option<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
    pub reference: Vec<u64>,
    pub current: Vec<u64>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftReport {
    /// Records observed since the monitor started.
    pub records: u64,
    pub window: usize,
    pub checks: u64,
    pub features: Vec<FeatureDrift>,
    /// The names of the drifted features.
    pub drifted: Vec<String>,
}

/// A feature that started or stopped drifting, at the check that saw it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftEvent {
    pub records: u64,
    pub feature: FeatureDrift,
}

pub type Sink = Arc<dyn Fn(&DriftEvent) + Send + Sync>;

/// Distinct categories a window tells apart; later unseen ones share `OTHER`.
pub const MAX_CATEGORIES: usize = 256;
const OTHER: &str = "(other)";

#[derive(Clone)]
enum Window {
    Num(VecDeque<f64>),
    /// Category indices into `names` (reference categories first); u32::MAX is missing.
    Cat { ring: VecDeque<u32>, names: Vec<String>, index: HashMap<String, u32> },
}

struct State {
    windows: Vec<Window>,
    /// Per window, its values' arrival in runs: (when, how many), oldest first
    /// (kept only with `window_ms`).
    stamps: Vec<VecDeque<(std::time::Instant, usize)>>,
    since_check: usize,
    records: u64,
    checks: u64,
    drifted: Vec<bool>,
    /// A check is running (on the thread pool).
    checking: bool,
    last_check: Option<std::time::Instant>,
}

pub struct Monitor {
    spec: MonitorSpec,
    state: Mutex<State>,
    sink: RwLock<Option<Sink>>,
    inline_checks: std::sync::atomic::AtomicBool,
}

impl Window {
    fn len(&self) -> usize {
        match self {
            Window::Num(r) => r.len(),
            Window::Cat { ring, .. } => ring.len(),
        }
    }

    fn drain_front(&mut self, n: usize) {
        match self {
            Window::Num(r) => drop(r.drain(..n.min(r.len()))),
            Window::Cat { ring, .. } => drop(ring.drain(..n.min(ring.len()))),
        }
    }
}

impl Values<'_> {
    /// Values a push of `rows` rows adds, at most.
    fn len_hint(&self, rows: usize) -> usize {
        match self {
            Values::Num(v) => v.len().min(rows),
            Values::Cat { codes, .. } => codes.len().min(rows),
        }
    }
}

/// Takes `n` values off the oldest runs.
fn forget(stamp: &mut VecDeque<(std::time::Instant, usize)>, mut n: usize) {
    while n > 0 {
        let Some(front) = stamp.front_mut() else { return };
        if front.1 <= n {
            n -= front.1;
            stamp.pop_front();
        } else {
            front.1 -= n;
            n = 0;
        }
    }
}

/// Values present in a number's current bins (all but the last, missing, bin).
fn present_len(cur: &[u64], bins: usize) -> u64 {
    cur[..=bins].iter().sum()
}

impl Monitor {
    pub fn new(spec: MonitorSpec) -> Result<Monitor> {
        let bad = |m: String| Error::invalid_spec("monitor", m);
        if spec.window < 10 || spec.window > 10_000_000 {
            return Err(bad(format!("window must be from 10 to 10,000,000 records, got {}", spec.window)));
        }
        if spec.check_every == 0 {
            return Err(bad("checkEvery must be at least 1".into()));
        }
        let t = &spec.thresholds;
        if !(t.alpha > 0.0 && t.alpha < 1.0) || !(t.psi >= 0.0) || !(t.js >= 0.0 && t.js <= 1.0) {
            return Err(bad("thresholds: alpha must be in (0, 1), psi at least 0, js from 0 to 1".into()));
        }
        let mut windows = Vec::with_capacity(spec.reference.features.len());
        for f in &spec.reference.features {
            windows.push(match &f.distribution {
                Distribution::Number { edges, counts, .. } => {
                    if counts.len() != edges.len() + 1 || edges.windows(2).any(|w| !(w[0] < w[1])) {
                        return Err(bad(format!("reference feature '{}': edges must ascend and counts have one more entry", f.name)));
                    }
                    Window::Num(VecDeque::with_capacity(spec.window))
                }
                Distribution::Category { counts, .. } => {
                    let names: Vec<String> = counts.iter().map(|(n, _)| n.clone()).collect();
                    let index = names.iter().enumerate().map(|(i, n)| (n.clone(), i as u32)).collect();
                    Window::Cat { ring: VecDeque::with_capacity(spec.window), names, index }
                }
            });
        }
        let n = windows.len();
        let state = State { stamps: vec![VecDeque::new(); windows.len()], windows, since_check: 0, records: 0, checks: 0, drifted: vec![false; n], checking: false, last_check: None };
        Ok(Monitor { spec, state: Mutex::new(state), sink: RwLock::new(None), inline_checks: std::sync::atomic::AtomicBool::new(false) })
    }

    pub fn spec(&self) -> &MonitorSpec {
        &self.spec
    }

    /// Where drift events go (the binding's event channel).
    pub fn set_sink(&self, sink: Option<Sink>) {
        *self.sink.write().unwrap_or_else(|e| e.into_inner()) = sink;
    }

    /// Adds values to the windows (columns by feature name; features absent
    /// from `columns` are skipped). Records are counted by `advance`, once
    /// all of a batch's columns (inputs, then predictions) are in.
    pub fn push(&self, rows: usize, columns: &[(&str, Values)]) {
        self.push_at(rows, columns, std::time::Instant::now())
    }

    /// `push`, the values arriving at `now` (tests drive time windows with it).
    pub fn push_at(&self, rows: usize, columns: &[(&str, Values)], now: std::time::Instant) {
        if rows == 0 {
            return;
        }
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let cap = self.spec.window;
        let timed = self.spec.window_ms > 0;
        let State { windows, stamps, .. } = &mut *st;
        for ((f, w), stamp) in self.spec.reference.features.iter().zip(windows.iter_mut()).zip(stamps.iter_mut()) {
            let Some((_, values)) = columns.iter().find(|(n, _)| *n == f.name) else { continue };
            let before = w.len();
            match (&mut *w, values) {
                (Window::Num(ring), Values::Num(v)) => {
                    let v = &v[..rows.min(v.len())];
                    // Only the last `cap` values can stay.
                    let v = &v[v.len().saturating_sub(cap)..];
                    let over = (ring.len() + v.len()).saturating_sub(cap);
                    ring.drain(..over);
                    ring.extend(v.iter().copied());
                }
                (Window::Cat { ring, names, index }, Values::Cat { codes, vocab }) => {
                    // Each of the batch's categories mapped once.
                    let map: Vec<u32> = vocab
                        .iter()
                        .map(|v| match index.get(v) {
                            Some(&i) => i,
                            // Past the cap, unseen categories share one bin
                            // (ids or free text would grow without bound).
                            None if names.len() >= MAX_CATEGORIES => *index.entry(OTHER.to_string()).or_insert_with(|| {
                                names.push(OTHER.to_string());
                                (names.len() - 1) as u32
                            }),
                            None => {
                                names.push(v.clone());
                                let i = (names.len() - 1) as u32;
                                index.insert(v.clone(), i);
                                i
                            }
                        })
                        .collect();
                    let codes = &codes[..rows.min(codes.len())];
                    let codes = &codes[codes.len().saturating_sub(cap)..];
                    let over = (ring.len() + codes.len()).saturating_sub(cap);
                    ring.drain(..over);
                    ring.extend(codes.iter().map(|&c| if c >= 0 { map.get(c as usize).copied().unwrap_or(u32::MAX) } else { u32::MAX }));
                }
                _ => {}
            }
            if timed {
                // The values added arrived now; those the count cap pushed out leave their runs.
                let after = w.len();
                let added = after.min(values.len_hint(rows));
                let dropped = (before + added).saturating_sub(after);
                forget(stamp, dropped);
                if added > 0 {
                    stamp.push_back((now, added));
                }
            }
        }
        if timed {
            self.expire(&mut st, now);
        }
    }

    /// Drops values older than `window_ms` from every window.
    fn expire(&self, st: &mut State, now: std::time::Instant) {
        let limit = std::time::Duration::from_millis(self.spec.window_ms);
        let State { windows, stamps, .. } = st;
        for (w, stamp) in windows.iter_mut().zip(stamps.iter_mut()) {
            let mut old = 0;
            while let Some(&(t, n)) = stamp.front() {
                if now.saturating_duration_since(t) <= limit {
                    break;
                }
                old += n;
                stamp.pop_front();
            }
            w.drain_front(old);
        }
    }

    /// Counts `rows` records; once `check_every` have arrived since the last
    /// check, checks the windows as they are now. The check runs on the
    /// thread pool (off the request's path) unless checks are inline; one
    /// runs at a time, and records that arrive meanwhile wait for the next.
    pub fn advance(self: &Arc<Self>, rows: usize) {
        let snapshot = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.records += rows as u64;
            st.since_check += rows;
            if st.since_check < self.spec.check_every || st.checking {
                return;
            }
            let spaced = st.last_check.is_none_or(|t| t.elapsed() >= std::time::Duration::from_millis(self.spec.min_interval_ms));
            if !spaced {
                return;
            }
            st.since_check = 0;
            st.checking = true;
            if self.spec.window_ms > 0 {
                self.expire(&mut st, std::time::Instant::now());
            }
            st.last_check = Some(std::time::Instant::now());
            (st.records, st.windows.clone())
        };
        if self.inline_checks.load(std::sync::atomic::Ordering::Relaxed) {
            self.check(snapshot.0, &snapshot.1);
        } else {
            let me = Arc::clone(self);
            rayon::spawn(move || me.check(snapshot.0, &snapshot.1));
        }
    }

    /// `push` then `advance`, for one column set.
    pub fn observe(self: &Arc<Self>, rows: usize, columns: &[(&str, Values)]) {
        self.push(rows, columns);
        self.advance(rows);
    }

    /// Runs checks on the calling thread (tests that count events exactly).
    pub fn set_inline_checks(&self, inline: bool) {
        self.inline_checks.store(inline, std::sync::atomic::Ordering::Relaxed);
    }

    /// Statistics now, over the current windows (not counted as a check).
    pub fn report(&self) -> DriftReport {
        self.report_at(std::time::Instant::now())
    }

    /// `report` as of `now` (tests drive time windows with it).
    pub fn report_at(&self, now: std::time::Instant) -> DriftReport {
        // Measured on a copy, so that runs pushing values never wait on it.
        let (records, checks, windows) = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if self.spec.window_ms > 0 {
                self.expire(&mut st, now);
            }
            (st.records, st.checks, st.windows.clone())
        };
        let features: Vec<FeatureDrift> = self.spec.reference.features.iter().zip(&windows).map(|(f, w)| self.measure(f, w)).collect();
        let drifted = features.iter().filter(|f| f.drifted).map(|f| f.name.clone()).collect();
        DriftReport { records, window: self.spec.window, checks, features, drifted }
    }

    /// Measures a snapshot of the windows taken at `records`, updates the
    /// drift flags and sends an event for each flag that changed.
    fn check(&self, records: u64, windows: &[Window]) {
        let measured: Vec<FeatureDrift> = self.spec.reference.features.iter().zip(windows).map(|(f, w)| self.measure(f, w)).collect();
        let mut events = Vec::new();
        {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.checks += 1;
            for (i, d) in measured.into_iter().enumerate() {
                if d.drifted != st.drifted[i] {
                    st.drifted[i] = d.drifted;
                    events.push(DriftEvent { records, feature: d });
                }
            }
        }
        let sink = self.sink.read().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(sink) = sink {
            for e in &events {
                sink(e);
            }
        }
        // Only now may the next check start, so events keep their order.
        self.state.lock().unwrap_or_else(|e| e.into_inner()).checking = false;
    }

    fn measure(&self, f: &Feature, w: &Window) -> FeatureDrift {
        let t = &self.spec.thresholds;
        let mut d =
            FeatureDrift { name: f.name.clone(), role: f.role, records: 0, psi: None, ks: None, ks_p: None, missing_p: None, chi2: None, chi2_p: None, js: None, drifted: false, histogram: None };
        match (&f.distribution, w) {
            (Distribution::Number { edges, counts, missing, sample }, Window::Num(ring)) => {
                d.records = ring.len();
                if ring.is_empty() {
                    return d;
                }
                let mut cur = vec![0u64; edges.len() + 2];
                let mut present = Vec::with_capacity(ring.len());
                for &x in ring {
                    if x.is_nan() {
                        cur[edges.len() + 1] += 1;
                    } else {
                        cur[stats::bin(edges, x)] += 1;
                        present.push(x);
                    }
                }
                let mut reference = counts.clone();
                reference.push(*missing);
                let psi = stats::psi(&reference, &cur);
                d.histogram = Some(Histogram { edges: Some(edges.clone()), categories: None, reference: reference.clone(), current: cur.clone() });
                present.sort_unstable_by(f64::total_cmp);
                let (ks, p) = stats::ks(sample, &present);
                d.psi = Some(psi);
                d.ks = Some(ks);
                d.ks_p = Some(p);
                let cur_missing = cur[edges.len() + 1];
                let p = if *missing > 0 || cur_missing > 0 {
                    let present = counts.iter().sum::<u64>();
                    let (_, _, mp) = stats::chi_square(&[present, *missing], &[present_len(&cur, edges.len()), cur_missing]);
                    d.missing_p = Some(mp);
                    p.min(mp)
                } else {
                    p
                };
                d.drifted = p < t.alpha && psi >= t.psi;
            }
            (Distribution::Category { counts, missing }, Window::Cat { ring, names, .. }) => {
                d.records = ring.len();
                if ring.is_empty() {
                    return d;
                }
                // Every category seen in either, then missing.
                let mut reference: Vec<u64> = counts.iter().map(|(_, n)| *n).collect();
                reference.resize(names.len(), 0);
                reference.push(*missing);
                let mut cur = vec![0u64; names.len() + 1];
                for &c in ring {
                    let k = if c == u32::MAX { names.len() } else { c as usize };
                    cur[k] += 1;
                }
                d.histogram = Some(Histogram { edges: None, categories: Some(names.clone()), reference: reference.clone(), current: cur.clone() });
                // Categories in neither (a missing bin never used) add nothing.
                let keep: Vec<usize> = (0..cur.len()).filter(|&k| reference[k] > 0 || cur[k] > 0).collect();
                let reference: Vec<u64> = keep.iter().map(|&k| reference[k]).collect();
                let cur: Vec<u64> = keep.iter().map(|&k| cur[k]).collect();
                let (chi2, _, p) = stats::chi_square(&reference, &cur);
                let js = stats::jensen_shannon(&reference, &cur);
                d.chi2 = Some(chi2);
                d.chi2_p = Some(p);
                d.js = Some(js);
                d.drifted = p < t.alpha && js >= t.js;
            }
            _ => {}
        }
        d
    }
}
