//! A served model version: its engine (an ONNX model or a pipeline over one,
//! on the core's scheduler), the tensors it takes and gives as the protocol
//! names them, its statistics, and `infer`, which queues one request on the
//! same scheduler that in-process `Session.run` calls use.

mod pipeline;
pub mod sequence;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use oxinfer_core::onnx::library::Runtime;
use oxinfer_core::onnx::{ModelSource, OnnxBackend, OnnxOptions};
use oxinfer_core::pipeline::{Pipeline, RunOptions};
use oxinfer_core::{model_run, pipeline_run, request, validate, Backend, DType, Dim, InputTensor, ModelInfo, OutputTensor, Request, RunControl, Scheduler, SchedulerOptions, Timing, ValueKind, Work};

use crate::error::{Result, ServerError};
use crate::repository::config::ModelConfig;
use crate::stats::Stats;

/// One input or output as the protocol describes it (-1: any size).
#[derive(Clone, Debug)]
pub struct TensorMeta {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<i64>,
}

/// What runs a version's requests.
pub enum Kind {
    /// A plain model: inputs and outputs are the model's own.
    Onnx,
    /// A pipeline: each input is a record field (one row per element along
    /// dim 0), each output a result column.
    Pipeline(Arc<Pipeline>),
}

/// A loaded, servable model version.
pub struct Version {
    pub model: String,
    pub version: u64,
    pub kind: Kind,
    pub inputs: Vec<TensorMeta>,
    pub outputs: Vec<TensorMeta>,
    pub scheduler: Arc<Scheduler>,
    /// The ONNX model's own inputs and outputs.
    pub info: ModelInfo,
    pub config: ModelConfig,
    pub stats: Stats,
    /// Engine instances (scheduler slots).
    pub pool_size: usize,
    /// Where it was loaded from.
    pub path: PathBuf,
    /// Open sequences of a stateful model (`sequence_batching`).
    pub sequences: Option<sequence::Sequences>,
}

/// A request's options that the protocol carries in its parameters.
#[derive(Clone, Debug, Default)]
pub struct InferOptions {
    /// 1 is the most urgent, as Triton counts.
    pub priority: Option<u32>,
    pub timeout_ms: Option<f64>,
    /// `sequence_id`, `sequence_start` and `sequence_end`.
    pub sequence: Option<sequence::Control>,
}

impl Version {
    /// Loads the version in `dir` (holding `model.onnx` or `pipeline.json`);
    /// every file it names must lie inside `root`.
    pub fn load(rt: &'static Runtime, root: &Path, model: &str, version: u64, dir: &Path, config: ModelConfig) -> Result<Version> {
        let spec_path = dir.join("pipeline.json");
        let onnx_path = dir.join("model.onnx");
        if spec_path.is_file() {
            let text = oxinfer_core::pipeline::spec::read(&spec_path)?;
            let spec = oxinfer_core::pipeline::parse(&text).map_err(|e| oxinfer_core::pipeline::locate::in_file(e, &text, &spec_path.display().to_string()))?;
            let model_file = inside(root, &dir.join(&spec.model))?;
            let session = spec.session.clone().unwrap_or_default();
            let num = |k: &str| session.get(k).and_then(|v| v.as_u64()).map(|n| n as usize);
            let (backend, pool_size) = load_onnx(rt, &model_file, &config, num("intraOpThreads"), num("poolSize"))?;
            let info = backend.info().clone();
            let compiled = Arc::new(Pipeline::compile_in(spec, &info, Some(dir))?);
            let (inputs, outputs) = pipeline::io(&compiled, &*backend)?;
            let scheduler = Arc::new(Scheduler::with_options(backend, scheduler_options(&config))?);
            if config.sequence_batching.is_some() {
                return Err(ServerError::Repository(format!("model '{model}': sequence_batching applies to plain ONNX models, not pipelines")));
            }
            Ok(Version { model: model.into(), version, kind: Kind::Pipeline(compiled), inputs, outputs, scheduler, info, config, stats: Stats::default(), pool_size, path: spec_path, sequences: None })
        } else if onnx_path.is_file() {
            let (backend, pool_size) = load_onnx(rt, &inside(root, &onnx_path)?, &config, None, None)?;
            let info = backend.info().clone();
            let metas = |list: &[oxinfer_core::ValueInfo]| -> Vec<TensorMeta> {
                list.iter()
                    .map(|v| TensorMeta {
                        name: v.name.clone(),
                        dtype: match v.kind {
                            ValueKind::Tensor(d) => d,
                            _ => DType::String,
                        },
                        shape: v.dims.iter().map(|d| if let Dim::Fixed(n) = d { *n } else { -1 }).collect(),
                    })
                    .collect()
            };
            let sequences = config.sequence_batching.as_ref().map(|c| sequence::Sequences::new(&info, c)).transpose()?;
            let (mut inputs, mut outputs) = (metas(&info.inputs), metas(&info.outputs));
            // A sequence's state is fed natively: the protocol does not show it.
            if let Some(seq) = &sequences {
                let mut i = 0;
                inputs.retain(|_| (!seq.is_state_input(i), i += 1).0);
                let mut o = 0;
                outputs.retain(|_| (!seq.is_state_output(o), o += 1).0);
            }
            let options = scheduler_options(&config);
            if options.max_batch_rows > 1 {
                options.layout.check(&info)?;
            }
            let scheduler = Arc::new(Scheduler::with_options(backend, options)?);
            Ok(Version { model: model.into(), version, kind: Kind::Onnx, inputs, outputs, scheduler, info, config, stats: Stats::default(), pool_size, path: onnx_path, sequences })
        } else {
            Err(ServerError::Repository(format!("model '{model}' version {version} holds neither model.onnx nor pipeline.json ({})", dir.display())))
        }
    }

