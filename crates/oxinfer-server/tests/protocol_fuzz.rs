//! Property-based tests of the KServe v2 codec (`oxinfer_server::protocol`).
//!
//! Valid requests, generated in every form a client may send (flat, nested,
//! data before shape, binary data, escaped strings, NaN tokens), must decode
//! to the tensors they were made from, and responses must read back through
//! `decode_infer` as the tensors encoded. Mutated requests (byte flips, cuts,
//! inserted JSON tokens, lying sizes and header lengths, huge shapes) and
//! random bytes must never panic, must fail only with BadRequest or
//! PayloadTooLarge, and must never allocate much more than the body's size:
//! a counting allocator checks that no declared shape is allocated for
//! before the data shows it is there.
//!
//! `OXINFER_PROTOCOL_CASES` is the number of cases across all properties
//! (default 200,000), shared out by fixed weights.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use oxinfer_core::tensor::AlignedBytes;
use oxinfer_core::{DType, InputData, OutputData, OutputTensor};
use oxinfer_server::protocol::{datatype_name, decode_infer, encode_infer, Encoded, InferRequest, Limits};
use oxinfer_server::ServerError;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};

#[path = "protocol_fuzz/text.rs"]
mod text_form;
use text_form::{float_text, json_string};

// ---- the largest allocation a decode makes, per thread ----

struct Counting;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|c| c.set(c.get().max(size)));
}

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Decodes, checking that no single allocation is far beyond the body's size
/// (JSON data can grow: "[1,1]" is 2 bytes per FP64 element of 8, BYTES
/// elements are 24-byte Strings, NaN markers are longer than "NaN").
fn decode(body: &[u8], header_len: Option<usize>, limits: &Limits) -> Result<Result<InferRequest, ServerError>, TestCaseError> {
    LARGEST.with(|c| c.set(0));
    let r = decode_infer(body, header_len, limits);
    let largest = LARGEST.with(Cell::get);
    let bound = 32 * body.len() + (64 << 10);
    if largest > bound {
        return Err(TestCaseError::fail(format!("decoding a {}-byte body allocated {largest} bytes at once (bound {bound})", body.len())));
    }
    Ok(r)
}

/// The error contract: a decode either succeeds with tensors whose data fits
/// their dims and names that are unique, or fails as a 400/413.
fn check_contract(r: &Result<InferRequest, ServerError>) -> Result<(), TestCaseError> {
    match r {
        Ok(req) => {
            for (i, t) in req.inputs.iter().enumerate() {
                prop_assert!(t.check_layout().is_ok(), "input {} has data that does not fit its dims", t.name);
                prop_assert!(req.inputs[..i].iter().all(|u| u.name != t.name), "input {} twice", t.name);
            }
            Ok(())
        }
        Err(ServerError::BadRequest(m)) | Err(ServerError::PayloadTooLarge(m)) => {
            prop_assert!(!m.is_empty());
            Ok(())
        }
        Err(e) => Err(TestCaseError::fail(format!("a decode failed with a {} error, not a 400/413: {e}", e.code()))),
    }
}

// ---- case counts ----

fn total_cases() -> u64 {
    std::env::var("OXINFER_PROTOCOL_CASES").ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(200_000)
}

/// Runs `test` over `strategy` for `weight` hundredths of the total cases.
fn run<S: Strategy>(weight: u64, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>) {
    let cases = (total_cases() * weight / 100).max(1) as u32;
    let config = ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = TestRunner::new(config);
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
}

// ---- tensors and requests ----

#[derive(Clone, Debug)]
enum Data {
    Bytes(Vec<u8>),
    Strings(Vec<String>),
}

#[derive(Clone, Debug)]
struct Tensor {
    name: String,
    dtype: DType,
    dims: Vec<i64>,
    data: Data,
}

impl Tensor {
    fn count(&self) -> usize {
        self.dims.iter().product::<i64>() as usize
    }

    fn to_output(&self) -> OutputTensor {
        let data = match &self.data {
            Data::Bytes(b) => OutputData::Buffer(Box::new(AlignedBytes::from_slice(b))),
            Data::Strings(s) => OutputData::Strings(s.clone()),
        };
        OutputTensor { name: self.name.clone(), dtype: self.dtype, dims: self.dims.clone(), data }
    }

