//! Conversions between oxinfer tensors and `ort` values.

use std::borrow::Cow;

use ort::session::SessionInputValue;
use ort::value::{DynValue, Tensor, TensorElementType, TensorRef, ValueType};

use crate::backend::{Dim, ValueInfo, ValueKind};
use crate::error::{Error, Result};
use crate::tensor::{AlignedBytes, DType, InputTensor, OutputBuffer, OutputData, OutputTensor};

pub fn dtype_of(t: TensorElementType) -> Option<DType> {
    Some(match t {
        TensorElementType::Float32 => DType::Float32,
        TensorElementType::Uint8 => DType::Uint8,
        TensorElementType::Int8 => DType::Int8,
        TensorElementType::Uint16 => DType::Uint16,
        TensorElementType::Int16 => DType::Int16,
        TensorElementType::Int32 => DType::Int32,
        TensorElementType::Int64 => DType::Int64,
        TensorElementType::String => DType::String,
        TensorElementType::Bool => DType::Bool,
        TensorElementType::Float16 => DType::Float16,
        TensorElementType::Bfloat16 => DType::BFloat16,
        TensorElementType::Float64 => DType::Float64,
        TensorElementType::Uint32 => DType::Uint32,
        TensorElementType::Uint64 => DType::Uint64,
        _ => return None,
    })
}

pub fn value_info(name: &str, ty: &ValueType) -> ValueInfo {
    match ty {
        ValueType::Tensor { ty, shape, dimension_symbols } => {
            let dims = shape
                .iter()
                .enumerate()
                .map(|(i, &d)| {
                    if d >= 0 {
                        Dim::Fixed(d)
                    } else {
                        match dimension_symbols.get(i) {
                            Some(s) if !s.is_empty() => Dim::Symbolic(s.clone()),
                            _ => Dim::Dynamic,
                        }
                    }
                })
                .collect();
            let kind = match dtype_of(*ty) {
                Some(d) => ValueKind::Tensor(d),
                None => ValueKind::OtherTensor(format!("{ty:?}").to_lowercase()),
            };
            ValueInfo { name: name.into(), kind, dims }
        }
        ValueType::Sequence(_) => ValueInfo { name: name.into(), kind: ValueKind::Sequence, dims: vec![] },
        ValueType::Map { .. } => ValueInfo { name: name.into(), kind: ValueKind::Map, dims: vec![] },
        ValueType::Optional(_) => ValueInfo { name: name.into(), kind: ValueKind::Optional, dims: vec![] },
    }
}

/// Views `bytes` as `[T]`, copying only when the bytes are misaligned.
fn typed<T: Copy>(bytes: &[u8]) -> Cow<'_, [T]> {
    let n = bytes.len() / std::mem::size_of::<T>();
    if n == 0 {
        return Cow::Borrowed(&[]);
    }
    if (bytes.as_ptr() as usize) % std::mem::align_of::<T>() == 0 {
        // SAFETY: aligned, in bounds, and every bit pattern is valid for the numeric T used here.
        Cow::Borrowed(unsafe { std::slice::from_raw_parts(bytes.as_ptr() as *const T, n) })
    } else {
        let mut v = Vec::<T>::with_capacity(n);
        // SAFETY: `v` has capacity for `n` elements, filled byte-wise before set_len.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), v.as_mut_ptr() as *mut u8, n * std::mem::size_of::<T>());
            v.set_len(n);
        }
        Cow::Owned(v)
    }
}

fn view<'a, T>(dims: &[i64], data: Cow<'a, [T]>) -> ort::Result<SessionInputValue<'a>>
where
    T: ort::value::PrimitiveTensorElementType + std::fmt::Debug + Clone + 'static,
{
    Ok(match data {
        Cow::Borrowed(s) => TensorRef::<T>::from_array_view((dims.to_vec(), s))?.into(),
        Cow::Owned(v) => Tensor::<T>::from_array((dims.to_vec(), v))?.into(),
    })
}

