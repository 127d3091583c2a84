//! Builds what JS receives for a finished run, or an encoded error string.
//! Output data is copied exactly once.
//!
//! - Model runs: `[micros, code, data, dims, ...]`, one typed array per output.
//! - Pipeline runs (packed): `[micros, bytes, strings]`: every numeric result
//!   column in one Uint8Array, so JS makes cheap views instead of this side
//!   making a dozen JS objects. The bytes start with a header of f64s: the
//!   column count, then 5 numbers per column: name index (see `PACKED_NAMES`),
//!   dtype code, byte offset, dim 0, dim 1 (-1 when rank 1). String columns go
//!   to `strings` (name index, count, then the strings), null when none.

use oxinfer_core::{Error, Result, RunOutput};

use crate::errors::encode;
use crate::js::{self, Env, Val};

/// How a run's outputs cross to JS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Plain,
    Packed,
}

/// Result column names of pipelines, indexed as `index.ts` expects.
pub const PACKED_NAMES: [&str; 13] = [
    "scores", "label", "score", "top_index", "top_score", "above", "bucket", "error_row", "error_field", "error_code", "error_message", "timings", "other",
];

fn packed(env: Env, out: &RunOutput) -> Result<Val> {
    let numeric = out.tensors.iter().filter(|t| t.strings().is_none()).count();
    let header_len = 8 * (1 + 5 * numeric);
    let mut total = header_len;
    for t in out.tensors.iter().filter(|t| t.strings().is_none()) {
        total = total.div_ceil(8) * 8 + t.bytes().len();
    }
    let mut bytes = vec![0u8; total];
    let mut header: Vec<f64> = Vec::with_capacity(1 + 5 * numeric);
    header.push(numeric as f64);
    let mut strings: Vec<(usize, &[String])> = Vec::new();
    let mut at = header_len;
    for t in &out.tensors {
        let id = PACKED_NAMES.iter().position(|n| *n == t.name).unwrap_or(PACKED_NAMES.len() - 1);
        if let Some(s) = t.strings() {
            strings.push((id, s));
            continue;
        }
        at = at.div_ceil(8) * 8;
        let b = t.bytes();
        bytes[at..at + b.len()].copy_from_slice(b);
        let d0 = t.dims.first().copied().unwrap_or(1) as f64;
        let d1 = t.dims.get(1).map(|&d| d as f64).unwrap_or(-1.0);
        header.extend_from_slice(&[id as f64, t.dtype as u8 as f64, at as f64, d0, d1]);
        at += b.len();
    }
    for (i, h) in header.iter().enumerate() {
        bytes[i * 8..i * 8 + 8].copy_from_slice(&h.to_ne_bytes());
    }
    let arr = js::new_array(env, 3)?;
    js::set(env, arr, 0, js::new_number(env, out.micros as f64)?)?;
    js::set(env, arr, 1, js::new_typed_array(env, oxinfer_core::DType::Uint8, &bytes)?)?;
    if strings.is_empty() {
        js::set(env, arr, 2, js::null(env)?)?;
    } else {
        let n: usize = strings.iter().map(|(_, s)| 2 + s.len()).sum();
        let sa = js::new_array(env, n)?;
        let mut i = 0u32;
        for (id, list) in strings {
            js::set(env, sa, i, js::new_number(env, id as f64)?)?;
            js::set(env, sa, i + 1, js::new_number(env, list.len() as f64)?)?;
            i += 2;
            for s in list {
                js::set(env, sa, i, js::new_string(env, s)?)?;
                i += 1;
            }
        }
        js::set(env, arr, 2, sa)?;
    }
    Ok(arr)
}

pub fn success(env: Env, out: &RunOutput, format: Format) -> Result<Val> {
    if format == Format::Packed {
        return packed(env, out);
    }
    let arr = js::new_array(env, 1 + 3 * out.tensors.len())?;
    js::set(env, arr, 0, js::new_number(env, out.micros as f64)?)?;
    for (k, t) in out.tensors.iter().enumerate() {
        let base = 1 + (3 * k) as u32;
        js::set(env, arr, base, js::new_number(env, t.dtype as u8 as f64)?)?;
        let data = match t.strings() {
            Some(strings) => {
                let a = js::new_array(env, strings.len())?;
                for (i, s) in strings.iter().enumerate() {
                    js::set(env, a, i as u32, js::new_string(env, s)?)?;
                }
                a
            }
            None => js::new_typed_array(env, t.dtype, t.bytes())?,
        };
        js::set(env, arr, base + 1, data)?;
        let dims = js::new_array(env, t.dims.len())?;
        for (i, &d) in t.dims.iter().enumerate() {
            js::set(env, dims, i as u32, js::new_number(env, d as f64)?)?;
        }
        js::set(env, arr, base + 2, dims)?;
    }
    Ok(arr)
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
