//! Decoding an inference request: the JSON header (with `data` arrays read
//! straight into typed buffers, never through a JSON value tree) and the
//! binary tensor data after it. Every malformed request is a `BadRequest`
//! that names what is wrong; nothing is allocated from a declared shape
//! before the data has shown it is that large.

use std::fmt;

use oxinfer_core::tensor::AlignedBytes;
use oxinfer_core::{DType, InputData, InputTensor};
use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::datatype::parse_datatype;
use crate::error::{Result, ServerError};

/// Bounds on what one request may declare.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Elements per tensor.
    pub max_elements: usize,
    /// Inputs per request.
    pub max_inputs: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_elements: 1 << 28, max_inputs: 1024 }
    }
}

/// An output the request asks for.
#[derive(Clone, Debug)]
pub struct RequestedOutput {
    pub name: String,
    /// `parameters.binary_data`, which overrides the request's default.
    pub binary: Option<bool>,
    pub parameters: Map<String, Value>,
}

/// A decoded inference request.
#[derive(Debug)]
pub struct InferRequest {
    pub id: Option<String>,
    /// Request-level parameters as given (sequence ids, priority, timeout...).
    pub parameters: Map<String, Value>,
    pub inputs: Vec<InputTensor>,
    /// Empty: every output.
    pub outputs: Vec<RequestedOutput>,
    /// `parameters.binary_data_output`.
    pub binary_default: bool,
}

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    #[serde(borrow)]
    inputs: Vec<InputHeader<'a>>,
    #[serde(default)]
    outputs: Option<Vec<OutputHeader>>,
}

#[derive(Deserialize)]
struct InputHeader<'a> {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct OutputHeader {
    name: String,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
}

/// Decodes a request body; `header_len` is the `Inference-Header-Content-Length` header.
pub fn decode_infer(body: &[u8], header_len: Option<usize>, limits: &Limits) -> Result<InferRequest> {
    let (json, mut binary) = match header_len {
        Some(n) if n > body.len() => return Err(ServerError::bad(format!("Inference-Header-Content-Length is {n}, but the body has {} bytes", body.len()))),
        Some(n) => body.split_at(n),
        None => (body, &body[body.len()..]),
    };
    let text = std::str::from_utf8(json).map_err(|e| ServerError::bad(format!("the request header is not UTF-8: {e}")))?;
    let header: Header = serde_json::from_str(text).map_err(|e| ServerError::bad(format!("the request is not a valid inference request: {e}")))?;
    let id = match header.id {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => return Err(ServerError::bad(format!("id must be a string, got {other}"))),
    };
    let parameters = header.parameters.unwrap_or_default();
    let binary_default = match parameters.get("binary_data_output") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => return Err(ServerError::bad(format!("parameters.binary_data_output must be a boolean, got {v}"))),
    };
    if header.inputs.len() > limits.max_inputs {
        return Err(ServerError::bad(format!("{} inputs; at most {} are accepted", header.inputs.len(), limits.max_inputs)));
    }
    let mut inputs: Vec<InputTensor> = Vec::with_capacity(header.inputs.len());
    for h in header.inputs {
        if inputs.iter().any(|t| t.name == h.name) {
            return Err(ServerError::bad(format!("input '{}' is given twice", h.name)));
        }
        let t = input(h, &mut binary, limits)?;
        inputs.push(t);
    }
    if !binary.is_empty() {
        return Err(ServerError::bad(format!("{} bytes of binary data are left over after the inputs that declare binary_data_size", binary.len())));
    }
    let mut outputs = Vec::new();
    for o in header.outputs.unwrap_or_default() {
        if outputs.iter().any(|x: &RequestedOutput| x.name == o.name) {
            return Err(ServerError::bad(format!("output '{}' is requested twice", o.name)));
        }
        let parameters = o.parameters.unwrap_or_default();
        let binary = match parameters.get("binary_data") {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(v) => return Err(ServerError::bad(format!("output '{}': parameters.binary_data must be a boolean, got {v}", o.name))),
        };
        match parameters.get("classification") {
            None | Some(Value::Null) => {}
            Some(v) if v.as_u64() == Some(0) => {}
            Some(_) => return Err(ServerError::bad(format!("output '{}': the classification extension is not supported", o.name))),
        }
        outputs.push(RequestedOutput { name: o.name, binary, parameters });
    }
    Ok(InferRequest { id, parameters, inputs, outputs, binary_default })
}

