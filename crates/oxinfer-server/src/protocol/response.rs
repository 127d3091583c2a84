//! Encoding an inference response. This is the server's hot path, so the
//! JSON is written by hand into one buffer (numbers with ryu and itoa, no
//! JSON value tree), and binary outputs' bytes are appended after it.

use oxinfer_core::{DType, OutputTensor};
use serde_json::{Map, Value};

use super::binary;
use super::datatype::datatype_name;

/// An encoded response body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    pub body: Vec<u8>,
    /// The JSON's length when binary outputs follow it: the value of the
    /// `Inference-Header-Content-Length` response header.
    pub header_len: Option<usize>,
}

/// `{"error":"..."}`.
pub fn encode_error(message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 16);
    out.extend_from_slice(b"{\"error\":");
    string(&mut out, message);
    out.push(b'}');
    out
}

/// Encodes a response; `binary[i]` says to send `outputs[i]` as binary data
/// (missing entries: JSON).
pub fn encode_infer(model_name: &str, model_version: Option<&str>, id: Option<&str>, parameters: Option<&Map<String, Value>>, outputs: &[OutputTensor], binary: &[bool]) -> Encoded {
    let is_binary = |i: usize| binary.get(i).copied().unwrap_or(false);
    let blobs: usize = outputs.iter().enumerate().filter(|&(i, _)| is_binary(i)).map(|(_, o)| binary::size(o)).sum();
    let json: usize = outputs.iter().enumerate().filter(|&(i, _)| !is_binary(i)).map(|(_, o)| json_estimate(o)).sum();
    let mut out = Vec::with_capacity(128 + 96 * outputs.len() + json + blobs);
    out.extend_from_slice(b"{\"model_name\":");
    string(&mut out, model_name);
    if let Some(v) = model_version {
        out.extend_from_slice(b",\"model_version\":");
        string(&mut out, v);
    }
    if let Some(id) = id {
        out.extend_from_slice(b",\"id\":");
        string(&mut out, id);
    }
    if let Some(p) = parameters {
        out.extend_from_slice(b",\"parameters\":");
        // A map of JSON values always serializes, and a Vec cannot fail to take it.
        let _ = serde_json::to_writer(&mut out, p);
    }
    out.extend_from_slice(b",\"outputs\":[");
    let mut ints = itoa::Buffer::new();
    for (i, o) in outputs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"name\":");
        string(&mut out, &o.name);
        out.extend_from_slice(b",\"datatype\":\"");
        out.extend_from_slice(datatype_name(o.dtype).as_bytes());
        out.extend_from_slice(b"\",\"shape\":[");
        for (j, d) in o.dims.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            out.extend_from_slice(ints.format(*d).as_bytes());
        }
        if is_binary(i) {
            out.extend_from_slice(b"],\"parameters\":{\"binary_data_size\":");
            out.extend_from_slice(ints.format(binary::size(o)).as_bytes());
            out.extend_from_slice(b"}}");
        } else {
            out.extend_from_slice(b"],\"data\":[");
            json_data(&mut out, o);
            out.extend_from_slice(b"]}");
        }
    }
    out.extend_from_slice(b"]}");
    if !outputs.iter().enumerate().any(|(i, _)| is_binary(i)) {
        return Encoded { body: out, header_len: None };
    }
    let header_len = out.len();
    for (i, o) in outputs.iter().enumerate() {
        if is_binary(i) {
            binary::append(o, &mut out);
        }
    }
    Encoded { body: out, header_len: Some(header_len) }
}

/// A JSON string, escaped by serde_json.
fn string(out: &mut Vec<u8>, s: &str) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// A rough size of an output's JSON data, to allocate once.
fn json_estimate(o: &OutputTensor) -> usize {
    match o.strings() {
        Some(s) => s.iter().map(|x| x.len() + 3).sum(),
        None => {
            let n = o.bytes().len() / o.dtype.size().max(1);
            let per = match o.dtype {
                DType::Float32 | DType::Float16 | DType::BFloat16 => 12,
                DType::Float64 => 20,
                DType::Bool => 6,
                _ => 4 * o.dtype.size(),
            };
            n * per
        }
    }
}

// Non-finite floats are written as the tokens NaN, Infinity and -Infinity:
// not JSON, but what Triton writes (rapidjson's kWriteNanAndInfFlag) and what
// Python's json, and so tritonclient, reads back as floats. Writing null
// instead would break those clients' numpy conversion of the output.
fn non_finite(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(if v.is_nan() {
        b"NaN"
    } else if v > 0.0 {
        b"Infinity"
    } else {
        b"-Infinity"
    });
}

/// Writes `values` comma-separated, each with `put`.
fn list<T: Copy, const N: usize>(out: &mut Vec<u8>, bytes: &[u8], from: impl Fn([u8; N]) -> T, mut put: impl FnMut(&mut Vec<u8>, T)) {
    let (chunks, _) = bytes.as_chunks::<N>();
    for (i, c) in chunks.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        put(out, from(*c));
    }
}