    /// Its binary form: the bytes, or BYTES as lengths and contents.
    fn binary(&self) -> Vec<u8> {
        match &self.data {
            Data::Bytes(b) => b.clone(),
            Data::Strings(s) => s.iter().flat_map(|x| (x.len() as u32).to_le_bytes().into_iter().chain(x.bytes())).collect(),
        }
    }
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z0-9 ]{0,6}",
        2 => prop::collection::vec(any::<char>(), 0..6).prop_map(String::from_iter),
        1 => select(vec!["", "\"", "\\", "\u{0}", "NaN", "Infinity", "é", "🎉", "\u{2028}", "\n\t"]).prop_map(String::from),
    ]
}

fn dtype() -> impl Strategy<Value = DType> {
    select(DType::ALL.to_vec())
}

fn element(dtype: DType) -> BoxedStrategy<Vec<u8>> {
    let size = dtype.size();
    match dtype {
        DType::Bool => any::<bool>().prop_map(|b| vec![b as u8]).boxed(),
        // Ordinary values as well as any bits (NaNs with payloads, subnormals).
        DType::Float32 => prop_oneof![any::<u32>().prop_map(|b| b.to_le_bytes().to_vec()), (-1000i32..1000).prop_map(|v| (v as f32 / 8.0).to_le_bytes().to_vec())].boxed(),
        DType::Float64 => prop_oneof![any::<u64>().prop_map(|b| b.to_le_bytes().to_vec()), (-1000i32..1000).prop_map(|v| (v as f64 / 10.0).to_le_bytes().to_vec())].boxed(),
        _ => prop::collection::vec(any::<u8>(), size).boxed(),
    }
}

fn tensor(name: String) -> impl Strategy<Value = Tensor> {
    (dtype(), prop::collection::vec(0i64..4, 0..=3)).prop_flat_map(move |(dtype, dims)| {
        let count = dims.iter().product::<i64>() as usize;
        let name = name.clone();
        let data = if dtype == DType::String {
            prop::collection::vec(text(), count).prop_map(Data::Strings).boxed()
        } else {
            prop::collection::vec(element(dtype), count).prop_map(|v| Data::Bytes(v.concat())).boxed()
        };
        data.prop_map(move |data| Tensor { name: name.clone(), dtype, dims: dims.clone(), data })
    })
}

