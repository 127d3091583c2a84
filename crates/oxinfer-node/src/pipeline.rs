//! Pipelines from JS: compiling a spec against a session's model, fitting,
//! and running batches of records on that session (queued, inline, or as a
//! batch job over a file). Records cross in the format `columns` parses.

use std::sync::Arc;

use napi::bindgen_prelude::*;
use oxinfer_core::pipeline::{self, Batch, Pipeline, RunOptions};
use oxinfer_core::request::pipeline_run;
use oxinfer_core::Error as CoreError;

use crate::columns::parse_batch;
use crate::errors::IntoNapi;
use crate::js;
use crate::payload::{self, Format};
use crate::session::NativeSession;

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
        self.inner.unfitted().map(|e| e.to_string())
    }

    /// Whether runs wait on a network service (a lookup stage): never inline.
    #[napi(getter)]
    pub fn waits_on_io(&self) -> bool {
        self.inner.waits_on_io()
    }

    /// Throws the spec error (with its stage) that keeps an unfitted pipeline from running.
    #[napi]
    pub fn check_fitted(&self) -> Result<()> {
        match self.inner.unfitted() {
            Some(e) => Err(crate::errors::to_napi(e.clone())),
            None => Ok(()),
        }
    }

    /// The drift report now (JSON), or null when the spec has no `monitor`.
    #[napi]
    pub fn drift(&self) -> Option<String> {
        self.inner.monitor().map(|m| serde_json::to_string(&m.report()).unwrap_or_default())
    }

    /// Records the outcome of the prediction with id `id` (a class label, or a number).
    #[napi(catch_unwind)]
    pub fn feedback(&self, id: String, truth: Either<String, f64>) -> Result<()> {
        if self.inner.feedback().is_none() {
            return Err(crate::errors::to_napi(CoreError::InvalidArgument("feedback needs the spec's monitor.feedback section (its idField names the records' prediction ids)".into())));
        }
        let truth = match truth {
            Either::A(l) => oxinfer_core::monitor::feedback::Truth::Label(l),
            Either::B(v) => oxinfer_core::monitor::feedback::Truth::Value(v),
        };
        self.inner.answer(&id, truth).map_err(oxinfer_core::monitor::feedback::Refusal::into_error).js()
    }

    /// Writes the prediction log (flushed first) to `path` as JSONL or CSV; resolves to the rows written.
    #[napi(catch_unwind, ts_return_type = "Promise<number>")]
    pub fn export_log(&self, path: String, csv: bool) -> Result<AsyncTask<ExportLogTask>> {
        let log = self
            .inner
            .log()
            .cloned()
            .ok_or_else(|| CoreError::InvalidArgument("exportLog needs the spec's monitor.log section".into()))
            .js()?;
        Ok(AsyncTask::new(ExportLogTask { log, path, csv }))
    }

    /// Writes the queued log rows now; returns once they are committed, or
    /// throws the write's failure (ERR_FILE) or the rows dropped (ERR_OVERLOADED).
    #[napi(catch_unwind)]
    pub fn flush_log(&self) -> Result<()> {
        match self.inner.log() {
            Some(log) => log.flush().js(),
            None => Ok(()),
        }
    }

    /// Online quality over the feedback window (JSON), or null without `monitor.feedback`.
    #[napi]
    pub fn quality(&self) -> Option<String> {
        self.inner.feedback().map(|f| serde_json::to_string(&f.quality()).unwrap_or_default())
    }

    /// Business metrics now (JSON), or null without `monitor.metrics`.
    #[napi]
    pub fn business_metrics(&self) -> Option<String> {
        self.inner.business().map(|b| serde_json::to_string(&b.values()).unwrap_or_default())
    }

    /// Drift events (JSON) go to hub listener `id`; 0 stops them.
    #[napi]
    pub fn set_drift_listener(&self, hub: &crate::hub::NativeHub, id: f64) {
        let Some(m) = self.inner.monitor() else { return };
        if id == 0.0 {
            m.set_sink(None);
            return;
        }
        let hub = Arc::clone(&hub.hub);
        let id = id as u64;
        m.set_sink(Some(Arc::new(move |e: &oxinfer_core::monitor::DriftEvent| {
            let _ = hub.try_push(crate::hub::Event::Drift(id, serde_json::to_string(e).unwrap_or_default()));
        })));
    }

    /// A reference profile of `batch` (its number and category fields, and
    /// the predictions on `session`'s model), off the JS thread (JSON).
    #[napi(catch_unwind, ts_return_type = "Promise<string>")]
    pub fn profile(&self, env: Env, session: &NativeSession, batch: Unknown) -> Result<AsyncTask<ProfileTask>> {
        let batch = parse_batch(env.raw(), self.inner.spec(), batch.value().value).js()?;
        let scheduler = session.scheduler().js()?;
        Ok(AsyncTask::new(ProfileTask { pipeline: Arc::clone(&self.inner), scheduler, batch: Some(batch) }))
    }

    /// Queues many runs over columnar batches on `session` in one call (one
    /// per event-loop turn; see `submit`), where its scheduler may merge them
    /// with each other and with other runs of this pipeline. `list` is flat:
    /// `[id, batch, failFast, timings, timeoutMs, priority | undefined, ...]`.
    /// Results arrive named, under each id; runs refused (malformed,
    /// overloaded or disposed) settle through the hub with their error.
    #[napi(catch_unwind)]
    pub fn submit_many(&self, env: Env, session: &NativeSession, list: Unknown) -> Result<()> {
        let raw = env.raw();
        crate::submit::submit_list(raw, list.value().value, 6, session.scheduler(), &session.hub(), Format::Packed, |at| {
            let batch = parse_batch(raw, self.inner.spec(), at(1)?)?;
            let opts = RunOptions { fail_fast: js::boolean(raw, at(2)?)?, timings: js::boolean(raw, at(3)?)? };
            Ok(pipeline_run(Arc::clone(&self.inner), batch, opts))
        })
        .js()
    }

    /// A run on the calling thread (the inline rule applies, as for `runSync`).
    #[napi(catch_unwind, ts_return_type = "Array<unknown> | string")]
    pub fn run_sync(&self, env: Env, session: &NativeSession, batch: Unknown, fail_fast: bool, timings: bool) -> Result<Unknown<'_>> {
        let scheduler = session.scheduler().js()?;
        let batch = parse_batch(env.raw(), self.inner.spec(), batch.value().value).js()?;
        let r = scheduler.run_now(pipeline_run(Arc::clone(&self.inner), batch, RunOptions { fail_fast, timings }));
        let v = payload::outcome(env.raw(), &r, Format::Packed).js()?;
        unsafe { Unknown::from_napi_value(env.raw(), v) }
    }

    /// Creates (or truncates) `path` for this pipeline's results, which a job
    /// over a JS source writes chunk by chunk.
    #[napi(catch_unwind)]
    pub fn open_result_file(&self, path: String, format: crate::options::FileFormat) -> Result<crate::job::NativeResultFile> {
        crate::job::NativeResultFile::create(self.inner.spec(), &path, format)
    }

    /// Starts a batch job of this pipeline over a file on `session`; its
    /// events arrive through the hub under `id` (see `payload::job_event`).
    #[napi(catch_unwind)]
    pub fn start_job(&self, session: &NativeSession, id: f64, options: crate::job::NativeJobOptions) -> Result<crate::job::NativeJob> {
        let scheduler = session.scheduler().js()?;
        crate::job::start(scheduler, Arc::clone(&self.inner), session.hub(), id as u64, options)
    }
}

