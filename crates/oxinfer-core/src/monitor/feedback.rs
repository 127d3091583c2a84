//! Feedback: predictions kept by id (a record field the caller sets, such
//! as a transaction id) until their outcome arrives, and online quality over
//! the last `window` outcomes: accuracy, macro precision and recall, and
//! one-vs-rest AUC for classifiers (macro over classes that have both
//! outcomes); MAE and RMSE for a single score (regression).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

fn default_keep() -> usize {
    100_000
}
fn default_window() -> usize {
    1000
}

/// The spec's `monitor.feedback` section.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FeedbackSpec {
    /// The record field (a category) holding each prediction's id.
    pub id_field: String,
    /// Predictions kept for feedback, at most (the oldest go first).
    #[serde(default = "default_keep")]
    pub keep: usize,
    /// Outcomes the quality metrics cover: the most recent this many.
    #[serde(default = "default_window")]
    pub window: usize,
}

/// The truth for one prediction: a class label, or a number.
#[derive(Clone, Debug, PartialEq)]
pub enum Truth {
    Label(String),
    Value(f64),
}

/// Why an outcome was refused.
#[derive(Clone, Debug, PartialEq)]
pub enum Refusal {
    /// No prediction kept with that id.
    UnknownId(String),
    /// The prediction already has its outcome.
    Answered(String),
    /// A label for a number, a number for a class, or an unknown class.
    WrongTruth(String),
}

