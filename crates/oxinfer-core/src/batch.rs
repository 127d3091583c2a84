//! Dynamic batching: compatible requests merged, run once, and split back,
//! each caller getting its own rows.
//! - Model runs merge along their batch axes (axis-0 rows are views of one
//!   shared engine buffer, so nothing is copied twice). Variable-length
//!   inputs are padded to the batch's longest request, and outputs declared
//!   so are cropped back to each caller's length.
//! - Pipeline runs of one pipeline merge by concatenating their records: the
//!   stages, the model and post-processing run once, and each caller gets its
//!   rows and its own bad rows back.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use crate::backend::{Backend, RunControl};
use crate::error::{Error, Result};
use crate::layout::{strings, Layout};
use crate::padding;
use crate::pipeline::merge;
use crate::request::{aborted, execute, Request, RunOutput, Work};
use crate::tensor::{AlignedBytes, DType, InputData, InputTensor, OutputBuffer, OutputData, OutputTensor};
use crate::timing::Timing;

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

/// Merges inputs of different lengths along `axis`, padding `pad_axis` to the
/// longest with `value`.
fn concat_padded(parts: &[&InputTensor], axis: usize, pad_axis: usize, value: f64) -> InputTensor {
    let first = parts[0];
    let mut dims: Vec<usize> = first.dims.iter().map(|&d| d as usize).collect();
    dims[axis] = parts.iter().map(|t| t.dims[axis] as usize).sum();
    dims[pad_axis] = parts.iter().map(|t| t.dims[pad_axis] as usize).max().unwrap_or(0);
    let total: usize = dims.iter().product();
    let src_dims = |t: &InputTensor| t.dims.iter().map(|&d| d as usize).collect::<Vec<_>>();
    let data = if first.dtype == DType::String {
        let mut out = vec![String::new(); total];
        let mut at = 0;
        for t in parts {
            let sd = src_dims(t);
            padding::place(&mut out, &dims, strings(t).unwrap_or(&[]), &sd, axis, at, 1);
            at += sd[axis];
        }
        InputData::Strings(out)
    } else {
        let size = first.dtype.size();
        let fill = padding::scalar_bytes(first.dtype, value);
        let mut merged = AlignedBytes::zeroed(total * size);
        let out = merged.as_mut_slice();
        if fill.iter().any(|&b| b != 0) {
            for chunk in out.chunks_exact_mut(size) {
                chunk.copy_from_slice(&fill);
            }
        }
        let mut at = 0;
        for t in parts {
            let sd = src_dims(t);
            padding::place(out, &dims, t.bytes(), &sd, axis, at, size);
            at += sd[axis];
        }
        InputData::Owned(merged)
    };
    InputTensor { name: first.name.clone(), dtype: first.dtype, dims: dims.iter().map(|&d| d as i64).collect(), data }
}

