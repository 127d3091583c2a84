//! What a pipeline run produced, before it is packed for its caller: the
//! row-aligned result columns and the bad rows kept apart, so that a batch
//! merged from several requests can be split back into each one's share.

use crate::error::Error;
use crate::tensor::{AlignedBytes, DType, OutputBuffer, OutputData, OutputTensor};

/// Native time spent per stage of one run, in nanoseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct StageTimings {
    pub preprocess: u64,
    pub assemble: u64,
    pub inference: u64,
    pub postprocess: u64,
}

/// The result of running a batch through a pipeline.
pub struct Outcome {
    pub rows: usize,
    /// Result columns whose dim 0 is the batch's rows (`scores`, `label`, ...).
    pub columns: Vec<OutputTensor>,
    /// The bad rows, in row order, each with its error.
    pub errors: Vec<(usize, Error)>,
    pub stages: StageTimings,
}

impl Outcome {
    /// The first bad row's error, if any.
    pub fn first_error(&self) -> Option<&Error> {
        self.errors.first().map(|(_, e)| e)
    }

    /// The columns a caller receives: the results, then `error_row`,
    /// `error_field`, `error_code` and `error_message` when some row failed,
    /// and `timings` (ns per stage) when asked for.
    pub fn finish(self, timings: bool) -> Vec<OutputTensor> {
        let mut out = self.columns;
        // Error columns only when some row failed: every output costs a JS allocation.
        if !self.errors.is_empty() {
            let errors = &self.errors;
            out.push(tensor("error_row", DType::Int32, vec![errors.len() as i64], errors.iter().map(|(r, _)| *r as i32).collect::<Vec<i32>>()));
            let strings = |name: &str, v: Vec<String>| OutputTensor { name: name.into(), dtype: DType::String, dims: vec![v.len() as i64], data: OutputData::Strings(v) };
            out.push(strings("error_field", errors.iter().map(|(_, e)| e.field().unwrap_or("").to_string()).collect()));
            out.push(strings("error_code", errors.iter().map(|(_, e)| e.code().to_string()).collect()));
            out.push(strings("error_message", errors.iter().map(|(_, e)| e.to_string()).collect()));
        }
        if timings {
            let t = self.stages;
            out.push(tensor("timings", DType::Float64, vec![4], vec![t.preprocess as f64, t.assemble as f64, t.inference as f64, t.postprocess as f64]));
        }
        out
    }

    /// Splits the outcome of a merged batch into consecutive shares of
    /// `counts` rows, each numbering its rows (and its errors) from 0.
    pub fn split(self, counts: &[usize]) -> Vec<Outcome> {
        let mut shares: Vec<Outcome> = counts.iter().map(|&rows| Outcome { rows, columns: Vec::new(), errors: Vec::new(), stages: self.stages }).collect();
        for t in self.columns {
            let per_row = |len: usize| if self.rows == 0 { 0 } else { len / self.rows };
            let mut at = 0;
            for (share, &c) in shares.iter_mut().zip(counts) {
                let mut dims = t.dims.clone();
                if let Some(d0) = dims.first_mut() {
                    *d0 = c as i64;
                }
                let data = match &t.data {
                    OutputData::Strings(s) => {
                        let n = per_row(s.len());
                        OutputData::Strings(s[at * n..(at + c) * n].to_vec())
                    }
                    OutputData::Buffer(b) => {
                        let n = per_row(b.bytes().len());
                        OutputData::Buffer(Box::new(AlignedBytes::from_slice(&b.bytes()[at * n..(at + c) * n])))
                    }
                    // Pipeline results are tensors; a non-tensor has no rows to share out.
                    OutputData::Value(v) => OutputData::Value(v.clone()),
                };
                share.columns.push(OutputTensor { name: t.name.clone(), dtype: t.dtype, dims, data });
                at += c;
            }
        }
        let mut start = 0;
        let mut errors = self.errors.into_iter().peekable();
        for (share, &c) in shares.iter_mut().zip(counts) {
            while let Some((r, e)) = errors.next_if(|(r, _)| *r < start + c) {
                share.errors.push((r - start, e.at_row(r - start)));
            }
            start += c;
        }
        shares
    }
}

/// Owns a result column's elements until they are copied into JS.
struct VecBuffer<T>(Vec<T>);

impl<T: Copy + Send + Sync + 'static> OutputBuffer for VecBuffer<T> {
    fn bytes(&self) -> &[u8] {
        // SAFETY: plain numeric elements viewed as their bytes.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr() as *const u8, std::mem::size_of_val(self.0.as_slice())) }
    }
}

/// A result column owning `v`.
pub(crate) fn tensor<T: Copy + Send + Sync + 'static>(name: &str, dtype: DType, dims: Vec<i64>, v: Vec<T>) -> OutputTensor {
    let data: Box<dyn OutputBuffer> = if v.is_empty() { Box::new(AlignedBytes::default()) } else { Box::new(VecBuffer(v)) };
    OutputTensor { name: name.into(), dtype, dims, data: OutputData::Buffer(data) }
}
