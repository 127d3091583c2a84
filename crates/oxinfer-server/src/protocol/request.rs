//! Decoding an inference request: the JSON header in one pass of serde_json
//! (tensor data streamed straight into typed buffers, see `data`), then the
//! binary tensor data after it (see `binary`). Every malformed request is a
//! 400 that names what is wrong, and nothing is allocated from a declared
//! shape before the request has shown it holds that much data.

use std::fmt;

use oxinfer_core::{DType, InputData, InputTensor};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::data::{self, fail, shape_text, DataSeed};
use super::datatype::{parse_datatype, quote};
use super::{binary, nonfinite};
use crate::error::ServerError;

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
#[derive(Clone, Debug, PartialEq)]
pub struct RequestedOutput {
    pub name: String,
    /// `parameters.binary_data`, which overrides the request's default.
    pub binary: Option<bool>,
    /// The output's parameters as given.
    pub parameters: Map<String, Value>,
}

/// A decoded inference request.
#[derive(Debug)]
pub struct InferRequest {
    /// Echoed back in the response.
    pub id: Option<String>,
    /// Request-level parameters as given (sequence_id, priority, timeout, ...).
    pub parameters: Map<String, Value>,
    pub inputs: Vec<InputTensor>,
    /// Empty: every output.
    pub outputs: Vec<RequestedOutput>,
    /// `parameters.binary_data_output` (false when absent).
    pub binary_default: bool,
}

/// Decodes a request body. `header_len` is the `Inference-Header-Content-Length`
/// header: the JSON is `body[..header_len]` and the inputs that declare
/// `binary_data_size` take their bytes, in order, from the rest.
// The server's one error type, large for its core variant: boxing it is
// error.rs's call, for every function that returns it.
#[allow(clippy::result_large_err)]
pub fn decode_infer(body: &[u8], header_len: Option<usize>, limits: &Limits) -> Result<InferRequest, ServerError> {
    let (json, binary) = match header_len {
        Some(n) if n > body.len() => {
            return Err(ServerError::bad(format!("Inference-Header-Content-Length is {n}, but the body has only {} bytes", body.len())))
        }
        Some(n) => body.split_at(n),
        None => (body, &[][..]),
    };
    let text = std::str::from_utf8(json).map_err(|e| ServerError::bad(format!("the request's JSON is not UTF-8 (at byte {}){}", e.valid_up_to(), header_hint(header_len))))?;
    let first = match parse(text, binary, header_len.is_some(), limits, None) {
        Ok(r) => return Ok(r),
        Err(Failure::Bad(m)) => return Err(ServerError::BadRequest(m)),
        Err(Failure::Json(e, at)) => (e, at),
    };
    // A syntax error may be a NaN or Infinity token: parse again with them
    // rewritten. If that still fails on JSON, the first error is the one to tell.
    if first.0.classify() == serde_json::error::Category::Syntax {
        if let Some((t, key)) = nonfinite::rewrite(text) {
            match parse(&t, binary, header_len.is_some(), limits, Some(&key)) {
                Ok(r) => return Ok(r),
                Err(Failure::Bad(m)) => return Err(ServerError::BadRequest(m)),
                Err(Failure::Json(..)) => {}
            }
        }
    }
    Err(ServerError::BadRequest(json_message(&first.0, first.1, header_len)))
}

fn header_hint(header_len: Option<usize>) -> String {
    match header_len {
        Some(n) => format!(" (Inference-Header-Content-Length says it is the first {n} bytes of the body)"),
        None => String::new(),
    }
}

fn json_message(e: &serde_json::Error, at: Option<String>, header_len: Option<usize>) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data => format!("the request is not a valid inference request: {e}{}", at.map(|a| format!(" (in {a})")).unwrap_or_default()),
        _ => {
            let hint = if header_len.is_none() && e.to_string().starts_with("trailing characters") {
                " (binary tensor data after the JSON needs the Inference-Header-Content-Length header)".to_string()
            } else {
                header_hint(header_len)
            };
            format!("the request is not valid JSON: {e}{hint}")
        }
    }
}

enum Failure {
    /// The request is JSON but not an acceptable inference request.
    Bad(String),
    /// serde_json refused it, with where in the request when known.
    Json(serde_json::Error, Option<String>),
}