/// `t` cropped to its first `len` entries along `axis`.
fn crop_output(t: OutputTensor, axis: usize, len: usize) -> OutputTensor {
    if t.dims.get(axis).is_none_or(|&d| d as usize <= len) {
        return t;
    }
    let sd: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
    let mut dims = t.dims.clone();
    dims[axis] = len as i64;
    let data = match &t.data {
        OutputData::Strings(s) => OutputData::Strings(padding::crop(s, &sd, axis, len, 1)),
        OutputData::Buffer(b) => OutputData::Buffer(Box::new(AlignedBytes::from_slice(&padding::crop(b.bytes(), &sd, axis, len, t.dtype.size())))),
        // Non-tensors have no dims: returned above.
        OutputData::Value(v) => OutputData::Value(v.clone()),
    };
    OutputTensor { name: t.name, dtype: t.dtype, dims, data }
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
            // A non-tensor has no rows (and no dims, so it is refused above): the requests run alone.
            OutputData::Value(_) => return None,
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

/// What one member of a merged batch gets.
enum Share {
    Done(RunOutput),
    Failed(Error),
    /// The batch failed in a way that may be one member's doing: run it alone.
    Alone,
}

/// Runs `reqs` (compatible, as `Work::joins` says; each with the instant it
/// was queued) as one batch and settles each, calling `finished` with each
/// id just before its completion. A request aborted meanwhile gets
/// `ERR_ABORTED` and its rows are dropped; the others are unaffected. Every
/// request is settled exactly once, even if merging or splitting panics.
pub fn run_merged(backend: &dyn Backend, slot: usize, reqs: Vec<(Instant, Request)>, layout: &Layout, finished: &dyn Fn(u64, &Result<RunOutput>)) {
    // Requests whose callers gave up while queued (a client that hung up)
    // are settled now, and their rows are not run at all.
    let (gone, reqs): (Vec<_>, Vec<_>) = reqs.into_iter().partition(|(_, r)| r.ctl.is_aborted());
    for (_, req) in gone {
        settle(req, Err(aborted()), finished);
    }
    if reqs.is_empty() {
        return;
    }
    let shares = catch_unwind(AssertUnwindSafe(|| match reqs.first().map(|(_, r)| &r.work) {
        Some(Work::Pipeline(_)) => pipeline_shares(backend, slot, &reqs),
        _ => model_shares(backend, slot, &reqs, layout),
    }))
    .unwrap_or_else(|p| {
        let e = Error::from_panic(p);
        reqs.iter().map(|_| Share::Failed(e.clone())).collect()
    });
    for ((queued, req), share) in reqs.into_iter().zip(shares) {
        match share {
            Share::Done(out) => settle(req, Ok(out), finished),
            Share::Failed(e) => settle(req, Err(e), finished),
            Share::Alone => {
                let Request { id, work, ctl, done, .. } = req;
                let r = execute(backend, slot, work, &ctl, Some(queued), layout);
                finished(id, &r);
                let _ = catch_unwind(AssertUnwindSafe(|| done(r)));
            }
        }
    }
}

/// Settles `req` with `r` (or `ERR_ABORTED` if its caller gave up meanwhile).
fn settle(req: Request, r: Result<RunOutput>, finished: &dyn Fn(u64, &Result<RunOutput>)) {
    let r = if req.ctl.is_aborted() { Err(aborted()) } else { r };
    finished(req.id, &r);
    let _ = catch_unwind(AssertUnwindSafe(|| (req.done)(r)));
}

/// Model runs merged along their batch axes. If the model's outputs do not
/// carry the batch's rows on their batch axes, they run one by one instead.
fn model_shares(backend: &dyn Backend, slot: usize, reqs: &[(Instant, Request)], layout: &Layout) -> Vec<Share> {
    let start = Instant::now();
    let mut parts = Vec::with_capacity(reqs.len());
    let mut counts = Vec::with_capacity(reqs.len());
    let mut lengths = Vec::with_capacity(reqs.len());
    let mut outputs = Vec::new();
    for (_, r) in reqs {
        match &r.work {
            Work::Run { inputs, outputs: o } => {
                counts.push(layout.rows(inputs).unwrap_or(0));
                lengths.push(layout.length(inputs));
                parts.push(inputs);
                outputs = o.clone();
            }
            Work::Pipeline(_) => return reqs.iter().map(|_| Share::Alone).collect(),
        }
    }
    let merged: Vec<InputTensor> = (0..parts[0].len())
        .map(|i| {
            let first = &parts[0][i];
            let column: Vec<&InputTensor> = parts.iter().map(|p| &p[i]).collect();
            let axis = layout.input_axis(&first.name);
            match layout.pad.get(&first.name) {
                _ if layout.shared.contains(&first.name) => first.clone(),
                Some(&(pad_axis, value)) if column.iter().any(|t| t.dims[pad_axis] != first.dims[pad_axis]) => concat_padded(&column, axis, pad_axis, value),
                _ => concat(&column, axis),
            }
        })
        .collect();
    let engine = Instant::now();
    // A fresh control: aborting one caller must not terminate the others' run.
    let ctl = RunControl::new();
    let result = catch_unwind(AssertUnwindSafe(|| backend.run(slot, &merged, &outputs, &ctl))).unwrap_or_else(|p| Err(Error::from_panic(p)));
    drop(merged);
    let infer_us = engine.elapsed().as_micros() as u64;
    // Each caller is charged its share, which is what the inline estimate wants.
    let micros = infer_us / reqs.len().max(1) as u64;
    let post = Instant::now();
    let out = match result {
        Ok(out) => out,
        Err(e) => return reqs.iter().map(|_| Share::Failed(e.clone())).collect(),
    };
    // Not batchable after all: one by one.
    let Some(per) = split(out, &counts, layout) else { return reqs.iter().map(|_| Share::Alone).collect() };
    let post_us = post.elapsed().as_micros() as u64;
    per.into_iter()
        .zip(&lengths)
        .zip(reqs)
        .map(|((tensors, &len), (queued, _))| {
            let tensors = tensors
                .into_iter()
                .map(|t| match layout.output_pad.get(&t.name) {
                    Some(&axis) => crop_output(t, axis, len),
                    None => t,
                })
                .collect();
            let timing = Timing {
                queue_us: start.saturating_duration_since(*queued).as_micros() as u64,
                pre_us: engine.duration_since(start).as_micros() as u64,
                infer_us,
                post_us,
                batch_rows: counts.iter().sum::<usize>() as u32,
                batch_requests: reqs.len() as u32,
            };
            Share::Done(RunOutput { tensors, micros, timing })
        })
        .collect()
}

/// Pipeline runs of one pipeline merged into one batch of records. Bad rows
/// stay with their own request: a `fail_fast` request with one fails alone,
/// and a request whose batch cannot be read fails alone. Should the merged
/// run fail as a whole (a tokenizer or engine error that one request's data
/// may cause), each request runs again on its own.
fn pipeline_shares(backend: &dyn Backend, slot: usize, reqs: &[(Instant, Request)]) -> Vec<Share> {
    let start = Instant::now();
    let mut shares: Vec<Option<Share>> = reqs.iter().map(|_| None).collect();
    let mut parts = Vec::with_capacity(reqs.len());
    let mut members = Vec::with_capacity(reqs.len());
    let mut pipeline = None;
    for (i, (_, req)) in reqs.iter().enumerate() {
        let Work::Pipeline(p) = &req.work else {
            shares[i] = Some(Share::Alone);
            continue;
        };
        match merge::read(p.pipeline.spec(), &p.batch) {
            Ok(part) => {
                pipeline.get_or_insert_with(|| Arc::clone(&p.pipeline));
                parts.push(part);
                members.push((i, p.opts));
            }
            Err(e) => shares[i] = Some(Share::Failed(e)),
        }
    }
    if let Some(pipeline) = pipeline {
        let counts: Vec<usize> = parts.iter().map(|p| p.rows()).collect();
        let rows: usize = counts.iter().sum();
        let merged = merge::merge(pipeline.spec(), parts);
        // A fresh control: aborting one caller must not terminate the others' run.
        let ctl = RunControl::new();
        let mut timing = Timing::default();
        let engine = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| pipeline.evaluate(&merged, false, backend, slot, &ctl, &mut timing))).unwrap_or_else(|p| Err(Error::from_panic(p)));
        drop(merged);
        let n = members.len();
        let micros = engine.elapsed().as_micros() as u64 / n as u64;
        let merge_us = engine.duration_since(start).as_micros() as u64;
        match result {
            Ok(outcome) => {
                for (&(i, opts), share) in members.iter().zip(outcome.split(&counts)) {
                    let timing = Timing {
                        queue_us: start.saturating_duration_since(reqs[i].0).as_micros() as u64,
                        pre_us: timing.pre_us + merge_us,
                        infer_us: timing.infer_us,
                        post_us: timing.post_us,
                        batch_rows: rows as u32,
                        batch_requests: n as u32,
                    };
                    shares[i] = Some(match share.first_error() {
                        Some(e) if opts.fail_fast => Share::Failed(e.clone()),
                        _ => Share::Done(RunOutput { tensors: share.finish(opts.timings), micros, timing }),
                    });
                }
            }
            Err(e) => {
                let alone = n > 1 && !matches!(e, Error::Aborted(_) | Error::Disposed(_) | Error::InvalidSpec { .. });
                for &(i, _) in &members {
                    shares[i] = Some(if alone { Share::Alone } else { Share::Failed(e.clone()) });
                }
            }
        }
    }
    shares.into_iter().map(|s| s.unwrap_or(Share::Alone)).collect()
}
