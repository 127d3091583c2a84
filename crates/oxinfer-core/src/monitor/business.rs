//! Business metrics declared in a spec's `monitor.metrics`: the rate of a
//! label, the mean score, the sum of a field over accepted rows. Each is a
//! count, rate, mean or sum over the rows a condition selects, kept since
//! the pipeline compiled and over the last `window` rows, and exported as
//! metrics. Fields are read as they arrived (inputs) or as callers get them
//! (`label`, `score`), as the drift monitor reads them.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::Values;

/// What a metric computes over the rows its condition selects.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Rows selected.
    Count,
    /// Rows selected over rows seen.
    Rate,
    /// The mean of `of` over rows selected (missing values skipped).
    Mean,
    /// The sum of `of` over rows selected (missing values skipped).
    Sum,
}

/// A row condition on one field: exactly one comparison.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    /// An input field, `label` (the predicted class) or `score` (its score).
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eq: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ne: Option<serde_json::Value>,
    #[serde(default, rename = "in", skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gt: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gte: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lt: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lte: Option<f64>,
}

/// One declared metric.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricSpec {
    /// Its name in metrics and `metrics()`: letters, digits and `_`.
    pub name: String,
    pub kind: Kind,
    /// The number field (or `score`) a mean or sum reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub of: Option<String>,
    /// The rows counted (default: every row).
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub filter: Option<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

/// A field as metrics see it: a number or a category.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    Number,
    Category,
}

/// A field's values for `observe`: row i of the batch is `values[rows[i]]`
/// (or `values[i]` without `rows`).
pub struct Column<'a> {
    pub name: &'a str,
    pub values: Values<'a>,
    pub rows: Option<&'a [usize]>,
}

impl Column<'_> {
    fn at(&self, i: usize) -> usize {
        self.rows.map_or(i, |r| r.get(i).copied().unwrap_or(usize::MAX))
    }
}

/// A compiled test on one row's value.
#[derive(Clone, Debug)]
enum Test {
    In(Vec<String>, bool),
    Range { lo: f64, lo_incl: bool, hi: f64, hi_incl: bool },
    NumIn(Vec<f64>, bool),
}

#[derive(Clone, Debug)]
struct Compiled {
    spec: MetricSpec,
    filter: Option<(String, Test)>,
}

/// A metric's figures.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricValue {
    pub name: String,
    pub kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// Since the pipeline compiled (null: no rows yet, or no value for a mean).
    pub total: Option<f64>,
    /// Over the last `window` rows.
    pub window: Option<f64>,
    /// Rows seen since compiling, and in the window.
    pub rows: u64,
    pub window_rows: usize,
}

#[derive(Default, Clone, Copy)]
struct Sums {
    rows: u64,
    hits: u64,
    /// Selected rows with a value, and their sum (mean and sum).
    n: u64,
    sum: f64,
}

struct State {
    total: Vec<Sums>,
    /// Per metric, per row in the window: (selected, value or NaN).
    ring: Vec<VecDeque<(bool, f64)>>,
    window: Vec<Sums>,
    /// Rows since the window's sums were last recomputed.
    since_exact: Vec<usize>,
}

pub struct Business {
    metrics: Vec<Compiled>,
    window: usize,
    state: Mutex<State>,
}

