//! Thin raw Node-API helpers for the hot path, where napi-rs's generic
//! conversions would add allocations or property lookups.

use std::ffi::c_void;
use std::ptr;

use napi::sys;
use oxinfer_core::{DType, Error, Result};

pub type Env = sys::napi_env;
pub type Val = sys::napi_value;

fn fail(what: &str) -> Error {
    Error::Backend(format!("Node-API call failed: {what}"))
}

macro_rules! call {
    ($what:literal, $e:expr) => {
        if unsafe { $e } != sys::Status::napi_ok {
            return Err(fail($what));
        }
    };
}

pub fn type_of(env: Env, v: Val) -> Result<i32> {
    let mut t = 0;
    call!("typeof", sys::napi_typeof(env, v, &mut t));
    Ok(t)
}

pub fn is_array(env: Env, v: Val) -> Result<bool> {
    let mut b = false;
    call!("is_array", sys::napi_is_array(env, v, &mut b));
    Ok(b)
}

pub fn array_len(env: Env, v: Val) -> Result<u32> {
    let mut n = 0;
    call!("get_array_length", sys::napi_get_array_length(env, v, &mut n));
    Ok(n)
}

pub fn element(env: Env, v: Val, i: u32) -> Result<Val> {
    let mut out = ptr::null_mut();
    call!("get_element", sys::napi_get_element(env, v, i, &mut out));
    Ok(out)
}

pub fn string(env: Env, v: Val) -> Result<Option<String>> {
    if type_of(env, v)? != sys::ValueType::napi_string {
        return Ok(None);
    }
    let mut len = 0;
    call!("get_value_string_utf8", sys::napi_get_value_string_utf8(env, v, ptr::null_mut(), 0, &mut len));
    let mut buf = vec![0u8; len + 1];
    let mut written = 0;
    call!(
        "get_value_string_utf8",
        sys::napi_get_value_string_utf8(env, v, buf.as_mut_ptr() as *mut _, buf.len(), &mut written)
    );
    buf.truncate(written);
    // Node-API hands back valid UTF-8 (lone surrogates become U+FFFD).
    Ok(Some(String::from_utf8(buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())))
}