/// Tensors with unique names (an index, then random text).
fn tensors(max: usize) -> impl Strategy<Value = Vec<Tensor>> {
    prop::collection::vec(text(), 0..=max).prop_flat_map(|names| names.into_iter().enumerate().map(|(i, n)| tensor(format!("{i}{n}"))).collect::<Vec<_>>())
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Form {
    Flat,
    Nested,
    /// `data` before `shape` and `datatype`.
    DataFirst,
    Binary,
}

#[derive(Clone, Debug)]
struct Input {
    tensor: Tensor,
    form: Form,
    /// Whole floats written as integers (`5` for 5.0).
    floats_as_ints: bool,
    /// Lies for the lying-lengths property: the declared shape and binary_data_size.
    shape_lie: Option<Vec<i64>>,
    size_lie: Option<u64>,
}

#[derive(Clone, Debug)]
struct Request {
    id: Option<String>,
    binary_default: Option<bool>,
    sequence_id: Option<u64>,
    inputs: Vec<Input>,
    outputs: Vec<(String, Option<bool>)>,
    /// Spaces after separators, and strings escaped to ASCII as Python writes them.
    pretty: bool,
    ascii: bool,
    /// Send Inference-Header-Content-Length even without binary data.
    always_header: bool,
    extra_keys: bool,
}

fn form() -> impl Strategy<Value = Form> {
    select(vec![Form::Flat, Form::Nested, Form::DataFirst, Form::Binary])
}

fn request_with(max_inputs: usize, forms: BoxedStrategy<Form>) -> impl Strategy<Value = Request> {
    let inputs = tensors(max_inputs).prop_flat_map(move |ts| {
        let n = ts.len();
        (Just(ts), prop::collection::vec((forms.clone(), any::<bool>()), n))
            .prop_map(|(ts, fs)| ts.into_iter().zip(fs).map(|(tensor, (form, swap))| Input { tensor, form, floats_as_ints: swap, shape_lie: None, size_lie: None }).collect::<Vec<_>>())
    });
    let outputs = prop::collection::vec((text(), prop::option::of(any::<bool>())), 0..3).prop_map(|v| v.into_iter().enumerate().map(|(i, (n, b))| (format!("o{i}{n}"), b)).collect::<Vec<_>>());
    (
        prop::option::of(text()),
        prop::option::of(any::<bool>()),
        prop::option::of(any::<u64>()),
        inputs,
        outputs,
        any::<(bool, bool, bool, bool)>(),
    )
        .prop_map(|(id, binary_default, sequence_id, inputs, outputs, (pretty, ascii, always_header, extra_keys))| Request {
            id,
            binary_default,
            sequence_id,
            inputs,
            outputs,
            pretty,
            ascii,
            always_header,
            extra_keys,
        })
}

fn request() -> impl Strategy<Value = Request> {
    request_with(4, form().boxed())
}

// ---- writing requests as a client would ----

fn values(t: &Tensor, swap: bool, ascii: bool) -> Vec<String> {
    let int = |v: i128, _| v.to_string();
    let b = match &t.data {
        Data::Strings(s) => return s.iter().map(|x| json_string(x, ascii)).collect(),
        Data::Bytes(b) => b,
    };
    let size = t.dtype.size();
    b.chunks(size)
        .map(|c| match t.dtype {
            DType::Bool => (if c[0] != 0 { "true" } else { "false" }).to_string(),
            DType::Uint8 => int(c[0] as i128, swap),
            DType::Int8 => int(c[0] as i8 as i128, swap),
            DType::Uint16 => int(u16::from_le_bytes([c[0], c[1]]) as i128, swap),
            DType::Int16 => int(i16::from_le_bytes([c[0], c[1]]) as i128, swap),
            DType::Uint32 => int(u32::from_le_bytes(c.try_into().unwrap()) as i128, swap),
            DType::Int32 => int(i32::from_le_bytes(c.try_into().unwrap()) as i128, swap),
            DType::Uint64 => int(u64::from_le_bytes(c.try_into().unwrap()) as i128, swap),
            DType::Int64 => int(i64::from_le_bytes(c.try_into().unwrap()) as i128, swap),
            DType::Float16 => {
                let v = half::f16::from_le_bytes([c[0], c[1]]).to_f32();
                float_text(v as f64, format!("{v:?}"), swap)
            }
            DType::BFloat16 => {
                let v = half::bf16::from_le_bytes([c[0], c[1]]).to_f32();
                float_text(v as f64, format!("{v:?}"), swap)
            }
            DType::Float32 => {
                let v = f32::from_le_bytes(c.try_into().unwrap());
                float_text(v as f64, format!("{v:?}"), swap)
            }
            DType::Float64 => {
                let v = f64::from_le_bytes(c.try_into().unwrap());
                float_text(v, format!("{v:?}"), swap)
            }
            DType::String => unreachable!(),
        })
        .collect()
}

/// `values` as nested arrays following `dims`.
fn nested(values: &[String], dims: &[i64], sep: &str) -> String {
    match dims.split_first() {
        None => values[0].clone(),
        Some((&d, rest)) => {
            let inner: usize = rest.iter().product::<i64>() as usize;
            let parts: Vec<String> = (0..d as usize).map(|i| nested(&values[i * inner..(i + 1) * inner], rest, sep)).collect();
            format!("[{}]", parts.join(sep))
        }
    }
}

fn encode_request(r: &Request) -> (Vec<u8>, Option<usize>) {
    let (sep, colon) = if r.pretty { (", ", ": ") } else { (",", ":") };
    let s = |x: &str| json_string(x, r.ascii);
    let mut top: Vec<String> = Vec::new();
    if let Some(id) = &r.id {
        top.push(format!("\"id\"{colon}{}", s(id)));
    }
    let mut params = Vec::new();
    if let Some(b) = r.binary_default {
        params.push(format!("\"binary_data_output\"{colon}{b}"));
    }
    if let Some(q) = r.sequence_id {
        params.push(format!("\"sequence_id\"{colon}{q}"));
    }
    if !params.is_empty() {
        top.push(format!("\"parameters\"{colon}{{{}}}", params.join(sep)));
    }
    let mut blob = Vec::new();
    let mut inputs = Vec::new();
    for input in &r.inputs {
        let t = &input.tensor;
        let dims = input.shape_lie.as_ref().unwrap_or(&t.dims);
        let shape = format!("\"shape\"{colon}[{}]", dims.iter().map(i64::to_string).collect::<Vec<_>>().join(sep));
        let name = format!("\"name\"{colon}{}", s(&t.name));
        let datatype = format!("\"datatype\"{colon}\"{}\"", datatype_name(t.dtype));
        let mut keys = match input.form {
            Form::Binary => {
                let bytes = t.binary();
                let size = input.size_lie.unwrap_or(bytes.len() as u64);
                blob.extend_from_slice(&bytes);
                vec![name, shape, datatype, format!("\"parameters\"{colon}{{\"binary_data_size\"{colon}{size}}}")]
            }
            form => {
                let v = values(t, input.floats_as_ints, r.ascii);
                // A rank-0 tensor's data is one value in an array, nested or not.
                let data = if form == Form::Nested && !t.dims.is_empty() { nested(&v, &t.dims, sep) } else { format!("[{}]", v.join(sep)) };
                let data = format!("\"data\"{colon}{data}");
                if form == Form::DataFirst {
                    vec![data, name, datatype, shape]
                } else {
                    vec![name, shape, datatype, data]
                }
            }
        };
        if r.extra_keys {
            keys.push(format!("\"extra\"{colon}{{\"nested\"{colon}[1, {{}}, \"x\"]}}"));
        }
        inputs.push(format!("{{{}}}", keys.join(sep)));
    }
    top.push(format!("\"inputs\"{colon}[{}]", inputs.join(sep)));
    if !r.outputs.is_empty() {
        let outs: Vec<String> = r
            .outputs
            .iter()
            .map(|(n, b)| match b {
                Some(b) => format!("{{\"name\"{colon}{}{sep}\"parameters\"{colon}{{\"binary_data\"{colon}{b}}}}}", s(n)),
                None => format!("{{\"name\"{colon}{}}}", s(n)),
            })
            .collect();
        top.push(format!("\"outputs\"{colon}[{}]", outs.join(sep)));
    }
    if r.extra_keys {
        top.insert(0, format!("\"model_name\"{colon}\"ignored\""));
    }
    let json = format!("{{{}}}", top.join(sep));
    let header_len = (!blob.is_empty() || r.always_header).then_some(json.len());
    let mut body = json.into_bytes();
    body.extend_from_slice(&blob);
    (body, header_len)
}

// ---- comparing ----

/// Equal element by element, NaNs equal to NaNs (JSON does not keep payloads).
fn same_bytes(dtype: DType, got: &[u8], want: &[u8]) -> bool {
    if got.len() != want.len() {
        return false;
    }
    let nan = |c: &[u8]| match dtype {
        DType::Float16 => half::f16::from_le_bytes([c[0], c[1]]).is_nan(),
        DType::BFloat16 => half::bf16::from_le_bytes([c[0], c[1]]).is_nan(),
        DType::Float32 => f32::from_le_bytes(c.try_into().unwrap()).is_nan(),
        DType::Float64 => f64::from_le_bytes(c.try_into().unwrap()).is_nan(),
        _ => false,
    };
    got.chunks(dtype.size()).zip(want.chunks(dtype.size())).all(|(g, w)| g == w || (nan(g) && nan(w)))
}

fn check_tensors(got: &InferRequest, want: &[Tensor]) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.inputs.len(), want.len());
    for (g, w) in got.inputs.iter().zip(want) {
        prop_assert_eq!(&g.name, &w.name);
        prop_assert_eq!(g.dtype, w.dtype);
        prop_assert_eq!(&g.dims, &w.dims);
        match (&g.data, &w.data) {
            (InputData::Strings(a), Data::Strings(b)) => prop_assert_eq!(a, b),
            (InputData::Owned(a), Data::Bytes(b)) => {
                prop_assert!(same_bytes(w.dtype, a.as_slice(), b), "{} {}: {:?} != {:?}", w.name, datatype_name(w.dtype), a.as_slice(), b)
            }
            _ => return Err(TestCaseError::fail(format!("{}: data of the wrong kind", w.name))),
        }
    }
    Ok(())
}