/// Builds an ORT input value. Numeric data is borrowed, not copied.
pub fn to_value(t: &InputTensor) -> Result<SessionInputValue<'_>> {
    let b = t.bytes();
    let d = &t.dims;
    let r = match t.dtype {
        DType::Float32 => view::<f32>(d, typed(b)),
        DType::Float64 => view::<f64>(d, typed(b)),
        DType::Float16 => view::<half::f16>(d, typed(b)),
        DType::BFloat16 => view::<half::bf16>(d, typed(b)),
        DType::Int8 => view::<i8>(d, typed(b)),
        DType::Uint8 => view::<u8>(d, typed(b)),
        DType::Int16 => view::<i16>(d, typed(b)),
        DType::Uint16 => view::<u16>(d, typed(b)),
        DType::Int32 => view::<i32>(d, typed(b)),
        DType::Uint32 => view::<u32>(d, typed(b)),
        DType::Int64 => view::<i64>(d, typed(b)),
        DType::Uint64 => view::<u64>(d, typed(b)),
        DType::Bool => {
            if b.iter().all(|&x| x <= 1) {
                // SAFETY: every byte is 0 or 1, the two valid `bool` patterns.
                let s = unsafe { std::slice::from_raw_parts(b.as_ptr() as *const bool, b.len()) };
                view::<bool>(d, Cow::Borrowed(if b.is_empty() { &[] } else { s }))
            } else {
                view::<bool>(d, Cow::Owned(b.iter().map(|&x| x != 0).collect()))
            }
        }
        DType::String => match &t.data {
            crate::tensor::InputData::Strings(s) => Tensor::from_string_array((d.clone(), &s[..])).map(Into::into),
            _ => return Err(Error::InvalidArgument(format!("string tensor '{}' has no string data", t.name))),
        },
    };
    r.map_err(|e| Error::invalid_input(&t.name, format!("input '{}': {}", t.name, e.message())))
}

/// Keeps the engine's output value alive; its bytes are copied once, into JS.
struct OrtBuffer {
    _value: DynValue,
    ptr: *const u8,
    len: usize,
}

// SAFETY: `ort::Value` is Send, and the pointer refers into memory it owns.
unsafe impl Send for OrtBuffer {}
// SAFETY: the buffer is only read.
unsafe impl Sync for OrtBuffer {}

