//! Builds what JS receives for a finished run, or an encoded error string.
//!
//! A run's outputs cross as one block of bytes: a header of f64s, then every
//! numeric output, so JS makes cheap typed-array views instead of this side
//! making a dozen JS objects per run, and the output bytes are copied exactly
//! once (from the engine straight into JS memory).
//!
//! The header: the engine micros charged to the run, the output count, then
//! per output: name index (`PACKED_NAMES` for pipelines, -1 for model runs,
//! whose names JS knows), dtype code, byte offset of the data from the end of
//! the header (or, for a string output, its index in `strings`), rank, then
//! the dims (a non-tensor output, a sequence or map, has code 255 and its JSON
//! as its one string); then the request's timing (`TIMING_LEN` values: queue, pre,
//! inference and post µs, batch rows, batch requests). Data is 8-byte aligned.
//!
//! A payload is either `[0, ArrayBuffer, strings]` (its own buffer; `strings`
//! is an array of string arrays, or null), or, for small results without
//! strings delivered by the hub, the byte offset of its block in the one
//! buffer shared by that delivery (see `hub.rs`), as Node's Buffer pool shares
//! one allocation among small Buffers.

use oxinfer_core::{Error, Result, RunOutput};

use crate::errors::encode;
use crate::js::{self, Env, Val};

/// Which names a run's outputs are reported under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Model runs: JS knows the names and their order.
    Plain,
    /// Pipelines: names from `PACKED_NAMES`.
    Packed,
}

/// The dtype code of a non-tensor output (a sequence or map): its data is
/// its JSON, in `strings` (see oxinfer_core's `OutputData::Value`).
pub const NON_TENSOR_CODE: f64 = 255.0;

/// Result column names of pipelines, in name-id order (exported to JS by
/// `pipelineColumnNames`).
pub const PACKED_NAMES: [&str; 13] = [
    "scores", "label", "score", "top_index", "top_score", "above", "bucket", "error_row", "error_field", "error_code", "error_message", "timings", "other",
];


/// Whether an output goes beside the block, in `strings` (strings, and a
/// non-tensor's JSON), rather than in it.
fn beside(t: &oxinfer_core::OutputTensor) -> bool {
    t.strings().is_some() || t.non_tensor().is_some()
}

/// Where a run's block of bytes goes: its header, and each numeric output's
/// data offset (relative to the end of the header).
pub struct Block {
    header: Vec<f64>,
    offsets: Vec<usize>,
    data_len: usize,
    has_strings: bool,
}

impl Block {
    pub fn of(out: &RunOutput, format: Format) -> Block {
        let mut header: Vec<f64> = vec![out.micros as f64, out.tensors.len() as f64];
        let mut at = 0usize;
        let mut n_strings = 0usize;
        let mut offsets = Vec::with_capacity(out.tensors.len());
        for t in &out.tensors {
            let id = match format {
                Format::Plain => -1.0,
                Format::Packed => PACKED_NAMES.iter().position(|n| *n == t.name).unwrap_or(PACKED_NAMES.len() - 1) as f64,
            };
            // Strings, and a non-tensor's JSON, go beside the block (see `strings`).
            let place = if beside(t) {
                n_strings += 1;
                (n_strings - 1) as f64
            } else {
                at = at.div_ceil(8) * 8;
                offsets.push(at);
                let p = at as f64;
                at += t.bytes().len();
                p
            };
            let code = if t.non_tensor().is_some() { NON_TENSOR_CODE } else { t.dtype as u8 as f64 };
            header.extend_from_slice(&[id, code, place, t.dims.len() as f64]);
            header.extend(t.dims.iter().map(|&d| d as f64));
        }
        header.extend_from_slice(&out.timing.as_array());
        Block { header, offsets, data_len: at, has_strings: n_strings > 0 }
    }

    /// Bytes of the whole block, rounded up to 8 so blocks can follow each other.
    pub fn len(&self) -> usize {
        (self.header.len() * 8 + self.data_len).div_ceil(8) * 8
    }

    pub fn has_strings(&self) -> bool {
        self.has_strings
    }