fn as_str(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

impl Business {
    /// Compiles `specs` against the fields there are (`kind_of` gives a
    /// field's kind, None for no such field); errors name the metric's path.
    pub fn new(specs: &[MetricSpec], window: usize, kind_of: &dyn Fn(&str) -> Option<FieldKind>) -> std::result::Result<Business, (String, String)> {
        let mut metrics = Vec::with_capacity(specs.len());
        for (i, m) in specs.iter().enumerate() {
            let at = |k: &str| format!("monitor.metrics[{i}]{k}");
            let ok_name = !m.name.is_empty() && m.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !m.name.starts_with(|c: char| c.is_ascii_digit());
            if !ok_name {
                return Err((at(".name"), format!("metric name '{}' must be letters, digits and '_', not starting with a digit", m.name)));
            }
            if specs[..i].iter().any(|x| x.name == m.name) {
                return Err((at(".name"), format!("two metrics are named '{}'", m.name)));
            }
            match (m.kind, &m.of) {
                (Kind::Mean | Kind::Sum, None) => return Err((at(".of"), format!("metric '{}': a {:?} needs 'of', the number field it reads", m.name, m.kind).to_lowercase())),
                (Kind::Mean | Kind::Sum, Some(f)) if kind_of(f) != Some(FieldKind::Number) => {
                    return Err((at(".of"), format!("metric '{}': 'of' must name a number field or 'score', not '{f}'", m.name)))
                }
                (Kind::Count | Kind::Rate, Some(_)) => return Err((at(".of"), format!("metric '{}': a count or rate reads no 'of'", m.name))),
                _ => {}
            }
            let filter = match &m.filter {
                None => None,
                Some(c) => {
                    let kind = kind_of(&c.field).ok_or_else(|| (at(".where.field"), format!("metric '{}': no field '{}' (inputs, 'label' or 'score')", m.name, c.field)))?;
                    let given = [c.eq.is_some(), c.ne.is_some(), c.one_of.is_some(), c.gt.is_some() || c.gte.is_some() || c.lt.is_some() || c.lte.is_some()];
                    if given.iter().filter(|&&g| g).count() != 1 {
                        return Err((at(".where"), format!("metric '{}': give one comparison: eq, ne, in, or a range (gt/gte/lt/lte)", m.name)));
                    }
                    let bad = |what: &str| (at(".where"), format!("metric '{}': field '{}' is a {}; {what}", m.name, c.field, if kind == FieldKind::Number { "number" } else { "category" }));
                    let list = |vs: &[serde_json::Value]| -> Option<Vec<String>> { vs.iter().map(as_str).collect() };
                    let nums = |vs: &[serde_json::Value]| -> Option<Vec<f64>> { vs.iter().map(|v| v.as_f64()).collect() };
                    let test = match (kind, c) {
                        (FieldKind::Category, Condition { eq: Some(v), .. }) => Test::In(list(std::slice::from_ref(v)).ok_or_else(|| bad("compare it with a string"))?, true),
                        (FieldKind::Category, Condition { ne: Some(v), .. }) => Test::In(list(std::slice::from_ref(v)).ok_or_else(|| bad("compare it with a string"))?, false),
                        (FieldKind::Category, Condition { one_of: Some(vs), .. }) => Test::In(list(vs).ok_or_else(|| bad("'in' takes strings"))?, true),
                        (FieldKind::Category, _) => return Err(bad("ranges apply to numbers")),
                        (FieldKind::Number, Condition { eq: Some(v), .. }) => Test::NumIn(nums(std::slice::from_ref(v)).ok_or_else(|| bad("compare it with a number"))?, true),
                        (FieldKind::Number, Condition { ne: Some(v), .. }) => Test::NumIn(nums(std::slice::from_ref(v)).ok_or_else(|| bad("compare it with a number"))?, false),
                        (FieldKind::Number, Condition { one_of: Some(vs), .. }) => Test::NumIn(nums(vs).ok_or_else(|| bad("'in' takes numbers"))?, true),
                        (FieldKind::Number, c) => {
                            if (c.gt.is_some() && c.gte.is_some()) || (c.lt.is_some() && c.lte.is_some()) {
                                return Err((at(".where"), format!("metric '{}': give gt or gte, and lt or lte, not both", m.name)));
                            }
                            let (lo, lo_incl) = c.gte.map(|v| (v, true)).or(c.gt.map(|v| (v, false))).unwrap_or((f64::NEG_INFINITY, true));
                            let (hi, hi_incl) = c.lte.map(|v| (v, true)).or(c.lt.map(|v| (v, false))).unwrap_or((f64::INFINITY, true));
                            Test::Range { lo, lo_incl, hi, hi_incl }
                        }
                    };
                    Some((c.field.clone(), test))
                }
            };
            metrics.push(Compiled { spec: m.clone(), filter });
        }
        let n = metrics.len();
        let state = State { total: vec![Sums::default(); n], ring: vec![VecDeque::new(); n], window: vec![Sums::default(); n], since_exact: vec![0; n] };
        Ok(Business { metrics, window: window.max(1), state: Mutex::new(state) })
    }

    /// The fields the metrics read (`of` and `where`), outputs included.
    pub fn fields(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for m in &self.metrics {
            for f in [m.spec.of.as_deref(), m.filter.as_ref().map(|(f, _)| f.as_str())].into_iter().flatten() {
                if !out.contains(&f) {
                    out.push(f);
                }
            }
        }
        out
    }

    /// Whether any metric is declared.
    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty()
    }

    /// Adds `rows` rows, reading each field from `columns` by name.
    pub fn observe(&self, rows: usize, columns: &[Column]) {
        if rows == 0 || self.metrics.is_empty() {
            return;
        }
        let column = |name: &str| columns.iter().find(|c| c.name == name);
        // Evaluated outside the lock; only the sums are updated under it.
        let per_metric: Vec<Vec<(bool, f64)>> = self
            .metrics
            .iter()
            .map(|m| {
                let selected: Vec<bool> = match &m.filter {
                    None => vec![true; rows],
                    Some((field, test)) => match column(field) {
                        None => vec![false; rows],
                        Some(c) => (0..rows).map(|i| passes(test, &c.values, c.at(i))).collect(),
                    },
                };
                let value = m.spec.of.as_deref().and_then(column);
                (0..rows)
                    .map(|i| {
                        let v = match value {
                            Some(Column { values: Values::Num(xs), .. }) => xs.get(value.map_or(i, |c| c.at(i))).copied().unwrap_or(f64::NAN),
                            _ => f64::NAN,
                        };
                        // An infinite value is skipped like a missing one: it would poison the sums.
                        let v = if v.is_finite() { v } else { f64::NAN };
                        (selected[i], v)
                    })
                    .collect()
            })
            .collect();
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let cap = self.window;
        for (k, row_values) in per_metric.into_iter().enumerate() {
            for (hit, v) in row_values {
                add(&mut st.total[k], hit, v, 1.0);
                add(&mut st.window[k], hit, v, 1.0);
                st.ring[k].push_back((hit, v));
                if st.ring[k].len() > cap {
                    if let Some((h, old)) = st.ring[k].pop_front() {
                        add(&mut st.window[k], h, old, -1.0);
                    }
                }
            }
            // Adding and removing leaves rounding in the window's sum: once
            // per window of rows, it is summed afresh from the ring.
            st.since_exact[k] += rows;
            if st.since_exact[k] >= cap {
                st.since_exact[k] = 0;
                let mut fresh = Sums::default();
                for &(h, v) in &st.ring[k] {
                    add(&mut fresh, h, v, 1.0);
                }
                st.window[k] = fresh;
            }
        }
    }

    /// Every metric now.
    pub fn values(&self) -> Vec<MetricValue> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.metrics
            .iter()
            .enumerate()
            .map(|(k, m)| MetricValue {
                name: m.spec.name.clone(),
                kind: m.spec.kind,
                help: m.spec.help.clone(),
                total: figure(m.spec.kind, &st.total[k]),
                window: figure(m.spec.kind, &st.window[k]),
                rows: st.total[k].rows,
                window_rows: st.ring[k].len(),
            })
            .collect()
    }
}