pub struct CompileTask {
    spec: String,
    base: Option<String>,
    file: Option<String>,
    model: oxinfer_core::ModelInfo,
}

impl Task for CompileTask {
    type Output = Pipeline;
    type JsValue = NativePipeline;

    fn compute(&mut self) -> Result<Self::Output> {
        let (spec, base, model) = (&self.spec, self.base.as_deref(), &self.model);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let parsed = pipeline::parse(spec)?;
            Pipeline::compile_in(parsed, model, base.map(std::path::Path::new))
        }))
        .unwrap_or_else(|p| Err(CoreError::from_panic(p)))
        .map_err(|e| in_file(e, spec, self.file.as_deref()))
        .js()
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(NativePipeline { inner: Arc::new(output) })
    }
}

/// Parses and checks `spec` (JSON) against `session`'s model, loading what its
/// stages need (tokenizers, relative to `base`) off the JS thread. `file`: the
/// spec file the text was read from, which errors then point into.
#[napi(catch_unwind, ts_return_type = "Promise<NativePipeline>")]
pub fn compile_pipeline(session: &NativeSession, spec: String, base: Option<String>, file: Option<String>) -> AsyncTask<CompileTask> {
    AsyncTask::new(CompileTask { spec, base, file, model: session.model_info().clone() })
}

