//! Batch jobs over files (see oxinfer_core::job): starting one on a session,
//! and the handle JS aborts it and hands back delivery credits through.

use std::sync::Arc;

use napi::bindgen_prelude::*;
use oxinfer_core::job::{self, Control, JobOptions};

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

fn options(o: NativeJobOptions) -> JobOptions {
    let output = o.output.map(|path| (path.into(), o.output_format.unwrap_or(FileFormat::Jsonl).into()));
    JobOptions {
        input: o.input.into(),
        input_format: o.input_format.into(),
        output,
        chunk_rows: o.chunk_size as usize,
        concurrency: o.concurrency as usize,
        fail_fast: o.fail_fast,
        progress_every: std::time::Duration::from_millis(o.progress_interval_ms as u64),
    }
}

/// Starts a job; its events arrive through the hub under `id`.
pub fn start(
    scheduler: Arc<oxinfer_core::Scheduler>,
    pipeline: Arc<oxinfer_core::pipeline::Pipeline>,
    hub: Arc<Hub>,
    id: u64,
    o: NativeJobOptions,
) -> Result<NativeJob> {
    let opts = options(o);
    // JS may hold as many undelivered chunks as run at once.
    let ctl = Arc::new(Control::new(opts.concurrency));
    job::start(pipeline, scheduler, opts, Arc::clone(&ctl), Box::new(move |ev| hub.push(Event::Job(id, ev)))).js()?;
    Ok(NativeJob { ctl })
}
