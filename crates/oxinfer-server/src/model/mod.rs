//! A served model version: its engine (an ONNX model or a pipeline over one,
//! on the core's scheduler, or a graph over other served models), the
//! tensors it takes and gives as the protocol names them, its statistics,
//! and `infer`, which queues one request on the same scheduler that
//! in-process `Session.run` calls use.

pub mod engines;
pub mod sequence;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use oxinfer_core::graph::{Graph, GraphRunOptions, NodeRunner, SchedulerRunner};
use oxinfer_core::pipeline::{tensors as pipeline, Pipeline, RunOptions};
use oxinfer_core::{model_run, pipeline_run, request, validate, DType, Dim, InputTensor, ModelInfo, OutputTensor, Request, RunControl, Scheduler, SchedulerOptions, Timing, ValueKind, Work};

pub use engines::Engines;

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
    /// A plain TorchScript model (`model.pt`), on the torch plugin.
    Torch,
    /// A pipeline: each input is a record field (one row per element along
    /// dim 0), each output a result column.
    Pipeline(Arc<Pipeline>),
    /// A graph (`graph.json`) whose model keys are other served models (their
    /// queues, so the graph's runs batch with their direct requests) or ONNX
    /// files in the version folder.
    Graph(GraphModel),
}

/// A served graph and its own counters (it has no queue of its own).
pub struct GraphModel {
    pub graph: Arc<Graph>,
    in_flight: Arc<AtomicUsize>,
    done: AtomicU64,
}

/// Finds the latest ready version of a served model, for a graph's keys.
pub type Resolve<'a> = &'a dyn Fn(&str) -> Option<Arc<Version>>;

/// A loaded, servable model version.
pub struct Version {
    pub model: String,
    pub version: u64,
    pub kind: Kind,
    pub inputs: Vec<TensorMeta>,
    pub outputs: Vec<TensorMeta>,
    /// The engine's queue (None for a graph, whose models have their own).
    pub scheduler: Option<Arc<Scheduler>>,
    /// The ONNX model's own inputs and outputs (a graph's, for a graph).
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
    /// The request's id, under which a graph's `feedback` switches keep
    /// their predictions (the protocol's `id`, or one the server made).
    pub id: Option<String>,
    /// Where a graph request leaves each node's wall and queue time, µs, for the metrics.
    pub nodes: Option<std::sync::Arc<std::sync::Mutex<Vec<(String, u64, u64)>>>>,
}

impl Version {
    /// Loads the version in `dir` (holding `model.onnx` or `pipeline.json`);
    /// every file it names must lie inside `root`.
    pub fn load(engines: &Engines, root: &Path, model: &str, version: u64, dir: &Path, config: ModelConfig, resolve: Resolve<'_>) -> Result<Version> {
        let spec_path = dir.join("pipeline.json");
        let onnx_path = dir.join("model.onnx");
        let torch_path = dir.join(engines::TORCH_FILE);
        let graph_path = dir.join("graph.json");
        if graph_path.is_file() {
            return load_graph(engines, root, model, version, dir, &graph_path, config, resolve);
        }
        if spec_path.is_file() {
            let text = oxinfer_core::pipeline::spec::read(&spec_path)?;
            let spec = oxinfer_core::pipeline::parse(&text).map_err(|e| oxinfer_core::pipeline::locate::in_file(e, &text, &spec_path.display().to_string()))?;
            let model_file = inside(root, &dir.join(&spec.model))?;
            let session = spec.session.clone().unwrap_or_default();
            let num = |k: &str| session.get(k).and_then(|v| v.as_u64()).map(|n| n as usize);
            let (backend, pool_size) = engines.load(&model_file, &config, num("intraOpThreads"), num("poolSize"), false)?;
            let info = backend.info().clone();
            let compiled = Arc::new(Pipeline::compile_in(spec, &info, Some(dir))?);
            let (inputs, outputs) = pipeline::io(&compiled, &*backend).map_err(|e| match e {
                oxinfer_core::Error::Unsupported(m) => ServerError::Repository(m),
                e => e.into(),
            })?;
            let (inputs, outputs) = (metas(&inputs), metas(&outputs));
            let scheduler = Arc::new(Scheduler::with_options(backend, scheduler_options(&config))?);
            if config.sequence_batching.is_some() {
                return Err(ServerError::Repository(format!("model '{model}': sequence_batching applies to plain ONNX models, not pipelines")));
            }
            Ok(Version { model: model.into(), version, kind: Kind::Pipeline(compiled), inputs, outputs, scheduler: Some(scheduler), info, config, stats: Stats::default(), pool_size, path: spec_path, sequences: None })
        } else if onnx_path.is_file() || torch_path.is_file() {
            let (path, kind) = if onnx_path.is_file() { (onnx_path, Kind::Onnx) } else { (torch_path, Kind::Torch) };
            let (backend, pool_size) = engines.load(&inside(root, &path)?, &config, None, None, true)?;
            let info = backend.info().clone();
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
            Ok(Version { model: model.into(), version, kind, inputs, outputs, scheduler: Some(scheduler), info, config, stats: Stats::default(), pool_size, path, sequences })
        } else {
            Err(ServerError::Repository(format!("model '{model}' version {version} holds none of model.onnx, model.pt, pipeline.json and graph.json ({})", dir.display())))
        }
    }