/// What one parse gathers.
struct Ctx<'a> {
    limits: &'a Limits,
    /// Binary data not yet taken by an input.
    binary: &'a [u8],
    json_len: usize,
    /// Whether the request had an Inference-Header-Content-Length (binary data can follow).
    has_header: bool,
    /// The marker key when NaN/Infinity tokens were rewritten (see `nonfinite`).
    marker: Option<&'a str>,
    /// The message of the first error found (serde's error is then a placeholder).
    err: Option<String>,
    /// Where serde's own error happened, for its message.
    at: Option<String>,
    id: Option<String>,
    parameters: Option<Map<String, Value>>,
    inputs: Option<Vec<InputTensor>>,
    outputs: Option<Vec<OutputHeader>>,
}

#[derive(Deserialize)]
struct OutputHeader {
    name: String,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
}

fn parse(text: &str, binary: &[u8], has_header: bool, limits: &Limits, marker: Option<&str>) -> Result<InferRequest, Failure> {
    let mut ctx = Ctx { limits, binary, json_len: text.len(), has_header, marker, err: None, at: None, id: None, parameters: None, inputs: None, outputs: None };
    let mut de = serde_json::Deserializer::from_str(text);
    if let Err(e) = RequestSeed(&mut ctx).deserialize(&mut de).and_then(|()| de.end()) {
        return Err(match ctx.err.take() {
            Some(m) => Failure::Bad(m),
            None => Failure::Json(e, ctx.at.take()),
        });
    }
    finish(ctx).map_err(Failure::Bad)
}

/// The checks that need the whole request.
fn finish(ctx: Ctx) -> Result<InferRequest, String> {
    let inputs = ctx.inputs.ok_or("the request has no \"inputs\"")?;
    if !ctx.binary.is_empty() {
        return Err(format!("{} bytes of binary data are left over after the inputs that declare binary_data_size", ctx.binary.len()));
    }
    if let Some(dup) = first_duplicate(inputs.iter().map(|t| t.name.as_str())) {
        return Err(format!("input {} is given twice", quote(dup)));
    }
    let parameters = ctx.parameters.unwrap_or_default();
    if let Some(key) = ctx.marker {
        if let Some((k, _)) = parameters.iter().find(|(_, v)| nonfinite::holds_marker(v, key)) {
            return Err(format!("parameter {}: NaN and Infinity are accepted in tensor data only", quote(k)));
        }
    }
    let binary_default = match parameters.get("binary_data_output") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("parameters.binary_data_output must be true or false".into()),
    };
    let mut outputs = Vec::with_capacity(ctx.outputs.as_ref().map_or(0, Vec::len));
    for o in ctx.outputs.unwrap_or_default() {
        let parameters = o.parameters.unwrap_or_default();
        let name = || quote(&o.name);
        let binary = match parameters.get("binary_data") {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return Err(format!("output {}: parameters.binary_data must be true or false", name())),
        };
        // Triton's classification extension: 0 asks for none.
        match parameters.get("classification") {
            None => {}
            Some(v) if v.as_u64() == Some(0) => {}
            Some(_) => return Err(format!("output {}: the classification extension is not supported (parameters.classification must be 0)", name())),
        }
        if ctx.marker.is_some_and(|key| parameters.values().any(|v| nonfinite::holds_marker(v, key))) {
            return Err(format!("output {}: NaN and Infinity are accepted in tensor data only", name()));
        }
        outputs.push(RequestedOutput { name: o.name, binary, parameters });
    }
    if let Some(dup) = first_duplicate(outputs.iter().map(|o| o.name.as_str())) {
        return Err(format!("output {} is requested twice", quote(dup)));
    }
    Ok(InferRequest { id: ctx.id, parameters, inputs, outputs, binary_default })
}

/// A name given twice: pairs compared for a few names, sorted for many.
fn first_duplicate<'a>(names: impl ExactSizeIterator<Item = &'a str> + Clone) -> Option<&'a str> {
    if names.len() <= 8 {
        return names.clone().enumerate().find_map(|(i, a)| names.clone().skip(i + 1).any(|b| a == b).then_some(a));
    }
    let mut v: Vec<&str> = names.collect();
    v.sort_unstable();
    v.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
}

/// Records where a serde error happened (the innermost place wins).
fn at<'s, E>(slot: &'s mut Option<String>, place: impl FnOnce() -> String + 's) -> impl FnOnce(E) -> E + 's {
    move |e| {
        if slot.is_none() {
            *slot = Some(place());
        }
        e
    }
}

/// Reads an object key as its index in `keys` (`None`: a key to ignore).
struct KeySeed(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|k| *k == v))
    }
}

