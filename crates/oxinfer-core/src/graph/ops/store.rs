//! The `lookup` op: entity features from a feature store as a float32
//! tensor, so that a graph reads a view once per request and every model
//! that needs it takes the same node's output.

use crate::backend::Dim;
use crate::error::{Error, Result};
use crate::graph::spec::OpSpec;
use crate::graph::types::Ty;
use crate::pipeline::spec::{FailurePolicy, LookupPolicy};
use crate::store::{now_ms, FValue};
use crate::tensor::{AlignedBytes, DType, InputData, InputTensor, OutputData, OutputTensor};

pub(crate) fn infer(spec: &OpSpec, inputs: &[Ty]) -> std::result::Result<Vec<Ty>, String> {
    let OpSpec::Lookup { features, .. } = spec else { return Err("not a lookup".into()) };
    let k = &inputs[0];
    if !matches!(k.dtype(), Some(DType::String | DType::Int64 | DType::Int32)) {
        return Err(format!("lookup: keys must be a string, int64 or int32 tensor [N], got {}", k.kind.type_name()));
    }
    let rows = k.dims.as_ref().and_then(|d| d.first().cloned()).unwrap_or(Dim::Dynamic);
    Ok(vec![Ty::tensor(DType::Float32, Some(vec![rows, Dim::Fixed(features.len() as i64)]))])
}

fn keys(t: &InputTensor) -> Result<Vec<String>> {
    if t.dims.len() != 1 {
        return Err(Error::invalid_input(&t.name, format!("lookup: keys must be a tensor [N], got dims {:?}", t.dims)));
    }
    Ok(match (&t.data, t.dtype) {
        (InputData::Strings(s), _) => s.clone(),
        (_, DType::Int64) => super::num::values::<i64>(t).into_iter().map(|k| k.to_string()).collect(),
        (_, DType::Int32) => super::num::values::<i32>(t).into_iter().map(|k| k.to_string()).collect(),
        (_, d) => return Err(Error::invalid_input(&t.name, format!("lookup: keys must be strings or integers, got {}", d.name()))),
    })
}

pub(crate) fn run(spec: &OpSpec, inputs: &[InputTensor]) -> Result<Vec<OutputTensor>> {
    let OpSpec::Lookup { view, features, missing, stale, on_error, loaded, .. } = spec else { return Err(Error::Unsupported("not a lookup".into())) };
    let store = loaded.0.as_ref().ok_or_else(|| Error::Backend("lookup: the store was not found at build".into()))?;
    let v = store.view(view)?;
    let idx: Vec<usize> = features.iter().map(|f| v.feature(f).ok_or_else(|| Error::Backend(format!("lookup: view '{view}' has no feature '{f}'")))).collect::<Result<_>>()?;
    let ks = keys(&inputs[0])?;
    // Keys no store could hold (empty, or over 1,024 bytes) are missing entities.
    let valid: Vec<usize> = (0..ks.len()).filter(|&r| !ks[r].is_empty() && ks[r].len() <= 1024).collect();
    let refs: Vec<&str> = valid.iter().map(|&r| ks[r].as_str()).collect();
    let rows = match store.read(v, &refs) {
        Ok(found) => {
            let mut all: Vec<Option<crate::store::Row>> = vec![None; ks.len()];
            for (r, row) in valid.iter().zip(found) {
                all[*r] = row;
            }
            Some(all)
        }
        Err(_) if *on_error == FailurePolicy::Default => None,
        Err(e) => return Err(e),
    };
    let now = now_ms();
    let default = |fi: usize| match &v.defaults[fi] {
        Some(FValue::Num(x)) => *x,
        _ => f64::NAN,
    };
    let mut out = Vec::with_capacity(ks.len() * idx.len());
    for (r, key) in ks.iter().enumerate() {
        let row = rows.as_ref().and_then(|rows| rows[r].as_ref());
        let policy = match (&rows, row) {
            (None, _) => LookupPolicy::Default,
            (Some(_), None) => *missing,
            (Some(_), Some(row)) if v.is_stale(row.written_ms, now) => *stale,
            (Some(_), Some(_)) => LookupPolicy::Use,
        };
        for &fi in &idx {
            let x = match policy {
                LookupPolicy::Use => match row.and_then(|row| row.values[fi].as_ref()) {
                    Some(FValue::Num(x)) => *x,
                    _ => default(fi),
                },
                LookupPolicy::Default => default(fi),
                LookupPolicy::Nan => f64::NAN,
                LookupPolicy::Error => {
                    let why = if row.is_none() { "holds no entity" } else { "holds a stale entity" };
                    return Err(Error::invalid_input(&inputs[0].name, format!("lookup: view '{view}' {why} '{key}'")));
                }
            };
            out.push(x as f32);
        }
    }
    // SAFETY: plain numbers viewed as bytes.
    let bytes = unsafe { std::slice::from_raw_parts(out.as_ptr() as *const u8, out.len() * 4) };
    Ok(vec![OutputTensor { name: "y".into(), dtype: DType::Float32, dims: vec![ks.len() as i64, idx.len() as i64], data: OutputData::Buffer(Box::new(AlignedBytes::from_slice(bytes))) }])
}
