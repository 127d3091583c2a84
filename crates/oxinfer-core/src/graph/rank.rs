//! Rank nodes: order a candidate list for a query with a scoring model.
//!
//! The node's inputs are `candidates`, a [N, F] tensor (one row of features
//! per candidate), and optionally `query`, a [Q] or [1, Q] tensor of the
//! same element type. The model has one input (or the one the spec names)
//! and its scores are read from its first output (or the one named):
//!
//! - **pointwise**: row i is `query ++ candidate[i]`, [N, Q+F] in one run;
//!   the model gives one score per row ([N] or [N, 1]).
//! - **pairwise**: row (i, j) is `query ++ candidate[i] ++ candidate[j]` for
//!   every ordered pair i ≠ j, [N(N−1), Q+2F] in one run; the model gives
//!   P(i ranks before j) per row. Candidate i scores
//!   `Σ_{j≠i} ½ (P(i,j) + 1 − P(j,i))`, its expected number of wins with
//!   both presentation orders averaged (a Borda count of win probabilities).
//! - **listwise**: the whole list, [1, N, Q+F], in one run; the model gives
//!   one score per candidate ([1, N], [N] or [1, N, 1]).
//!
//! Pointwise and pairwise rows are split into runs of at most `maxBatch`
//! rows, or exactly the model's fixed batch dim (the last run padded by
//! repeating its last row, whose scores are dropped).
//!
//! Outputs: `order`, int64 [N], candidate indices best first (ties: the lower
//! index first), and `scores`, float32 [N], their scores in that order.

use crate::backend::Dim;
use crate::error::{Error, Result};
use crate::graph::ops::f64s;
use crate::graph::spec::RankStrategy;
use crate::graph::types::{fixed, Ty};
use crate::tensor::{AlignedBytes, DType, InputData, InputTensor, OutputTensor};

/// How a rank node presents candidates to its model.
#[derive(Clone, Debug)]
pub(crate) struct Ranker {
    pub strategy: RankStrategy,
    /// The model input fed.
    pub input: String,
    /// The model output read as scores.
    pub output: String,
    /// At most this many rows per run.
    pub max_rows: Option<usize>,
    /// The model's fixed batch dim: every run has exactly this many rows.
    pub fixed_rows: Option<usize>,
}

/// The model runs for one ranking.
pub(crate) struct Runs {
    pub inputs: Vec<InputTensor>,
    /// Real (unpadded) rows in each run.
    pub rows: Vec<usize>,
    /// Rows in each run, padding included: the scores each must return.
    pub padded: Vec<usize>,
    /// Candidates.
    pub n: usize,
}

/// Builds `rows` byte rows of width `w` bytes with `fill(row, out)`.
fn rows_into(count: usize, w: usize, mut fill: impl FnMut(usize, &mut [u8])) -> AlignedBytes {
    let mut b = AlignedBytes::zeroed(count * w);
    let out = b.as_mut_slice();
    for r in 0..count {
        fill(r, &mut out[r * w..(r + 1) * w]);
    }
    b
}

/// The most candidates a pairwise rank node takes (N(N−1) model rows).
pub const MAX_PAIRWISE: usize = 512;