fn input(h: InputHeader, binary: &mut &[u8], limits: &Limits) -> Result<InputTensor> {
    let name = h.name;
    let dtype = parse_datatype(&h.datatype).map_err(|e| ServerError::bad(format!("input '{name}': {e}")))?;
    let mut count: usize = 1;
    for &d in &h.shape {
        if d < 0 {
            return Err(ServerError::bad(format!("input '{name}': shape {:?} has a negative dimension", h.shape)));
        }
        count = count.checked_mul(d as usize).filter(|&c| c <= limits.max_elements).ok_or_else(|| ServerError::bad(format!("input '{name}': shape {:?} holds more than {} elements", h.shape, limits.max_elements)))?;
    }
    let size = h.parameters.as_ref().and_then(|p| p.get("binary_data_size"));
    let data = match (size, h.data) {
        (Some(_), Some(_)) => return Err(ServerError::bad(format!("input '{name}' has both data and parameters.binary_data_size"))),
        (None, None) => return Err(ServerError::bad(format!("input '{name}' has neither data nor parameters.binary_data_size"))),
        (Some(size), None) => {
            let n = size.as_u64().ok_or_else(|| ServerError::bad(format!("input '{name}': binary_data_size must be a non-negative integer, got {size}")))? as usize;
            if n > binary.len() {
                return Err(ServerError::bad(format!("input '{name}': binary_data_size is {n}, but only {} bytes of binary data remain", binary.len())));
            }
            let (bytes, rest) = binary.split_at(n);
            *binary = rest;
            from_binary(&name, dtype, count, bytes)?
        }
        (None, Some(raw)) => from_json(&name, dtype, count, raw)?,
    };
    Ok(InputTensor { name, dtype, dims: h.shape, data })
}

fn from_binary(name: &str, dtype: DType, count: usize, bytes: &[u8]) -> Result<InputData> {
    if dtype == DType::String {
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            if rest.len() < 4 {
                return Err(ServerError::bad(format!("input '{name}': a BYTES element's 4-byte length is cut short")));
            }
            let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if len > rest.len() - 4 {
                return Err(ServerError::bad(format!("input '{name}': a BYTES element of {len} bytes runs past the binary data")));
            }
            let s = std::str::from_utf8(&rest[4..4 + len]).map_err(|_| ServerError::bad(format!("input '{name}': BYTES element {} is not UTF-8 (oxinfer's string tensors are UTF-8)", out.len())))?;
            out.push(s.to_string());
            rest = &rest[4 + len..];
            if out.len() > count {
                break;
            }
        }
        if out.len() != count {
            return Err(ServerError::bad(format!("input '{name}': {} BYTES elements for a shape of {count}", out.len())));
        }
        return Ok(InputData::Strings(out));
    }
    let want = count * dtype.size();
    if bytes.len() != want {
        return Err(ServerError::bad(format!("input '{name}': binary_data_size is {} bytes, but its shape and datatype need {want}", bytes.len())));
    }
    if dtype == DType::Bool && bytes.iter().any(|&b| b > 1) {
        return Err(ServerError::bad(format!("input '{name}': BOOL bytes must be 0 or 1")));
    }
    Ok(InputData::Owned(AlignedBytes::from_slice(bytes)))
}

/// Typed values collected from a JSON `data` array.
enum Out {
    Bytes(Vec<u8>),
    Strings(Vec<String>),
}

fn from_json(name: &str, dtype: DType, count: usize, raw: &RawValue) -> Result<InputData> {
    // Every element takes at least two bytes of JSON ("1,"): a safe bound.
    let cap = count.min(raw.get().len() / 2 + 1);
    let mut out = if dtype == DType::String { Out::Strings(Vec::with_capacity(cap)) } else { Out::Bytes(Vec::with_capacity(cap * dtype.size())) };
    let mut n = 0usize;
    let mut de = serde_json::Deserializer::from_str(raw.get());
    Fill { dtype, out: &mut out, n: &mut n, max: count }
        .deserialize(&mut de)
        .map_err(|e| ServerError::bad(format!("input '{name}': {}", clean(&e.to_string()))))?;
    if n != count {
        return Err(ServerError::bad(format!("input '{name}': {n} values in data for a shape of {count} elements")));
    }
    Ok(match out {
        Out::Bytes(b) => InputData::Owned(AlignedBytes::from_slice(&b)),
        Out::Strings(s) => InputData::Strings(s),
    })
}

/// serde_json's messages end with "at line 1 column N" of the data array; keep them short.
fn clean(m: &str) -> String {
    m.to_string()
}

/// Reads a (possibly nested) JSON array of scalars into `out`.
struct Fill<'a> {
    dtype: DType,
    out: &'a mut Out,
    n: &'a mut usize,
    max: usize,
}

impl<'de> DeserializeSeed<'de> for Fill<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Fill<'_> {
    fn push<E: de::Error>(&mut self, f: impl FnOnce(DType, &mut Out) -> std::result::Result<(), String>) -> std::result::Result<(), E> {
        if *self.n >= self.max {
            return Err(E::custom(format!("more values in data than its shape's {} elements", self.max)));
        }
        f(self.dtype, self.out).map_err(|m| E::custom(format!("element {}: {m}", *self.n)))?;
        *self.n += 1;
        Ok(())
    }
}

