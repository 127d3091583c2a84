//! Dynamic batching: compatible single runs merged along axis 0, run once,
//! and split back, each caller getting its own rows (views of one shared
//! engine buffer, so nothing is copied twice).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use crate::backend::{Backend, RunControl};
use crate::error::Error;
use crate::scheduler::{Job, RunOutput, Work};
use crate::tensor::{AlignedBytes, DType, InputData, InputTensor, OutputBuffer, OutputData, OutputTensor};

/// Rows along axis 0, if every input has one and they agree.
pub fn rows(inputs: &[InputTensor]) -> Option<usize> {
    let mut n = None;
    for t in inputs {
        let d = *t.dims.first()? as usize;
        match n {
            None => n = Some(d),
            Some(m) if m != d => return None,
            _ => {}
        }
    }
    n.filter(|&r| r > 0)
}

/// Same inputs in the same order, with the same types and non-batch dims.
pub fn compatible(a: &[InputTensor], b: &[InputTensor]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.name == y.name && x.dtype == y.dtype && x.dims.len() == y.dims.len() && x.dims[1..] == y.dims[1..])
}

fn concat(parts: &[&InputTensor], total: usize) -> InputTensor {
    let first = parts[0];
    let mut dims = first.dims.clone();
    dims[0] = total as i64;
    let data = if first.dtype == DType::String {
        InputData::Strings(
            parts
                .iter()
                .flat_map(|t| match &t.data {
                    InputData::Strings(s) => s.clone(),
                    _ => Vec::new(),
                })
                .collect(),
        )
    } else {
        let mut bytes = Vec::with_capacity(parts.iter().map(|t| t.bytes().len()).sum());
        for t in parts {
            bytes.extend_from_slice(t.bytes());
        }
        InputData::Owned(AlignedBytes::from_slice(&bytes))
    };
    InputTensor { name: first.name.clone(), dtype: first.dtype, dims, data }
}

/// A caller's rows of a merged output.
struct Rows {
    buf: Arc<Box<dyn OutputBuffer>>,
    start: usize,
    len: usize,
}

impl OutputBuffer for Rows {
    fn bytes(&self) -> &[u8] {
        &self.buf.bytes()[self.start..self.start + self.len]
    }
}

/// Splits merged outputs by rows; None if an output is not batched on axis 0.
fn split(outputs: Vec<OutputTensor>, counts: &[usize]) -> Option<Vec<Vec<OutputTensor>>> {
    let total: usize = counts.iter().sum();
    let mut per: Vec<Vec<OutputTensor>> = counts.iter().map(|_| Vec::new()).collect();
    for t in outputs {
        if t.dims.first().copied() != Some(total as i64) {
            return None;
        }
        let OutputTensor { name, dtype, dims, data } = t;
        match data {
            OutputData::Strings(s) => {
                let per_row = s.len() / total.max(1);
                let mut at = 0;
                for (k, &c) in counts.iter().enumerate() {
                    let mut d = dims.clone();
                    d[0] = c as i64;
                    per[k].push(OutputTensor { name: name.clone(), dtype, dims: d, data: OutputData::Strings(s[at..at + c * per_row].to_vec()) });
                    at += c * per_row;
                }
            }
            OutputData::Buffer(b) => {
                let row_bytes = b.bytes().len() / total.max(1);
                let buf = Arc::new(b);
                let mut at = 0;
                for (k, &c) in counts.iter().enumerate() {
                    let mut d = dims.clone();
                    d[0] = c as i64;
                    let rows = Rows { buf: Arc::clone(&buf), start: at, len: c * row_bytes };
                    per[k].push(OutputTensor { name: name.clone(), dtype, dims: d, data: OutputData::Buffer(Box::new(rows)) });
                    at += c * row_bytes;
                }
            }
        }
    }
    Some(per)
}

/// Runs `jobs` (all `Work::Run`, compatible) as one batch and settles each.
/// A job aborted meanwhile gets `ERR_ABORTED` and its rows are dropped; the
/// others are unaffected. If the model's outputs are not batched on axis 0,
/// the jobs run one by one instead.
pub fn run_merged(backend: &dyn Backend, slot: usize, jobs: Vec<Job>, finished: &dyn Fn(u64)) {
    let mut parts = Vec::with_capacity(jobs.len());
    let mut counts = Vec::with_capacity(jobs.len());
    let mut outputs = Vec::new();
    for j in &jobs {
        if let Work::Run { inputs, outputs: o } = &j.work {
            counts.push(rows(inputs).unwrap_or(0));
            parts.push(inputs);
            outputs = o.clone();
        }
    }
    let total: usize = counts.iter().sum();
    let merged: Vec<InputTensor> = (0..parts[0].len()).map(|i| concat(&parts.iter().map(|p| &p[i]).collect::<Vec<_>>(), total)).collect();
    let start = Instant::now();
    // A fresh control: aborting one caller must not terminate the others' run.
    let ctl = RunControl::new();
    let result = catch_unwind(AssertUnwindSafe(|| backend.run(slot, &merged, &outputs, &ctl))).unwrap_or_else(|p| Err(Error::from_panic(p)));
    drop(merged);
    let micros = start.elapsed().as_micros() as u64;
    let split = match result {
        Ok(out) => match split(out, &counts) {
            Some(per) => Ok(per),
            None => Err(None),
        },
        Err(e) => Err(Some(e)),
    };
    match split {
        Ok(per) => {
            for (job, tensors) in jobs.into_iter().zip(per) {
                let r = if job.ctl.is_aborted() { Err(Error::Aborted("the run was aborted".into())) } else { Ok(RunOutput { tensors, micros }) };
                finished(job.id);
                let _ = catch_unwind(AssertUnwindSafe(|| (job.done)(r)));
            }
        }
        Err(Some(e)) => {
            for job in jobs {
                finished(job.id);
                let r = if job.ctl.is_aborted() { Err(Error::Aborted("the run was aborted".into())) } else { Err(e.clone()) };
                let _ = catch_unwind(AssertUnwindSafe(|| (job.done)(r)));
            }
        }
        Err(None) => {
            // Not batchable after all: one by one.
            for job in jobs {
                let Job { id, work, ctl, done, .. } = job;
                let r = if ctl.is_aborted() {
                    Err(Error::Aborted("the run was aborted".into()))
                } else {
                    let t0 = Instant::now();
                    match work {
                        Work::Run { inputs, outputs } => catch_unwind(AssertUnwindSafe(|| backend.run(slot, &inputs, &outputs, &ctl)))
                            .unwrap_or_else(|p| Err(Error::from_panic(p)))
                            .map(|tensors| RunOutput { tensors, micros: t0.elapsed().as_micros() as u64 }),
                        Work::Custom(_) => Err(Error::Backend("custom work cannot be batched".into())),
                    }
                };
                finished(id);
                let _ = catch_unwind(AssertUnwindSafe(|| done(r)));
            }
        }
    }
}
