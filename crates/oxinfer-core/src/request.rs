//! The request vocabulary: what callers queue (`Request`), the work it
//! carries (`Work`), what a run hands back (`RunOutput`), and `execute`, which
//! runs one request alone. The scheduler and the batcher both build on it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::{Backend, RunControl};
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::pipeline::{Batch, Pipeline, RunOptions};
use crate::tensor::{InputTensor, OutputTensor};
use crate::timing::Timing;

/// What a finished run hands back.
pub struct RunOutput {
    pub tensors: Vec<OutputTensor>,
    /// Engine time charged to this request (its share of a merged batch), in
    /// microseconds: what the inline estimate learns from.
    pub micros: u64,
    pub timing: Timing,
}

/// Called exactly once with the outcome of a request, on a worker thread.
pub type Completion = Box<dyn FnOnce(Result<RunOutput>) + Send>;

/// A pipeline run: a batch of records through a compiled pipeline.
pub struct PipelineRun {
    pub pipeline: Arc<Pipeline>,
    pub batch: Batch,
    pub opts: RunOptions,
}

/// What a request does with the slot it is given. Both kinds may be merged
/// with compatible queued requests of the same kind (dynamic batching).
pub enum Work {
    /// A model run of validated inputs, merged along the batch axes.
    Run { inputs: Vec<InputTensor>, outputs: Vec<usize> },
    /// A pipeline run (pre-processing, the model, post-processing), merged
    /// with runs of the same pipeline by concatenating their records.
    Pipeline(PipelineRun),
}

/// The work of a plain model run of validated `inputs`.
pub fn model_run(inputs: Vec<InputTensor>, outputs: Vec<usize>) -> Work {
    Work::Run { inputs, outputs }
}

/// The work of running `batch` through `pipeline`.
pub fn pipeline_run(pipeline: Arc<Pipeline>, batch: Batch, opts: RunOptions) -> Work {
    Work::Pipeline(PipelineRun { pipeline, batch, opts })
}

impl Work {
    /// Rows along the batch axes, if the work can be merged at all.
    pub fn rows(&self, layout: &Layout) -> Option<usize> {
        match self {
            Work::Run { inputs, .. } => layout.rows(inputs),
            Work::Pipeline(p) => Some(p.batch.rows).filter(|&r| r > 0),
        }
    }

    /// The length of a request's padded inputs (0 when none is padded).
    pub fn length(&self, layout: &Layout) -> usize {
        match self {
            Work::Run { inputs, .. } => layout.length(inputs),
            Work::Pipeline(_) => 0,
        }
    }

    /// Whether `other` may join a batch that `self` opened.
    pub fn joins(&self, other: &Work, layout: &Layout) -> bool {
        match (self, other) {
            (Work::Run { inputs: a, outputs: oa }, Work::Run { inputs: b, outputs: ob }) => oa == ob && layout.compatible(a, b),
            (Work::Pipeline(a), Work::Pipeline(b)) => Arc::ptr_eq(&a.pipeline, &b.pipeline) && a.pipeline.mergeable(),
            _ => false,
        }
    }
}

/// A queued request.
pub struct Request {
    pub id: u64,
    pub work: Work,
    /// A request still queued at this instant is settled with `ERR_TIMEOUT` instead of run.
    pub deadline: Option<Instant>,
    /// Priority level, 0 the most urgent (clamped to the scheduler's levels).
    pub priority: usize,
    pub ctl: Arc<RunControl>,
    pub done: Completion,
}

/// The queue level of a priority counted from 1, as Triton and KServe count
/// it (1 the most urgent); none is the least urgent level.
pub fn level(priority: Option<u32>) -> usize {
    priority.map(|p| p.saturating_sub(1) as usize).unwrap_or(usize::MAX)
}

/// A queue deadline `timeout_ms` from now (none when absent or not above 0).
/// A timeout too far ahead to represent (1e308 ms) is no deadline at all,
/// never a panic that would fail the other runs submitted with it.
pub fn deadline(timeout_ms: Option<f64>) -> Option<Instant> {
    let t = timeout_ms.filter(|t| *t > 0.0 && t.is_finite())?;
    Instant::now().checked_add(Duration::try_from_secs_f64(t / 1000.0).ok()?)
}

pub(crate) fn aborted() -> Error {
    Error::Aborted("the run was aborted".into())
}

/// Runs one request alone, turning a panic anywhere in the work into
/// `ERR_BACKEND`. `queued` is when it was submitted (None: run inline, never queued).
pub fn execute(backend: &dyn Backend, slot: usize, work: Work, ctl: &RunControl, queued: Option<Instant>, layout: &Layout) -> Result<RunOutput> {
    if ctl.is_aborted() {
        return Err(aborted());
    }
    let start = Instant::now();
    let mut timing = Timing { queue_us: queued.map_or(0, |q| start.saturating_duration_since(q).as_micros() as u64), batch_requests: 1, ..Timing::default() };
    let tensors = catch_unwind(AssertUnwindSafe(|| match work {
        Work::Run { inputs, outputs } => {
            timing.batch_rows = layout.rows(&inputs).unwrap_or(0) as u32;
            backend.run(slot, &inputs, &outputs, ctl)
        }
        Work::Pipeline(p) => p.pipeline.run(&p.batch, p.opts, backend, slot, ctl, &mut timing),
    }))
    .unwrap_or_else(|p| Err(Error::from_panic(p)))?;
    let micros = start.elapsed().as_micros() as u64;
    if timing.infer_us == 0 {
        timing.infer_us = micros.saturating_sub(timing.pre_us + timing.post_us);
    }
    Ok(RunOutput { tensors, micros, timing })
}