    /// The queue timeout of requests that set none (`default_queue_policy`).
    fn default_timeout_ms(&self) -> Option<f64> {
        let us = self.config.dynamic_batching.as_ref()?.default_queue_policy.as_ref()?.default_timeout_microseconds;
        (us > 0).then(|| us as f64 / 1000.0)
    }

    /// Triton's platform name for this kind of model.
    pub fn platform(&self) -> &'static str {
        match self.kind {
            Kind::Onnx => "onnxruntime_onnx",
            Kind::Pipeline(_) => "oxinfer_pipeline",
        }
    }

    /// Runs one request through the scheduler (merged with other requests,
    /// HTTP or in-process, when the model batches) and returns the outputs
    /// asked for, all of them when `wanted` is empty.
    pub async fn infer(&self, inputs: Vec<InputTensor>, wanted: &[String], options: &InferOptions) -> Result<(Vec<OutputTensor>, Timing)> {
        let started = Instant::now();
        // Rows, as Triton counts inferences: dim 0 where it is the batch.
        let batched = self.config.max_batch_size > 0 || matches!(self.kind, Kind::Pipeline(_));
        let rows = if batched { inputs.first().and_then(|t| t.dims.first()).map_or(1, |&n| n.max(0) as u64) } else { 1 };
        let result = self.run(inputs, wanted, options).await;
        self.stats.record(&result, rows, started.elapsed());
        result
    }

    async fn run(&self, inputs: Vec<InputTensor>, wanted: &[String], options: &InferOptions) -> Result<(Vec<OutputTensor>, Timing)> {
        match (&self.sequences, &options.sequence) {
            (Some(seq), Some(c)) => {
                let names = (!wanted.is_empty()).then_some(wanted);
                let mut idx = validate::check_outputs(&self.info, names)?;
                if let Some(&o) = idx.iter().find(|&&o| names.is_some() && seq.is_state_output(o)) {
                    return Err(ServerError::bad(format!("output '{}' is the sequence's state, kept by the server", self.info.outputs[o].name)));
                }
                idx.retain(|&o| !seq.is_state_output(o));
                let out = seq.step(&self.scheduler, &self.info, c.clone(), inputs, idx, request::level(options.priority)).await?;
                return Ok((out.tensors, out.timing));
            }
            (Some(_), None) => return Err(ServerError::bad(format!("model '{}' is a sequence model: give parameters.sequence_id (with sequence_start on a sequence's first request)", self.model))),
            (None, Some(_)) => return Err(ServerError::bad(format!("model '{}' is not a sequence model; drop parameters.sequence_id", self.model))),
            (None, None) => {}
        }
        let (work, pick): (Work, Option<Vec<String>>) = match &self.kind {
            Kind::Onnx => {
                let names = (!wanted.is_empty()).then_some(wanted);
                let idx = validate::check_request(&self.info, &inputs, names)?;
                (model_run(inputs, idx), None)
            }
            Kind::Pipeline(p) => {
                let batch = pipeline::batch(p, &self.inputs, inputs)?;
                for w in wanted {
                    if !self.outputs.iter().any(|o| &o.name == w) {
                        return Err(ServerError::bad(format!("unknown output '{w}' of model '{}'; it has {}", self.model, names(&self.outputs))));
                    }
                }
                (pipeline_run(Arc::clone(p), batch, RunOptions { fail_fast: true, timings: false }), Some(wanted.to_vec()))
            }
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let ctl = Arc::new(RunControl::new());
        // Dropped before the answer (the client hung up): the run is skipped
        // if still queued, stopped if running alone.
        let mut gone = AbortOnDrop(Some(Arc::clone(&ctl)));
        let req = Request {
            id: 0,
            work,
            deadline: request::deadline(options.timeout_ms.or(self.default_timeout_ms())),
            priority: request::level(options.priority),
            ctl,
            done: Box::new(move |r| {
                let _ = tx.send(r);
            }),
        };
        self.scheduler.submit(req)?;
        let out = rx.await.map_err(|_| ServerError::Core(oxinfer_core::Error::Backend("the run ended without an outcome".into())));
        gone.0 = None;
        let out = out??;
        let tensors = match (&self.kind, pick) {
            (Kind::Pipeline(p), Some(wanted)) => pipeline::outputs(p, out.tensors, &wanted),
            _ => out.tensors,
        };
        Ok((tensors, out.timing))
    }
}