    /// Requests queued or running (a graph's: in flight).
    pub fn pending(&self) -> usize {
        match (&self.kind, &self.scheduler) {
            (Kind::Graph(g), _) => g.in_flight.load(Relaxed),
            (_, Some(s)) => s.pending(),
            _ => 0,
        }
    }

    /// Requests waiting in the queue (a graph's wait in its models' queues).
    pub fn queued(&self) -> usize {
        self.scheduler.as_ref().map_or(0, |s| s.queued())
    }

    /// Model executions (a graph's: requests run).
    pub fn executions(&self) -> u64 {
        match (&self.kind, &self.scheduler) {
            (Kind::Graph(g), _) => g.done.load(Relaxed),
            (_, Some(s)) => s.executions(),
            _ => 0,
        }
    }

    /// The queue timeout of requests that set none (`default_queue_policy`).
    fn default_timeout_ms(&self) -> Option<f64> {
        let us = self.config.dynamic_batching.as_ref()?.default_queue_policy.as_ref()?.default_timeout_microseconds;
        (us > 0).then(|| us as f64 / 1000.0)
    }

    /// The drift monitor of a pipeline whose spec has one.
    pub fn monitor(&self) -> Option<&Arc<oxinfer_core::monitor::Monitor>> {
        match &self.kind {
            Kind::Pipeline(p) => p.monitor(),
            _ => None,
        }
    }

    /// The feedback store of a pipeline whose spec's monitor has one.
    pub fn feedback(&self) -> Option<&Arc<oxinfer_core::monitor::feedback::Feedback>> {
        match &self.kind {
            Kind::Pipeline(p) => p.feedback(),
            _ => None,
        }
    }