/// A string array, or None for null/undefined (anything else is refused).
pub fn strings_or_null(env: Env, v: Val) -> Result<Option<Vec<String>>> {
    let t = type_of(env, v)?;
    if t == sys::ValueType::napi_null || t == sys::ValueType::napi_undefined {
        return Ok(None);
    }
    if !is_array(env, v)? {
        return Err(oxinfer_core::Error::InvalidArgument("options.outputs must be an array of output names".into()));
    }
    (0..array_len(env, v)?)
        .map(|i| string(env, element(env, v, i)?)?.ok_or_else(|| oxinfer_core::Error::InvalidArgument("options.outputs must hold strings".into())))
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

pub fn number(env: Env, v: Val) -> Result<Option<f64>> {
    if type_of(env, v)? != sys::ValueType::napi_number {
        return Ok(None);
    }
    let mut x = 0.0;
    call!("get_value_double", sys::napi_get_value_double(env, v, &mut x));
    Ok(Some(x))
}

/// True only for the JS value `true`.
pub fn boolean(env: Env, v: Val) -> Result<bool> {
    if type_of(env, v)? != sys::ValueType::napi_boolean {
        return Ok(false);
    }
    let mut b = false;
    call!("get_value_bool", sys::napi_get_value_bool(env, v, &mut b));
    Ok(b)
}

/// A typed array's kind (Node-API's numbering), element count and data.
pub struct TypedView {
    pub kind: i32,
    pub len: usize,
    pub data: *const u8,
}

pub fn typed_array(env: Env, v: Val) -> Result<Option<TypedView>> {
    let mut is = false;
    call!("is_typedarray", sys::napi_is_typedarray(env, v, &mut is));
    if !is {
        return Ok(None);
    }
    let mut kind = 0;
    let mut len = 0;
    let mut data: *mut c_void = ptr::null_mut();
    let mut ab = ptr::null_mut();
    let mut off = 0;
    call!("get_typedarray_info", sys::napi_get_typedarray_info(env, v, &mut kind, &mut len, &mut data, &mut ab, &mut off));
    Ok(Some(TypedView { kind, len, data: data as *const u8 }))
}

// Node-API typed array kinds.
pub const INT8: i32 = 0;
pub const UINT8: i32 = 1;
pub const UINT8_CLAMPED: i32 = 2;
pub const INT16: i32 = 3;
pub const UINT16: i32 = 4;
pub const INT32: i32 = 5;
pub const UINT32: i32 = 6;
pub const FLOAT32: i32 = 7;
pub const FLOAT64: i32 = 8;
pub const BIGINT64: i32 = 9;
pub const BIGUINT64: i32 = 10;
pub const FLOAT16: i32 = 11;

/// The typed array kinds that may carry `dtype` (onnxruntime-common's conventions).
pub fn accepts(dtype: DType, kind: i32) -> bool {
    match dtype {
        DType::Float32 => kind == FLOAT32,
        DType::Float64 => kind == FLOAT64,
        DType::Float16 => kind == UINT16 || kind == FLOAT16,
        DType::BFloat16 => kind == UINT16,
        DType::Int8 => kind == INT8,
        DType::Uint8 => kind == UINT8 || kind == UINT8_CLAMPED,
        DType::Bool => kind == UINT8,
        DType::Int16 => kind == INT16,
        DType::Uint16 => kind == UINT16,
        DType::Int32 => kind == INT32,
        DType::Uint32 => kind == UINT32,
        DType::Int64 => kind == BIGINT64,
        DType::Uint64 => kind == BIGUINT64,
        DType::String => false,
    }
}

fn kind_of(dtype: DType) -> i32 {
    match dtype {
        DType::Float32 => FLOAT32,
        DType::Float64 => FLOAT64,
        DType::Float16 | DType::BFloat16 | DType::Uint16 => UINT16,
        DType::Int8 => INT8,
        DType::Uint8 | DType::Bool => UINT8,
        DType::Int16 => INT16,
        DType::Int32 => INT32,
        DType::Uint32 => UINT32,
        DType::Int64 => BIGINT64,
        DType::Uint64 => BIGUINT64,
        DType::String => UINT8,
    }
}

/// Copies `bytes` once into a new JS-owned typed array of `dtype`'s kind.
pub fn new_typed_array(env: Env, dtype: DType, bytes: &[u8]) -> Result<Val> {
    let mut data: *mut c_void = ptr::null_mut();
    let mut ab = ptr::null_mut();
    call!("create_arraybuffer", sys::napi_create_arraybuffer(env, bytes.len(), &mut data, &mut ab));
    if !bytes.is_empty() {
        // SAFETY: the new buffer has exactly `bytes.len()` writable bytes.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), data as *mut u8, bytes.len()) };
    }
    let len = if dtype.size() == 0 { 0 } else { bytes.len() / dtype.size() };
    let mut out = ptr::null_mut();
    call!("create_typedarray", sys::napi_create_typedarray(env, kind_of(dtype), len, ab, 0, &mut out));
    Ok(out)
}

pub fn new_array(env: Env, len: usize) -> Result<Val> {
    let mut out = ptr::null_mut();
    call!("create_array", sys::napi_create_array_with_length(env, len, &mut out));
    Ok(out)
}

pub fn set(env: Env, arr: Val, i: u32, v: Val) -> Result<()> {
    call!("set_element", sys::napi_set_element(env, arr, i, v));
    Ok(())
}

pub fn new_number(env: Env, x: f64) -> Result<Val> {
    let mut out = ptr::null_mut();
    call!("create_double", sys::napi_create_double(env, x, &mut out));
    Ok(out)
}

pub fn new_string(env: Env, s: &str) -> Result<Val> {
    let mut out = ptr::null_mut();
    call!("create_string_utf8", sys::napi_create_string_utf8(env, s.as_ptr() as *const _, s.len() as isize, &mut out));
    Ok(out)
}

pub fn undefined(env: Env) -> Result<Val> {
    let mut out = ptr::null_mut();
    call!("get_undefined", sys::napi_get_undefined(env, &mut out));
    Ok(out)
}

pub fn null(env: Env) -> Result<Val> {
    let mut out = ptr::null_mut();
    call!("get_null", sys::napi_get_null(env, &mut out));
    Ok(out)
}

/// A new JS ArrayBuffer of `len` bytes and its writable data.
pub fn new_arraybuffer(env: Env, len: usize) -> Result<(Val, *mut u8)> {
    let mut data: *mut c_void = ptr::null_mut();
    let mut ab = ptr::null_mut();
    call!("create_arraybuffer", sys::napi_create_arraybuffer(env, len, &mut data, &mut ab));
    Ok((ab, data as *mut u8))
}
