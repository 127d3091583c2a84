//! Encoding an inference response: the JSON header written by hand into one
//! buffer (numbers with ryu and itoa, no JSON value tree), then the binary
//! outputs' bytes after it. Non-finite floats are written as `NaN`,
//! `Infinity` and `-Infinity`, as Triton (rapidjson) writes them and
//! Python's json reads them.

use oxinfer_core::{DType, OutputTensor};
use serde_json::{Map, Value};

use super::datatype::datatype_name;

/// An encoded response body.
pub struct Encoded {
    pub body: Vec<u8>,
    /// The JSON header's length when binary outputs follow it (the
    /// `Inference-Header-Content-Length` response header).
    pub header_len: Option<usize>,
}

/// `{"error": "..."}`.
pub fn encode_error(message: &str) -> Vec<u8> {
    let mut out = b"{\"error\":".to_vec();
    string(&mut out, message);
    out.push(b'}');
    out
}

fn string(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaping; writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Encodes `outputs`, each as binary data where `binary[i]` says so.
pub fn encode_infer(model_name: &str, model_version: Option<&str>, id: Option<&str>, parameters: Option<&Map<String, Value>>, outputs: &[OutputTensor], binary: &[bool]) -> Encoded {
    let mut out = Vec::with_capacity(256 + outputs.iter().map(|o| o.bytes().len() * 3).sum::<usize>());
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
        let _ = serde_json::to_writer(&mut out, p);
    }
    out.extend_from_slice(b",\"outputs\":[");
    let mut blobs: Vec<Vec<u8>> = Vec::new();
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
            out.extend_from_slice(itoa::Buffer::new().format(*d).as_bytes());
        }
        out.push(b']');
        if binary.get(i).copied().unwrap_or(false) {
            let blob = binary_bytes(o);
            out.extend_from_slice(b",\"parameters\":{\"binary_data_size\":");
            out.extend_from_slice(itoa::Buffer::new().format(blob.len()).as_bytes());
            out.extend_from_slice(b"}}");
            blobs.push(blob);
        } else {
            out.extend_from_slice(b",\"data\":[");
            json_data(&mut out, o);
            out.extend_from_slice(b"]}");
        }
    }
    out.extend_from_slice(b"]}");
    if blobs.is_empty() {
        return Encoded { body: out, header_len: None };
    }
    let header_len = out.len();
    for b in blobs {
        out.extend_from_slice(&b);
    }
    Encoded { body: out, header_len: Some(header_len) }
}

/// The binary form of an output: its bytes as they lie (little-endian), or
/// BYTES as 4-byte lengths and contents.
fn binary_bytes(o: &OutputTensor) -> Vec<u8> {
    match o.strings() {
        Some(s) => {
            let mut b = Vec::with_capacity(s.iter().map(|x| x.len() + 4).sum());
            for x in s {
                b.extend_from_slice(&(x.len() as u32).to_le_bytes());
                b.extend_from_slice(x.as_bytes());
            }
            b
        }
        None => o.bytes().to_vec(),
    }
}

fn float(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    } else if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v > 0.0 {
        out.extend_from_slice(b"Infinity");
    } else {
        out.extend_from_slice(b"-Infinity");
    }
}