struct RequestSeed<'c, 'a>(&'c mut Ctx<'a>);

impl<'de> DeserializeSeed<'de> for RequestSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RequestSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an inference request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        const KEYS: &[&str] = &["id", "parameters", "inputs", "outputs"];
        let ctx = self.0;
        let mut seen = [false; 4];
        while let Some(k) = map.next_key_seed(KeySeed(KEYS))? {
            let Some(k) = k else {
                // Unknown keys are ignored, as Triton does.
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            if std::mem::replace(&mut seen[k], true) {
                return Err(fail(&mut ctx.err, format!("the request has \"{}\" twice", KEYS[k])));
            }
            match k {
                0 => {
                    ctx.id = match map.next_value::<Value>().map_err(at(&mut ctx.at, || "id".into()))? {
                        Value::String(s) => Some(s),
                        // Absent and null are alike (null is what some clients send for none).
                        Value::Null => None,
                        _ => return Err(fail(&mut ctx.err, "id must be a string".into())),
                    }
                }
                1 => ctx.parameters = map.next_value().map_err(at(&mut ctx.at, || "parameters".into()))?,
                2 => map.next_value_seed(InputsSeed(&mut *ctx))?,
                _ => ctx.outputs = map.next_value().map_err(at(&mut ctx.at, || "outputs".into()))?,
            }
        }
        Ok(())
    }
}

struct InputsSeed<'c, 'a>(&'c mut Ctx<'a>);

impl<'de> DeserializeSeed<'de> for InputsSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for InputsSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of inputs")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let ctx = self.0;
        let mut inputs = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(16));
        while let Some(t) = seq.next_element_seed(InputSeed { ctx: &mut *ctx, index: inputs.len() })? {
            inputs.push(t);
        }
        ctx.inputs = Some(inputs);
        Ok(())
    }
}

struct InputSeed<'c, 'a> {
    ctx: &'c mut Ctx<'a>,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for InputSeed<'_, '_> {
    type Value = InputTensor;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<InputTensor, D::Error> {
        if self.index >= self.ctx.limits.max_inputs {
            return Err(fail(&mut self.ctx.err, format!("the request has more than {} inputs, the most accepted", self.ctx.limits.max_inputs)));
        }
        d.deserialize_map(self)
    }
}

/// An input's data as its JSON object gave it.
enum Data<'de> {
    /// Read as it streamed by (shape and datatype came first, as clients send them).
    Read(InputData),
    /// Kept as text until the shape and datatype are known.
    Raw(&'de RawValue),
}

/// An input's name for messages: its name, or its place when it has none yet.
fn label(index: usize, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("input {}", quote(n)),
        None => format!("inputs[{index}]"),
    }
}

/// The elements a shape holds, checked: dims >= 0, the product without
/// overflow and within the limit. A shape with a 0 holds none.
fn element_count(shape: &[i64], limits: &Limits) -> Result<usize, String> {
    if shape.iter().any(|&d| d < 0) {
        return Err(format!("shape {} has a negative dimension", shape_text(shape)));
    }
    if shape.contains(&0) {
        return Ok(0);
    }
    let mut n: usize = 1;
    for &d in shape {
        n = usize::try_from(d)
            .ok()
            .and_then(|d| n.checked_mul(d))
            .filter(|&n| n <= limits.max_elements)
            .ok_or_else(|| format!("shape {} holds more than {} elements, the most one tensor may have", shape_text(shape), limits.max_elements))?;
    }
    Ok(n)
}

