//! Unit tests of request decoding (`request.rs`): every form a client sends
//! and every malformed request, each failure naming its problem.

use oxinfer_core::{InputData, InputTensor};
use serde_json::Map;

use super::request::*;
use crate::error::ServerError;

fn ok(json: &str) -> InferRequest {
    decode_infer(json.as_bytes(), None, &Limits::default()).unwrap()
}

fn bad_body(body: &[u8], header_len: Option<usize>) -> String {
    match decode_infer(body, header_len, &Limits::default()) {
        Err(ServerError::BadRequest(m)) => m,
        other => panic!("expected BadRequest, got {other:?}"),
    }
}

fn bad(json: &str) -> String {
    bad_body(json.as_bytes(), None)
}

/// A JSON header and binary data after it.
fn with_binary(header: &str, blobs: &[&[u8]]) -> (Vec<u8>, usize) {
    let mut b = header.as_bytes().to_vec();
    for x in blobs {
        b.extend_from_slice(x);
    }
    (b, header.len())
}

fn strings(t: &InputTensor) -> &[String] {
    match &t.data {
        InputData::Strings(s) => s,
        _ => panic!("not strings"),
    }
}

fn le<T: Copy, const N: usize>(v: &[T], f: fn(T) -> [u8; N]) -> Vec<u8> {
    v.iter().flat_map(|&x| f(x)).collect()
}

