//! A champion/challenger trial, the state behind a switch's `feedback`
//! policy: which requests the challenger takes (or shadows), the
//! predictions kept by request id until their outcome arrives, each arm's
//! losses, and the sequential test (`monitor::sequential`) that ends the
//! trial, promoting the challenger when its mean loss is lower at the
//! stated confidence or retiring it when it is higher. Every decision is
//! recorded with the figures it rested on. Pure state: the switch feeds it
//! outputs and the graph feeds it outcomes.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;

use crate::graph::ops::num::f64s;
use crate::graph::spec::{TrialMetric, TrialMode, TrialSpec};
use crate::monitor::feedback::{Refusal, Truth};
use crate::monitor::sequential::{self, Arm};
use crate::tensor::{DType, OutputTensor};

/// Where a trial stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Running,
    /// The challenger won: it now takes every request.
    Promoted,
    /// The challenger lost: it takes no more requests.
    Retired,
    /// `maxSamples` reached without a decision: the champion stays.
    Undecided,
}

/// The figures a decision rested on.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub status: Status,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Outcomes received by then.
    pub feedback: u64,
    /// Outcomes scored per arm: champion, challenger.
    pub samples: [u64; 2],
    /// Mean loss per arm: champion, challenger.
    pub loss: [f64; 2],
    /// Challenger minus champion.
    pub delta: f64,
    /// ln of the test's likelihood ratio, and the ln(1/α) it had to reach.
    pub log_ratio: f64,
    pub threshold: f64,
}

/// A trial's state, for `stats()`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrialStats {
    pub status: Status,
    pub metric: &'static str,
    pub mode: &'static str,
    /// Variant indices.
    pub champion: usize,
    pub challenger: usize,
    pub confidence: f64,
    /// Outcomes received (late ones, after the decision, included).
    pub feedback: u64,
    /// Outcomes scored per arm, and mean loss per arm (null before the first).
    pub samples: [u64; 2],
    pub loss: [Option<f64>; 2],
    /// The test's latest figures (null before both arms have `minSamples`).
    pub log_ratio: Option<f64>,
    pub threshold: f64,
    /// The mixing scale in use (null until fixed).
    pub effect: Option<f64>,
    /// Shadow runs made, and those that failed (never the request).
    pub shadow_runs: u64,
    pub shadow_failures: u64,
    /// Predictions waiting for their outcome.
    pub pending: usize,
    pub decision: Option<Decision>,
}

#[derive(Clone, Debug)]
struct Kept {
    /// Predicted per row, per arm (champion, challenger).
    preds: [Option<Vec<f64>>; 2],
    /// The outcome, once given (one value per row): an arm whose prediction
    /// arrives later (a shadow run still running) is scored when it does.
    truth: Option<Vec<f64>>,
    /// Arms already scored.
    scored: [bool; 2],
}

/// One switch's trial.
#[derive(Clone, Debug)]
pub struct Trial {
    spec: TrialSpec,
    /// Variant indices of the arms: champion, challenger.
    arms_at: [usize; 2],
    status: Status,
    /// Share accumulator: a request goes to the challenger each time it passes 1.
    credit: f64,
    kept: HashMap<String, Kept>,
    order: VecDeque<String>,
    arms: [Arm; 2],
    tau: Option<f64>,
    feedback: u64,
    last: Option<sequential::Test>,
    shadow_runs: u64,
    shadow_failures: u64,
    decision: Option<Decision>,
    /// Kept predictions without their outcome yet.
    unanswered: usize,
}

/// A stable hash of `id` in [0, 1): FNV-1a, then splitmix64's finaliser.
fn unit_hash(id: &str) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h >> 11) as f64 / (1u64 << 53) as f64
}


impl Trial {
    /// A trial between variant indices `champion` and `challenger` (checked
    /// by the graph builder).
    pub fn new(spec: TrialSpec, champion: usize, challenger: usize) -> Trial {
        Trial {
            spec,
            arms_at: [champion, challenger],
            status: Status::Running,
            credit: 0.0,
            kept: HashMap::new(),
            order: VecDeque::new(),
            arms: [Arm::default(); 2],
            tau: None,
            feedback: 0,
            last: None,
            shadow_runs: 0,
            shadow_failures: 0,
            decision: None,
            unanswered: 0,
        }
    }

