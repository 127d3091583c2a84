//! `NativeFeatureStore`: a core feature store opened from its JSON
//! configuration. Reads, writes and ingestion run off the JS thread (a
//! Redis round trip never blocks the event loop); values cross as JSON.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use napi::bindgen_prelude::*;
use oxinfer_core::store::{FValue, FeatureStore, StoreSpec};
use oxinfer_core::Error as CoreError;
use serde_json::{Map, Value};

use crate::errors::IntoNapi;

#[napi]
pub struct NativeFeatureStore {
    inner: Arc<FeatureStore>,
}

/// Opens a store from its configuration (JSON) and registers its name.
#[napi(catch_unwind)]
pub fn open_feature_store(spec: String) -> Result<NativeFeatureStore> {
    let spec: StoreSpec = serde_json::from_str(&spec).map_err(|e| CoreError::invalid_spec("feature store", e.to_string())).js()?;
    Ok(NativeFeatureStore { inner: FeatureStore::open(spec).js()? })
}

fn row_json(view: &oxinfer_core::store::View, row: &oxinfer_core::store::Row) -> Value {
    let mut values = Map::new();
    for (f, v) in view.spec.features.iter().zip(&row.values) {
        values.insert(
            f.name.clone(),
            match v {
                None => Value::Null,
                Some(FValue::Cat(s)) => Value::String(s.clone()),
                Some(FValue::Num(x)) => serde_json::Number::from_f64(*x).map_or(Value::Null, Value::Number),
            },
        );
    }
    let now = oxinfer_core::store::now_ms();
    serde_json::json!({ "values": values, "writtenMs": row.written_ms, "ageMs": now.saturating_sub(row.written_ms), "stale": view.is_stale(row.written_ms, now) })
}

pub enum Op {
    Get { view: String, keys: Vec<String> },
    Put { view: String, rows: String },
    Ingest { view: String, path: PathBuf, chunk: usize, progress: Arc<[AtomicU64; 3]> },
}

pub struct StoreTask {
    store: Arc<FeatureStore>,
    op: Option<Op>,
}

impl Task for StoreTask {
    type Output = String;
    type JsValue = String;

    fn compute(&mut self) -> Result<String> {
        let op = self.op.take().ok_or_else(|| crate::errors::to_napi(CoreError::Backend("the store task ran twice".into())))?;
        let store = Arc::clone(&self.store);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || -> oxinfer_core::Result<String> {
            match op {
                Op::Get { view, keys } => {
                    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                    let rows = store.get_many(&view, &refs)?;
                    let v = store.view(&view)?;
                    Ok(Value::Array(rows.iter().map(|r| r.as_ref().map_or(Value::Null, |r| row_json(v, r))).collect()).to_string())
                }
                Op::Put { view, rows } => {
                    let parsed: Vec<(String, Map<String, Value>)> =
                        serde_json::from_str(&rows).map_err(|e| CoreError::InvalidArgument(format!("putMany: rows must be [key, values] pairs: {e}")))?;
                    store.put_json(&view, &parsed)?;
                    Ok(parsed.len().to_string())
                }
                Op::Ingest { view, path, chunk, progress } => {
                    let s = store.ingest(&view, &path, chunk, &|rows, bytes, total| {
                        progress[0].store(rows, Relaxed);
                        progress[1].store(bytes, Relaxed);
                        progress[2].store(total, Relaxed);
                    })?;
                    Ok(serde_json::to_string(&s).unwrap_or_default())
                }
            }
        }))
        .unwrap_or_else(|p| Err(CoreError::from_panic(p)))
        .js()
    }

    fn resolve(&mut self, _env: Env, out: String) -> Result<String> {
        Ok(out)
    }
}

/// An ingestion's progress, read by JS while it runs: rows written, bytes read, file size.
#[napi]
pub struct NativeIngestProgress {
    counters: Arc<[AtomicU64; 3]>,
}

#[napi]
impl NativeIngestProgress {
    #[napi]
    pub fn read(&self) -> Vec<f64> {
        self.counters.iter().map(|c| c.load(Relaxed) as f64).collect()
    }
}

#[napi]
impl NativeFeatureStore {
    #[napi(getter)]
    pub fn name(&self) -> String {
        self.inner.name().to_string()
    }

    /// The configuration (JSON).
    #[napi(getter)]
    pub fn spec(&self) -> String {
        serde_json::to_string(self.inner.spec()).unwrap_or_default()
    }

    /// Rows of `view` for `keys`, JSON: each `{values, writtenMs, ageMs, stale}` or null.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn get_many(&self, view: String, keys: Vec<String>) -> AsyncTask<StoreTask> {
        AsyncTask::new(StoreTask { store: Arc::clone(&self.inner), op: Some(Op::Get { view, keys }) })
    }

    /// Writes `rows` (JSON `[[key, {feature: value}], ...]`); resolves to the count.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn put_many(&self, view: String, rows: String) -> AsyncTask<StoreTask> {
        AsyncTask::new(StoreTask { store: Arc::clone(&self.inner), op: Some(Op::Put { view, rows }) })
    }

    /// A progress handle for `ingest`.
    #[napi]
    pub fn progress(&self) -> NativeIngestProgress {
        NativeIngestProgress { counters: Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]) }
    }

    /// Ingests a CSV or JSONL file into `view`; resolves to the summary (JSON).
    #[napi(ts_return_type = "Promise<string>")]
    pub fn ingest(&self, view: String, path: String, chunk_rows: u32, progress: &NativeIngestProgress) -> AsyncTask<StoreTask> {
        let op = Op::Ingest { view, path: PathBuf::from(path), chunk: chunk_rows as usize, progress: Arc::clone(&progress.counters) };
        AsyncTask::new(StoreTask { store: Arc::clone(&self.inner), op: Some(op) })
    }

    /// Hits, misses, staleness, failures and latency per view (JSON).
    #[napi]
    pub fn stats(&self) -> String {
        serde_json::to_string(&self.inner.stats()).unwrap_or_default()
    }

    /// Unregisters the name; pipelines already compiled keep the store.
    #[napi]
    pub fn close(&self) {
        self.inner.close();
    }
}