/// Aborts a run when the request waiting for it is dropped unanswered.
struct AbortOnDrop(Option<Arc<RunControl>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(ctl) = self.0.take() {
            ctl.abort();
        }
    }
}

/// `path` resolved, if it lies inside `root` (no `..` or link out of the repository).
pub fn inside(root: &Path, path: &Path) -> Result<PathBuf> {
    let real = path.canonicalize().map_err(|e| oxinfer_core::Error::file("the model", path, e))?;
    let root = root.canonicalize().map_err(|e| oxinfer_core::Error::file("the repository", root, e))?;
    if !real.starts_with(&root) {
        return Err(ServerError::Repository(format!("'{}' lies outside the model repository", path.display())));
    }
    Ok(real)
}

fn load_onnx(rt: &'static Runtime, path: &Path, config: &ModelConfig, intra: Option<usize>, pool: Option<usize>) -> Result<(Arc<dyn Backend>, usize)> {
    let intra = config.parameter("intra_op_threads").and_then(|s| s.parse().ok()).or(intra);
    let pool = config.instances().or(pool);
    let options = OnnxOptions { intra_op_threads: intra.unwrap_or(0), pool_size: pool.unwrap_or(1), auto_threads: intra.is_none() && pool.is_none(), ..OnnxOptions::default() };
    let backend = oxinfer_core::priority::on_low_priority_thread({
        let path = path.to_path_buf();
        move || OnnxBackend::load(rt, ModelSource::Path(path), &options)
    })?;
    let slots = backend.slots();
    Ok((Arc::new(backend), slots))
}

/// Batching as the configuration asks: merging only with `dynamic_batching`
/// and a `max_batch_size` above 1, as in Triton.
fn scheduler_options(config: &ModelConfig) -> SchedulerOptions {
    let mut o = SchedulerOptions { low_priority: true, priority_levels: 1, ..Default::default() };
    if let Some(d) = &config.dynamic_batching {
        if config.max_batch_size > 1 {
            o.max_batch_rows = config.max_batch_size as usize;
            o.max_delay = std::time::Duration::from_micros(d.max_queue_delay_microseconds);
            o.preferred_batch_rows = d.preferred_batch_size.iter().map(|&n| n as usize).collect();
        }
        o.priority_levels = d.priority_levels.max(1) as usize;
        if let Some(q) = &d.default_queue_policy {
            o.max_queue = q.max_queue_size as usize;
        }
    }
    o
}

pub(crate) fn names(list: &[TensorMeta]) -> String {
    list.iter().map(|t| format!("'{}'", t.name)).collect::<Vec<_>>().join(", ")
}