    pub fn champion(&self) -> usize {
        self.arms_at[0]
    }

    pub fn challenger(&self) -> usize {
        self.arms_at[1]
    }

    pub fn status(&self) -> Status {
        self.status
    }

    /// The output the arms are scored on.
    pub fn output(&self) -> Option<&str> {
        self.spec.output.as_deref()
    }

    /// The variant the trial leaves in charge: the challenger once promoted.
    pub fn leader(&self) -> usize {
        if self.status == Status::Promoted {
            self.challenger()
        } else {
            self.champion()
        }
    }

    /// Whether a request is in the challenger's share (always false once
    /// decided): for a request with an id, by a hash of it (random-like
    /// assignment, the same for the same id); otherwise exactly `split` of
    /// such requests over time.
    fn take_share(&mut self, id: Option<&str>) -> bool {
        if self.status != Status::Running {
            return false;
        }
        if let Some(id) = id {
            return unit_hash(id) < self.spec.split;
        }
        self.credit += self.spec.split;
        if self.credit >= 1.0 - 1e-12 {
            self.credit -= 1.0;
            return true;
        }
        false
    }

    /// The variant that serves a request, and the one that shadows it. Only
    /// requests with an id are shadowed: others could never be scored.
    pub fn route(&mut self, id: Option<&str>) -> (usize, Option<usize>) {
        match self.spec.mode {
            TrialMode::Split => (if self.take_share(id) { self.challenger() } else { self.leader() }, None),
            TrialMode::Shadow => (self.leader(), (id.is_some() && self.take_share(id)).then(|| self.challenger())),
        }
    }

    /// Counts a shadow run's outcome (a failed one is never the request's).
    pub fn shadowed(&mut self, ok: bool) {
        self.shadow_runs += 1;
        if !ok {
            self.shadow_failures += 1;
        }
    }