/// A spec error located in its file, where the spec came from one.
fn in_file(e: CoreError, text: &str, file: Option<&str>) -> CoreError {
    match file {
        Some(f) => pipeline::locate::in_file(e, text, f),
        None => e,
    }
}

/// Checks that `spec` (JSON text) reads as a spec of a version this build
/// knows, before its model is loaded; errors name the JSON path, and the line
/// in `file` when given.
#[napi(catch_unwind)]
pub fn check_spec(spec: String, file: Option<String>) -> Result<()> {
    pipeline::parse(&spec).map(drop).map_err(|e| in_file(e, &spec, file.as_deref())).js()
}

pub struct ReadTask(String);

impl Task for ReadTask {
    type Output = String;
    type JsValue = String;

    fn compute(&mut self) -> Result<Self::Output> {
        pipeline::spec::read(std::path::Path::new(&self.0)).js()
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(output)
    }
}

/// Reads a spec file's text off the JS thread (`ERR_FILE` with its path).
#[napi(catch_unwind, ts_return_type = "Promise<string>")]
pub fn read_spec(path: String) -> AsyncTask<ReadTask> {
    AsyncTask::new(ReadTask(path))
}

pub struct ExportLogTask {
    log: Arc<oxinfer_core::monitor::log::PredictionLog>,
    path: String,
    csv: bool,
}

impl Task for ExportLogTask {
    type Output = f64;
    type JsValue = f64;

    fn compute(&mut self) -> Result<Self::Output> {
        self.log.export(std::path::Path::new(&self.path), self.csv).map(|n| n as f64).js()
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(output)
    }
}

pub struct ProfileTask {
    pipeline: Arc<Pipeline>,
    scheduler: Arc<oxinfer_core::Scheduler>,
    batch: Option<Batch>,
}

impl Task for ProfileTask {
    type Output = String;
    type JsValue = String;

    fn compute(&mut self) -> Result<Self::Output> {
        let batch = self.batch.take().ok_or_else(|| crate::errors::to_napi(CoreError::Backend("profile ran twice".into())))?;
        let (pipeline, scheduler) = (Arc::clone(&self.pipeline), Arc::clone(&self.scheduler));
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            // On slot 0, beside the scheduler's own runs (a slot is a lock).
            let profile = pipeline.profile(&batch, &**scheduler.backend(), 0, &oxinfer_core::RunControl::new())?;
            serde_json::to_string(&profile).map_err(|e| CoreError::Backend(e.to_string()))
        }))
        .unwrap_or_else(|p| Err(CoreError::from_panic(p)))
        .js()
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(output)
    }
}

pub struct FitTask {
    spec: String,
    batch: Option<Batch>,
}

impl Task for FitTask {
    type Output = String;
    type JsValue = String;

    fn compute(&mut self) -> Result<Self::Output> {
        let batch = self.batch.take().ok_or_else(|| crate::errors::to_napi(CoreError::Backend("fit ran twice".into())))?;
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

/// Platt calibration fit (see oxinfer_core::pipeline::post::fit_platt).
#[napi(catch_unwind)]
pub fn fit_platt(scores: Float64Array, labels: Uint8Array) -> Result<Vec<f64>> {
    let l: Vec<bool> = labels.iter().map(|&x| x != 0).collect();
    let (a, b) = oxinfer_core::pipeline::post::fit_platt(&scores, &l)
        .ok_or_else(|| CoreError::InvalidArgument("fitPlatt needs as many labels as scores".into()))
        .js()?;
    Ok(vec![a, b])
}