impl Refusal {
    pub fn into_error(self) -> Error {
        match self {
            Refusal::UnknownId(m) | Refusal::Answered(m) | Refusal::WrongTruth(m) => Error::InvalidArgument(m),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Quality {
    /// Outcomes received since the pipeline was compiled.
    pub feedback: u64,
    /// Outcomes the metrics cover (the window).
    pub window: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precision: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recall: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auc: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mae: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rmse: Option<f64>,
}

struct Prediction {
    scores: Vec<f64>,
    answered: bool,
}

/// An outcome in the window: the prediction's scores and the truth.
struct Outcome {
    scores: Vec<f64>,
    truth: Truth,
}

struct State {
    by_id: HashMap<String, Prediction>,
    order: VecDeque<String>,
    window: VecDeque<Outcome>,
    feedback: u64,
}

pub struct Feedback {
    spec: FeedbackSpec,
    /// Class labels (empty: a single score, regression).
    labels: Vec<String>,
    state: Mutex<State>,
}

impl Feedback {
    pub fn new(spec: FeedbackSpec, labels: Vec<String>) -> Result<Feedback> {
        if spec.keep == 0 || spec.window == 0 {
            return Err(Error::invalid_spec("monitor", "feedback: keep and window must be at least 1").at("monitor.feedback"));
        }
        Ok(Feedback { spec, labels, state: Mutex::new(State { by_id: HashMap::new(), order: VecDeque::new(), window: VecDeque::new(), feedback: 0 }) })
    }

    pub fn spec(&self) -> &FeedbackSpec {
        &self.spec
    }

    /// Keeps predictions by id: `scores` holds `k` per prediction. A row
    /// without an id (`None`) is not kept; an id seen again replaces its
    /// prediction.
    pub fn record(&self, ids: &[Option<&str>], scores: &[f64], k: usize) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for (i, id) in ids.iter().enumerate() {
            let Some(id) = id else { continue };
            let row = scores[i * k..(i + 1) * k].to_vec();
            if st.by_id.insert(id.to_string(), Prediction { scores: row, answered: false }).is_none() {
                st.order.push_back(id.to_string());
            }
            while st.order.len() > self.spec.keep {
                if let Some(old) = st.order.pop_front() {
                    st.by_id.remove(&old);
                }
            }
        }
    }

    /// Records the outcome of prediction `id`. Refuses an unknown id, a
    /// second outcome, and a truth of the wrong kind (see `Refusal`).
    pub fn feedback(&self, id: &str, truth: Truth) -> Result<()> {
        self.answer(id, truth).map_err(Refusal::into_error)
    }

    /// `feedback`, with the reason for a refusal kept apart (the server
    /// answers each with its own status).
    pub fn answer(&self, id: &str, truth: Truth) -> std::result::Result<(), Refusal> {
        self.check_truth(id, &truth).map_err(Refusal::WrongTruth)?;
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let p = st.by_id.get_mut(id).ok_or_else(|| {
            Refusal::UnknownId(format!("no prediction with id '{id}' (never made, made without an id, or older than the last {} kept)", self.spec.keep))
        })?;
        if p.answered {
            return Err(Refusal::Answered(format!("prediction '{id}' already has its outcome")));
        }
        p.answered = true;
        let scores = p.scores.clone();
        st.window.push_back(Outcome { scores, truth });
        if st.window.len() > self.spec.window {
            st.window.pop_front();
        }
        st.feedback += 1;
        Ok(())
    }

    fn check_truth(&self, id: &str, truth: &Truth) -> std::result::Result<(), String> {
        match (truth, self.labels.is_empty()) {
            (Truth::Label(l), false) if !self.labels.contains(l) => Err(format!("feedback for '{id}': '{l}' is not one of the classes ({})", self.labels.join(", "))),
            (Truth::Label(_), true) => Err(format!("feedback for '{id}': this model predicts a number; give the true value as a number")),
            (Truth::Value(_), false) => Err(format!("feedback for '{id}': this model predicts a class; give the true label as a string")),
            (Truth::Value(v), true) if !v.is_finite() => Err(format!("feedback for '{id}': the true value must be finite")),
            _ => Ok(()),
        }
    }

    /// The quality metrics over the window.
    pub fn quality(&self) -> Quality {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut q = Quality { feedback: st.feedback, window: st.window.len(), ..Quality::default() };
        if st.window.is_empty() {
            return q;
        }
        if self.labels.is_empty() {
            let errs: Vec<f64> = st.window.iter().filter_map(|o| if let Truth::Value(v) = o.truth { o.scores.first().map(|s| s - v) } else { None }).filter(|e| e.is_finite()).collect();
            if errs.is_empty() {
                return q;
            }
            let n = errs.len() as f64;
            q.mae = Some(errs.iter().map(|e| e.abs()).sum::<f64>() / n);
            q.rmse = Some((errs.iter().map(|e| e * e).sum::<f64>() / n).sqrt());
            return q;
        }
        let k = self.labels.len();
        let truth: Vec<usize> = st.window.iter().map(|o| if let Truth::Label(l) = &o.truth { self.labels.iter().position(|x| x == l).unwrap_or(0) } else { 0 }).collect();
        let predicted: Vec<usize> = st.window.iter().map(|o| argmax(&o.scores)).collect();
        let n = truth.len();
        q.accuracy = Some(truth.iter().zip(&predicted).filter(|(t, p)| t == p).count() as f64 / n as f64);
        // Macro averages as scikit-learn takes them: over the classes seen in
        // the truth or the predictions, an undefined ratio counting 0.
        let (mut precision, mut recall, mut seen, mut auc, mut na) = (0.0, 0.0, 0, 0.0, 0);
        for c in 0..k {
            let tp = truth.iter().zip(&predicted).filter(|(t, p)| **t == c && **p == c).count() as f64;
            let predicted_c = predicted.iter().filter(|p| **p == c).count() as f64;
            let actual_c = truth.iter().filter(|t| **t == c).count() as f64;
            if predicted_c > 0.0 || actual_c > 0.0 {
                seen += 1;
                precision += if predicted_c > 0.0 { tp / predicted_c } else { 0.0 };
                recall += if actual_c > 0.0 { tp / actual_c } else { 0.0 };
            }
            let scores: Vec<f64> = st.window.iter().map(|o| o.scores.get(c).copied().unwrap_or(f64::NAN)).collect();
            if let Some(a) = auc_of(&scores, &truth.iter().map(|t| *t == c).collect::<Vec<_>>()) {
                auc += a;
                na += 1;
            }
        }
        q.precision = (seen > 0).then(|| precision / seen as f64);
        q.recall = (seen > 0).then(|| recall / seen as f64);
        q.auc = (na > 0).then(|| auc / na as f64);
        q
    }
}

fn argmax(s: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in s.iter().enumerate() {
        if x > s[best] {
            best = i;
        }
    }
    best
}

/// The area under the ROC curve of `scores` for `positive` outcomes (the
/// Mann–Whitney statistic, ties counted half); None without both outcomes.
pub fn auc_of(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let mut idx: Vec<usize> = (0..scores.len()).filter(|&i| !scores[i].is_nan()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (pos, neg) = idx.iter().fold((0usize, 0usize), |(p, n), &i| if positive[i] { (p + 1, n) } else { (p, n + 1) });
    if pos == 0 || neg == 0 {
        return None;
    }
    // Average ranks over ties, then the positives' rank sum.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &t in &idx[i..=j] {
            if positive[t] {
                rank_sum += avg;
            }
        }
        i = j + 1;
    }
    let (p, n) = (pos as f64, neg as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_on_constructed_cases() {
        assert_eq!(auc_of(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]), Some(0.75));
        assert_eq!(auc_of(&[0.5, 0.5], &[false, true]), Some(0.5));
        assert_eq!(auc_of(&[0.2, 0.9], &[true, true]), None);
    }

    #[test]
    fn classification_quality_is_exact() {
        let f = Feedback::new(FeedbackSpec { id_field: "id".into(), keep: 10, window: 10 }, vec!["a".into(), "b".into()]).unwrap();
        let ids = ["1", "2", "3", "4"].map(Some);
        // Predicted: a, b, b, a (scores of a, b per row).
        f.record(&ids, &[0.9, 0.1, 0.3, 0.7, 0.4, 0.6, 0.8, 0.2], 2);
        for (id, t) in [("1", "a"), ("2", "b"), ("3", "a"), ("4", "a")] {
            f.feedback(id, Truth::Label(t.into())).unwrap();
        }
        let q = f.quality();
        assert_eq!(q.accuracy, Some(0.75));
        // precision: a 2/2, b 1/2 -> 0.75; recall: a 2/3, b 1/1 -> 5/6.
        assert_eq!(q.precision, Some(0.75));
        assert!((q.recall.unwrap() - 5.0 / 6.0).abs() < 1e-12);
        // AUC of class b's score for "is b": positives {0.7}, negatives {0.1, 0.6, 0.2} -> 1.0; class a likewise.
        assert_eq!(q.auc, Some(1.0));
        assert_eq!(f.feedback("1", Truth::Label("a".into())).unwrap_err().code(), "ERR_INVALID_ARGUMENT");
        assert!(f.feedback("9", Truth::Label("a".into())).unwrap_err().to_string().contains("no prediction"));
        assert!(f.feedback("2", Truth::Label("c".into())).unwrap_err().to_string().contains("not one of the classes"));
        assert!(f.feedback("2", Truth::Value(1.0)).unwrap_err().to_string().contains("predicts a class"));
    }

    #[test]
    fn regression_quality_and_bounded_keep() {
        let f = Feedback::new(FeedbackSpec { id_field: "id".into(), keep: 2, window: 10 }, vec![]).unwrap();
        f.record(&["x", "y", "z"].map(Some), &[1.0, 2.0, 4.0], 1);
        // x was pushed out by z (keep 2).
        assert!(f.feedback("x", Truth::Value(1.0)).is_err());
        f.feedback("y", Truth::Value(3.0)).unwrap();
        f.feedback("z", Truth::Value(1.0)).unwrap();
        let q = f.quality();
        assert_eq!(q.mae, Some(2.0));
        assert!((q.rmse.unwrap() - 5f64.sqrt()).abs() < 1e-12);
        assert_eq!(q.feedback, 2);
    }
}