fn lossy(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(2000).collect()
}

// ---- properties ----

/// Valid requests, in every form, decode to the tensors they were made from.
#[test]
fn valid_requests_decode_to_their_tensors() {
    run(20, request(), |r| {
        let (body, header_len) = encode_request(&r);
        let got = decode(&body, header_len, &Limits::default())?.map_err(|e| TestCaseError::fail(format!("{e}\n{}", lossy(&body))))?;
        let want: Vec<Tensor> = r.inputs.iter().map(|i| i.tensor.clone()).collect();
        check_tensors(&got, &want)?;
        prop_assert_eq!(&got.id, &r.id);
        prop_assert_eq!(got.binary_default, r.binary_default.unwrap_or(false));
        prop_assert_eq!(got.parameters.get("sequence_id").and_then(|v| v.as_u64()), r.sequence_id);
        let outs: Vec<(String, Option<bool>)> = got.outputs.iter().map(|o| (o.name.clone(), o.binary)).collect();
        prop_assert_eq!(outs, r.outputs.clone());
        Ok(())
    });
}

/// A response body turned into a request: its `"outputs"` renamed `"inputs"`
/// (an output object has an input's form).
fn as_request(e: &Encoded) -> (Vec<u8>, Option<usize>) {
    let n = e.header_len.unwrap_or(e.body.len());
    let json = std::str::from_utf8(&e.body[..n]).unwrap();
    let at = json.find(",\"outputs\":[").unwrap();
    let mut body = format!("{}{}", &json[..at], json[at..].replacen(",\"outputs\":[", ",\"inputs\":[", 1)).into_bytes();
    body.extend_from_slice(&e.body[n..]);
    (body, e.header_len.map(|n| n - 1))
}

