//! A pipeline seen as a model of tensors (how the server serves it and a
//! graph runs it): each record field is an input tensor whose dim 0 is the
//! rows, and each result column an output tensor. Missing values: NaN for
//! numbers, an empty string for categories and text.

use std::collections::HashMap;

use crate::backend::{Backend, Dim, RunControl, ValueInfo, ValueKind};
use crate::error::{Error, Result};
use crate::pipeline::spec::{FieldType, Post};
use crate::pipeline::{Batch, InColumn, Pipeline, RunOptions};
use crate::tensor::{DType, InputData, InputTensor, OutputData, OutputTensor};
use crate::timing::Timing;

fn info(name: &str, dtype: DType, shape: &[i64]) -> ValueInfo {
    ValueInfo { name: name.to_string(), kind: ValueKind::Tensor(dtype), dims: shape.iter().map(|&d| if d < 0 { Dim::Dynamic } else { Dim::Fixed(d) }).collect() }
}

fn bad(message: String) -> Error {
    Error::InvalidInput { message, input: None, row: None, field: None }
}

/// The inputs (one per field) and outputs (the result columns, found by
/// running the pipeline on an empty batch, which never reaches the model).
pub fn io(p: &Pipeline, backend: &dyn Backend) -> Result<(Vec<ValueInfo>, Vec<ValueInfo>)> {
    let mut inputs = Vec::new();
    for f in &p.spec().fields {
        let (dtype, shape) = match f.kind {
            FieldType::Number => (DType::Float64, vec![-1]),
            FieldType::Integer => (DType::Int64, vec![-1]),
            FieldType::Boolean => (DType::Bool, vec![-1]),
            FieldType::Category | FieldType::Text => (DType::String, vec![-1]),
            FieldType::Array => (DType::Float64, vec![-1, f.size.unwrap_or(1) as i64]),
            FieldType::List | FieldType::Image => {
                return Err(Error::Unsupported(format!("field '{}' is a {:?} field; a pipeline run on tensors takes number, integer, boolean, category, text and array fields", f.name, f.kind).to_lowercase()))
            }
        };
        inputs.push(info(&f.name, dtype, &shape));
    }
    let empty = Batch { rows: 0, columns: vec![], rejected: vec![] };
    let cols = p.run(&empty, RunOptions { fail_fast: false, timings: false }, backend, 0, &RunControl::new(), &mut Timing::default())?;
    let k = cols.iter().find(|c| c.name == "scores").and_then(|c| c.dims.get(1).copied()).unwrap_or(-1);
    let mut outputs = Vec::new();
    for c in &cols {
        let mut shape: Vec<i64> = c.dims.clone();
        shape[0] = -1;
        if c.name == "scores" || c.name == "above" {
            shape[1] = if k > 0 { k } else { -1 };
        }
        match c.name.as_str() {
            "label" => {
                outputs.push(info("label", DType::String, &shape));
                outputs.push(info("label_index", DType::Int32, &shape));
            }
            "bucket" => outputs.push(info("bucket", DType::String, &shape)),
            "above" => outputs.push(info("above", DType::Bool, &shape)),
            _ => outputs.push(info(&c.name, c.dtype, &shape)),
        }
    }
    Ok((inputs, outputs))
}

/// Tensors (one per field, as `io` declares them) as a batch of records.
pub fn batch(p: &Pipeline, inputs: Vec<InputTensor>) -> Result<Batch> {
    let fields = &p.spec().fields;
    let mut rows: Option<(usize, String)> = None;
    let mut columns = Vec::with_capacity(inputs.len());
    for t in inputs {
        let Some(f) = fields.iter().find(|f| f.name == t.name) else {
            let names: Vec<String> = fields.iter().map(|f| format!("'{}'", f.name)).collect();
            return Err(Error::invalid_input(&t.name, format!("unknown input '{}'; the pipeline's fields are {}", t.name, names.join(", "))));
        };
        let n = t.dims.first().copied().unwrap_or(1).max(0) as usize;
        match &rows {
            Some((m, first)) if *m != n => return Err(bad(format!("input '{}' has {n} rows but '{first}' has {m}; every field needs one value per row", t.name))),
            None => rows = Some((n, t.name.clone())),
            _ => {}
        }
        let per_row = t.dims.iter().skip(1).product::<i64>().max(0) as usize;
        let want = match f.kind {
            FieldType::Array => f.size.unwrap_or(1),
            _ => 1,
        };
        if t.dims.is_empty() || per_row != want {
            return Err(bad(format!("input '{}' has shape {:?}; a {} field takes [rows]{}", t.name, t.dims, kind_name(f.kind), if want > 1 { format!(" x {want}") } else { String::new() })));
        }
        let col = match f.kind {
            FieldType::Category => {
                let strings = strings(&t)?;
                let mut uniques: Vec<String> = Vec::new();
                let mut index: HashMap<&str, i32> = HashMap::new();
                let codes = strings
                    .iter()
                    .map(|s| {
                        if s.is_empty() {
                            return -1;
                        }
                        *index.entry(s.as_str()).or_insert_with(|| {
                            uniques.push(s.clone());
                            uniques.len() as i32 - 1
                        })
                    })
                    .collect();
                InColumn::OwnedCat { codes, uniques }
            }
            FieldType::Text => InColumn::Text(strings(&t)?.iter().map(|s| (!s.is_empty()).then(|| s.clone())).collect()),
            FieldType::Array => InColumn::OwnedArr(numbers(&t)?),
            _ => InColumn::OwnedNum(numbers(&t)?),
        };
        columns.push((t.name, col));
    }
    let rows = rows.map_or(0, |(n, _)| n);
    if rows == 0 {
        return Err(bad("the request holds no rows".into()));
    }
    Ok(Batch { rows, columns, rejected: vec![] })
}

