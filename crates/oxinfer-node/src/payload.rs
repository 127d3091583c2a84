//! Builds what JS receives for a finished run: `[micros, code, data, dims, ...]`
//! per output (with the name as a fourth element when asked), or an encoded
//! error string. Output data is copied exactly once.

use oxinfer_core::{Error, Result, RunOutput};

use crate::errors::encode;
use crate::js::{self, Env, Val};

pub fn success(env: Env, out: &RunOutput, named: bool) -> Result<Val> {
    let stride = if named { 4 } else { 3 };
    let arr = js::new_array(env, 1 + stride * out.tensors.len())?;
    js::set(env, arr, 0, js::new_number(env, out.micros as f64)?)?;
    for (k, t) in out.tensors.iter().enumerate() {
        let base = 1 + (stride * k) as u32;
        if named {
            js::set(env, arr, base + 3, js::new_string(env, &t.name)?)?;
        }
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

pub fn outcome(env: Env, r: &Result<RunOutput>, named: bool) -> Result<Val> {
    match r {
        Ok(out) => success(env, out, named).or_else(|e| failure(env, &e)),
        Err(e) => failure(env, e),
    }
}