fn float32(out: &mut Vec<u8>, v: f32) {
    if v.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    } else {
        float(out, v as f64);
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
    macro_rules! each {
        ($n:expr, $conv:expr) => {
            for (i, c) in b.chunks_exact($n).enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                #[allow(clippy::redundant_closure_call)]
                ($conv)(out, c);
            }
        };
    }
    let mut ib = itoa::Buffer::new();
    match o.dtype {
        DType::Float32 => each!(4, |out: &mut Vec<u8>, c: &[u8]| float32(out, f32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
        DType::Float64 => each!(8, |out: &mut Vec<u8>, c: &[u8]| float(out, f64::from_le_bytes(c.try_into().unwrap_or_default()))),
        DType::Float16 => each!(2, |out: &mut Vec<u8>, c: &[u8]| float32(out, half::f16::from_le_bytes([c[0], c[1]]).to_f32())),
        DType::Bool => each!(1, |out: &mut Vec<u8>, c: &[u8]| out.extend_from_slice(if c[0] != 0 { b"true" } else { b"false" })),
        DType::Int8 => each!(1, |out: &mut Vec<u8>, c: &[u8]| out.extend_from_slice(ib.format(c[0] as i8).as_bytes())),
        DType::Uint8 => each!(1, |out: &mut Vec<u8>, c: &[u8]| out.extend_from_slice(ib.format(c[0]).as_bytes())),
        DType::Int16 => each!(2, |out: &mut Vec<u8>, c: &[u8]| out.extend_from_slice(ib.format(i16::from_le_bytes([c[0], c[1]])).as_bytes())),
        DType::Uint16 => each!(2, |out: &mut Vec<u8>, c: &[u8]| out.extend_from_slice(ib.format(u16::from_le_bytes([c[0], c[1]])).as_bytes())),
        DType::Int32 => each!(4, |out: &mut Vec<u8>, c: &[u8]| out.extend_from_slice(ib.format(i32::from_le_bytes([c[0], c[1], c[2], c[3]])).as_bytes())),
        DType::Uint32 => each!(4, |out: &mut Vec<u8>, c: &[u8]| out.extend_from_slice(ib.format(u32::from_le_bytes([c[0], c[1], c[2], c[3]])).as_bytes())),
        DType::Int64 => each!(8, |out: &mut Vec<u8>, c: &[u8]| out.extend_from_slice(ib.format(i64::from_le_bytes(c.try_into().unwrap_or_default())).as_bytes())),
        DType::Uint64 => each!(8, |out: &mut Vec<u8>, c: &[u8]| out.extend_from_slice(ib.format(u64::from_le_bytes(c.try_into().unwrap_or_default())).as_bytes())),
        DType::String => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxinfer_core::tensor::AlignedBytes;
    use oxinfer_core::OutputData;

    fn tensor(name: &str, dtype: DType, dims: Vec<i64>, bytes: &[u8]) -> OutputTensor {
        OutputTensor { name: name.into(), dtype, dims, data: OutputData::Buffer(Box::new(AlignedBytes::from_slice(bytes))) }
    }

    #[test]
    fn json_and_binary_outputs() {
        let f: Vec<u8> = [1.5f32, f32::NAN].iter().flat_map(|x| x.to_le_bytes()).collect();
        let s = OutputTensor { name: "s".into(), dtype: DType::String, dims: vec![2], data: OutputData::Strings(vec!["a\"b".into(), "".into()]) };
        let e = encode_infer("m", Some("1"), Some("id-1"), None, &[tensor("y", DType::Float32, vec![1, 2], &f), s], &[false, false]);
        let text = String::from_utf8(e.body).unwrap();
        assert_eq!(text, r#"{"model_name":"m","model_version":"1","id":"id-1","outputs":[{"name":"y","datatype":"FP32","shape":[1,2],"data":[1.5,NaN]},{"name":"s","datatype":"BYTES","shape":[2],"data":["a\"b",""]}]}"#);
        assert!(e.header_len.is_none());
        let e = encode_infer("m", None, None, None, &[tensor("y", DType::Float32, vec![2], &f)], &[true]);
        let n = e.header_len.unwrap();
        assert!(String::from_utf8_lossy(&e.body[..n]).contains("\"binary_data_size\":8"));
        assert_eq!(&e.body[n..], &f[..]);
        let i: Vec<u8> = [i64::MIN, 9007199254740993].iter().flat_map(|x| x.to_le_bytes()).collect();
        let t = String::from_utf8(encode_infer("m", None, None, None, &[tensor("i", DType::Int64, vec![2], &i)], &[false]).body).unwrap();
        assert!(t.contains("[-9223372036854775808,9007199254740993]"));
        assert_eq!(encode_error("bad \"x\""), br#"{"error":"bad \"x\""}"#);
    }
}