/// Adds (sign 1) or removes (sign −1) one row.
fn add(s: &mut Sums, hit: bool, v: f64, sign: f64) {
    let step = |x: u64| if sign > 0.0 { x + 1 } else { x.saturating_sub(1) };
    s.rows = step(s.rows);
    if hit {
        s.hits = step(s.hits);
        if !v.is_nan() {
            s.n = step(s.n);
            s.sum += sign * v;
        }
    }
    if s.n == 0 {
        // No value left: clear the rounding a long run of adds and removes leaves.
        s.sum = 0.0;
    }
}

fn figure(kind: Kind, s: &Sums) -> Option<f64> {
    match kind {
        Kind::Count => Some(s.hits as f64),
        Kind::Rate => (s.rows > 0).then(|| s.hits as f64 / s.rows as f64),
        Kind::Mean => (s.n > 0).then(|| s.sum / s.n as f64),
        Kind::Sum => Some(s.sum),
    }
}

fn passes(test: &Test, values: &Values, i: usize) -> bool {
    match (test, values) {
        (Test::In(set, want), Values::Cat { codes, vocab }) => {
            let v = codes.get(i).and_then(|&c| usize::try_from(c).ok()).and_then(|c| vocab.get(c));
            // A missing value is in no set, and "ne" does not select it either.
            v.is_some_and(|v| set.iter().any(|s| s == v) == *want)
        }
        (Test::NumIn(set, want), Values::Num(xs)) => xs.get(i).is_some_and(|x| !x.is_nan() && set.contains(x) == *want),
        (Test::Range { lo, lo_incl, hi, hi_incl }, Values::Num(xs)) => xs.get(i).is_some_and(|&x| {
            !x.is_nan() && (if *lo_incl { x >= *lo } else { x > *lo }) && (if *hi_incl { x <= *hi } else { x < *hi })
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Vec<MetricSpec> {
        serde_json::from_str(json).unwrap()
    }

    fn kinds(name: &str) -> Option<FieldKind> {
        match name {
            "label" | "island" => Some(FieldKind::Category),
            "score" | "mass" => Some(FieldKind::Number),
            _ => None,
        }
    }

    #[test]
    fn rate_mean_sum_and_count_are_exact_over_totals_and_the_window() {
        let b = Business::new(
            &spec(
                r#"[{"name": "gentoo_rate", "kind": "rate", "where": {"field": "label", "eq": "Gentoo"}},
                    {"name": "mean_score", "kind": "mean", "of": "score"},
                    {"name": "confident_mass", "kind": "sum", "of": "mass", "where": {"field": "score", "gte": 0.9}},
                    {"name": "not_biscoe", "kind": "count", "where": {"field": "island", "ne": "Biscoe"}}]"#,
            ),
            3,
            &kinds,
        )
        .unwrap();
        let vocab = vec!["Adelie".to_string(), "Gentoo".to_string()];
        let islands = vec!["Biscoe".to_string(), "Dream".to_string()];
        let cols = [
            Column { name: "label", values: Values::Cat { codes: &[1, 0, 1, 1], vocab: &vocab }, rows: None },
            Column { name: "island", values: Values::Cat { codes: &[9, 0, 1, -1, 1], vocab: &islands }, rows: Some(&[1, 2, 3, 4]) },
            Column { name: "score", values: Values::Num(&[0.95, 0.5, 0.9, 0.99]), rows: None },
            Column { name: "mass", values: Values::Num(&[4000.0, 3000.0, f64::NAN, 5000.0]), rows: None },
        ];
        b.observe(4, &cols);
        let v = b.values();
        // Totals over 4 rows; the window holds the last 3.
        assert_eq!((v[0].total, v[0].window), (Some(0.75), Some(2.0 / 3.0)));
        assert!((v[1].total.unwrap() - (0.95 + 0.5 + 0.9 + 0.99) / 4.0).abs() < 1e-12);
        assert!((v[1].window.unwrap() - (0.5 + 0.9 + 0.99) / 3.0).abs() < 1e-12);
        // Rows 0 and 3 pass score ≥ 0.9 with a mass; row 2 passes but has none.
        assert_eq!((v[2].total, v[2].window), (Some(9000.0), Some(5000.0)));
        // "ne" skips the missing island.
        assert_eq!((v[3].total, v[3].window), (Some(2.0), Some(2.0)));
        assert_eq!((v[0].rows, v[0].window_rows), (4, 3));
    }

    #[test]
    fn bad_declarations_name_the_metric_and_path() {
        let bad = |json: &str| Business::new(&spec(json), 10, &kinds).err().unwrap();
        assert_eq!(bad(r#"[{"name": "a b", "kind": "count"}]"#).0, "monitor.metrics[0].name");
        assert!(bad(r#"[{"name": "m", "kind": "mean"}]"#).1.contains("needs 'of'"));
        assert!(bad(r#"[{"name": "m", "kind": "sum", "of": "island"}]"#).1.contains("number field"));
        assert!(bad(r#"[{"name": "m", "kind": "rate", "of": "score"}]"#).1.contains("reads no 'of'"));
        assert!(bad(r#"[{"name": "m", "kind": "rate", "where": {"field": "nope", "eq": 1}}]"#).1.contains("no field 'nope'"));
        assert!(bad(r#"[{"name": "m", "kind": "rate", "where": {"field": "label", "gt": 1}}]"#).1.contains("ranges apply to numbers"));
        assert!(bad(r#"[{"name": "m", "kind": "rate", "where": {"field": "label", "eq": 1}}]"#).1.contains("with a string"));
        assert!(bad(r#"[{"name": "m", "kind": "rate", "where": {"field": "score", "eq": 1, "gt": 0}}]"#).1.contains("one comparison"));
        assert!(bad(r#"[{"name": "m", "kind": "count"}, {"name": "m", "kind": "count"}]"#).1.contains("two metrics"));
    }
}
