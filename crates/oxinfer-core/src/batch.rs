//! Dynamic batching: compatible single runs merged along axis 0, run once,
//! and split back, each caller getting its own rows (views of one shared
//! engine buffer, so nothing is copied twice).

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use crate::backend::{Backend, RunControl};
use crate::error::Error;
use crate::scheduler::{Job, RunOutput, Work};
use crate::tensor::{AlignedBytes, DType, InputData, InputTensor, OutputBuffer, OutputData, OutputTensor};

/// Which axis of each input and output is the batch axis (default 0), and
/// which inputs are shared: equal across a batch and passed once.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    pub input_axes: HashMap<String, usize>,
    pub output_axes: HashMap<String, usize>,
    pub shared: HashSet<String>,
}

impl Layout {
    fn input_axis(&self, name: &str) -> usize {
        self.input_axes.get(name).copied().unwrap_or(0)
    }

    fn output_axis(&self, name: &str) -> usize {
        self.output_axes.get(name).copied().unwrap_or(0)
    }

    /// Rows along the batch axes, if every batched input has one and they agree.
    pub fn rows(&self, inputs: &[InputTensor]) -> Option<usize> {
        let mut n = None;
        for t in inputs.iter().filter(|t| !self.shared.contains(&t.name)) {
            let d = *t.dims.get(self.input_axis(&t.name))? as usize;
            match n {
                None => n = Some(d),
                Some(m) if m != d => return None,
                _ => {}
            }
        }
        n.filter(|&r| r > 0)
    }

    /// Same inputs in the same order and types, the same dims off the batch
    /// axis, and equal shared inputs.
    pub fn compatible(&self, a: &[InputTensor], b: &[InputTensor]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                if x.name != y.name || x.dtype != y.dtype || x.dims.len() != y.dims.len() {
                    return false;
                }
                if self.shared.contains(&x.name) {
                    return x.dims == y.dims && x.bytes() == y.bytes() && strings(x) == strings(y);
                }
                let axis = self.input_axis(&x.name);
                x.dims.iter().zip(&y.dims).enumerate().all(|(i, (p, q))| i == axis || p == q)
            })
    }
}

fn strings(t: &InputTensor) -> Option<&[String]> {
    match &t.data {
        InputData::Strings(s) => Some(s),
        _ => None,
    }
}

/// Sizes for moving blocks along `axis`: (outer count, inner elements per index).
fn blocks(dims: &[i64], axis: usize) -> (usize, usize) {
    let outer = dims[..axis].iter().product::<i64>() as usize;
    let inner = dims[axis + 1..].iter().product::<i64>() as usize;
    (outer, inner)
}