impl Ranker {
    /// The model inputs that rank `cands` for `query`.
    pub fn runs(&self, cands: &InputTensor, query: Option<&InputTensor>) -> Result<Runs> {
        if matches!(cands.data, InputData::Strings(_)) || cands.dims.len() != 2 {
            return Err(Error::invalid_input(&cands.name, format!("rank: candidates must be a numeric [N, F] tensor, got {} dims {:?}", cands.dtype.name(), cands.dims)));
        }
        let (n, f) = (cands.dims[0] as usize, cands.dims[1] as usize);
        // Pairwise rows grow as N²: past this many candidates one request
        // could ask for gigabytes of model input.
        if self.strategy == RankStrategy::Pairwise && n > MAX_PAIRWISE {
            return Err(Error::invalid_input(&cands.name, format!("rank: pairwise ranking takes at most {MAX_PAIRWISE} candidates ({} pairs), got {n}; rank pointwise first and re-rank the top ones pairwise", MAX_PAIRWISE * (MAX_PAIRWISE - 1))));
        }
        let q: &[u8] = match query {
            None => &[],
            Some(t) if t.dtype != cands.dtype => {
                return Err(Error::invalid_input(&t.name, format!("rank: the query is {} but the candidates are {}", t.dtype.name(), cands.dtype.name())))
            }
            Some(t) if t.dims.len() == 1 || (t.dims.len() == 2 && t.dims[0] == 1) => t.bytes(),
            Some(t) => return Err(Error::invalid_input(&t.name, format!("rank: the query must be [Q] or [1, Q], got dims {:?}", t.dims))),
        };
        let es = cands.dtype.size();
        let c = cands.bytes();
        let row = |i: usize| &c[i * f * es..(i + 1) * f * es];
        let qe = (q.len() / es.max(1)) as i64;
        let tensor = |dims: Vec<i64>, bytes: AlignedBytes| InputTensor { name: self.input.clone(), dtype: cands.dtype, dims, data: InputData::Owned(bytes) };
        match self.strategy {
            RankStrategy::Listwise => {
                let w = q.len() + f * es;
                let bytes = rows_into(n, w, |i, out| {
                    out[..q.len()].copy_from_slice(q);
                    out[q.len()..].copy_from_slice(row(i));
                });
                let runs = if n == 0 { vec![] } else { vec![tensor(vec![1, n as i64, qe + f as i64], bytes)] };
                Ok(Runs { rows: runs.iter().map(|_| n).collect(), padded: runs.iter().map(|_| n).collect(), inputs: runs, n })
            }
            RankStrategy::Pointwise | RankStrategy::Pairwise => {
                let pairwise = self.strategy == RankStrategy::Pairwise;
                let pairs: Vec<(usize, usize)> =
                    if pairwise { (0..n).flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j))).collect() } else { (0..n).map(|i| (i, i)).collect() };
                let w = q.len() + f * es * if pairwise { 2 } else { 1 };
                let width = (w / es.max(1)) as i64;
                let per_run = self.fixed_rows.or(self.max_rows).filter(|&k| k > 0).unwrap_or(pairs.len().max(1));
                let mut inputs = Vec::new();
                let mut rows = Vec::new();
                let mut padded = Vec::new();
                for chunk in pairs.chunks(per_run) {
                    let count = self.fixed_rows.unwrap_or(chunk.len());
                    let bytes = rows_into(count, w, |r, out| {
                        let (i, j) = chunk[r.min(chunk.len() - 1)];
                        out[..q.len()].copy_from_slice(q);
                        out[q.len()..q.len() + f * es].copy_from_slice(row(i));
                        if pairwise {
                            out[q.len() + f * es..].copy_from_slice(row(j));
                        }
                    });
                    inputs.push(tensor(vec![count as i64, width], bytes));
                    rows.push(chunk.len());
                    padded.push(count);
                }
                Ok(Runs { inputs, rows, padded, n })
            }
        }
    }

    /// The scores of one run's real rows, from the model's output.
    pub fn scores(&self, out: &OutputTensor, rows: usize, padded: usize) -> Result<Vec<f64>> {
        let v = f64s(out.dtype, out.bytes()).ok_or_else(|| Error::Backend(format!("rank: the model's output '{}' is a string tensor, not scores", out.name)))?;
        if v.len() != padded {
            return Err(Error::Backend(format!("rank: the model's output '{}' has dims {:?}; one score per row ({padded}) was expected", out.name, out.dims)));
        }
        Ok(v[..rows].to_vec())
    }

    /// Candidate scores from the run scores (all runs' rows, in order), then
    /// the order, best first, and the scores in that order.
    pub fn rank(&self, n: usize, rows: &[f64]) -> (Vec<i64>, Vec<f32>) {
        let scores: Vec<f64> = match self.strategy {
            RankStrategy::Pointwise | RankStrategy::Listwise => rows.to_vec(),
            RankStrategy::Pairwise => {
                // Row of ordered pair (i, j), j ≠ i, in the order `runs` built them.
                let p = |i: usize, j: usize| rows[i * (n - 1) + if j < i { j } else { j - 1 }];
                (0..n).map(|i| (0..n).filter(|&j| j != i).map(|j| 0.5 * (p(i, j) + 1.0 - p(j, i))).sum()).collect()
            }
        };
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| crate::graph::ops::descending(scores[a], scores[b]));
        (order.iter().map(|&i| i as i64).collect(), order.iter().map(|&i| scores[i] as f32).collect())
    }

    /// The output types, for candidates of type `cands`.
    pub fn output_types(cands: &Ty) -> [Ty; 2] {
        let n = cands.dims.as_ref().and_then(|d| d.first().cloned()).unwrap_or(Dim::Dynamic);
        [Ty::tensor(DType::Int64, Some(vec![n.clone()])), Ty::tensor(DType::Float32, Some(vec![n]))]
    }

    /// Checks the candidate and query types against the model input's, where
    /// known; returns why they do not fit.
    pub fn check(&self, cands: &Ty, query: Option<&Ty>, model: &Ty) -> std::result::Result<(), String> {
        let cd = cands.dtype().ok_or("candidates must be a tensor")?;
        if let Some(d) = model.dtype().filter(|&d| d != cd) {
            return Err(format!("candidates are {} but the model input '{}' is {}", cd.name(), self.input, d.name()));
        }
        if let Some(q) = query {
            if q.dtype() != Some(cd) {
                return Err(format!("the query is {} but the candidates are {}", q.kind.type_name(), cd.name()));
            }
        }
        if let Some(r) = cands.rank().filter(|&r| r != 2) {
            return Err(format!("candidates must be [N, F], got rank {r}"));
        }
        let want_rank = if self.strategy == RankStrategy::Listwise { 3 } else { 2 };
        let Some(md) = &model.dims else { return Ok(()) };
        if md.len() != want_rank {
            return Err(format!("{} ranking feeds the model input '{}' rank {want_rank}, but it has rank {}", strategy_name(self.strategy), self.input, md.len()));
        }
        let f = cands.dims.as_ref().and_then(|d| fixed(&d[1]));
        let q = match query {
            None => Some(0),
            Some(t) => t.dims.as_ref().and_then(|d| d.last()).and_then(fixed),
        };
        if let (Some(f), Some(q), Some(w)) = (f, q, fixed(&md[want_rank - 1])) {
            let have = q + f * if self.strategy == RankStrategy::Pairwise { 2 } else { 1 };
            if have != w {
                return Err(format!("rows of {have} features (query {q} + candidates) do not fit the model input '{}' width {w}", self.input));
            }
        }
        Ok(())
    }
}