/// Responses read back as the tensors encoded, as JSON and as binary data.
#[test]
fn responses_round_trip_through_the_decoder() {
    let case = (tensors(4), prop::collection::vec(any::<bool>(), 4), text(), prop::option::of(text()), prop::option::of("[0-9]{1,3}"));
    run(15, case, |(ts, flags, model, id, version)| {
        let outputs: Vec<OutputTensor> = ts.iter().map(Tensor::to_output).collect();
        let flags = &flags[..ts.len()];
        let mut params = serde_json::Map::new();
        params.insert("sequence_id".into(), 5.into());
        let e = encode_infer(&model, version.as_deref(), id.as_deref(), Some(&params), &outputs, flags);
        prop_assert_eq!(e.header_len.is_some(), flags.contains(&true));
        let header = &e.body[..e.header_len.unwrap_or(e.body.len())];
        // Without non-finite floats the header is plain JSON.
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(header) {
            prop_assert_eq!(v["model_name"].as_str(), Some(model.as_str()));
            prop_assert_eq!(v["outputs"].as_array().map(Vec::len), Some(ts.len()));
        }
        let (body, header_len) = as_request(&e);
        let got = decode(&body, header_len, &Limits::default())?.map_err(|err| TestCaseError::fail(format!("{err}\n{}", lossy(&body))))?;
        check_tensors(&got, &ts)?;
        prop_assert_eq!(got.id, id);
        Ok(())
    });
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(Index, u8),
    Truncate(Index),
    Insert(Index, Vec<u8>),
    Token(Index, &'static str),
    Delete(Index, u8),
    SetHeaderLen(Option<Index>),
    ShiftHeaderLen(i8),
    /// Replaces the value after a key (up to the next `,`, `}` or `]`).
    Replace(&'static str, String),
}

const TOKENS: &[&str] = &[
    "{", "}", "[", "]", ",", ":", "\"", "\\", "null", "true", "0", "-1", "1.5", "1e400", "18446744073709551616", "-9223372036854775809", "NaN", "-Infinity", "{}", "[]",
    "\"\\u0000\"", "\"\\ud800\"", "\"data\":[1]", "\"parameters\":{\"binary_data_size\":4}", "\"shape\":[1099511627776,1099511627776]", "\"inputs\":[]", "\"name\":\"0\"", "\u{0}", "\u{ff}", "é",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    let value = prop_oneof![
        any::<u64>().prop_map(|v| v.to_string()),
        (-10i64..10).prop_map(|v| v.to_string()),
        select(vec!["[1099511627776,1099511627776]", "[9223372036854775807]", "[-1]", "[4611686018427387904,4]", "[0,4611686018427387904]", "[268435456]", "[]", "\"FP16\"", "\"BYTES\"", "\"BF16\"", "null", "{}"])
            .prop_map(String::from),
    ];
    prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<Index>(), select(TOKENS)).prop_map(|(i, t)| Mutation::Token(i, t)),
        (any::<Index>(), 1u8..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
        prop::option::of(any::<Index>()).prop_map(Mutation::SetHeaderLen),
        (-8i8..8).prop_map(Mutation::ShiftHeaderLen),
        (select(vec!["\"binary_data_size\":", "\"shape\":", "\"datatype\":", "\"data\":", "\"name\":", "\"id\":", "\"binary_data\":", "\"inputs\":"]), value)
            .prop_map(|(k, v)| Mutation::Replace(k, v)),
    ]
}

fn mutate(body: &mut Vec<u8>, header_len: &mut Option<usize>, m: &Mutation) {
    let len = body.len();
    match m {
        Mutation::Flip(i, b) if len > 0 => body[i.index(len)] ^= b | 1,
        Mutation::Truncate(i) if len > 0 => body.truncate(i.index(len)),
        Mutation::Insert(i, b) => {
            let at = i.index(len + 1);
            body.splice(at..at, b.iter().copied());
        }
        Mutation::Token(i, t) => {
            let at = i.index(len + 1);
            body.splice(at..at, t.bytes());
        }
        Mutation::Delete(i, n) if len > 0 => {
            let at = i.index(len);
            body.drain(at..(at + *n as usize).min(len));
        }
        Mutation::SetHeaderLen(i) => *header_len = i.map(|i| i.index(len + 2)),
        Mutation::ShiftHeaderLen(d) => *header_len = header_len.map(|h| h.saturating_add_signed(*d as isize)),
        Mutation::Replace(key, v) => {
            let Some(at) = body.windows(key.len()).position(|w| w == key.as_bytes()) else { return };
            let start = at + key.len();
            let mut end = start;
            let mut depth = 0i32;
            while end < body.len() {
                match body[end] {
                    b'[' | b'{' => depth += 1,
                    b']' | b'}' if depth > 0 => depth -= 1,
                    b',' | b'}' | b']' if depth == 0 => break,
                    _ => {}
                }
                end += 1;
                if depth == 0 && body.get(start) == Some(&b'[') {
                    break;
                }
            }
            let old = end - start;
            body.splice(start..end, v.bytes());
            // Keep the binary data where the header says it starts.
            if let Some(h) = header_len.as_mut() {
                if *h >= end {
                    *h = *h + v.len() - old;
                }
            }
        }
        _ => {}
    }
}

fn limits() -> impl Strategy<Value = Limits> {
    prop_oneof![3 => Just(Limits::default()), 1 => (1usize..16, 1usize..4).prop_map(|(max_elements, max_inputs)| Limits { max_elements, max_inputs })]
}

/// Mutated valid requests: never a panic, only 400/413, bounded allocation.
#[test]
fn mutated_requests_fail_cleanly() {
    run(35, (request(), prop::collection::vec(mutation(), 1..5), limits()), |(r, ms, limits)| {
        let (mut body, mut header_len) = encode_request(&r);
        for m in &ms {
            mutate(&mut body, &mut header_len, m);
        }
        check_contract(&decode(&body, header_len, &limits)?)
    });
}

/// Random bytes, and random soups of JSON tokens: never a panic, only 400s.
#[test]
fn random_bytes_fail_cleanly() {
    let soup = prop::collection::vec(select(TOKENS), 0..48).prop_map(|t| t.concat().into_bytes());
    let body = prop_oneof![prop::collection::vec(any::<u8>(), 0..512), soup];
    run(20, (body, prop::option::of(0usize..600)), |(body, header_len)| check_contract(&decode(&body, header_len, &Limits::default())?));
}

#[derive(Clone, Debug)]
enum ShapeLie {
    /// A shape far from the data's (huge, negative, overflowing).
    Huge(Vec<i64>),
    /// The same element count, other dims: reversed, or with a 1 appended.
    Reversed,
    OneMore,
}

/// Requests whose binary_data_size, shape or header length lie, or with
/// bytes after all their data: always a 400. Flat data takes any shape of
/// its element count; nested data only its own.
#[test]
fn lying_lengths_and_huge_shapes_are_bad_requests() {
    let huge = select(vec![
        vec![1 << 40, 1 << 40],
        vec![i64::MAX],
        vec![1 << 62, 4],
        vec![1 << 28],
        vec![(1 << 28) + 1],
        vec![-1],
        vec![3, -4],
        vec![1 << 20, 1 << 20, 0, 1 << 40],
    ]);
    let shape_lie = prop_oneof![huge.prop_map(ShapeLie::Huge), Just(ShapeLie::Reversed), Just(ShapeLie::OneMore)];
    let lie = (prop::option::of(shape_lie), prop::option::of(prop_oneof![any::<u64>(), 0u64..64]));
    // Bytes after everything: never JSON whitespace, which a JSON-only body may end with.
    let junk = prop::collection::vec(any::<u8>().prop_filter("not whitespace", |b| !b" \t\r\n".contains(b)), 0..3);
    let forms = prop_oneof![2 => Just(Form::Binary), 1 => form()].boxed();
    let case = (request_with(3, forms), prop::collection::vec(lie, 3), -4isize..4, prop_oneof![3 => Just(vec![]), 1 => junk]);
    run(10, case, |(mut r, lies, shift, mut junk)| {
        // Junk only when the header length is true: a longer header can take
        // a whitespace byte of binary data into the JSON, and junk make up for it.
        if shift != 0 {
            junk.clear();
        }
        // `lied`: the request must be refused; `open`: either outcome is right.
        let (mut lied, mut open) = (!junk.is_empty(), false);
        let mut want: Vec<Tensor> = Vec::new();
        for (input, (shape, size)) in r.inputs.iter_mut().zip(lies) {
            let t = &input.tensor;
            let count = t.count();
            let mut declared = t.dims.clone();
            match shape {
                None => {}
                Some(ShapeLie::Huge(s)) => {
                    // A shape holding a zero over empty data is no lie (nor a truth for nested data).
                    lied |= !(s.contains(&0) && count == 0);
                    open |= s.contains(&0) && count == 0;
                    declared = s;
                }
                Some(lie) => {
                    match lie {
                        ShapeLie::Reversed => declared.reverse(),
                        _ => declared.push(1),
                    }
                    let nested = input.form == Form::Nested && t.dims.len() >= 2;
                    if nested && declared != t.dims {
                        lied |= count > 0;
                        open |= count == 0;
                    }
                }
            }
            if input.form == Form::Binary {
                if let Some(n) = size {
                    lied |= n != t.binary().len() as u64;
                    input.size_lie = Some(n);
                }
            }
            input.shape_lie = Some(declared.clone());
            want.push(Tensor { dims: declared, ..t.clone() });
        }
        let (mut body, header_len) = encode_request(&r);
        body.extend_from_slice(&junk);
        lied |= shift != 0 && header_len.is_some();
        let header_len = header_len.map(|h| h.saturating_add_signed(shift));
        let got = decode(&body, header_len, &Limits::default())?;
        check_contract(&got)?;
        match got {
            _ if open && !lied => {}
            Ok(req) if lied => {
                let dims: Vec<_> = req.inputs.iter().map(|t| (&t.name, &t.dims)).collect();
                return Err(TestCaseError::fail(format!("a lying request decoded: {dims:?}\n{}", lossy(&body))));
            }
            Ok(req) => check_tensors(&req, &want)?,
            Err(_) if lied => {}
            Err(e) => return Err(TestCaseError::fail(format!("an honest request failed: {e}\n{}", lossy(&body)))),
        }
        Ok(())
    });
}
