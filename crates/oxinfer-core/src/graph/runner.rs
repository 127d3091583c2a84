//! What a graph node runs on: the `NodeRunner` abstraction (sessions,
//! pipelines, anything asynchronous with declared inputs and outputs), and
//! `SchedulerRunner`, the one over a session's scheduler, so that concurrent
//! graph requests are merged into batches by its dynamic batching.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::backend::{ModelInfo, RunControl, ValueInfo};
use crate::error::Error;
use crate::request::{model_run, Completion, Request};
use crate::scheduler::Scheduler;
use crate::tensor::InputTensor;
use crate::validate;

/// How a graph asks a runner to run one node of one request.
#[derive(Clone, Debug, Default)]
pub struct CallContext {
    /// Queue priority level, 0 the most urgent (see `request::level`).
    pub priority: usize,
    /// A run still queued at this instant fails with `ERR_TIMEOUT`.
    pub deadline: Option<Instant>,
    /// The outputs the graph consumes (empty: all tensor outputs). A runner
    /// may return more; the graph picks outputs by name.
    pub outputs: Vec<String>,
    /// The caller allows short runs on its own thread (see `GraphRunOptions::inline`).
    pub inline: bool,
    /// The request's abort control: a model run still queued when it is
    /// aborted is dropped (out of its merged batch), one running alone stopped.
    pub ctl: Option<Arc<RunControl>>,
}

/// Something a graph node can run: a model session, a pipeline, a test
/// double. Runs are asynchronous and completion-based.
///
/// Inputs given to `submit` may borrow memory that the graph keeps alive
/// only until `done` is called: a runner that keeps them longer must copy
/// them (`InputTensor::into_owned`). `done` must be called exactly once,
/// from any thread, possibly before `submit` returns; a runner that drops it
/// uncalled fails the graph request with `ERR_BACKEND`.
pub trait NodeRunner: Send + Sync {
    /// The declared inputs (names, kinds, dims).
    fn inputs(&self) -> &[ValueInfo];
    /// The declared outputs.
    fn outputs(&self) -> &[ValueInfo];
    /// Runs once on `inputs` (named as in `inputs()`), then calls `done`.
    fn submit(&self, inputs: Vec<InputTensor>, done: Completion);
    /// Estimated current queue wait in µs, for `latency-slo` switches.
    fn queue_wait_us(&self) -> u64 {
        0
    }
    /// Requests queued or running, for `load` switches.
    fn queue_depth(&self) -> usize {
        0
    }
    /// `submit` with the request's priority, deadline and wanted outputs; the
    /// default ignores them.
    fn submit_with(&self, inputs: Vec<InputTensor>, ctx: &CallContext, done: Completion) {
        let _ = ctx;
        self.submit(inputs, done)
    }
}

/// Models measured shorter than this (µs) run inline on the worker that
/// finished the graph's previous hop, when their own queue is empty.
const INLINE_HOP_US: u64 = 500;

/// A model session's scheduler as a node runner: inputs are validated as
/// `Session.run` validates them, then queued as a model run, where the
/// scheduler merges them with other queued runs of the same model.
pub struct SchedulerRunner {
    scheduler: Arc<Scheduler>,
    info: ModelInfo,
    /// Mean engine µs per request (moving average), for `queue_wait_us`.
    mean_us: Arc<AtomicU64>,
    next_id: AtomicU64,
}

impl SchedulerRunner {
    /// A runner over `scheduler`, whose backend declares `info`.
    pub fn new(scheduler: Arc<Scheduler>, info: ModelInfo) -> Self {
        SchedulerRunner { scheduler, info, mean_us: Arc::new(AtomicU64::new(0)), next_id: AtomicU64::new(1) }
    }

    /// The scheduler runs are queued on.
    pub fn scheduler(&self) -> &Arc<Scheduler> {
        &self.scheduler
    }
}

impl NodeRunner for SchedulerRunner {
    fn inputs(&self) -> &[ValueInfo] {
        &self.info.inputs
    }

    fn outputs(&self) -> &[ValueInfo] {
        &self.info.outputs
    }

    fn submit(&self, inputs: Vec<InputTensor>, done: Completion) {
        self.submit_with(inputs, &CallContext::default(), done)
    }

    /// A rough estimate: queued requests × the mean engine time of a request
    /// (pessimistic when queued requests are merged into one batch).
    fn queue_wait_us(&self) -> u64 {
        (self.scheduler.queued() as u64).saturating_mul(self.mean_us.load(Ordering::Relaxed))
    }

    fn queue_depth(&self) -> usize {
        self.scheduler.pending()
    }

    fn submit_with(&self, inputs: Vec<InputTensor>, ctx: &CallContext, done: Completion) {
        let wanted = if ctx.outputs.is_empty() {
            // Every tensor output: non-tensor outputs cannot flow on edges.
            let names: Vec<String> = self.info.outputs.iter().filter(|o| matches!(o.kind, crate::ValueKind::Tensor(_))).map(|o| o.name.clone()).collect();
            validate::check_request(&self.info, &inputs, Some(&names))
        } else {
            validate::check_request(&self.info, &inputs, Some(&ctx.outputs))
        };
        let wanted = match wanted {
            Ok(w) => w,
            Err(e) => return done(Err(e)),
        };
        // A graph hop from the previous model's completion, to a short model
        // whose queue is empty, runs right here on that worker: no
        // cross-thread wake-up per hop (the cost that dominates chains of
        // small models). Never on a caller's thread, never past a queue.
        let learned = self.mean_us.load(Ordering::Relaxed);
        if learned > 0 && learned <= INLINE_HOP_US && (ctx.inline || crate::scheduler::on_worker()) && self.scheduler.pending() == 0 {
            let r = self.scheduler.run_now(model_run(inputs, wanted));
            if let Ok(out) = &r {
                learn(&self.mean_us, out.micros);
            }
            return done(r);
        }
        let mean = Arc::clone(&self.mean_us);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        queue(&self.scheduler, id, model_run(inputs, wanted), ctx, done, move |r| {
            if let Ok(out) = &r {
                learn(&mean, out.micros);
            }
            r
        });
    }
}