fn put_int(d: DType, out: &mut Out, v: i128) -> std::result::Result<(), String> {
    let Out::Bytes(b) = out else { return Err("a number where BYTES data needs a string".into()) };
    let range = |lo: i128, hi: i128| if v < lo || v > hi { Err(format!("{v} is out of range for {}", super::datatype_name(d))) } else { Ok(()) };
    match d {
        DType::Int8 => range(i8::MIN as i128, i8::MAX as i128).map(|_| b.push(v as i8 as u8)),
        DType::Uint8 => range(0, u8::MAX as i128).map(|_| b.push(v as u8)),
        DType::Int16 => range(i16::MIN as i128, i16::MAX as i128).map(|_| b.extend_from_slice(&(v as i16).to_le_bytes())),
        DType::Uint16 => range(0, u16::MAX as i128).map(|_| b.extend_from_slice(&(v as u16).to_le_bytes())),
        DType::Int32 => range(i32::MIN as i128, i32::MAX as i128).map(|_| b.extend_from_slice(&(v as i32).to_le_bytes())),
        DType::Uint32 => range(0, u32::MAX as i128).map(|_| b.extend_from_slice(&(v as u32).to_le_bytes())),
        DType::Int64 => range(i64::MIN as i128, i64::MAX as i128).map(|_| b.extend_from_slice(&(v as i64).to_le_bytes())),
        DType::Uint64 => range(0, u64::MAX as i128).map(|_| b.extend_from_slice(&(v as u64).to_le_bytes())),
        _ => put_float(d, out, v as f64),
    }
}

fn put_float(d: DType, out: &mut Out, v: f64) -> std::result::Result<(), String> {
    let Out::Bytes(b) = out else { return Err("a number where BYTES data needs a string".into()) };
    match d {
        DType::Float32 => b.extend_from_slice(&(v as f32).to_le_bytes()),
        DType::Float64 => b.extend_from_slice(&v.to_le_bytes()),
        // Rounded to the nearest f16, as NumPy's astype(float16) does.
        DType::Float16 => b.extend_from_slice(&half::f16::from_f64(v).to_le_bytes()),
        DType::Bool => return Err(format!("{v} where BOOL data needs true or false")),
        _ => {
            if v.fract() != 0.0 || !v.is_finite() {
                return Err(format!("{v} is not an integer, as {} needs", super::datatype_name(d)));
            }
            return put_int(d, out, v as i128);
        }
    }
    Ok(())
}

