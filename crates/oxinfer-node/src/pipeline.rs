//! Pipelines: compiling a spec against a session's model, fitting, and the
//! columnar batch format that crosses from JS.
//!
//! Batch layout (fields in spec order, grouped by kind, so that a batch is a
//! handful of typed arrays whatever its width):
//! `[rows, rejectedRows, rejectedFields, rejectedMessages, numbers, codes,
//! uniques, uniqueCounts, arrays]`:
//! - `numbers`: Float64Array, the number/integer/boolean fields one after the
//!   other, `rows` values each (NaN = missing);
//! - `codes`: Int32Array, the category fields likewise, as indices into that
//!   field's batch-local dictionary (-1 = missing);
//! - `uniques`: string[], the dictionaries one after the other, with
//!   `uniqueCounts` (Int32Array) giving each one's length;
//! - `arrays`: Float64Array, the array fields one after the other, `rows * size`
//!   values each, row-major;
//! - the rejected* entries (or nulls) list rows that JS already found bad.

use std::sync::Arc;

use napi::bindgen_prelude::*;
use oxinfer_core::pipeline::{self, spec::FieldType, Batch, InColumn, Pipeline};
use oxinfer_core::tensor::BorrowedBytes;
use oxinfer_core::{Error as CoreError, Result as CoreResult};

use crate::errors::IntoNapi;
use crate::js::{self, Env as RawEnv, Val};

fn bad(msg: impl Into<String>) -> CoreError {
    CoreError::InvalidArgument(msg.into())
}

fn strings(env: RawEnv, v: Val, what: &str) -> CoreResult<Vec<String>> {
    if !js::is_array(env, v)? {
        return Err(bad(format!("{what} must be an array of strings")));
    }
    (0..js::array_len(env, v)?)
        .map(|i| js::string(env, js::element(env, v, i)?)?.ok_or_else(|| bad(format!("{what} must hold strings"))))
        .collect()
}

/// A typed array of `kind`, as (data, element count).
fn typed(env: RawEnv, v: Val, kind: i32, what: &str) -> CoreResult<(*const u8, usize)> {
    let view = js::typed_array(env, v)?.ok_or_else(|| bad(format!("{what} must be a typed array")))?;
    if view.kind != kind {
        return Err(bad(format!("{what} has the wrong typed array kind")));
    }
    Ok((view.data, view.len))
}

fn is_nullish(env: RawEnv, v: Val) -> CoreResult<bool> {
    let t = js::type_of(env, v)?;
    Ok(t == napi::sys::ValueType::napi_null || t == napi::sys::ValueType::napi_undefined)
}