fn json_data(out: &mut Vec<u8>, o: &OutputTensor) {
    if let Some(s) = o.strings() {
        for (i, x) in s.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            string(out, x);
        }
        return;
    }
    let b = o.bytes();
    let mut f = ryu::Buffer::new();
    let mut n = itoa::Buffer::new();
    let mut f32s = |out: &mut Vec<u8>, v: f32| {
        if v.is_finite() {
            out.extend_from_slice(f.format_finite(v).as_bytes())
        } else {
            non_finite(out, v as f64)
        }
    };
    match o.dtype {
        DType::Float32 => list(out, b, f32::from_le_bytes, f32s),
        // An f16 is written as the shortest text of its exact f32 value,
        // which reads back to the same f16.
        DType::Float16 => list(out, b, half::f16::from_le_bytes, |out, v| f32s(out, v.to_f32())),
        DType::BFloat16 => list(out, b, half::bf16::from_le_bytes, |out, v| f32s(out, v.to_f32())),
        DType::Float64 => list(out, b, f64::from_le_bytes, |out, v| {
            if v.is_finite() {
                out.extend_from_slice(f.format_finite(v).as_bytes())
            } else {
                non_finite(out, v)
            }
        }),
        DType::Bool => list(out, b, |[c]: [u8; 1]| c != 0, |out, v| out.extend_from_slice(if v { b"true" } else { b"false" })),
        DType::Uint8 => list(out, b, u8::from_le_bytes, |out, v| out.extend_from_slice(n.format(v).as_bytes())),
        DType::Int8 => list(out, b, i8::from_le_bytes, |out, v| out.extend_from_slice(n.format(v).as_bytes())),
        DType::Uint16 => list(out, b, u16::from_le_bytes, |out, v| out.extend_from_slice(n.format(v).as_bytes())),
        DType::Int16 => list(out, b, i16::from_le_bytes, |out, v| out.extend_from_slice(n.format(v).as_bytes())),
        DType::Uint32 => list(out, b, u32::from_le_bytes, |out, v| out.extend_from_slice(n.format(v).as_bytes())),
        DType::Int32 => list(out, b, i32::from_le_bytes, |out, v| out.extend_from_slice(n.format(v).as_bytes())),
        DType::Uint64 => list(out, b, u64::from_le_bytes, |out, v| out.extend_from_slice(n.format(v).as_bytes())),
        DType::Int64 => list(out, b, i64::from_le_bytes, |out, v| out.extend_from_slice(n.format(v).as_bytes())),
        // A BYTES output without strings has no elements to write.
        DType::String => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxinfer_core::tensor::AlignedBytes;
    use oxinfer_core::OutputData;

    fn tensor(name: &str, dtype: DType, dims: Vec<i64>, bytes: Vec<u8>) -> OutputTensor {
        OutputTensor { name: name.into(), dtype, dims, data: OutputData::Buffer(Box::new(AlignedBytes::from_slice(&bytes))) }
    }

    fn text(e: &Encoded) -> &str {
        std::str::from_utf8(&e.body[..e.header_len.unwrap_or(e.body.len())]).unwrap()
    }

    #[test]
    fn json_outputs_are_written_as_triton_writes_them() {
        let f: Vec<u8> = [1.5f32, 0.1, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 3e-42].iter().flat_map(|x| x.to_le_bytes()).collect();
        let i: Vec<u8> = [i64::MIN, 9007199254740993, i64::MAX].iter().flat_map(|x| x.to_le_bytes()).collect();
        let s = OutputTensor { name: "s\"".into(), dtype: DType::String, dims: vec![2], data: OutputData::Strings(vec!["a\"b\n".into(), "é".into()]) };
        let mut p = Map::new();
        p.insert("sequence_id".into(), 3.into());
        let outputs = [tensor("y", DType::Float32, vec![1, 7], f), tensor("i", DType::Int64, vec![3], i), tensor("b", DType::Bool, vec![2], vec![1, 0]), s];
        let e = encode_infer("m", Some("2"), Some("id-1"), Some(&p), &outputs, &[false; 4]);
        assert_eq!(e.header_len, None);
        assert_eq!(
            text(&e),
            concat!(
                r#"{"model_name":"m","model_version":"2","id":"id-1","parameters":{"sequence_id":3},"outputs":["#,
                r#"{"name":"y","datatype":"FP32","shape":[1,7],"data":[1.5,0.1,NaN,Infinity,-Infinity,-0.0,3e-42]},"#,
                r#"{"name":"i","datatype":"INT64","shape":[3],"data":[-9223372036854775808,9007199254740993,9223372036854775807]},"#,
                r#"{"name":"b","datatype":"BOOL","shape":[2],"data":[true,false]},"#,
                r#"{"name":"s\"","datatype":"BYTES","shape":[2],"data":["a\"b\n","é"]}]}"#
            )
        );
        // A missing flag is JSON; no outputs at all is an empty list.
        let e = encode_infer("m", None, None, None, &[], &[]);
        assert_eq!(text(&e), r#"{"model_name":"m","outputs":[]}"#);
    }

    #[test]
    fn binary_outputs_follow_the_json_in_order() {
        let f: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        let s = OutputTensor { name: "s".into(), dtype: DType::String, dims: vec![2], data: OutputData::Strings(vec!["hi".into(), "".into()]) };
        let outputs = [tensor("a", DType::Float32, vec![2], f.clone()), tensor("j", DType::Uint8, vec![1], vec![7]), s];
        let e = encode_infer("m", None, None, None, &outputs, &[true, false, true]);
        let n = e.header_len.unwrap();
        assert_eq!(
            text(&e),
            concat!(
                r#"{"model_name":"m","outputs":[{"name":"a","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":8}},"#,
                r#"{"name":"j","datatype":"UINT8","shape":[1],"data":[7]},"#,
                r#"{"name":"s","datatype":"BYTES","shape":[2],"parameters":{"binary_data_size":10}}]}"#
            )
        );
        assert_eq!(&e.body[n..], [&f[..], &2u32.to_le_bytes(), b"hi", &0u32.to_le_bytes()].concat());
    }

    #[test]
    fn errors_are_one_escaped_string() {
        assert_eq!(encode_error("bad \"x\"\n"), br#"{"error":"bad \"x\"\n"}"#);
    }
}
