//! Round trips through the codec: outputs written by `encode_infer` are read
//! back by `decode_infer` as the inputs of a request (a response's output
//! objects have an input's form), for every datatype, as JSON and binary.

use oxinfer_core::tensor::AlignedBytes;
use oxinfer_core::{DType, InputData, OutputData, OutputTensor};

use super::*;
use crate::error::ServerError;

/// A response body turned into a request: its `"outputs"` renamed `"inputs"`.
fn as_request(e: &Encoded) -> (Vec<u8>, Option<usize>) {
    let n = e.header_len.unwrap_or(e.body.len());
    let json = std::str::from_utf8(&e.body[..n]).unwrap();
    let at = json.find(",\"outputs\":[").unwrap();
    let mut body = format!("{}{}", &json[..at], json[at..].replacen(",\"outputs\":[", ",\"inputs\":[", 1)).into_bytes();
    body.extend_from_slice(&e.body[n..]);
    (body, e.header_len.map(|n| n - 1))
}

fn round_trip(outputs: &[OutputTensor], binary: &[bool]) -> InferRequest {
    let e = encode_infer("model", Some("1"), Some("req-7"), None, outputs, binary);
    let (body, header_len) = as_request(&e);
    decode_infer(&body, header_len, &Limits::default()).unwrap_or_else(|err| panic!("{err}: {}", String::from_utf8_lossy(&body)))
}

fn le<T: Copy, const N: usize>(v: &[T], f: fn(T) -> [u8; N]) -> Vec<u8> {
    v.iter().flat_map(|&x| f(x)).collect()
}

/// Extreme and ordinary values of every datatype, as little-endian bytes.
fn samples(d: DType) -> Vec<u8> {
    match d {
        DType::Bool => vec![1, 0, 1, 1],
        DType::Uint8 => vec![0, 1, 128, 255],
        DType::Int8 => le(&[i8::MIN, -1, 0, i8::MAX], i8::to_le_bytes),
        DType::Uint16 => le(&[0, 1, 40000, u16::MAX], u16::to_le_bytes),
        DType::Int16 => le(&[i16::MIN, -1, 0, i16::MAX], i16::to_le_bytes),
        DType::Uint32 => le(&[0, 1, 3_000_000_000, u32::MAX], u32::to_le_bytes),
        DType::Int32 => le(&[i32::MIN, -1, 0, i32::MAX], i32::to_le_bytes),
        DType::Uint64 => le(&[0, 9007199254740993, u64::MAX - 1, u64::MAX], u64::to_le_bytes),
        DType::Int64 => le(&[i64::MIN, -9007199254740993, 0, i64::MAX], i64::to_le_bytes),
        DType::Float16 => le(&[half::f16::MIN, half::f16::from_f32(0.1), half::f16::from_bits(1), half::f16::MAX], half::f16::to_le_bytes),
        DType::BFloat16 => le(&[half::bf16::MIN, half::bf16::from_f32(0.1), half::bf16::from_bits(1), half::bf16::MAX], half::bf16::to_le_bytes),
        DType::Float32 => le(&[f32::MIN, 0.1, -1e-45, f32::MAX], f32::to_le_bytes),
        DType::Float64 => le(&[f64::MIN, 0.1, -2.5e-300, 1e300], f64::to_le_bytes),
        DType::String => vec![],
    }
}

fn output(name: &str, d: DType) -> OutputTensor {
    let data = match d {
        DType::String => OutputData::Strings(vec!["".into(), "plain".into(), "quote \" slash \\ nl \n nul \u{0}".into(), "日本語 🎉".into()]),
        _ => OutputData::Buffer(Box::new(AlignedBytes::from_slice(&samples(d)))),
    };
    OutputTensor { name: name.into(), dtype: d, dims: vec![2, 2], data }
}

fn check_same(outputs: &[OutputTensor], r: &InferRequest) {
    assert_eq!(r.inputs.len(), outputs.len());
    for (o, t) in outputs.iter().zip(&r.inputs) {
        assert_eq!((&t.name, t.dtype, &t.dims), (&o.name, o.dtype, &o.dims));
        match (&t.data, o.strings()) {
            (InputData::Strings(s), Some(want)) => assert_eq!(s, want),
            (InputData::Owned(b), None) => assert_eq!(b.as_slice(), o.bytes(), "{}", o.name),
            _ => panic!("{}: data of the wrong kind", o.name),
        }
    }
}

#[test]
fn every_datatype_round_trips_as_json_and_as_binary() {
    let outputs: Vec<OutputTensor> = DType::ALL.iter().map(|&d| output(datatype_name(d), d)).collect();
    for binary in [false, true] {
        let r = round_trip(&outputs, &vec![binary; outputs.len()]);
        assert_eq!(r.id.as_deref(), Some("req-7"));
        check_same(&outputs, &r);
    }
    // Mixed: every other output binary.
    let flags: Vec<bool> = (0..outputs.len()).map(|i| i % 2 == 0).collect();
    check_same(&outputs, &round_trip(&outputs, &flags));
}

#[test]
fn non_finite_floats_round_trip_through_their_tokens() {
    let f = le(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0], f32::to_le_bytes);
    let o = OutputTensor { name: "f".into(), dtype: DType::Float32, dims: vec![4], data: OutputData::Buffer(Box::new(AlignedBytes::from_slice(&f))) };
    let r = round_trip(std::slice::from_ref(&o), &[false]);
    let back: Vec<f32> = r.inputs[0].bytes().chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    assert!(back[0].is_nan());
    assert_eq!(back[1..].iter().map(|v| v.to_bits()).collect::<Vec<_>>(), [f32::INFINITY.to_bits(), f32::NEG_INFINITY.to_bits(), (-0.0f32).to_bits()]);
}

#[test]
fn the_id_is_echoed() {
    let r = decode_infer(br#"{"id":"a \"quoted\" id","inputs":[]}"#, None, &Limits::default()).unwrap();
    let e = encode_infer("m", None, r.id.as_deref(), None, &[], &[]);
    assert_eq!(e.body, br#"{"model_name":"m","id":"a \"quoted\" id","outputs":[]}"#);
}

#[test]
fn every_failure_is_a_bad_request() {
    // A cut-short body at every length: 400s, never another error or a panic.
    let outputs: Vec<OutputTensor> = DType::ALL.iter().map(|&d| output(datatype_name(d), d)).collect();
    let e = encode_infer("model", None, None, None, &outputs, &vec![true; outputs.len()]);
    let (body, header_len) = as_request(&e);
    for n in 0..body.len() {
        match decode_infer(&body[..n], header_len.map(|h| h.min(n)), &Limits::default()) {
            Err(ServerError::BadRequest(_)) => {}
            other => panic!("{n}: {other:?}"),
        }
    }
}
