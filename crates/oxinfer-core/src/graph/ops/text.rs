//! Text as a graph op: tokenization, so that one tokenization can feed
//! several models in a graph (it runs once per request, as any node does).

use crate::backend::Dim;
use crate::error::{Error, Result};
use crate::graph::spec::{OpSpec, TokenizePadding};
use crate::graph::types::Ty;
use crate::tensor::{AlignedBytes, DType, InputData, InputTensor, OutputData, OutputTensor};
use crate::text::{EncodeOptions, Padding};

/// Inputs of a text op (None: not one): the texts, and optionally pairs.
pub(crate) fn arity(spec: &OpSpec) -> Option<(usize, usize)> {
    matches!(spec, OpSpec::Tokenize { .. }).then_some((1, 2))
}

pub(crate) fn outputs(spec: &OpSpec) -> Option<&'static [&'static str]> {
    matches!(spec, OpSpec::Tokenize { .. }).then_some(&["input_ids", "attention_mask"][..])
}

pub(crate) fn infer(spec: &OpSpec, inputs: &[Ty]) -> std::result::Result<Vec<Ty>, String> {
    let OpSpec::Tokenize { max_length, padding, .. } = spec else { return Err("not a text op".into()) };
    for t in inputs {
        if t.dtype() != Some(DType::String) {
            return Err(format!("tokenize: texts must be string tensors, got {}", t.kind.type_name()));
        }
    }
    let rows = inputs[0].dims.as_ref().and_then(|d| d.first().cloned()).unwrap_or(Dim::Dynamic);
    let len = match padding {
        TokenizePadding::MaxLength => Dim::Fixed(*max_length as i64),
        TokenizePadding::Longest => Dim::Dynamic,
    };
    let t = Ty::tensor(DType::Int64, Some(vec![rows, len]));
    Ok(vec![t.clone(), t])
}

fn texts(t: &InputTensor) -> Result<&[String]> {
    match &t.data {
        InputData::Strings(s) if t.dims.len() == 1 => Ok(s),
        _ => Err(Error::invalid_input(&t.name, format!("tokenize: texts must be a string tensor [N], got {} dims {:?}", t.dtype.name(), t.dims))),
    }
}

fn int64s(name: &str, rows: usize, len: usize, v: impl Iterator<Item = i64>) -> OutputTensor {
    let v: Vec<i64> = v.collect();
    // SAFETY: plain numbers viewed as bytes.
    let bytes = unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, v.len() * 8) };
    OutputTensor { name: name.into(), dtype: DType::Int64, dims: vec![rows as i64, len as i64], data: OutputData::Buffer(Box::new(AlignedBytes::from_slice(bytes))) }
}

pub(crate) fn run(spec: &OpSpec, inputs: &[InputTensor]) -> Result<Vec<OutputTensor>> {
    let OpSpec::Tokenize { max_length, padding, add_special_tokens, loaded, .. } = spec else { return Err(Error::Unsupported("not a text op".into())) };
    let tok = loaded.0.as_ref().ok_or_else(|| Error::Backend("tokenize: the tokenizer was not loaded".into()))?;
    let first = texts(&inputs[0])?;
    let pairs = inputs.get(1).map(texts).transpose()?;
    let opts = EncodeOptions {
        add_special_tokens: *add_special_tokens,
        max_length: Some(*max_length),
        padding: match padding {
            TokenizePadding::Longest => Padding::Longest,
            TokenizePadding::MaxLength => Padding::MaxLength,
        },
        ..EncodeOptions::default()
    };
    let e = tok.encode_batch(first, pairs, &opts)?;
    let (rows, len) = (e.rows, e.seq_len);
    Ok(vec![int64s("input_ids", rows, len, e.ids.iter().map(|&i| i as i64)), int64s("attention_mask", rows, len, e.attention_mask.iter().map(|&m| m as i64))])
}