fn concat(parts: &[&InputTensor], axis: usize) -> InputTensor {
    let first = parts[0];
    let mut dims = first.dims.clone();
    dims[axis] = parts.iter().map(|t| t.dims[axis]).sum();
    let (outer, inner) = blocks(&first.dims, axis);
    let data = if first.dtype == DType::String {
        let mut out = Vec::new();
        for o in 0..outer {
            for t in parts {
                let n = t.dims[axis] as usize * inner;
                out.extend_from_slice(&strings(t).unwrap_or(&[])[o * n..(o + 1) * n]);
            }
        }
        InputData::Strings(out)
    } else {
        let size = first.dtype.size();
        // Written once, straight into the merged buffer.
        let mut merged = AlignedBytes::zeroed(parts.iter().map(|t| t.bytes().len()).sum());
        let out = merged.as_mut_slice();
        let mut at = 0;
        for o in 0..outer {
            for t in parts {
                let n = t.dims[axis] as usize * inner * size;
                out[at..at + n].copy_from_slice(&t.bytes()[o * n..(o + 1) * n]);
                at += n;
            }
        }
        InputData::Owned(merged)
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

/// Splits merged outputs by rows along their batch axes; None if an output
/// does not carry the batch's rows there. Axis-0 rows stay views of the one
/// engine buffer; other axes are gathered into each caller's own buffer.
fn split(outputs: Vec<OutputTensor>, counts: &[usize], layout: &Layout) -> Option<Vec<Vec<OutputTensor>>> {
    let total: usize = counts.iter().sum();
    let mut per: Vec<Vec<OutputTensor>> = counts.iter().map(|_| Vec::new()).collect();
    for t in outputs {
        let axis = layout.output_axis(&t.name);
        if t.dims.get(axis).copied() != Some(total as i64) {
            return None;
        }
        let (outer, inner) = blocks(&t.dims, axis);
        let OutputTensor { name, dtype, dims, data } = t;
        let dims_of = |c: usize| {
            let mut d = dims.clone();
            d[axis] = c as i64;
            d
        };
        match data {
            OutputData::Strings(s) => {
                let mut at = 0;
                for (k, &c) in counts.iter().enumerate() {
                    let mut mine = Vec::with_capacity(outer * c * inner);
                    for o in 0..outer {
                        let row0 = o * total * inner + at * inner;
                        mine.extend_from_slice(&s[row0..row0 + c * inner]);
                    }
                    per[k].push(OutputTensor { name: name.clone(), dtype, dims: dims_of(c), data: OutputData::Strings(mine) });
                    at += c;
                }
            }
            OutputData::Buffer(b) if axis == 0 => {
                let row_bytes = b.bytes().len() / total.max(1);
                let buf = Arc::new(b);
                let mut at = 0;
                for (k, &c) in counts.iter().enumerate() {
                    let rows = Rows { buf: Arc::clone(&buf), start: at, len: c * row_bytes };
                    per[k].push(OutputTensor { name: name.clone(), dtype, dims: dims_of(c), data: OutputData::Buffer(Box::new(rows)) });
                    at += c * row_bytes;
                }
            }
            OutputData::Buffer(b) => {
                let bytes = b.bytes();
                let unit = inner * dtype.size();
                let mut at = 0;
                for (k, &c) in counts.iter().enumerate() {
                    let mut mine = Vec::with_capacity(outer * c * unit);
                    for o in 0..outer {
                        let row0 = (o * total + at) * unit;
                        mine.extend_from_slice(&bytes[row0..row0 + c * unit]);
                    }
                    per[k].push(OutputTensor { name: name.clone(), dtype, dims: dims_of(c), data: OutputData::Buffer(Box::new(AlignedBytes::from_slice(&mine))) });
                    at += c;
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
pub fn run_merged(backend: &dyn Backend, slot: usize, jobs: Vec<Job>, layout: &Layout, finished: &dyn Fn(u64)) {
    let mut parts = Vec::with_capacity(jobs.len());
    let mut counts = Vec::with_capacity(jobs.len());
    let mut outputs = Vec::new();
    for j in &jobs {
        if let Work::Run { inputs, outputs: o } = &j.work {
            counts.push(layout.rows(inputs).unwrap_or(0));
            parts.push(inputs);
            outputs = o.clone();
        }
    }
    let merged: Vec<InputTensor> = (0..parts[0].len())
        .map(|i| {
            let first = &parts[0][i];
            if layout.shared.contains(&first.name) {
                first.clone()
            } else {
                concat(&parts.iter().map(|p| &p[i]).collect::<Vec<_>>(), layout.input_axis(&first.name))
            }
        })
        .collect();
    let start = Instant::now();
    // A fresh control: aborting one caller must not terminate the others' run.
    let ctl = RunControl::new();
    let result = catch_unwind(AssertUnwindSafe(|| backend.run(slot, &merged, &outputs, &ctl))).unwrap_or_else(|p| Err(Error::from_panic(p)));
    drop(merged);
    // Each caller is charged its share, which is what the inline estimate wants.
    let micros = start.elapsed().as_micros() as u64 / jobs.len().max(1) as u64;
    let split = match result {
        Ok(out) => match split(out, &counts, layout) {
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