impl<'de> Visitor<'de> for Fill<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an array of {} values", super::datatype_name(self.dtype))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        while seq.next_element_seed(Fill { dtype: self.dtype, out: &mut *self.out, n: &mut *self.n, max: self.max })?.is_some() {}
        Ok(())
    }

    fn visit_bool<E: de::Error>(mut self, v: bool) -> std::result::Result<(), E> {
        self.push(|d, out| match (d, out) {
            (DType::Bool, Out::Bytes(b)) => {
                b.push(v as u8);
                Ok(())
            }
            _ => Err(format!("{v} where {} data needs {}", super::datatype_name(d), if d == DType::String { "a string" } else { "a number" })),
        })
    }

    fn visit_i64<E: de::Error>(mut self, v: i64) -> std::result::Result<(), E> {
        self.push(|d, out| if d == DType::Bool { Err(format!("{v} where BOOL data needs true or false")) } else { put_int(d, out, v as i128) })
    }

    fn visit_u64<E: de::Error>(mut self, v: u64) -> std::result::Result<(), E> {
        self.push(|d, out| if d == DType::Bool { Err(format!("{v} where BOOL data needs true or false")) } else { put_int(d, out, v as i128) })
    }

    fn visit_f64<E: de::Error>(mut self, v: f64) -> std::result::Result<(), E> {
        self.push(|d, out| put_float(d, out, v))
    }

    fn visit_str<E: de::Error>(mut self, v: &str) -> std::result::Result<(), E> {
        self.push(|d, out| match out {
            Out::Strings(s) => {
                s.push(v.to_string());
                Ok(())
            }
            // Non-finite floats spelt as strings, as some clients send them.
            Out::Bytes(_) if matches!(d, DType::Float16 | DType::Float32 | DType::Float64) && matches!(v, "NaN" | "nan" | "Infinity" | "inf" | "-Infinity" | "-inf") => {
                let f = match v {
                    "NaN" | "nan" => f64::NAN,
                    "Infinity" | "inf" => f64::INFINITY,
                    _ => f64::NEG_INFINITY,
                };
                put_float(d, out, f)
            }
            Out::Bytes(_) => Err(format!("the string {:?} where {} data needs {}", v.chars().take(40).collect::<String>(), super::datatype_name(d), if d == DType::Bool { "true or false" } else { "a number" })),
        })
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<(), E> {
        Err(E::custom(format!("null where {} data needs a value", super::datatype_name(self.dtype))))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, _map: A) -> std::result::Result<(), A::Error> {
        Err(de::Error::custom("an object inside data"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(json: &str) -> InferRequest {
        decode_infer(json.as_bytes(), None, &Limits::default()).unwrap()
    }

    fn bad(json: &str) -> String {
        match decode_infer(json.as_bytes(), None, &Limits::default()) {
            Err(ServerError::BadRequest(m)) => m,
            other => panic!("expected BadRequest, got {other:?}"),
        }
    }

    #[test]
    fn json_tensors_nested_and_flat() {
        let r = ok(r#"{"id":"a","inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3.5,4]]},{"name":"s","shape":[2],"datatype":"BYTES","data":["p","q"]}]}"#);
        assert_eq!(r.id.as_deref(), Some("a"));
        assert_eq!(r.inputs[0].bytes(), [1f32, 2.0, 3.5, 4.0].iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>());
        assert!(matches!(&r.inputs[1].data, InputData::Strings(s) if s == &["p", "q"]));
        let big = ok(r#"{"inputs":[{"name":"i","shape":[2],"datatype":"INT64","data":[9007199254740993,-9223372036854775808]}]}"#);
        assert_eq!(big.inputs[0].bytes()[..8], 9007199254740993i64.to_le_bytes());
        let h = ok(r#"{"inputs":[{"name":"h","shape":[1],"datatype":"FP16","data":[1.5]}]}"#);
        assert_eq!(h.inputs[0].bytes(), half::f16::from_f32(1.5).to_le_bytes());
    }

    #[test]
    fn malformed_requests_name_the_problem() {
        assert!(bad(r#"{"inputs":[{"name":"x","shape":[3],"datatype":"FP32","data":[1,2]}]}"#).contains("2 values"));
        assert!(bad(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"UINT8","data":[300]}]}"#).contains("out of range"));
        assert!(bad(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"INT32","data":[1.5]}]}"#).contains("not an integer"));
        assert!(bad(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"UINT32","data":[-1]}]}"#).contains("out of range"));
        assert!(bad(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP99","data":[1]}]}"#).contains("FP99"));
        assert!(bad(r#"{"inputs":[{"name":"x","shape":[1099511627776,1099511627776],"datatype":"FP32","data":[1]}]}"#).contains("more than"));
        assert!(bad(r#"{"inputs":[{"name":"x","shape":[-1],"datatype":"FP32","data":[1]}]}"#).contains("negative"));
        assert!(bad(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32"}]}"#).contains("neither"));
        assert!(bad(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]},{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}"#).contains("twice"));
        assert!(bad(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"BOOL","data":[1]}]}"#).contains("BOOL"));
        assert!(bad(r#"{"id":3,"inputs":[]}"#).contains("id"));
        assert!(bad(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[null]}]}"#).contains("null"));
        assert!(bad("{\"inputs\": [").contains("not a valid"));
    }

    #[test]
    fn binary_data_and_lying_lengths() {
        let header = r#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}},{"name":"s","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":6}}]}"#;
        let mut body = header.as_bytes().to_vec();
        body.extend_from_slice(&1f32.to_le_bytes());
        body.extend_from_slice(&2f32.to_le_bytes());
        body.extend_from_slice(&2u32.to_le_bytes());
        body.extend_from_slice(b"hi");
        let r = decode_infer(&body, Some(header.len()), &Limits::default()).unwrap();
        assert_eq!(r.inputs[0].bytes().len(), 8);
        assert!(matches!(&r.inputs[1].data, InputData::Strings(s) if s == &["hi"]));
        assert!(decode_infer(&body, Some(body.len() + 1), &Limits::default()).is_err());
        assert!(decode_infer(&body, Some(header.len() - 1), &Limits::default()).is_err());
        let mut extra = body.clone();
        extra.push(0);
        assert!(matches!(decode_infer(&extra, Some(header.len()), &Limits::default()), Err(ServerError::BadRequest(m)) if m.contains("left over")));
        assert!(decode_infer(&body[..body.len() - 1], Some(header.len()), &Limits::default()).is_err());
    }

    #[test]
    fn outputs_and_their_binary_flags() {
        let r = ok(r#"{"parameters":{"binary_data_output":true},"inputs":[],"outputs":[{"name":"a"},{"name":"b","parameters":{"binary_data":false}}]}"#);
        assert!(r.binary_default);
        assert_eq!(r.outputs[0].binary, None);
        assert_eq!(r.outputs[1].binary, Some(false));
        assert!(bad(r#"{"inputs":[],"outputs":[{"name":"a","parameters":{"classification":2}}]}"#).contains("classification"));
    }
}
