//! Batch jobs (see oxinfer_core::job): starting one over a file on a session,
//! the handle JS aborts it and hands back delivery credits through, and the
//! results file that jobs over JS sources write through the same writer.

use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::*;
use oxinfer_core::job::{self, Control, JobOptions, Writer};
use oxinfer_core::{Error as CoreError, OutputTensor};

use crate::errors::IntoNapi;
use crate::hub::{Event, Hub};
use crate::options::FileFormat;

#[napi(object)]
pub struct NativeJobOptions {
    pub input: String,
    pub input_format: FileFormat,
    pub output: Option<String>,
    /// Default: JSONL.
    pub output_format: Option<FileFormat>,
    pub chunk_size: u32,
    pub concurrency: u32,
    pub fail_fast: bool,
    pub progress_interval_ms: u32,
    pub unknown_fields: crate::options::UnknownFields,
    /// Score shard `shard[0]` (0-based) of `shard[1]` into its part of `output`.
    pub shard: Option<Vec<u32>>,
}

/// A running job: `abort()` stops it, `release(n)` says JS consumed n chunks.
#[napi]
pub struct NativeJob {
    ctl: Arc<Control>,
}

#[napi]
impl NativeJob {
    #[napi]
    pub fn abort(&self) {
        self.ctl.abort();
    }

    #[napi]
    pub fn release(&self, n: u32) {
        self.ctl.release(n as usize);
    }
}

/// Jobs whose native driver is still running (tests check that none leak).
#[napi]
pub fn active_jobs() -> u32 {
    job::active() as u32
}

fn options(o: NativeJobOptions) -> Result<JobOptions> {
    let shard = match o.shard.as_deref() {
        None => None,
        Some([i, n]) => Some(job::Shard::new(u64::from(*i), u64::from(*n)).js()?),
        Some(_) => return Err(CoreError::InvalidArgument("shard must be [index, count]".into())).js(),
    };
    let output = o.output.map(|path| (path.into(), o.output_format.unwrap_or(FileFormat::Jsonl).into()));
    Ok(JobOptions {
        input: o.input.into(),
        input_format: o.input_format.into(),
        output,
        chunk_rows: o.chunk_size as usize,
        concurrency: o.concurrency as usize,
        fail_fast: o.fail_fast,
        progress_every: std::time::Duration::from_millis(o.progress_interval_ms as u64),
        unknown_fields: o.unknown_fields.into(),
        shard,
    })
}

/// Starts a job; its events arrive through the hub under `id`.
pub fn start(
    scheduler: Arc<oxinfer_core::Scheduler>,
    pipeline: Arc<oxinfer_core::pipeline::Pipeline>,
    hub: Arc<Hub>,
    id: u64,
    o: NativeJobOptions,
) -> Result<NativeJob> {
    let opts = options(o)?;
    // JS may hold as many undelivered chunks as run at once.
    let ctl = Arc::new(Control::new(opts.concurrency));
    job::start(pipeline, scheduler, opts, Arc::clone(&ctl), Box::new(move |ev| hub.push(Event::Job(id, ev)))).js()?;
    Ok(NativeJob { ctl })
}

/// A results file that JS feeds chunk by chunk (jobs over iterable sources):
/// written by the same writer as file jobs, off the JS thread.
#[napi]
pub struct NativeResultFile {
    writer: Arc<Mutex<Option<Writer>>>,
}

impl NativeResultFile {
    /// Creates (or truncates) `path` for the results of a pipeline of `spec`.
    pub fn create(spec: &oxinfer_core::pipeline::Spec, path: &str, format: FileFormat) -> Result<Self> {
        let writer = Writer::create(std::path::Path::new(path), format.into(), spec).js()?;
        Ok(NativeResultFile { writer: Arc::new(Mutex::new(Some(writer))) })
    }
}

/// What a `FileTask` does with the results file.
pub enum FileOp {
    /// Writes a chunk whose rows start at this row of the input.
    Write(usize, Vec<OutputTensor>),
    /// Flushes and closes it (removing it if that fails).
    Finish,
    /// Closes and removes it.
    Discard,
}

/// One operation on a results file, off the JS thread (a write in progress
/// holds the file, so even a discard must not wait for it on the JS thread).
pub struct FileTask {
    writer: Arc<Mutex<Option<Writer>>>,
    op: Option<FileOp>,
}

impl Task for FileTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        let mut slot = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let closed = || CoreError::InvalidArgument("the results file is closed".into());
        match self.op.take() {
            Some(FileOp::Write(first_row, columns)) => slot.as_mut().ok_or_else(closed).and_then(|w| w.write(first_row, &columns)).js(),
            Some(FileOp::Finish) => slot.take().ok_or_else(closed).and_then(Writer::finish).js(),
            Some(FileOp::Discard) | None => {
                if let Some(w) = slot.take() {
                    w.discard();
                }
                Ok(())
            }
        }
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> Result<()> {
        Ok(())
    }
}

#[napi]
impl NativeResultFile {
    /// Writes a chunk's result columns (flat feeds: `[name, typeCode, data,
    /// dims, ...]`, copied here), whose rows start at `firstRow` in the input.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn write(&self, env: Env, first_row: f64, columns: Unknown) -> Result<AsyncTask<FileTask>> {
        let columns = crate::feeds::parse(env.raw(), columns.value().value).js()?.iter().map(|t| t.to_output()).collect();
        Ok(self.task(FileOp::Write(first_row as usize, columns)))
    }

    /// Flushes and closes the file.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn finish(&self) -> AsyncTask<FileTask> {
        self.task(FileOp::Finish)
    }

    /// Closes and removes the partial file (the job failed or was aborted).
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn discard(&self) -> AsyncTask<FileTask> {
        self.task(FileOp::Discard)
    }
}

impl NativeResultFile {
    fn task(&self, op: FileOp) -> AsyncTask<FileTask> {
        AsyncTask::new(FileTask { writer: Arc::clone(&self.writer), op: Some(op) })
    }
}

/// Joins the parts of a sharded job's output (oxinfer_core::job::merge), off
/// the JS thread; resolves to the report as JSON.
pub struct MergeTask {
    output: String,
    count: Option<u64>,
    keep: bool,
}

impl Task for MergeTask {
    type Output = String;
    type JsValue = String;

    fn compute(&mut self) -> Result<String> {
        let report = job::merge(std::path::Path::new(&self.output), self.count, self.keep).js()?;
        serde_json::to_string(&report).map_err(|e| CoreError::Backend(e.to_string())).js()
    }

    fn resolve(&mut self, _env: Env, output: String) -> Result<String> {
        Ok(output)
    }
}

/// Merges the shard parts of `output`; `count` is found from the manifests when absent.
#[napi(catch_unwind, ts_return_type = "Promise<string>")]
pub fn merge_shards(output: String, count: Option<u32>, keep: bool) -> AsyncTask<MergeTask> {
    AsyncTask::new(MergeTask { output, count: count.map(u64::from), keep })
}