pub fn parse_batch(env: RawEnv, spec: &pipeline::Spec, v: Val) -> CoreResult<Batch> {
    if !js::is_array(env, v)? || js::array_len(env, v)? != 9 {
        return Err(bad("malformed batch"));
    }
    let at = |i| js::element(env, v, i);
    let rows = js::number(env, at(0)?)?.filter(|r| r.fract() == 0.0 && *r >= 0.0).ok_or_else(|| bad("malformed batch"))? as usize;
    let mut rejected = Vec::new();
    if !is_nullish(env, at(1)?)? {
        let (p, n) = typed(env, at(1)?, js::INT32, "rejected rows")?;
        // SAFETY: an Int32Array of n elements at p.
        let rows_bad = if n == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(p as *const i32, n) } };
        let fields = strings(env, at(2)?, "rejected fields")?;
        let messages = strings(env, at(3)?, "rejected messages")?;
        if fields.len() != n || messages.len() != n {
            return Err(bad("malformed batch"));
        }
        for ((&r, f), m) in rows_bad.iter().zip(fields).zip(messages) {
            rejected.push((r as usize, CoreError::bad_record(r as usize, f, m)));
        }
    }
    let (nums, n_nums) = typed(env, at(4)?, js::FLOAT64, "numbers")?;
    let (codes, n_codes) = typed(env, at(5)?, js::INT32, "codes")?;
    let uniques = strings(env, at(6)?, "uniques")?;
    let (counts, n_counts) = typed(env, at(7)?, js::INT32, "unique counts")?;
    let (arrs, n_arrs) = typed(env, at(8)?, js::FLOAT64, "arrays")?;
    // SAFETY: an Int32Array of n_counts elements.
    let counts = if n_counts == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(counts as *const i32, n_counts) } };
    let (mut num_at, mut code_at, mut uniq_at, mut arr_at, mut cat_i) = (0usize, 0usize, 0usize, 0usize, 0usize);
    let mut columns = Vec::with_capacity(spec.fields.len());
    for f in &spec.fields {
        let short = || bad(format!("the batch is too short for field '{}'", f.name));
        let col = match f.kind {
            FieldType::Category => {
                let count = *counts.get(cat_i).ok_or_else(short)? as usize;
                cat_i += 1;
                if code_at + rows > n_codes || uniq_at + count > uniques.len() {
                    return Err(short());
                }
                // SAFETY: in bounds of the JS Int32Array, kept alive until the run settles.
                let b = unsafe { BorrowedBytes::new(codes.add(code_at * 4), rows * 4) };
                code_at += rows;
                let u = uniques[uniq_at..uniq_at + count].to_vec();
                uniq_at += count;
                InColumn::Cat { codes: b, uniques: u }
            }
            FieldType::Array => {
                let n = rows * f.size.unwrap_or(1);
                if arr_at + n > n_arrs {
                    return Err(short());
                }
                // SAFETY: as above.
                let b = unsafe { BorrowedBytes::new(arrs.add(arr_at * 8), n * 8) };
                arr_at += n;
                InColumn::Arr(b)
            }
            _ => {
                if num_at + rows > n_nums {
                    return Err(short());
                }
                // SAFETY: as above.
                let b = unsafe { BorrowedBytes::new(nums.add(num_at * 8), rows * 8) };
                num_at += rows;
                InColumn::Num(b)
            }
        };
        columns.push((f.name.clone(), col));
    }
    Ok(Batch { rows, columns, rejected })
}

/// A spec compiled against a session's model.
#[napi]
pub struct NativePipeline {
    pub(crate) inner: Arc<Pipeline>,
}

#[napi]
impl NativePipeline {
    /// Why the pipeline cannot run before `fit`, or null.
    #[napi(getter)]
    pub fn unfitted(&self) -> Option<String> {
        self.inner.unfitted().map(str::to_string)
    }
}

/// Parses and checks `spec` (JSON) against `session`'s model; throws ERR_INVALID_SPEC.
#[napi(catch_unwind)]
pub fn compile_pipeline(session: &crate::session::NativeSession, spec: String) -> Result<NativePipeline> {
    let parsed = pipeline::parse(&spec).js()?;
    let compiled = Pipeline::compile(parsed, session.model_info()).js()?;
    Ok(NativePipeline { inner: Arc::new(compiled) })
}

pub struct FitTask {
    spec: String,
    batch: Option<Batch>,
}

impl Task for FitTask {
    type Output = String;
    type JsValue = String;

    fn compute(&mut self) -> Result<Self::Output> {
        let batch = self.batch.take().ok_or_else(|| Error::from_reason("fit ran twice"))?;
        let spec = self.spec.clone();
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let parsed = pipeline::parse(&spec)?;
            let fitted = Pipeline::fit(&parsed, &batch)?;
            serde_json::to_string(&fitted).map_err(|e| CoreError::Backend(e.to_string()))
        }))
        .unwrap_or_else(|p| Err(CoreError::from_panic(p)))
        .js()
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(output)
    }
}

/// Learns the spec's stage parameters from a batch, off the JS thread; resolves to the fitted spec (JSON).
#[napi(catch_unwind, ts_return_type = "Promise<string>")]
pub fn fit_pipeline(env: Env, spec: String, batch: Unknown) -> Result<AsyncTask<FitTask>> {
    let parsed = pipeline::parse(&spec).js()?;
    let batch = parse_batch(env.raw(), &parsed, batch.value().value).js()?;
    Ok(AsyncTask::new(FitTask { spec, batch: Some(batch) }))
}