    /// Triton's platform name for this kind of model.
    pub fn platform(&self) -> &'static str {
        match self.kind {
            Kind::Onnx => "onnxruntime_onnx",
            Kind::Torch => "pytorch_libtorch",
            Kind::Pipeline(_) => "oxinfer_pipeline",
            Kind::Graph(_) => "oxinfer_graph",
        }
    }

    /// Runs one request through the scheduler (merged with other requests,
    /// HTTP or in-process, when the model batches) and returns the outputs
    /// asked for, all of them when `wanted` is empty.
    pub async fn infer(&self, inputs: Vec<InputTensor>, wanted: &[String], options: &InferOptions) -> Result<(Vec<OutputTensor>, Timing)> {
        let started = Instant::now();
        // Rows, as Triton counts inferences: dim 0 where it is the batch.
        let batched = self.config.max_batch_size > 0 || matches!(self.kind, Kind::Pipeline(_) | Kind::Graph(_));
        let rows = if batched { inputs.first().and_then(|t| t.dims.first()).map_or(1, |&n| n.max(0) as u64) } else { 1 };
        let result = match self.declared_non_tensor(wanted) {
            // Refused by declared type before running: a sequence model's state does not move, and an
            // optional is refused whether or not this request's run would fill it.
            Some(o) => Err(non_tensor(&o.name, &o.kind.type_name())),
            None => self.run(inputs, wanted, options).await.and_then(|(outputs, timing)| {
                // A backstop: the v2 protocol carries tensors (Triton's ONNX Runtime backend refuses the others too).
                match outputs.iter().find(|t| t.non_tensor().is_some()) {
                    Some(t) => Err(non_tensor(&t.name, if t.non_tensor() == Some("null") { "optional" } else { "sequence" })),
                    None => Ok((outputs, timing)),
                }
            }),
        };
        self.stats.record(&result, rows, started.elapsed());
        result
    }

    /// The first output asked for (all when `wanted` is empty) that the
    /// model, graph or sequence model declares as a non-tensor value.
    /// Pipelines' outputs are their own tensors.
    fn declared_non_tensor(&self, wanted: &[String]) -> Option<&oxinfer_core::ValueInfo> {
        if matches!(self.kind, Kind::Pipeline(_)) {
            return None;
        }
        let asked = |o: &&oxinfer_core::ValueInfo| wanted.is_empty() || wanted.contains(&o.name);
        self.info.outputs.iter().filter(asked).find(|o| !matches!(o.kind, oxinfer_core::ValueKind::Tensor(_)))
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
                let Some(scheduler) = &self.scheduler else { return Err(ServerError::bad(format!("model '{}' is not a sequence model", self.model))) };
                let out = seq.step(scheduler, &self.info, c.clone(), inputs, idx, request::level(options.priority)).await?;
                return Ok((out.tensors, out.timing));
            }
            (Some(_), None) => return Err(ServerError::bad(format!("model '{}' is a sequence model: give parameters.sequence_id (with sequence_start on a sequence's first request)", self.model))),
            (None, Some(_)) => return Err(ServerError::bad(format!("model '{}' is not a sequence model; drop parameters.sequence_id", self.model))),
            (None, None) => {}
        }
        let scheduler = match (&self.kind, &self.scheduler) {
            (Kind::Graph(g), _) => return self.run_graph(g, inputs, wanted, options).await,
            (_, Some(s)) => s,
            (_, None) => return Err(ServerError::Core(oxinfer_core::Error::Backend(format!("model '{}' has no engine", self.model)))),
        };
        let (work, pick): (Work, Option<Vec<String>>) = match &self.kind {
            Kind::Graph(_) => unreachable!("graphs returned above"),
            Kind::Onnx | Kind::Torch => {
                let names = (!wanted.is_empty()).then_some(wanted);
                let idx = validate::check_request(&self.info, &inputs, names)?;
                (model_run(inputs, idx), None)
            }
            Kind::Pipeline(p) => {
                let batch = pipeline::batch(p, inputs)?;
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
        scheduler.submit(req)?;
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

impl Version {
    /// One request through a graph: its model runs queue on their models'
    /// schedulers; the outputs asked for come back in the order asked.
    async fn run_graph(&self, g: &GraphModel, inputs: Vec<InputTensor>, wanted: &[String], options: &InferOptions) -> Result<(Vec<OutputTensor>, Timing)> {
        for w in wanted {
            if !self.outputs.iter().any(|o| &o.name == w) {
                return Err(ServerError::bad(format!("unknown output '{w}' of model '{}'; it has {}", self.model, names(&self.outputs))));
            }
        }
        let inputs: Vec<InputTensor> = inputs.into_iter().map(|t| t.into_owned()).collect();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let ctl = Arc::new(RunControl::new());
        let mut gone = AbortOnDrop(Some(Arc::clone(&ctl)));
        let opts = GraphRunOptions {
            priority: request::level(options.priority),
            deadline: request::deadline(options.timeout_ms.or(self.default_timeout_ms())),
            ctl: Some(ctl),
            id: options.id.clone(),
            ..GraphRunOptions::default()
        };
        g.in_flight.fetch_add(1, Relaxed);
        let in_flight = Arc::clone(&g.in_flight);
        // Off the HTTP runtime's threads: ops before the first model (a decode) may be long.
        g.graph.run_detached(
            inputs,
            opts,
            Box::new(move |r| {
                in_flight.fetch_sub(1, Relaxed);
                let _ = tx.send(r);
            }),
        );
        let r = rx.await.map_err(|_| ServerError::Core(oxinfer_core::Error::Backend("the graph ended without an outcome".into())));
        gone.0 = None;
        g.done.fetch_add(1, Relaxed);
        let result = r??;
        if let Some(sink) = &options.nodes {
            let ran = result.nodes.iter().filter(|n| n.status == oxinfer_core::graph::NodeStatus::Ran).map(|n| (n.node.clone(), n.wall_us, n.timing.queue_us));
            sink.lock().unwrap_or_else(|e| e.into_inner()).extend(ran);
        }
        let engine_us = result.engine_us();
        let timing = Timing { infer_us: engine_us, queue_us: result.nodes.iter().map(|n| n.timing.queue_us).max().unwrap_or(0), batch_rows: 1, batch_requests: 1, ..Timing::default() };
        let mut out = Vec::new();
        for o in result.outputs {
            if !wanted.is_empty() && !wanted.contains(&o.name) {
                continue;
            }
            match o.value {
                Some(t) => out.push(t),
                // The protocol has no "skipped": an empty tensor stands for it, and the name says which.
                None => {
                    let dtype = self.outputs.iter().find(|m| m.name == o.name).map_or(DType::Float32, |m| m.dtype);
                    let data = if dtype == DType::String { oxinfer_core::OutputData::Strings(Vec::new()) } else { oxinfer_core::OutputData::Buffer(Box::new(oxinfer_core::tensor::AlignedBytes::zeroed(0))) };
                    out.push(OutputTensor { name: o.name.clone(), dtype, dims: vec![0], data });
                }
            }
        }
        if !wanted.is_empty() {
            out.sort_by_key(|t| wanted.iter().position(|w| *w == t.name));
        }
        Ok((out, timing))
    }
}

/// The refusal of a sequence, map (a ZipMap) or optional output.
fn non_tensor(name: &str, kind: &str) -> ServerError {
    let a = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    let zipmap = if kind == "sequence" || kind == "map" { ", or serve the model through a pipeline, which reads a ZipMap's probabilities as scores" } else { "" };
    ServerError::BadRequest(format!(
        "output '{name}' is not a tensor but {a} {kind}, which the v2 protocol cannot carry: request the model's tensor outputs by name{zipmap}"
    ))
}

/// The protocol's view of model values (-1 for any size; non-tensors as BYTES).
fn metas(list: &[oxinfer_core::ValueInfo]) -> Vec<TensorMeta> {
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
}

/// Loads a graph version: each model key is an ONNX file in the version
/// folder (loaded for this graph alone), or else a served model's latest
/// ready version (whose queue the graph then shares).
#[allow(clippy::too_many_arguments)]
fn load_graph(engines: &Engines, root: &Path, model: &str, version: u64, dir: &Path, path: &Path, config: ModelConfig, resolve: Resolve<'_>) -> Result<Version> {
    let text = oxinfer_core::pipeline::spec::read(path)?;
    let located = |e: oxinfer_core::Error| oxinfer_core::pipeline::locate::in_file(e, &text, &path.display().to_string());
    let spec = oxinfer_core::graph::parse(&text).map_err(located)?;
    // A vocabulary the spec names must lie in the repository too.
    for n in &spec.nodes {
        if let oxinfer_core::graph::spec::NodeKind::Op(oxinfer_core::graph::spec::OpSpec::CtcDecode { vocabulary, .. }) = &n.kind {
            inside(root, &dir.join(vocabulary))?;
        }
    }
    if config.sequence_batching.is_some() {
        return Err(ServerError::Repository(format!("model '{model}': sequence_batching applies to plain ONNX models, not graphs")));
    }
    let mut keys = Vec::new();
    spec_keys(&spec, &mut keys);
    let mut runners: HashMap<String, Arc<dyn NodeRunner>> = HashMap::new();
    for key in keys {
        let file = dir.join(&key);
        let runner: Arc<dyn NodeRunner> = if (key.ends_with(".onnx") || engines::is_torch(Path::new(&key))) && file.is_file() {
            let (backend, _) = engines.load(&inside(root, &file)?, &config, None, None, false)?;
            let info = backend.info().clone();
            Arc::new(SchedulerRunner::new(Arc::new(Scheduler::with_options(backend, scheduler_options(&config))?), info))
        } else {
            let served = resolve(&key).ok_or_else(|| ServerError::Repository(format!("model '{model}': the graph names model '{key}', which is neither an ONNX file in {} nor a ready model of the repository (load it first)", dir.display())))?;
            match (&served.kind, &served.scheduler) {
                (Kind::Onnx | Kind::Torch, Some(s)) if served.sequences.is_none() => Arc::new(SchedulerRunner::new(Arc::clone(s), served.info.clone())),
                _ => return Err(ServerError::Repository(format!("model '{model}': graph nodes run plain ONNX models; '{key}' is a {}", served.platform()))),
            }
        };
        runners.insert(key, runner);
    }
    let graph = Graph::from_spec(&spec.with_base(Some(dir)), &runners).map_err(located)?;
    let (inputs, outputs) = (metas(graph.inputs()), metas(graph.outputs()));
    let info = ModelInfo { inputs: graph.inputs().to_vec(), outputs: graph.outputs().to_vec(), ..ModelInfo::default() };
    let kind = Kind::Graph(GraphModel { graph: Arc::new(graph), in_flight: Default::default(), done: AtomicU64::new(0) });
    Ok(Version { model: model.into(), version, kind, inputs, outputs, scheduler: None, info, config, stats: Stats::default(), pool_size: 0, path: path.to_path_buf(), sequences: None })
}

/// Every model key a graph spec names, nested graphs included.
fn spec_keys(spec: &oxinfer_core::graph::GraphSpec, out: &mut Vec<String>) {
    use oxinfer_core::graph::spec::NodeKind;
    for n in &spec.nodes {
        match &n.kind {
            NodeKind::Model { model } => out.push(model.clone()),
            NodeKind::Switch(s) => out.extend(s.variants.iter().map(|v| v.model.clone())),
            NodeKind::Rank(r) => out.push(r.model.clone()),
            NodeKind::Graph(g) => spec_keys(g, out),
            NodeKind::Op(_) => {}
        }
    }
    out.sort();
    out.dedup();
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