impl OutputBuffer for OrtBuffer {
    fn bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: points into `_value`'s tensor data, alive as long as self.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

fn raw<T: ort::value::PrimitiveTensorElementType>(v: &DynValue) -> ort::Result<(Vec<i64>, *const u8, usize)> {
    let (shape, data) = v.try_extract_tensor::<T>()?;
    Ok((shape.to_vec(), data.as_ptr() as *const u8, std::mem::size_of_val(data)))
}

/// A number as JSON; JSON has no NaN or infinities, so those go as the
/// strings "NaN", "Infinity" and "-Infinity" (as JavaScript's Number reads them).
fn num(x: f64) -> serde_json::Value {
    match serde_json::Number::from_f64(x) {
        Some(n) => serde_json::Value::Number(n),
        None if x.is_nan() => serde_json::Value::String("NaN".into()),
        None => serde_json::Value::String(if x > 0.0 { "Infinity" } else { "-Infinity" }.into()),
    }
}

/// A tensor's elements as JSON: 64-bit integers as strings (exact past 2^53).
fn tensor_json(t: &OutputTensor) -> serde_json::Value {
    use serde_json::Value as J;
    let data = match t.dtype {
        DType::String => J::Array(t.strings().unwrap_or_default().iter().cloned().map(J::String).collect()),
        DType::Int64 => J::Array(t.to_vec::<i64>().unwrap_or_default().into_iter().map(|x| J::String(x.to_string())).collect()),
        DType::Uint64 => J::Array(t.to_vec::<u64>().unwrap_or_default().into_iter().map(|x| J::String(x.to_string())).collect()),
        DType::Bool => J::Array(t.to_vec::<u8>().unwrap_or_default().into_iter().map(|x| J::Bool(x != 0)).collect()),
        // Every other type is exact as f64.
        d => J::Array(crate::tensor::f64s(d, t.bytes()).unwrap_or_default().into_iter().map(num).collect()),
    };
    serde_json::json!({ "kind": "tensor", "type": t.dtype.name(), "dims": t.dims, "data": data })
}

/// A map's entries as JSON, keys (and 64-bit integer values) as strings.
fn map_entries<K: ort::value::IntoTensorElementType + Clone + std::hash::Hash + Eq + ToString, V: ort::value::PrimitiveTensorElementType + Clone>(v: &DynValue, value: impl Fn(V) -> serde_json::Value) -> ort::Result<(Vec<serde_json::Value>, Vec<serde_json::Value>)> {
    let kv = v.try_extract_key_values::<K, V>()?;
    Ok(kv.into_iter().map(|(k, x)| (serde_json::Value::String(k.to_string()), value(x))).unzip())
}

/// An ONNX sequence or map as the JSON `OutputData::Value` carries:
/// `{"kind":"sequence","items":[…]}`, `{"kind":"map","keyType","valueType",
/// "keys":[…],"values":[…]}` (keys as strings; the bindings make them
/// numbers again for integer keys), or, inside a sequence,
/// `{"kind":"tensor","type","dims","data"}`.
fn non_tensor_json(name: &str, v: &DynValue) -> Result<serde_json::Value> {
    let be = |e: ort::Error| Error::Backend(format!("reading output '{name}': {}", e.message()));
    match v.dtype() {
        ValueType::Sequence(_) => {
            let items = v.try_extract_sequence::<ort::value::DynValueTypeMarker>().map_err(be)?;
            let items = items
                .into_iter()
                .map(|item| match item.dtype() {
                    // A tensor element is read as any output is.
                    ValueType::Tensor { .. } => from_value(name, item).map(|t| tensor_json(&t)),
                    _ => non_tensor_json(name, &item),
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(serde_json::json!({ "kind": "sequence", "items": items }))
        }
        ValueType::Map { key, value } => {
            use TensorElementType as E;
            let f32v = |x: f32| num(f64::from(x));
            let f64v = num;
            let i64v = |x: i64| serde_json::Value::String(x.to_string());
            let (keys, values) = match (key, value) {
                (E::String, E::Float32) => map_entries::<String, f32>(v, f32v),
                (E::String, E::Float64) => map_entries::<String, f64>(v, f64v),
                (E::String, E::Int64) => map_entries::<String, i64>(v, i64v),
                (E::Int64, E::Float32) => map_entries::<i64, f32>(v, f32v),
                (E::Int64, E::Float64) => map_entries::<i64, f64>(v, f64v),
                (E::Int64, E::Int64) => map_entries::<i64, i64>(v, i64v),
                _ => return Err(Error::Unsupported(format!("output '{name}' is a map from {key:?} to {value:?}; oxinfer reads maps from string or int64 keys to float32, float64 or int64 values"))),
            }
            .map_err(be)?;
            let type_name = |t: &E| dtype_of(*t).map_or("unknown", |d| d.name());
            Ok(serde_json::json!({ "kind": "map", "keyType": type_name(key), "valueType": type_name(value), "keys": keys, "values": values }))
        }
        other => Err(Error::Unsupported(format!("output '{name}' is a {other:?} value, which oxinfer does not read (sequences and maps it does)"))),
    }
}

pub fn from_value(name: &str, v: DynValue) -> Result<OutputTensor> {
    let ty = match v.dtype() {
        ValueType::Tensor { ty, .. } => *ty,
        ValueType::Sequence(_) | ValueType::Map { .. } => {
            let json = non_tensor_json(name, &v)?;
            return Ok(OutputTensor::value(name, json.to_string()));
        }
        other => {
            return Err(Error::Unsupported(format!("output '{name}' is a non-tensor value ({other:?}) that oxinfer does not read (sequences and maps it does)")));
        }
    };
    let dtype = dtype_of(ty)
        .ok_or_else(|| Error::Unsupported(format!("output '{name}' has element type {ty:?}, which oxinfer does not support")))?;
    let be = |e: ort::Error| Error::Backend(format!("reading output '{name}': {}", e.message()));
    if dtype == DType::String {
        let (shape, strings) = v.try_extract_strings().map_err(be)?;
        return Ok(OutputTensor { name: name.into(), dtype, dims: shape.to_vec(), data: OutputData::Strings(strings) });
    }
    let (dims, ptr, len) = match dtype {
        DType::Float32 => raw::<f32>(&v),
        DType::Float64 => raw::<f64>(&v),
        DType::Float16 => raw::<half::f16>(&v),
        DType::BFloat16 => raw::<half::bf16>(&v),
        DType::Int8 => raw::<i8>(&v),
        DType::Uint8 => raw::<u8>(&v),
        DType::Int16 => raw::<i16>(&v),
        DType::Uint16 => raw::<u16>(&v),
        DType::Int32 => raw::<i32>(&v),
        DType::Uint32 => raw::<u32>(&v),
        DType::Int64 => raw::<i64>(&v),
        DType::Uint64 => raw::<u64>(&v),
        DType::Bool => raw::<bool>(&v),
        DType::String => unreachable!(),
    }
    .map_err(be)?;
    let data: Box<dyn OutputBuffer> = if len == 0 {
        Box::new(AlignedBytes::default())
    } else {
        Box::new(OrtBuffer { _value: v, ptr, len })
    };
    Ok(OutputTensor { name: name.into(), dtype, dims, data: OutputData::Buffer(data) })
}