    /// Writes the block at `dst`.
    ///
    /// # Safety
    /// `dst` must have `self.len()` writable bytes, 8-byte aligned.
    pub unsafe fn write(&self, out: &RunOutput, dst: *mut u8) {
        let head = self.header.len() * 8;
        unsafe {
            std::ptr::copy_nonoverlapping(self.header.as_ptr() as *const u8, dst, head);
            let mut k = 0;
            for t in &out.tensors {
                if !beside(t) {
                    let b = t.bytes();
                    std::ptr::copy_nonoverlapping(b.as_ptr(), dst.add(head + self.offsets[k]), b.len());
                    k += 1;
                }
            }
        }
    }
}

/// `[0, ArrayBuffer, strings]`: a result in a buffer of its own.
pub fn success(env: Env, out: &RunOutput, format: Format) -> Result<Val> {
    let layout = Block::of(out, format);
    let (ab, data) = js::new_arraybuffer(env, layout.len())?;
    // SAFETY: `data` has layout.len() writable bytes, and V8 aligns ArrayBuffer storage.
    unsafe { layout.write(out, data) };
    let arr = js::new_array(env, 3)?;
    js::set(env, arr, 0, js::new_number(env, 0.0)?)?;
    js::set(env, arr, 1, ab)?;
    js::set(env, arr, 2, strings(env, out)?)?;
    Ok(arr)
}

/// The string outputs as an array of string arrays (a non-tensor output as
/// one string, its JSON), or null when there are none.
fn strings(env: Env, out: &RunOutput) -> Result<Val> {
    let n = out.tensors.iter().filter(|t| beside(t)).count();
    if n == 0 {
        return js::null(env);
    }
    let lists = js::new_array(env, n)?;
    let mut i = 0u32;
    for t in &out.tensors {
        if let Some(strings) = t.strings() {
            let a = js::new_array(env, strings.len())?;
            for (j, s) in strings.iter().enumerate() {
                js::set(env, a, j as u32, js::new_string(env, s)?)?;
            }
            js::set(env, lists, i, a)?;
            i += 1;
        } else if let Some(json) = t.non_tensor() {
            let a = js::new_array(env, 1)?;
            js::set(env, a, 0, js::new_string(env, json)?)?;
            js::set(env, lists, i, a)?;
            i += 1;
        }
    }
    Ok(lists)
}

pub fn failure(env: Env, e: &Error) -> Result<Val> {
    js::new_string(env, &encode(e))
}

pub fn outcome(env: Env, r: &Result<RunOutput>, format: Format) -> Result<Val> {
    match r {
        Ok(out) => success(env, out, format).or_else(|e| failure(env, &e)),
        Err(e) => failure(env, e),
    }
}

/// A job event as `[0, firstRow, packed]` (a chunk of results, packed as a
/// pipeline run's), `[1, rowsDone, errors, bytesDone, bytesTotal, seconds]`
/// (progress), `[2, …the same]` (done), or `[3, encodedError]` (failed).
pub fn job_event(env: Env, ev: &oxinfer_core::job::JobEvent) -> Result<Val> {
    use oxinfer_core::job::JobEvent;
    let arr = js::new_array(env, 6)?;
    let progress = |kind: f64, p: &oxinfer_core::job::Progress| -> Result<()> {
        for (i, x) in [kind, p.rows_done as f64, p.errors as f64, p.bytes_done as f64, p.bytes_total as f64, p.seconds].into_iter().enumerate() {
            js::set(env, arr, i as u32, js::new_number(env, x)?)?;
        }
        Ok(())
    };
    match ev {
        JobEvent::Chunk { first_row, output } => {
            js::set(env, arr, 0, js::new_number(env, 0.0)?)?;
            js::set(env, arr, 1, js::new_number(env, *first_row as f64)?)?;
            js::set(env, arr, 2, success(env, output, Format::Packed).or_else(|e| failure(env, &e))?)?;
        }
        JobEvent::Progress(p) => progress(1.0, p)?,
        JobEvent::Done(p) => progress(2.0, p)?,
        JobEvent::Failed(e) => {
            js::set(env, arr, 0, js::new_number(env, 3.0)?)?;
            js::set(env, arr, 1, failure(env, e)?)?;
        }
    }
    Ok(arr)
}

