//! Reads a run's feeds from JS without copying numeric data.
//! Layout: a flat array `[name, typeCode, data, dims, name, typeCode, ...]`.

use oxinfer_core::tensor::BorrowedBytes;
use oxinfer_core::{DType, Error, InputData, InputTensor, Result};

use crate::js::{self, Env, Val};

fn bad(msg: String) -> Error {
    Error::InvalidArgument(msg)
}

pub fn parse(env: Env, feeds: Val) -> Result<Vec<InputTensor>> {
    if !js::is_array(env, feeds)? {
        return Err(bad("feeds must be an object of tensors".into()));
    }
    let n = js::array_len(env, feeds)?;
    if n % 4 != 0 {
        return Err(bad("malformed feeds".into()));
    }
    let mut out = Vec::with_capacity(n as usize / 4);
    for i in (0..n).step_by(4) {
        let name = js::string(env, js::element(env, feeds, i)?)?.ok_or_else(|| bad("feed names must be strings".into()))?;
        let code = js::number(env, js::element(env, feeds, i + 1)?)?.unwrap_or(-1.0);
        let dtype = DType::from_code(code as u8)
            .filter(|_| code.fract() == 0.0 && (0.0..256.0).contains(&code))
            .ok_or_else(|| bad(format!("feed '{name}' has an unknown tensor type")))?;
        let data = read_data(env, js::element(env, feeds, i + 2)?, &name, dtype)?;
        let dims = read_dims(env, js::element(env, feeds, i + 3)?, &name)?;
        let t = InputTensor { name, dtype, dims, data };
        t.check_layout()?;
        out.push(t);
    }
    Ok(out)
}

fn read_data(env: Env, v: Val, name: &str, dtype: DType) -> Result<InputData> {
    if dtype == DType::String {
        if !js::is_array(env, v)? {
            return Err(bad(format!("tensor '{name}' of type string needs a string[] as data")));
        }
        let n = js::array_len(env, v)?;
        let mut strings = Vec::with_capacity(n as usize);
        for i in 0..n {
            let s = js::string(env, js::element(env, v, i)?)?
                .ok_or_else(|| bad(format!("tensor '{name}' of type string has a non-string element at index {i}")))?;
            strings.push(s);
        }
        return Ok(InputData::Strings(strings));
    }
    let view = js::typed_array(env, v)?.ok_or_else(|| bad(format!("tensor '{name}' of type {} needs a typed array as data", dtype.name())))?;
    if !js::accepts(dtype, view.kind) {
        return Err(bad(format!("tensor '{name}' of type {} cannot hold data of typed array kind {}", dtype.name(), view.kind)));
    }
    let bytes = view.len.checked_mul(dtype.size()).ok_or_else(|| bad(format!("tensor '{name}' is too large")))?;
    // SAFETY: read at once (inline runs, or copied before queuing: see
    // `feeds::queued` for stream calls, the TS layer's copy for queued runs);
    // with `zeroCopy` the JS layer keeps the typed array
    // referenced until the run settles and the caller promises not to write,
    // transfer or free it meanwhile.
    Ok(InputData::Borrowed(unsafe { BorrowedBytes::new(view.data, bytes) }))
}

fn read_dims(env: Env, v: Val, name: &str) -> Result<Vec<i64>> {
    if !js::is_array(env, v)? {
        return Err(bad(format!("tensor '{name}' needs dims as an array of integers")));
    }
    let n = js::array_len(env, v)?;
    let mut dims = Vec::with_capacity(n as usize);
    for i in 0..n {
        let d = js::number(env, js::element(env, v, i)?)?.unwrap_or(f64::NAN);
        if !(d.fract() == 0.0 && (0.0..=9.007_199_254_740_991e15).contains(&d)) {
            return Err(bad(format!("tensor '{name}' has an invalid dim at index {i}: dims must be non-negative integers")));
        }
        dims.push(d as i64);
    }
    Ok(dims)
}

/// `inputs` made safe to queue: copied out of caller memory unless the
/// session borrows (`zeroCopy`).
pub fn queued(inputs: Vec<oxinfer_core::InputTensor>, zero_copy: bool) -> Vec<oxinfer_core::InputTensor> {
    if zero_copy {
        inputs
    } else {
        inputs.into_iter().map(|t| t.into_owned()).collect()
    }
}