fn kind_name(k: FieldType) -> &'static str {
    match k {
        FieldType::Number => "number",
        FieldType::Integer => "integer",
        FieldType::Boolean => "boolean",
        FieldType::Category => "category",
        FieldType::Array => "array",
        FieldType::List => "list",
        FieldType::Text => "text",
        FieldType::Image => "image",
    }
}

fn strings(t: &InputTensor) -> Result<&[String]> {
    match &t.data {
        InputData::Strings(s) => Ok(s),
        _ => Err(bad(format!("input '{}' is {}, but its field takes strings", t.name, t.dtype.name()))),
    }
}

/// A numeric tensor's values as f64 (the pipeline's working type).
fn numbers(t: &InputTensor) -> Result<Vec<f64>> {
    let b = t.bytes();
    macro_rules! conv {
        ($ty:ty, $n:expr) => {
            b.chunks_exact($n).map(|c| <$ty>::from_le_bytes(c.try_into().unwrap_or_default()) as f64).collect()
        };
    }
    Ok(match t.dtype {
        DType::Float64 => conv!(f64, 8),
        DType::Float32 => conv!(f32, 4),
        DType::Float16 => b.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f64()).collect(),
        DType::BFloat16 => b.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f64()).collect(),
        DType::Int64 => conv!(i64, 8),
        DType::Uint64 => conv!(u64, 8),
        DType::Int32 => conv!(i32, 4),
        DType::Uint32 => conv!(u32, 4),
        DType::Int16 => conv!(i16, 2),
        DType::Uint16 => conv!(u16, 2),
        DType::Int8 => conv!(i8, 1),
        DType::Uint8 | DType::Bool => b.iter().map(|&x| x as f64).collect(),
        DType::String => return Err(bad(format!("input '{}' holds strings, but its field takes numbers", t.name))),
    })
}

/// The result columns as the protocol's outputs: class labels and bucket
/// names as strings (empty below a threshold), `label_index` beside them.
pub fn outputs(p: &Pipeline, cols: Vec<OutputTensor>, wanted: &[String]) -> Vec<OutputTensor> {
    let spec = p.spec();
    let labels = spec.output.labels.as_deref();
    let buckets = spec.output.postprocess.iter().find_map(|o| if let Post::Bucket { names, .. } = o { Some(names.as_slice()) } else { None });
    let want = |n: &str| wanted.is_empty() || wanted.iter().any(|w| w == n);
    let mut out = Vec::with_capacity(cols.len() + 1);
    for c in cols {
        match c.name.as_str() {
            "label" => {
                let idx: Vec<i32> = c.to_vec().unwrap_or_default();
                if want("label") {
                    let names = idx.iter().map(|&i| if i < 0 { String::new() } else { labels.and_then(|l| l.get(i as usize).cloned()).unwrap_or_else(|| i.to_string()) }).collect();
                    out.push(OutputTensor { name: "label".into(), dtype: DType::String, dims: c.dims.clone(), data: OutputData::Strings(names) });
                }
                if want("label_index") {
                    out.push(OutputTensor { name: "label_index".into(), ..c });
                }
            }
            "bucket" if want("bucket") => {
                let idx: Vec<i32> = c.to_vec().unwrap_or_default();
                let names = idx.iter().map(|&i| buckets.and_then(|b| b.get(i as usize).cloned()).unwrap_or_default()).collect();
                out.push(OutputTensor { name: "bucket".into(), dtype: DType::String, dims: c.dims, data: OutputData::Strings(names) });
            }
            "above" if want("above") => out.push(OutputTensor { dtype: DType::Bool, ..c }),
            n if want(n) && n != "bucket" && n != "above" => out.push(c),
            _ => {}
        }
    }
    if !wanted.is_empty() {
        out.sort_by_key(|t| wanted.iter().position(|w| *w == t.name));
    }
    out
}