/// A server request for a JS model: `[call, wanted[], name, typeCode, data,
/// dims, ...]` (the feeds layout), data copied into JS typed arrays or
/// string arrays.
pub fn js_call(env: Env, call: u64, inputs: &[oxinfer_core::InputTensor], wanted: &[String]) -> Result<Val> {
    let arr = js::new_array(env, 2 + 4 * inputs.len())?;
    js::set(env, arr, 0, js::new_number(env, call as f64)?)?;
    let w = js::new_array(env, wanted.len())?;
    for (i, n) in wanted.iter().enumerate() {
        js::set(env, w, i as u32, js::new_string(env, n)?)?;
    }
    js::set(env, arr, 1, w)?;
    for (k, t) in inputs.iter().enumerate() {
        let at = 2 + 4 * k as u32;
        js::set(env, arr, at, js::new_string(env, &t.name)?)?;
        js::set(env, arr, at + 1, js::new_number(env, t.dtype as u8 as f64)?)?;
        let data = match &t.data {
            oxinfer_core::InputData::Strings(list) => {
                let a = js::new_array(env, list.len())?;
                for (i, x) in list.iter().enumerate() {
                    js::set(env, a, i as u32, js::new_string(env, x)?)?;
                }
                a
            }
            _ => js::new_typed_array(env, t.dtype, t.bytes())?,
        };
        js::set(env, arr, at + 2, data)?;
        let dims = js::new_array(env, t.dims.len())?;
        for (i, d) in t.dims.iter().enumerate() {
            js::set(env, dims, i as u32, js::new_number(env, *d as f64)?)?;
        }
        js::set(env, arr, at + 3, dims)?;
    }
    Ok(arr)
}

/// A socketless HTTP answer as `[status, [name, value, ...], body bytes]`.
pub fn http_answer(env: Env, (status, headers, body): &oxinfer_server::Answer) -> Result<Val> {
    let arr = js::new_array(env, 3)?;
    js::set(env, arr, 0, js::new_number(env, *status as f64)?)?;
    let h = js::new_array(env, 2 * headers.len())?;
    for (i, (k, v)) in headers.iter().enumerate() {
        js::set(env, h, 2 * i as u32, js::new_string(env, k)?)?;
        js::set(env, h, 2 * i as u32 + 1, js::new_string(env, v)?)?;
    }
    js::set(env, arr, 1, h)?;
    js::set(env, arr, 2, js::new_typed_array(env, oxinfer_core::DType::Uint8, body)?)?;
    Ok(arr)
}

/// A graph request's outcome: the encoded error, or `[outputs (as a run's
/// block, in graph output order without the skipped ones), skipped names,
/// node reports]`.
pub fn graph_outcome(env: Env, r: &Result<GraphDelivery>) -> Result<Val> {
    let d = match r {
        Ok(d) => d,
        Err(e) => return failure(env, e),
    };
    let block = match success(env, &d.outputs, Format::Plain) {
        Ok(b) => b,
        Err(e) => return failure(env, &e),
    };
    let arr = js::new_array(env, 3)?;
    js::set(env, arr, 0, block)?;
    let skipped = js::new_array(env, d.skipped.len())?;
    for (i, n) in d.skipped.iter().enumerate() {
        js::set(env, skipped, i as u32, js::new_string(env, n)?)?;
    }
    js::set(env, arr, 1, skipped)?;
    let nodes = js::new_array(env, d.nodes.len())?;
    for (i, n) in d.nodes.iter().enumerate() {
        // [node, ran, wallUs, queueUs, engineUs, batchRows, runs, variant (-1: none)]
        let row = js::new_array(env, 8)?;
        js::set(env, row, 0, js::new_string(env, &n.node)?)?;
        let nums = [if n.ran { 1.0 } else { 0.0 }, n.wall_us, n.queue_us, n.engine_us, n.batch_rows as f64, n.runs as f64, n.variant.map_or(-1.0, |v| v as f64)];
        for (k, x) in nums.into_iter().enumerate() {
            js::set(env, row, k as u32 + 1, js::new_number(env, x)?)?;
        }
        js::set(env, nodes, i as u32, row)?;
    }
    js::set(env, arr, 2, nodes)?;
    Ok(arr)
}

/// Where one node's time went, as JS reads it.
pub struct NativeNodeReport {
    pub node: String,
    pub ran: bool,
    pub wall_us: f64,
    pub queue_us: f64,
    pub engine_us: f64,
    pub batch_rows: u32,
    pub runs: u32,
    pub variant: Option<u32>,
}

/// A graph request's outcome for the hub: the outputs that were produced,
/// the names of those skipped, and per-node reports.
pub struct GraphDelivery {
    pub outputs: RunOutput,
    pub skipped: Vec<String>,
    pub nodes: Vec<NativeNodeReport>,
}