/// The strategy as the spec writes it.
pub(crate) fn strategy_name(s: RankStrategy) -> &'static str {
    match s {
        RankStrategy::Pointwise => "pointwise",
        RankStrategy::Pairwise => "pairwise",
        RankStrategy::Listwise => "listwise",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranker(strategy: RankStrategy, max_rows: Option<usize>, fixed_rows: Option<usize>) -> Ranker {
        Ranker { strategy, input: "x".into(), output: "s".into(), max_rows, fixed_rows }
    }

    fn cands() -> InputTensor {
        InputTensor::from_values("c", DType::Float32, &[3, 2], &[1f32, 2., 3., 4., 5., 6.]).unwrap()
    }

    fn f32s(t: &InputTensor) -> Vec<f32> {
        t.bytes().chunks_exact(4).map(|c| f32::from_ne_bytes(c.try_into().unwrap())).collect()
    }

    #[test]
    fn pointwise_rows_carry_the_query() {
        let q = InputTensor::from_values("q", DType::Float32, &[1, 1], &[9f32]).unwrap();
        let r = ranker(RankStrategy::Pointwise, None, None).runs(&cands(), Some(&q)).unwrap();
        assert_eq!(r.inputs.len(), 1);
        assert_eq!(r.inputs[0].dims, vec![3, 3]);
        assert_eq!(f32s(&r.inputs[0]), vec![9., 1., 2., 9., 3., 4., 9., 5., 6.]);
    }

    #[test]
    fn fixed_batches_are_padded_and_max_batch_splits() {
        let r = ranker(RankStrategy::Pointwise, None, Some(2)).runs(&cands(), None).unwrap();
        assert_eq!((r.inputs.len(), r.rows.clone()), (2, vec![2, 1]));
        assert_eq!(f32s(&r.inputs[1]), vec![5., 6., 5., 6.]);
        let r = ranker(RankStrategy::Pairwise, Some(4), None).runs(&cands(), None).unwrap();
        assert_eq!(r.rows, vec![4, 2]);
        assert_eq!(r.inputs[0].dims, vec![4, 4]);
        // Pairs (0,1), (0,2), (1,0), (1,2), ...
        assert_eq!(&f32s(&r.inputs[0])[..8], &[1., 2., 3., 4., 1., 2., 5., 6.]);
    }

    #[test]
    fn pairwise_refuses_more_candidates_than_it_can_pair() {
        let many = InputTensor::from_values("c", DType::Float32, &[MAX_PAIRWISE as i64 + 1, 1], &vec![0f32; MAX_PAIRWISE + 1]).unwrap();
        let e = ranker(RankStrategy::Pairwise, None, None).runs(&many, None).err().unwrap();
        assert!(e.to_string().contains("at most 512"), "{e}");
        assert!(ranker(RankStrategy::Pointwise, None, None).runs(&many, None).is_ok());
    }

    #[test]
    fn pairwise_aggregates_win_probabilities() {
        // P(i before j) = 1 when i < j's value... here: candidate 2 beats all,
        // 0 beats 1: pairs (0,1),(0,2),(1,0),(1,2),(2,0),(2,1).
        let p = [1.0, 0.0, 0.0, 0.0, 1.0, 1.0];
        let (order, scores) = ranker(RankStrategy::Pairwise, None, None).rank(3, &p);
        assert_eq!(order, vec![2, 0, 1]);
        assert_eq!(scores, vec![2.0, 1.0, 0.0]);
    }

    #[test]
    fn listwise_is_one_run_and_ties_keep_index_order() {
        let r = ranker(RankStrategy::Listwise, Some(1), None).runs(&cands(), None).unwrap();
        assert_eq!((r.inputs.len(), r.inputs[0].dims.clone()), (1, vec![1, 3, 2]));
        let (order, _) = ranker(RankStrategy::Listwise, None, None).rank(3, &[0.5, 0.7, 0.5]);
        assert_eq!(order, vec![1, 0, 2]);
    }
}
