//! Reference profiles: what a feature looked like when the model was
//! validated. Numbers keep decile bin edges, the counts in each bin, the
//! missing count and a sorted sample (for the KS test); categories keep
//! their counts. Built by `pipeline.profile` over reference records and
//! stored in the spec (`monitor.reference`).

use serde::{Deserialize, Serialize};

use super::stats::quantile;

/// Numbers kept for the KS test, at most (evenly spaced order statistics).
pub const SAMPLE: usize = 2000;

/// A column's values, as the monitor reads them.
#[derive(Clone, Copy)]
pub enum Values<'a> {
    /// NaN is missing.
    Num(&'a [f64]),
    /// Codes into `vocab`; negative is missing.
    Cat { codes: &'a [i32], vocab: &'a [String] },
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Input,
    Output,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Distribution {
    Number {
        /// Ascending, distinct: the reference's deciles.
        edges: Vec<f64>,
        /// One count per bin (`edges.len() + 1` bins).
        counts: Vec<u64>,
        missing: u64,
        /// Ascending; at most `SAMPLE` values.
        sample: Vec<f64>,
    },
    Category {
        /// By category name, ascending.
        counts: Vec<(String, u64)>,
        missing: u64,
    },
}

/// (Unknown keys are refused by the distribution, which sees the keys
/// `name` and `role` leave: serde cannot deny them on a flattened struct.)
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Feature {
    pub name: String,
    pub role: Role,
    #[serde(flatten)]
    pub distribution: Distribution,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub version: u32,
    /// Records profiled.
    pub rows: u64,
    pub features: Vec<Feature>,
}

impl Default for Profile {
    /// No features: a monitor without drift checks (business metrics or feedback only).
    fn default() -> Self {
        Profile { version: 1, rows: 0, features: Vec::new() }
    }
}

impl Distribution {
    /// The distribution of `values`.
    pub fn of(values: &Values) -> Distribution {
        match values {
            Values::Num(v) => {
                let mut present: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
                present.sort_by(f64::total_cmp);
                let missing = (v.len() - present.len()) as u64;
                let mut edges: Vec<f64> = (1..10).map(|k| quantile(&present, k as f64 / 10.0)).filter(|e| !e.is_nan()).collect();
                edges.dedup();
                let mut counts = vec![0u64; edges.len() + 1];
                for &x in &present {
                    counts[super::stats::bin(&edges, x)] += 1;
                }
                Distribution::Number { edges, counts, missing, sample: thin(&present) }
            }
            Values::Cat { codes, vocab } => {
                let mut counts = vec![0u64; vocab.len()];
                let mut missing = 0;
                for &c in codes.iter() {
                    match counts.get_mut(c as usize) {
                        Some(n) if c >= 0 => *n += 1,
                        _ => missing += 1,
                    }
                }
                let mut named: Vec<(String, u64)> = vocab.iter().cloned().zip(counts).filter(|(_, n)| *n > 0).collect();
                named.sort();
                Distribution::Category { counts: named, missing }
            }
        }
    }
}

/// At most `SAMPLE` evenly spaced order statistics of ascending `sorted`.
fn thin(sorted: &[f64]) -> Vec<f64> {
    if sorted.len() <= SAMPLE {
        return sorted.to_vec();
    }
    (0..SAMPLE).map(|i| sorted[i * (sorted.len() - 1) / (SAMPLE - 1)]).collect()
}

impl Profile {
    pub fn build(rows: usize, columns: &[(&str, Role, Values)]) -> Profile {
        let features = columns.iter().map(|(name, role, v)| Feature { name: name.to_string(), role: *role, distribution: Distribution::of(v) }).collect();
        Profile { version: 1, rows: rows as u64, features }
    }
}