/// Folds a run's engine µs into a moving average (the first run sets it).
fn learn(mean: &AtomicU64, micros: u64) {
    let old = mean.load(Ordering::Relaxed);
    mean.store(if old == 0 { micros } else { (old * 7 + micros) / 8 }, Ordering::Relaxed);
}

/// Queues `work` on `scheduler` with the node's priority, deadline and the
/// request's abort control; `then` shapes the outcome before `done` gets it.
/// The scheduler drops a request it refuses, completion included, so the
/// completion is shared to report the refusal.
fn queue(scheduler: &Scheduler, id: u64, work: crate::request::Work, ctx: &CallContext, done: Completion, then: impl FnOnce(crate::error::Result<crate::request::RunOutput>) -> crate::error::Result<crate::request::RunOutput> + Send + 'static) {
    let slot: Arc<Mutex<Option<Completion>>> = Arc::new(Mutex::new(Some(done)));
    let theirs = Arc::clone(&slot);
    let req = Request {
        id,
        work,
        deadline: ctx.deadline,
        priority: ctx.priority,
        ctl: ctx.ctl.clone().unwrap_or_default(),
        done: Box::new(move |r| {
            let r = then(r);
            if let Some(done) = take(&theirs) {
                done(r)
            }
        }),
    };
    if let Err(e) = scheduler.submit(req) {
        if let Some(done) = take(&slot) {
            done(Err(e))
        }
    }
}

/// A compiled pipeline as a node runner: its fields are the node's inputs
/// (one element per row along dim 0; numbers, strings for categories and
/// text), its result columns the outputs (`scores`, `label`, `label_index`,
/// ...). Runs queue as pipeline runs on the scheduler of the pipeline's
/// model, where they merge with its other runs.
pub struct PipelineRunner {
    pipeline: Arc<crate::pipeline::Pipeline>,
    scheduler: Arc<Scheduler>,
    inputs: Vec<ValueInfo>,
    outputs: Vec<ValueInfo>,
    next_id: AtomicU64,
}

impl PipelineRunner {
    /// A runner for `pipeline`, compiled against the model `scheduler` runs.
    pub fn new(pipeline: Arc<crate::pipeline::Pipeline>, scheduler: Arc<Scheduler>) -> crate::error::Result<Self> {
        let (inputs, outputs) = crate::pipeline::tensors::io(&pipeline, &**scheduler.backend())?;
        Ok(PipelineRunner { pipeline, scheduler, inputs, outputs, next_id: AtomicU64::new(1) })
    }
}

impl NodeRunner for PipelineRunner {
    fn inputs(&self) -> &[ValueInfo] {
        &self.inputs
    }

    fn outputs(&self) -> &[ValueInfo] {
        &self.outputs
    }

    fn submit(&self, inputs: Vec<InputTensor>, done: Completion) {
        self.submit_with(inputs, &CallContext::default(), done)
    }

    fn queue_depth(&self) -> usize {
        self.scheduler.pending()
    }

    fn submit_with(&self, inputs: Vec<InputTensor>, ctx: &CallContext, done: Completion) {
        // The records are copied into the batch here, so nothing borrowed outlives this call.
        let batch = match crate::pipeline::tensors::batch(&self.pipeline, inputs) {
            Ok(b) => b,
            Err(e) => return done(Err(e)),
        };
        let (pipeline, wanted) = (Arc::clone(&self.pipeline), ctx.outputs.clone());
        let work = crate::request::pipeline_run(Arc::clone(&self.pipeline), batch, crate::pipeline::RunOptions { fail_fast: true, timings: false });
        queue(&self.scheduler, self.next_id.fetch_add(1, Ordering::Relaxed), work, ctx, done, move |r| {
            r.map(|mut out| {
                out.tensors = crate::pipeline::tensors::outputs(&pipeline, std::mem::take(&mut out.tensors), &wanted);
                out
            })
        });
    }
}

fn take(slot: &Mutex<Option<Completion>>) -> Option<Completion> {
    slot.lock().unwrap_or_else(|e| e.into_inner()).take()
}

/// The error a graph reports when a runner dropped its completion uncalled.
pub(crate) fn dropped(node: &str) -> Error {
    Error::Backend(format!("graph node '{node}': its runner dropped the run without an outcome"))
}

/// The declaration named `name` in `list`.
pub(crate) fn find<'a>(list: &'a [ValueInfo], name: &str) -> Option<&'a ValueInfo> {
    list.iter().find(|v| v.name == name)
}

/// The names of `list`, quoted, for messages.
pub(crate) fn names(list: &[ValueInfo]) -> String {
    let v: Vec<String> = list.iter().map(|v| format!("'{}'", v.name)).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}