    /// The per-row predictions read from a variant's output tensor: classes
    /// for accuracy, scores for the error metrics. None when the tensor
    /// cannot be read that way (strings; several scores per row for an error metric).
    fn predictions(&self, t: &OutputTensor) -> Option<Vec<f64>> {
        let values = f64s(t.dtype, t.bytes())?;
        let rows = t.dims.first().map_or(1, |&d| d.max(0) as usize);
        if rows == 0 {
            return Some(Vec::new());
        }
        let k = values.len() / rows;
        if k == 0 || k * rows != values.len() {
            return None;
        }
        let integer = !matches!(t.dtype, DType::Float32 | DType::Float64 | DType::Float16 | DType::BFloat16);
        Some(match self.spec.metric {
            TrialMetric::Accuracy if k > 1 => values.chunks(k).map(|r| r.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0.0, |(i, _)| i as f64)).collect(),
            TrialMetric::Accuracy if integer => values,
            TrialMetric::Accuracy => values.iter().map(|&p| if p >= 0.5 { 1.0 } else { 0.0 }).collect(),
            _ if k == 1 => values,
            _ => return None,
        })
    }

    /// Keeps what `variant` predicted for request `id` (ignored for a
    /// variant outside the trial, or an output it cannot read). A prediction
    /// for an arm the entry already holds, or for an answered entry whose
    /// arm was scored, is a new request reusing the id: it replaces the
    /// entry. An arm arriving after the outcome (a slow shadow run) is
    /// scored now; returns the decision that made, if any.
    pub fn record(&mut self, id: &str, variant: usize, outputs: &[OutputTensor]) -> Option<Decision> {
        let arm = self.arms_at.iter().position(|&v| v == variant)?;
        let t = match &self.spec.output {
            Some(name) => outputs.iter().find(|t| &t.name == name),
            None => outputs.first(),
        };
        let preds = t.and_then(|t| self.predictions(t))?;
        let reuse = self.kept.get(id).is_some_and(|k| k.preds[arm].is_some() || (k.truth.is_some() && k.scored[arm]));
        if reuse {
            if let Some(old) = self.kept.remove(id) {
                if old.truth.is_none() {
                    self.unanswered -= 1;
                }
                self.order.retain(|x| x != id);
            }
        }
        if !self.kept.contains_key(id) {
            if self.order.len() >= self.spec.keep.max(1) {
                if let Some(old) = self.order.pop_front() {
                    if self.kept.remove(&old).is_some_and(|k| k.truth.is_none()) {
                        self.unanswered -= 1;
                    }
                }
            }
            self.order.push_back(id.to_string());
            self.kept.insert(id.to_string(), Kept { preds: [None, None], truth: None, scored: [false; 2] });
            self.unanswered += 1;
        }
        let k = self.kept.get_mut(id)?;
        k.preds[arm] = Some(preds);
        // The outcome came first: score this arm now.
        let truth = k.truth.clone()?;
        self.score(id, &truth);
        if self.status == Status::Running {
            self.decide()
        } else {
            None
        }
    }

    /// Scores every arm of `id` that has a prediction and is not scored yet.
    fn score(&mut self, id: &str, truth: &[f64]) {
        let running = self.status == Status::Running;
        let Some(k) = self.kept.get(id) else { return };
        let mut add: Vec<(usize, Vec<f64>)> = Vec::new();
        for arm in 0..2 {
            if k.scored[arm] {
                continue;
            }
            if let Some(p) = &k.preds[arm] {
                if p.len() == truth.len() {
                    add.push((arm, p.iter().zip(truth).map(|(&p, &t)| self.loss(p, t)).collect()));
                }
            }
        }
        if let Some(k) = self.kept.get_mut(id) {
            for (arm, _) in &add {
                k.scored[*arm] = true;
            }
        }
        if running {
            for (arm, ls) in add {
                ls.into_iter().for_each(|l| self.arms[arm].add(l));
            }
        }
    }

    /// Whether a prediction for `id` is kept.
    pub fn knows(&self, id: &str) -> bool {
        self.kept.contains_key(id)
    }

    /// A truth as a class index or a number.
    fn truth_value(&self, t: &Truth) -> Result<f64, String> {
        match (t, self.spec.metric, &self.spec.labels) {
            (Truth::Label(s), TrialMetric::Accuracy, Some(labels)) => {
                labels.iter().position(|l| l == s).map(|i| i as f64).ok_or_else(|| format!("'{s}' is not one of the classes ({})", labels.join(", ")))
            }
            (Truth::Label(s), TrialMetric::Accuracy, None) => Err(format!("the outcome '{s}' is a label, but the policy declares no labels: give the class index")),
            (Truth::Label(s), _, _) => Err(format!("the outcome '{s}' is a label; this trial's metric needs a number")),
            (Truth::Value(x), TrialMetric::Accuracy, _) if !(x.is_finite() && x.fract() == 0.0 && *x >= 0.0) => Err(format!("the outcome {x} is not a class index")),
            (Truth::Value(x), _, _) if !x.is_finite() => Err(format!("the outcome {x} is not a finite number")),
            (Truth::Value(x), _, _) => Ok(*x),
        }
    }

    fn loss(&self, pred: f64, truth: f64) -> f64 {
        match self.spec.metric {
            TrialMetric::Accuracy => {
                if pred == truth {
                    0.0
                } else {
                    1.0
                }
            }
            TrialMetric::Mae => (pred - truth).abs(),
            TrialMetric::Mse => (pred - truth) * (pred - truth),
        }
    }

    /// Checks the outcome of request `id` without applying it: the id is
    /// kept and unanswered, and the truths fit. Returns the values.
    pub fn check(&self, id: &str, truths: &[Truth]) -> Result<Vec<f64>, Refusal> {
        let kept = self.kept.get(id).ok_or_else(|| Refusal::UnknownId(format!("no prediction with id '{id}' (never made, made without an id, or older than the last {} kept)", self.spec.keep)))?;
        if kept.truth.is_some() {
            return Err(Refusal::Answered(format!("prediction '{id}' already has its outcome")));
        }
        let values: Vec<f64> = truths.iter().map(|t| self.truth_value(t)).collect::<Result<_, _>>().map_err(Refusal::WrongTruth)?;
        let rows = kept.preds.iter().flatten().map(Vec::len).next().unwrap_or(0);
        if values.len() != rows {
            return Err(Refusal::WrongTruth(format!("prediction '{id}' has {rows} row(s); give one outcome per row, not {}", values.len())));
        }
        Ok(values)
    }

    /// The outcome of request `id`, one truth per row (one for all rows of a
    /// one-row request). Scores the arms that predicted it (an arm still
    /// running is scored when its prediction arrives) and, while running,
    /// tests; returns the decision if this outcome made one.
    pub fn answer(&mut self, id: &str, truths: &[Truth]) -> Result<Option<Decision>, Refusal> {
        let values = self.check(id, truths)?;
        if let Some(k) = self.kept.get_mut(id) {
            k.truth = Some(values.clone());
        }
        self.unanswered -= 1;
        self.feedback += 1;
        if self.status != Status::Running {
            return Ok(None);
        }
        self.score(id, &values);
        Ok(self.decide())
    }

    fn threshold(&self) -> f64 {
        (1.0 / (1.0 - self.spec.confidence)).ln()
    }

    /// Tests once both arms have their minimum; ends the trial on a decision
    /// or at `maxSamples`.
    fn decide(&mut self) -> Option<Decision> {
        let min = self.spec.min_samples.max(1);
        if self.arms[0].n < min || self.arms[1].n < min {
            return None;
        }
        let binary = self.spec.metric == TrialMetric::Accuracy;
        let tau = *self.tau.get_or_insert_with(|| self.spec.effect.unwrap_or_else(|| 0.25 * sequential::pooled_sd(&self.arms[0], &self.arms[1], binary)));
        let t = sequential::test(&self.arms[0], &self.arms[1], binary, tau)?;
        self.last = Some(t);
        let status = if t.log_ratio >= self.threshold() {
            if t.delta < 0.0 {
                Status::Promoted
            } else {
                Status::Retired
            }
        } else if self.spec.max_samples > 0 && self.arms[0].n >= self.spec.max_samples && self.arms[1].n >= self.spec.max_samples {
            Status::Undecided
        } else {
            return None;
        };
        self.status = status;
        let mean = |a: &Arm| a.mean().unwrap_or(f64::NAN);
        let d = Decision {
            status,
            at_ms: crate::timing::unix_ms(),
            feedback: self.feedback,
            samples: [self.arms[0].n, self.arms[1].n],
            loss: [mean(&self.arms[0]), mean(&self.arms[1])],
            delta: t.delta,
            log_ratio: t.log_ratio,
            threshold: self.threshold(),
        };
        self.decision = Some(d.clone());
        Some(d)
    }

    pub fn stats(&self) -> TrialStats {
        TrialStats {
            status: self.status,
            metric: match self.spec.metric {
                TrialMetric::Accuracy => "accuracy",
                TrialMetric::Mae => "mae",
                TrialMetric::Mse => "mse",
            },
            mode: match self.spec.mode {
                TrialMode::Split => "split",
                TrialMode::Shadow => "shadow",
            },
            champion: self.champion(),
            challenger: self.challenger(),
            confidence: self.spec.confidence,
            feedback: self.feedback,
            samples: [self.arms[0].n, self.arms[1].n],
            loss: [self.arms[0].mean(), self.arms[1].mean()],
            log_ratio: self.last.map(|t| t.log_ratio),
            threshold: self.threshold(),
            effect: self.tau,
            shadow_runs: self.shadow_runs,
            shadow_failures: self.shadow_failures,
            pending: self.unanswered,
            decision: self.decision.clone(),
        }
    }
}