#[test]
fn a_json_request_decodes_with_its_id_parameters_and_outputs() {
    let r = ok(r#"{"id":"req-1","parameters":{"sequence_id":7,"priority":1},"inputs":[
        {"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3.5,-4e-3]]},
        {"name":"s","shape":[2],"datatype":"BYTES","data":["p","q\u00e9"]},
        {"name":"b","shape":[3],"datatype":"BOOL","data":[true,false,true]}],
        "outputs":[{"name":"y"}],"unknown":{"ignored":[1,2]}}"#);
    assert_eq!(r.id.as_deref(), Some("req-1"));
    assert_eq!(r.parameters["sequence_id"], 7);
    assert_eq!(r.inputs[0].dims, [2, 2]);
    assert_eq!(r.inputs[0].bytes(), le(&[1f32, 2.0, 3.5, -4e-3], f32::to_le_bytes));
    assert_eq!(strings(&r.inputs[1]), ["p", "qé"]);
    assert_eq!(r.inputs[2].bytes(), [1, 0, 1]);
    assert_eq!(r.outputs, [RequestedOutput { name: "y".into(), binary: None, parameters: Map::new() }]);
    assert!(!r.binary_default);
    // No id, a null id, no outputs, no inputs at all.
    assert_eq!(ok(r#"{"inputs":[]}"#).id, None);
    assert_eq!(ok(r#"{"id":null,"inputs":[]}"#).id, None);
    assert!(ok(r#"{"inputs":[]}"#).outputs.is_empty());
}

#[test]
fn data_before_shape_and_datatype_is_read_afterwards() {
    let r = ok(r#"{"inputs":[{"data":[[1,2,3]],"name":"x","datatype":"INT64","shape":[1,3]}]}"#);
    assert_eq!(r.inputs[0].bytes(), le(&[1i64, 2, 3], i64::to_le_bytes));
    let m = bad(r#"{"inputs":[{"data":[1,2],"name":"x","datatype":"INT64","shape":[3]}]}"#);
    assert!(m.contains("input \"x\": data has 2 values, but shape [3] has 3 elements"), "{m}");
    let m = bad(r#"{"inputs":[{"data":[300],"name":"x","datatype":"UINT8","shape":[1]}]}"#);
    assert!(m.contains("input \"x\": element 0: 300 is out of range for UINT8"), "{m}");
}

#[test]
fn binary_inputs_take_their_bytes_in_order() {
    let header = r#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}},{"name":"j","shape":[1],"datatype":"INT8","data":[-3]},{"name":"s","shape":[2],"datatype":"BYTES","parameters":{"binary_data_size":10}}]}"#;
    let f = le(&[1.5f32, -2.0], f32::to_le_bytes);
    let s = [&2u32.to_le_bytes()[..], b"hi", &0u32.to_le_bytes()].concat();
    let (body, n) = with_binary(header, &[&f, &s]);
    let r = decode_infer(&body, Some(n), &Limits::default()).unwrap();
    assert_eq!(r.inputs[0].bytes(), f);
    assert_eq!(r.inputs[1].bytes(), [(-3i8) as u8]);
    assert_eq!(strings(&r.inputs[2]), ["hi", ""]);
}

#[test]
fn lying_lengths_are_bad_requests_that_say_so() {
    let header = r#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}}]}"#;
    let (body, n) = with_binary(header, &[&[0; 8]]);
    let m = bad_body(&body, Some(body.len() + 1));
    assert!(m.contains(&format!("Inference-Header-Content-Length is {}, but the body has only {} bytes", body.len() + 1, body.len())), "{m}");
    let m = bad_body(&body, Some(n - 1));
    assert!(m.contains("not valid JSON") && m.contains(&format!("first {} bytes", n - 1)), "{m}");
    // One byte too many: the inputs are read as the JSON streams by, so
    // the binary data comes up short before the stray byte is seen.
    let m = bad_body(&body, Some(n + 1));
    assert!(m.contains("only 7 bytes of binary data remain"), "{m}");
    let m = bad_body(&[&body[..], &[9]].concat(), Some(n));
    assert!(m.contains("1 bytes of binary data are left over"), "{m}");
    let m = bad_body(&body[..body.len() - 1], Some(n));
    assert!(m.contains("input \"x\": binary_data_size is 8, but only 7 bytes of binary data remain"), "{m}");
    // Binary data sent without the header.
    let m = bad_body(&body, None);
    assert!(m.contains("input \"x\": binary_data_size is 8, but binary data needs the Inference-Header-Content-Length header"), "{m}");
    let m = bad(r#"{"inputs":[]} [1]"#);
    assert!(m.contains("trailing characters") && m.contains("needs the Inference-Header-Content-Length header"), "{m}");
    // A size that does not match the shape, and one that is not a size.
    let h = header.replace("[2]", "[3]");
    let m = bad_body(&with_binary(&h, &[&[0; 8]]).0, Some(h.len()));
    assert!(m.contains("input \"x\": binary_data_size is 8, but shape [3] of FP32 needs 12 bytes"), "{m}");
    let h = header.replace("8}", "-8}");
    let m = bad_body(&with_binary(&h, &[&[0; 8]]).0, Some(h.len()));
    assert!(m.contains("input \"x\": parameters.binary_data_size must be a non-negative integer"), "{m}");
    // BYTES lengths that overrun, and non-UTF-8 BYTES.
    let h = r#"{"inputs":[{"name":"s","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":6}}]}"#;
    let m = bad_body(&with_binary(h, &[&9u32.to_le_bytes(), b"ab"]).0, Some(h.len()));
    assert!(m.contains("input \"s\": BYTES element 0 has length 9, which runs past"), "{m}");
    let m = bad_body(&with_binary(h, &[&2u32.to_le_bytes(), b"\xc3\x28"]).0, Some(h.len()));
    assert!(m.contains("input \"s\": BYTES element 0 is not valid UTF-8"), "{m}");
    let h = h.replace("[1]", "[2]");
    let m = bad_body(&with_binary(&h, &[&2u32.to_le_bytes(), b"ab"]).0, Some(h.len()));
    assert!(m.contains("input \"s\": binary_data_size is 6, too small for the 2 BYTES elements"), "{m}");
    // JSON that is not UTF-8.
    let m = bad_body(b"{\"inputs\":[],\"x\":\"\xff\"}", None);
    assert!(m.contains("not UTF-8"), "{m}");
}

#[test]
fn data_and_binary_data_size_are_one_or_the_other() {
    let m = bad(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4},"data":[1]}]}"#);
    assert!(m.contains("input \"x\" has both data and parameters.binary_data_size"), "{m}");
    let m = bad(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1],"parameters":{"binary_data_size":4}}]}"#);
    assert!(m.contains("input \"x\" has both"), "{m}");
    let m = bad(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32"}]}"#);
    assert!(m.contains("input \"x\" has neither data nor parameters.binary_data_size"), "{m}");
    let m = bad(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"shared_memory_region":"r"}}]}"#);
    assert!(m.contains("input \"x\": the shared memory extension is not supported"), "{m}");
}

#[test]
fn shapes_are_checked_before_anything_is_allocated() {
    let m = bad(r#"{"inputs":[{"name":"x","shape":[1099511627776,1099511627776],"datatype":"FP32","data":[1]}]}"#);
    assert!(m.contains("input \"x\": shape [1099511627776, 1099511627776] holds more than 268435456 elements"), "{m}");
    let m = bad(r#"{"inputs":[{"name":"x","shape":[268435456],"datatype":"FP64","data":[1]}]}"#);
    assert!(m.contains("input \"x\": data has 1 values, but shape [268435456] has 268435456 elements"), "{m}");
    let m = bad(r#"{"inputs":[{"name":"x","shape":[2,-1],"datatype":"FP32","data":[1]}]}"#);
    assert!(m.contains("input \"x\": shape [2, -1] has a negative dimension"), "{m}");
    let m = bad(r#"{"inputs":[{"name":"x","shape":[1.5],"datatype":"FP32","data":[1]}]}"#);
    assert!(m.contains("input \"x\" shape"), "{m}");
    // A huge shape in binary form is as cheap.
    let h = r#"{"inputs":[{"name":"x","shape":[268435456],"datatype":"BYTES","parameters":{"binary_data_size":4}}]}"#;
    let m = bad_body(&with_binary(h, &[&[0; 4]]).0, Some(h.len()));
    assert!(m.contains("too small for the 268435456 BYTES elements"), "{m}");
    // A zero dimension holds nothing, whatever the others say.
    let r = ok(r#"{"inputs":[{"name":"x","shape":[1099511627776,0],"datatype":"FP32","data":[]}]}"#);
    assert!(r.inputs[0].bytes().is_empty());
    let limits = Limits { max_elements: 4, max_inputs: 1 };
    let m = match decode_infer(br#"{"inputs":[{"name":"x","shape":[5],"datatype":"FP32","data":[1,2,3,4,5]}]}"#, None, &limits) {
        Err(ServerError::BadRequest(m)) => m,
        other => panic!("{other:?}"),
    };
    assert!(m.contains("more than 4 elements"), "{m}");
    let two = br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]},{"name":"y","shape":[1],"datatype":"FP32","data":[1]}]}"#;
    assert!(matches!(decode_infer(two, None, &limits), Err(ServerError::BadRequest(m)) if m.contains("more than 1 inputs")));
}

#[test]
fn malformed_headers_name_the_problem() {
    let cases: &[(&str, &str)] = &[
        (r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP99","data":[1]}]}"#, "input \"x\": unknown datatype \"FP99\""),
        (r#"{"inputs":[{"name":"x","shape":[1],"datatype":"BF17","data":[1]}]}"#, "input \"x\": unknown datatype \"BF17\""),
        (r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]},{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}"#, "input \"x\" is given twice"),
        (r#"{"inputs":[{"shape":[1],"datatype":"FP32","data":[1]}]}"#, "inputs[0] has no name"),
        (r#"{"inputs":[{"name":"x","datatype":"FP32","data":[1]}]}"#, "input \"x\" has no shape"),
        (r#"{"inputs":[{"name":"x","shape":[1],"data":[1]}]}"#, "input \"x\" has no datatype"),
        (r#"{"inputs":[{"name":"x","name":"y","shape":[1],"datatype":"FP32","data":[1]}]}"#, "input \"x\" has \"name\" twice"),
        (r#"{"id":3,"inputs":[]}"#, "id must be a string"),
        (r#"{"inputs":[],"inputs":[]}"#, "the request has \"inputs\" twice"),
        (r#"{"id":"a"}"#, "the request has no \"inputs\""),
        (r#"{"inputs":{}}"#, "expected an array of inputs"),
        (r#"[]"#, "expected an inference request object"),
        (r#"{"inputs": ["#, "not valid JSON"),
        ("", "not valid JSON"),
        (r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[null]}]}"#, "input \"x\": element 0: null where FP32 data needs a number"),
        (r#"{"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","data":[1]}]}"#, "input \"x\": element 0: the number 1 where BYTES data needs a string"),
        (r#"{"inputs":[{"name":"x","shape":[1],"datatype":"INT32","data":[1.5]}]}"#, "input \"x\": element 0: 1.5 is not an integer"),
        (r#"{"inputs":[{"name":"x","shape":[1],"datatype":"UINT32","data":[-1]}]}"#, "input \"x\": element 0: -1 is out of range for UINT32"),
        (r#"{"inputs":[{"name":"x","shape":[2],"datatype":"INT32","data":[[1],[2]]}]}"#, "input \"x\": data is nested deeper than shape [2]"),
        (r#"{"parameters":{"binary_data_output":1},"inputs":[]}"#, "binary_data_output must be true or false"),
        (r#"{"inputs":[],"outputs":[{"name":"y","parameters":{"binary_data":"yes"}}]}"#, "output \"y\": parameters.binary_data must be true or false"),
        (r#"{"inputs":[],"outputs":[{"name":"y","parameters":{"classification":3}}]}"#, "output \"y\": the classification extension is not supported"),
        (r#"{"inputs":[],"outputs":[{"name":"y"},{"name":"y"}]}"#, "output \"y\" is requested twice"),
        (r#"{"inputs":[],"outputs":[{"parameters":{}}]}"#, "missing field `name`"),
    ];
    for (json, want) in cases {
        let m = bad(json);
        assert!(m.contains(want), "{json}\n  gave: {m}\n  want: {want}");
    }
}

#[test]
fn deep_nesting_is_a_bad_request_not_a_stack_overflow() {
    let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    for dt in ["FP32", "FP64", "BYTES"] {
        for json in [
            format!(r#"{{"inputs":[{{"name":"x","shape":[1],"datatype":"{dt}","data":{deep}}}]}}"#),
            format!(r#"{{"inputs":[{{"data":{deep},"name":"x","shape":[1],"datatype":"{dt}"}}]}}"#),
            format!(r#"{{"parameters":{{"p":{deep}}},"inputs":[]}}"#),
        ] {
            let m = bad(&json);
            assert!(m.contains("recursion limit") || m.contains("nested deeper"), "{dt}: {m}");
        }
    }
    // Many inputs and outputs stay cheap to check for duplicates.
    let outputs: Vec<String> = (0..100_000).map(|i| format!(r#"{{"name":"o{i}"}}"#)).collect();
    let r = ok(&format!(r#"{{"inputs":[],"outputs":[{}]}}"#, outputs.join(",")));
    assert_eq!(r.outputs.len(), 100_000);
}

#[test]
fn per_output_binary_flags_override_the_request_default() {
    let r = ok(r#"{"parameters":{"binary_data_output":true},"inputs":[],"outputs":[{"name":"a"},{"name":"b","parameters":{"binary_data":false}},{"name":"c","parameters":{"binary_data":true,"classification":0}}]}"#);
    assert!(r.binary_default);
    let flags: Vec<Option<bool>> = r.outputs.iter().map(|o| o.binary).collect();
    assert_eq!(flags, [None, Some(false), Some(true)]);
    assert_eq!(r.outputs[2].parameters["classification"], 0);
}

#[test]
fn nan_and_infinity_tokens_are_float_data_only() {
    let r = ok(r#"{"inputs":[{"name":"x","shape":[4],"datatype":"FP32","data":[NaN,Infinity,-Infinity,-Inf]},{"name":"s","shape":[1],"datatype":"BYTES","data":["NaN"]}]}"#);
    let v: Vec<f32> = r.inputs[0].bytes().chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    assert!(v[0].is_nan() && v[1] == f32::INFINITY && v[2] == f32::NEG_INFINITY && v[3] == f32::NEG_INFINITY);
    assert_eq!(strings(&r.inputs[1]), ["NaN"]);
    let r = ok(r#"{"inputs":[{"data":[NaN],"name":"h","shape":[1],"datatype":"FP16"}]}"#);
    assert!(half::f16::from_le_bytes(r.inputs[0].bytes().try_into().unwrap()).is_nan());
    let m = bad(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"INT32","data":[NaN]}]}"#);
    assert!(m.contains("input \"x\": element 0: NaN is not an integer"), "{m}");
    let m = bad(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","data":[Infinity]}]}"#);
    assert!(m.contains("input \"x\": element 0: the number Infinity where BYTES data needs a string"), "{m}");
    let m = bad(r#"{"parameters":{"timeout":NaN},"inputs":[]}"#);
    assert!(m.contains("parameter \"timeout\": NaN and Infinity are accepted in tensor data only"), "{m}");
    let m = bad(r#"{"inputs":[{"name":"x","shape":[NaN],"datatype":"FP32","data":[1]}]}"#);
    assert!(m.contains("not valid JSON"), "{m}");
    // Not a token.
    assert!(bad(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[NaNa]}]}"#).contains("not valid JSON"));
    // Strings holding NULs, even one that looks like a marker key, stay strings.
    let r = ok(r#"{"id":"\u0000","parameters":{"p":{"\u0000":0}},"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[NaN]},{"name":"s","shape":[1],"datatype":"BYTES","data":["\u0000"]}]}"#);
    assert_eq!(r.id.as_deref(), Some("\0"));
    assert_eq!(strings(&r.inputs[1]), ["\0"]);
    let m = bad(r#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[NaN, {"\u0000":0}]}]}"#);
    assert!(m.contains("element 1: an object where FP32 data needs a number"), "{m}");
}