impl<'de> Visitor<'de> for InputSeed<'_, '_> {
    type Value = InputTensor;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an input object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<InputTensor, A::Error> {
        const KEYS: &[&str] = &["name", "shape", "datatype", "parameters", "data"];
        let (ctx, index) = (self.ctx, self.index);
        let mut seen = [false; 5];
        let mut name: Option<String> = None;
        let mut shape: Option<Vec<i64>> = None;
        let mut dtype: Option<DType> = None;
        let mut count: Option<usize> = None;
        let mut params: Option<Map<String, Value>> = None;
        let mut data: Option<Data<'de>> = None;
        while let Some(k) = map.next_key_seed(KeySeed(KEYS))? {
            let Some(k) = k else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            if std::mem::replace(&mut seen[k], true) {
                return Err(fail(&mut ctx.err, format!("{} has \"{}\" twice", label(index, name.as_deref()), KEYS[k])));
            }
            match k {
                0 => name = Some(map.next_value().map_err(at(&mut ctx.at, || format!("inputs[{index}] name")))?),
                1 => {
                    let s: Vec<i64> = map.next_value().map_err(at(&mut ctx.at, || format!("{} shape", label(index, name.as_deref()))))?;
                    count = Some(element_count(&s, ctx.limits).map_err(|m| fail(&mut ctx.err, format!("{}: {m}", label(index, name.as_deref()))))?);
                    shape = Some(s);
                }
                2 => {
                    let d = map.next_value_seed(DatatypeSeed).map_err(at(&mut ctx.at, || format!("{} datatype", label(index, name.as_deref()))))?;
                    dtype = Some(d.map_err(|m| fail(&mut ctx.err, format!("{}: {m}", label(index, name.as_deref()))))?);
                }
                3 => params = map.next_value().map_err(at(&mut ctx.at, || format!("{} parameters", label(index, name.as_deref()))))?,
                _ => {
                    if params.as_ref().is_some_and(|p| p.contains_key("binary_data_size")) {
                        return Err(fail(&mut ctx.err, both(index, name.as_deref())));
                    }
                    data = Some(match (&shape, dtype, count) {
                        (Some(shape), Some(dtype), Some(count)) => {
                            let mut err = None;
                            let seed = DataSeed { dtype, shape, count, json_len: ctx.json_len, marker: ctx.marker, err: &mut err };
                            match map.next_value_seed(seed) {
                                Ok(d) => Data::Read(d),
                                Err(e) => {
                                    return Err(match err {
                                        Some(m) => fail(&mut ctx.err, format!("{}: {m}", label(index, name.as_deref()))),
                                        None => at(&mut ctx.at, || format!("{} data", label(index, name.as_deref())))(e),
                                    })
                                }
                            }
                        }
                        _ => Data::Raw(map.next_value().map_err(at(&mut ctx.at, || format!("{} data", label(index, name.as_deref()))))?),
                    });
                }
            }
        }
        let built = (|| {
            let name = name.ok_or_else(|| format!("inputs[{index}] has no name"))?;
            let label = label(index, Some(&name));
            let (Some(shape), Some(count)) = (shape, count) else { return Err(format!("{label} has no shape")) };
            let dtype = dtype.ok_or_else(|| format!("{label} has no datatype"))?;
            let size = params.as_ref().and_then(|p| p.get("binary_data_size"));
            let data = match (size, data) {
                (Some(_), Some(_)) => return Err(both(index, Some(&name))),
                (None, Some(Data::Read(d))) => d,
                (None, Some(Data::Raw(raw))) => data::from_raw(raw.get(), dtype, &shape, count, ctx.marker).map_err(|m| format!("{label}: {m}"))?,
                (Some(size), None) => {
                    let n = size.as_u64().ok_or_else(|| format!("{label}: parameters.binary_data_size must be a non-negative integer"))?;
                    let bytes = usize::try_from(n).ok().and_then(|n| ctx.binary.get(..n)).ok_or_else(|| match ctx.has_header {
                        true => format!("{label}: binary_data_size is {n}, but only {} bytes of binary data remain after the JSON header and the inputs before it", ctx.binary.len()),
                        false => format!("{label}: binary_data_size is {n}, but binary data needs the Inference-Header-Content-Length header"),
                    })?;
                    ctx.binary = &ctx.binary[bytes.len()..];
                    binary::decode(dtype, &shape, count, bytes).map_err(|m| format!("{label}: {m}"))?
                }
                (None, None) if params.as_ref().is_some_and(|p| p.keys().any(|k| k.starts_with("shared_memory"))) => {
                    return Err(format!("{label}: the shared memory extension is not supported; send data or binary data"))
                }
                (None, None) => return Err(format!("{label} has neither data nor parameters.binary_data_size")),
            };
            Ok(InputTensor { name, dtype, dims: shape, data })
        })();
        built.map_err(|m| fail(&mut ctx.err, m))
    }
}

fn both(index: usize, name: Option<&str>) -> String {
    format!("{} has both data and parameters.binary_data_size; send one", label(index, name))
}

/// Reads a datatype name; an unknown one is a message, not a serde error.
struct DatatypeSeed;

impl<'de> DeserializeSeed<'de> for DatatypeSeed {
    type Value = Result<DType, String>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for DatatypeSeed {
    type Value = Result<DType, String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a datatype name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(parse_datatype(v).map_err(|e| e.to_string()))
    }
}
