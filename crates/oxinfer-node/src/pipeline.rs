//! Pipelines: compiling a spec against a session's model, fitting, and the
//! columnar batch format that crosses from JS.
//!
//! Batch layout: `[rows, rejectedRows, rejectedFields, rejectedMessages,
//! (name, kind, data, uniques)*]` with kind 0 = numbers (Float64Array),
//! 1 = categories (Int32Array codes into the `uniques` string[]), 2 = arrays
//! (Float64Array, row-major).

use std::sync::Arc;

use napi::bindgen_prelude::*;
use oxinfer_core::pipeline::{self, Batch, InColumn, Pipeline};
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

fn bytes(env: RawEnv, v: Val, kind: i32, what: &str) -> CoreResult<BorrowedBytes> {
    let view = js::typed_array(env, v)?.ok_or_else(|| bad(format!("{what} must be a typed array")))?;
    if view.kind != kind {
        return Err(bad(format!("{what} has the wrong typed array kind")));
    }
    let size = if kind == js::FLOAT64 { 8 } else { 4 };
    // SAFETY: JS keeps the batch referenced until the run settles.
    Ok(unsafe { BorrowedBytes::new(view.data, view.len * size) })
}

pub fn parse_batch(env: RawEnv, v: Val) -> CoreResult<Batch> {
    if !js::is_array(env, v)? {
        return Err(bad("malformed batch"));
    }
    let n = js::array_len(env, v)?;
    if n < 4 || (n - 4) % 4 != 0 {
        return Err(bad("malformed batch"));
    }
    let rows = js::number(env, js::element(env, v, 0)?)?.filter(|r| r.fract() == 0.0 && *r >= 0.0).ok_or_else(|| bad("malformed batch"))? as usize;
    let rej_rows = js::element(env, v, 1)?;
    let rej_rows: Vec<i32> = {
        let b = bytes(env, rej_rows, js::INT32, "rejected rows")?;
        b.as_slice().chunks_exact(4).map(|c| i32::from_ne_bytes(c.try_into().expect("4 bytes"))).collect()
    };
    let fields = strings(env, js::element(env, v, 2)?, "rejected fields")?;
    let messages = strings(env, js::element(env, v, 3)?, "rejected messages")?;
    if fields.len() != rej_rows.len() || messages.len() != rej_rows.len() {
        return Err(bad("malformed batch"));
    }
    let rejected = rej_rows
        .iter()
        .zip(fields)
        .zip(messages)
        .map(|((&r, f), m)| (r as usize, CoreError::bad_record(r as usize, f, m)))
        .collect();
    let mut columns = Vec::new();
    for i in (4..n).step_by(4) {
        let name = js::string(env, js::element(env, v, i)?)?.ok_or_else(|| bad("column names must be strings"))?;
        let kind = js::number(env, js::element(env, v, i + 1)?)?.unwrap_or(-1.0);
        let data = js::element(env, v, i + 2)?;
        let col = match kind as i32 {
            0 => InColumn::Num(bytes(env, data, js::FLOAT64, &name)?),
            1 => InColumn::Cat { codes: bytes(env, data, js::INT32, &name)?, uniques: strings(env, js::element(env, v, i + 3)?, &name)? },
            2 => InColumn::Arr(bytes(env, data, js::FLOAT64, &name)?),
            _ => return Err(bad(format!("column '{name}' has an unknown kind"))),
        };
        columns.push((name, col));
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
    let batch = parse_batch(env.raw(), batch.value().value).js()?;
    Ok(AsyncTask::new(FitTask { spec, batch: Some(batch) }))
}
