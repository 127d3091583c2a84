//! Batch jobs over files (see oxinfer_core::job): starting one on a session,
//! and the handle JS aborts it and hands back delivery credits through.

use std::sync::Arc;

use napi::bindgen_prelude::*;
use oxinfer_core::job::{self, Control, InputFormat, JobOptions, OutputFormat};
use oxinfer_core::Error as CoreError;

use crate::errors::IntoNapi;
use crate::hub::{Event, Hub};

#[napi(object)]
pub struct NativeJobOptions {
    pub input: String,
    /// 'csv' or 'jsonl'.
    pub input_format: String,
    pub output: Option<String>,
    /// 'csv' or 'jsonl'.
    pub output_format: Option<String>,
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

/// Reads a format name: true for CSV, false for JSONL.
fn is_csv(f: &str) -> std::result::Result<bool, CoreError> {
    match f {
        "csv" => Ok(true),
        "jsonl" => Ok(false),
        f => Err(CoreError::InvalidArgument(format!("format must be 'csv' or 'jsonl', got '{f}'"))),
    }
}

fn options(o: &NativeJobOptions) -> std::result::Result<JobOptions, CoreError> {
    let input_format = if is_csv(&o.input_format)? { InputFormat::Csv } else { InputFormat::Jsonl };
    let output = match &o.output {
        Some(path) => Some((path.into(), if is_csv(o.output_format.as_deref().unwrap_or("jsonl"))? { OutputFormat::Csv } else { OutputFormat::Jsonl })),
        None => None,
    };
    Ok(JobOptions {
        input: o.input.clone().into(),
        input_format,
        output,
        chunk_rows: o.chunk_size as usize,
        concurrency: o.concurrency as usize,
        fail_fast: o.fail_fast,
        progress_every: std::time::Duration::from_millis(o.progress_interval_ms as u64),
    })
}

/// Starts a job; its events arrive through the hub under `id`.
pub fn start(
    scheduler: Arc<oxinfer_core::Scheduler>,
    pipeline: Arc<oxinfer_core::pipeline::Pipeline>,
    hub: Arc<Hub>,
    id: u64,
    o: &NativeJobOptions,
) -> Result<NativeJob> {
    let opts = options(o).js()?;
    // JS may hold as many undelivered chunks as run at once.
    let ctl = Arc::new(Control::new(opts.concurrency));
    job::start(pipeline, scheduler, opts, Arc::clone(&ctl), Box::new(move |ev| hub.push(Event::Job(id, ev)))).js()?;
    Ok(NativeJob { ctl })
}
