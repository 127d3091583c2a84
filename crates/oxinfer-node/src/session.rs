//! `NativeSession`: a loaded model and its scheduler: model runs, inline
//! runs, streams, abort and dispose. Pipelines build on it (see `pipeline`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::*;
use oxinfer_core::onnx::{library, Device, ModelSource, OnnxBackend, OnnxOptions};
use oxinfer_core::plugin::{Declared, LoadOptions, PluginSpec};
use oxinfer_core::scheduler::Aborted;
use oxinfer_core::{validate, Backend, Dim, Error as CoreError, Layout, ModelInfo, Scheduler};

use crate::errors::IntoNapi;
use crate::hub::{Event, Hub, NativeHub};
use crate::stream::NativeStream;
use crate::payload::Format;
use crate::{feeds, payload};

#[napi(object)]
pub struct NativeSessionOptions {
    pub intra_op_threads: u32,
    pub inter_op_threads: u32,
    pub graph_optimization: crate::options::GraphOptimization,
    pub device: String,
    pub pool_size: u32,
    pub intra_op_spinning: bool,
    pub worker_priority: crate::options::WorkerPriority,
    /// Dynamic batching: merge queued runs into batches of up to this many rows (0: off).
    pub max_batch_size: u32,
    /// Refuse runs with ERR_OVERLOADED while this many are queued (0: no limit).
    pub max_queue: u32,
    /// Priority levels (at least 1).
    pub priority_levels: u32,
    /// How long a partial batch waits for more requests, in µs (0: none).
    pub max_delay_micros: u32,
    /// Batch axis per input (default 0).
    pub batch_input_axes: Option<HashMap<String, u32>>,
    /// Batch axis per output (default 0).
    pub batch_output_axes: Option<HashMap<String, u32>>,
    /// Inputs equal across a batch, passed once.
    pub batch_shared: Option<Vec<String>>,
    /// Batch sizes to prefer when cutting (rows).
    pub preferred_batch_sizes: Option<Vec<u32>>,
    /// Variable-length inputs: the axis padded to the batch's longest request.
    pub batch_pad_axes: Option<HashMap<String, u32>>,
    /// Pad value per padded input (default 0).
    pub batch_pad_values: Option<HashMap<String, f64>>,
    /// Outputs cropped back to each caller's length along this axis.
    pub batch_output_pad_axes: Option<HashMap<String, u32>>,
    /// Largest share of padding in a merged batch (0 to 1).
    pub max_padding_waste: f64,
    /// Borrow queued runs' input buffers until they execute instead of copying them at call time.
    pub zero_copy: bool,
    /// Neither intra-op threads nor the pool size were given: the core chooses both from a measured run.
    pub auto_threads: bool,
    /// 'onnx', or 'torch' for a TorchScript model run by the torch plugin.
    pub backend: String,
    /// The torch plugin (backend 'torch').
    pub plugin: Option<NativePlugin>,
    /// Declared inputs and outputs (TorchScript files record neither types nor shapes).
    pub declared_inputs: Option<Vec<NativeDeclared>>,
    pub declared_outputs: Option<Vec<NativeDeclared>>,
    /// ONNX Runtime's CUDA memory arena limit, in bytes (0: none).
    pub gpu_memory_limit: f64,
}

/// A backend plugin library, the engine libraries to load before it, and the engine's lib folder.
#[napi(object)]
pub struct NativePlugin {
    pub path: String,
    pub preload: Vec<String>,
    pub engine_dir: Option<String>,
}

#[napi(object)]
pub struct NativeDeclared {
    pub name: String,
    #[napi(js_name = "type")]
    pub dtype: Option<String>,
    pub dims: Option<Vec<i64>>,
}

pub(crate) fn plugin_spec(p: &NativePlugin) -> PluginSpec {
    PluginSpec { path: PathBuf::from(&p.path), preload: p.preload.iter().map(PathBuf::from).collect(), engine_dir: p.engine_dir.clone() }
}

fn declared(list: &Option<Vec<NativeDeclared>>) -> Option<Vec<Declared>> {
    list.as_ref().map(|l| l.iter().map(|d| Declared { name: d.name.clone(), dtype: d.dtype.clone(), dims: d.dims.clone() }).collect())
}

/// The engine a session loads its model with.
#[derive(Clone)]
enum Engine {
    Onnx(OnnxOptions),
    Plugin(PluginSpec, LoadOptions),
}

fn engine(o: &NativeSessionOptions) -> std::result::Result<Engine, CoreError> {
    let onnx = parse_options(o)?;
    match o.backend.as_str() {
        "" | "onnx" => {
            if o.declared_inputs.is_some() || o.declared_outputs.is_some() {
                return Err(CoreError::InvalidArgument("declare applies to TorchScript models (backend 'torch'); ONNX models record their own inputs and outputs".into()));
            }
            Ok(Engine::Onnx(onnx))
        }
        "torch" => {
            if onnx.gpu_memory_limit > 0 {
                return Err(CoreError::InvalidArgument("gpuMemoryLimit applies to ONNX Runtime's CUDA provider; libtorch's CUDA allocator is configured with PYTORCH_CUDA_ALLOC_CONF".into()));
            }
            let p = o.plugin.as_ref().ok_or_else(|| CoreError::Unsupported("the torch backend is not installed".into()))?;
            let spec = plugin_spec(p);
            let device = match onnx.device {
                Device::Cpu => "cpu".to_string(),
                Device::Cuda(i) => format!("cuda:{i}"),
            };
            let load = LoadOptions {
                device,
                intra_op_threads: onnx.intra_op_threads,
                inter_op_threads: onnx.inter_op_threads,
                pool_size: onnx.pool_size,
                auto_threads: onnx.auto_threads,
                inputs: declared(&o.declared_inputs),
                outputs: declared(&o.declared_outputs),
                engine_dir: None,
            };
            Ok(Engine::Plugin(spec, load))
        }
        b => Err(CoreError::InvalidArgument(format!("backend must be 'onnx' or 'torch', got '{b}'"))),
    }
}

#[napi(object)]
pub struct NativeValueInfo {
    pub name: String,
    #[napi(js_name = "type")]
    pub kind: String,
    pub dims: Vec<Either<i64, String>>,
}

#[napi(object)]
pub struct NativeMetadata {
    pub producer: String,
    pub version: i64,
    pub description: String,
    pub domain: String,
    pub graph_name: String,
    pub custom: HashMap<String, String>,
}

fn parse_options(o: &NativeSessionOptions) -> std::result::Result<OnnxOptions, CoreError> {
    let bad = |m: String| CoreError::InvalidArgument(m);
    let device = match o.device.as_str() {
        "cpu" => Device::Cpu,
        "cuda" => Device::Cuda(0),
        d if d.starts_with("cuda:") => Device::Cuda(
            d[5..].parse::<i32>().ok().filter(|n| *n >= 0).ok_or_else(|| bad(format!("device '{d}' is not 'cpu', 'cuda' or 'cuda:N'")))?,
        ),
        d => return Err(bad(format!("device must be 'cpu', 'cuda' or 'cuda:N', got '{d}'"))),
    };
    Ok(OnnxOptions {
        intra_op_threads: o.intra_op_threads as usize,
        inter_op_threads: o.inter_op_threads as usize,
        graph_optimization: o.graph_optimization.into(),
        device,
        pool_size: o.pool_size.max(1) as usize,
        intra_op_spinning: o.intra_op_spinning,
        auto_threads: o.auto_threads,
        gpu_memory_limit: o.gpu_memory_limit.max(0.0) as usize,
    })
}

enum Source {
    Path(String),
    Bytes(Uint8Array),
}

pub struct CreateTask {
    source: Option<Source>,
    engine: Engine,
    low_priority: bool,
    max_batch: usize,
    max_queue: usize,
    levels: usize,
    max_delay: std::time::Duration,
    preferred: Vec<usize>,
    layout: Layout,
    library: String,
    hub: Arc<Hub>,
    zero_copy: bool,
}

impl Task for CreateTask {
    type Output = (Arc<Scheduler>, ModelInfo, u32);
    type JsValue = NativeSession;

    fn compute(&mut self) -> Result<Self::Output> {
        let source = self.source.take().ok_or_else(|| crate::errors::to_napi(CoreError::Backend("create ran twice".into())))?;
        let engine = self.engine.clone();
        let library = self.library.clone();
        let low = self.low_priority;
        let max_batch = self.max_batch;
        let max_queue = self.max_queue;
        let levels = self.levels;
        let max_delay = self.max_delay;
        let preferred_batch_rows = self.preferred.clone();
        let layout = self.layout.clone();
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let source = match source {
                Source::Path(p) => ModelSource::Path(PathBuf::from(p)),
                Source::Bytes(b) => ModelSource::Bytes(b.to_vec()),
            };
            let load = move || -> std::result::Result<Arc<dyn Backend>, CoreError> {
                Ok(match engine {
                    Engine::Onnx(options) => Arc::new(OnnxBackend::load(library::runtime(&PathBuf::from(&library))?, source, &options)?),
                    Engine::Plugin(spec, options) => Arc::new(spec.load(&source, options)?),
                })
            };
            // Built on a lowered thread, the engine's own intra-op threads inherit its priority.
            let backend = if low { oxinfer_core::priority::on_low_priority_thread(load)? } else { load()? };
            let info = backend.info().clone();
            let pool = backend.slots() as u32;
            if max_batch > 1 {
                layout.check(&info)?;
            }
            let options = oxinfer_core::SchedulerOptions { low_priority: low, max_batch_rows: max_batch, max_queue, priority_levels: levels, max_delay, preferred_batch_rows, layout };
            Ok((Arc::new(Scheduler::with_options(backend, options)?), info, pool))
        }))
        .unwrap_or_else(|p| Err(CoreError::from_panic(p)))
        .js()
    }

    fn resolve(&mut self, _env: Env, (scheduler, info, pool_size): Self::Output) -> Result<Self::JsValue> {
        Ok(NativeSession { scheduler: Mutex::new(Some(scheduler)), info, hub: Arc::clone(&self.hub), streams: Arc::new(AtomicUsize::new(0)), zero_copy: self.zero_copy, pool_size, borrowed: false })
    }
}

/// Loads a model off the JS thread; resolves to a `NativeSession`.
#[napi(catch_unwind, ts_return_type = "Promise<NativeSession>")]
pub fn create_session(
    hub: &NativeHub,
    model: Either<String, Uint8Array>,
    options: NativeSessionOptions,
    library: String,
) -> Result<AsyncTask<CreateTask>> {
    let low_priority = matches!(options.worker_priority, crate::options::WorkerPriority::Low);
    let max_batch = options.max_batch_size as usize;
    let max_queue = options.max_queue as usize;
    let levels = options.priority_levels.max(1) as usize;
    let max_delay = std::time::Duration::from_micros(options.max_delay_micros as u64);
    let layout = Layout {
        input_axes: options.batch_input_axes.clone().unwrap_or_default().into_iter().map(|(k, v)| (k, v as usize)).collect(),
        output_axes: options.batch_output_axes.clone().unwrap_or_default().into_iter().map(|(k, v)| (k, v as usize)).collect(),
        shared: options.batch_shared.clone().unwrap_or_default().into_iter().collect(),
        pad: {
            let values = options.batch_pad_values.clone().unwrap_or_default();
            options.batch_pad_axes.clone().unwrap_or_default().into_iter().map(|(k, a)| {
                let v = values.get(&k).copied().unwrap_or(0.0);
                (k, (a as usize, v))
            }).collect()
        },
        output_pad: options.batch_output_pad_axes.clone().unwrap_or_default().into_iter().map(|(k, v)| (k, v as usize)).collect(),
        max_pad_waste: options.max_padding_waste.clamp(0.0, 1.0),
    };
    let preferred = options.preferred_batch_sizes.clone().unwrap_or_default().into_iter().map(|r| r as usize).collect();
    let zero_copy = options.zero_copy;
    let engine = engine(&options).js()?;
    let source = match model {
        Either::A(p) => Source::Path(p),
        Either::B(b) => Source::Bytes(b),
    };
    Ok(AsyncTask::new(CreateTask { source: Some(source), engine, low_priority, max_batch, max_queue, levels, max_delay, preferred, layout, library, hub: Arc::clone(&hub.hub), zero_copy }))
}

#[napi]
pub struct NativeSession {
    scheduler: Mutex<Option<Arc<Scheduler>>>,
    info: ModelInfo,
    hub: Arc<Hub>,
    /// Streams open on this session.
    streams: Arc<AtomicUsize>,
    /// Stream calls borrow their callers' buffers (`zeroCopy`); by default
    /// they are copied at call time, so a caller that writes to or transfers
    /// a buffer after `call` returns cannot change or free what the call reads.
    zero_copy: bool,
    /// Engine sessions in the pool (given, or chosen by the thread rule).
    pool_size: u32,
    /// The scheduler belongs to a server: dispose lets go of it instead.
    borrowed: bool,
}


pub(crate) fn value_infos(list: &[oxinfer_core::ValueInfo]) -> Vec<NativeValueInfo> {
    list.iter()
        .map(|v| NativeValueInfo {
            name: v.name.clone(),
            kind: v.kind.type_name(),
            dims: v
                .dims
                .iter()
                .map(|d| match d {
                    Dim::Fixed(n) => Either::A(*n),
                    Dim::Symbolic(s) => Either::B(s.clone()),
                    Dim::Dynamic => Either::A(-1),
                })
                .collect(),
        })
        .collect()
}

impl NativeSession {
    /// A session over a scheduler made elsewhere (a served model's), so that
    /// in-process runs and HTTP requests share one queue and its batches.
    pub(crate) fn over(scheduler: Arc<Scheduler>, info: ModelInfo, hub: Arc<Hub>, pool_size: u32) -> NativeSession {
        NativeSession { scheduler: Mutex::new(Some(scheduler)), info, hub, streams: Arc::new(AtomicUsize::new(0)), zero_copy: false, pool_size, borrowed: true }
    }

    pub(crate) fn model_info(&self) -> &ModelInfo {
        &self.info
    }

    /// The completion channel runs of this session report through.
    pub(crate) fn hub(&self) -> Arc<Hub> {
        Arc::clone(&self.hub)
    }

    pub(crate) fn scheduler(&self) -> std::result::Result<Arc<Scheduler>, CoreError> {
        self.scheduler
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| CoreError::Disposed("the session was disposed".into()))
    }

    fn request(&self, env: &Env, feeds: &Unknown, outputs: Option<Vec<String>>) -> std::result::Result<(Arc<Scheduler>, Vec<oxinfer_core::InputTensor>, Vec<usize>), CoreError> {
        let scheduler = self.scheduler()?;
        let inputs = feeds::parse(env.raw(), feeds.value().value)?;
        let wanted = validate::check_request(&self.info, &inputs, outputs.as_deref())?;
        Ok((scheduler, inputs, wanted))
    }
}

#[napi]
impl NativeSession {
    #[napi(getter)]
    pub fn inputs(&self) -> Vec<NativeValueInfo> {
        value_infos(&self.info.inputs)
    }

    #[napi(getter)]
    pub fn outputs(&self) -> Vec<NativeValueInfo> {
        value_infos(&self.info.outputs)
    }

    #[napi(getter)]
    pub fn metadata(&self) -> NativeMetadata {
        let m = &self.info.metadata;
        NativeMetadata {
            producer: m.producer.clone(),
            version: m.version,
            description: m.description.clone(),
            domain: m.domain.clone(),
            graph_name: m.graph_name.clone(),
            custom: m.custom.iter().cloned().collect(),
        }
    }

    /// Validates and queues many runs at once, one native call per event-loop
    /// turn (see `submit`): `list` is flat, `[id, feeds, outputs | null,
    /// timeoutMs, priority | undefined, ...]`. Runs refused (invalid,
    /// overloaded or disposed) settle through the hub with their error.
    #[napi(catch_unwind)]
    pub fn submit_many(&self, env: Env, list: Unknown) -> Result<()> {
        let raw = env.raw();
        crate::submit::submit_list(raw, list.value().value, 5, self.scheduler(), &self.hub, Format::Plain, |at| {
            let inputs = feeds::parse(raw, at(1)?)?;
            let outputs = crate::js::strings_or_null(raw, at(2)?)?;
            let wanted = validate::check_request(&self.info, &inputs, outputs.as_deref())?;
            // Queued runs arrive here at the end of their event-loop turn: the
            // TS layer copied their buffers at call time (unless `zeroCopy`).
            Ok(oxinfer_core::model_run(inputs, wanted))
        })
        .js()
    }

    /// Runs on the calling (JS) thread. Only for runs measured shorter than a
    /// thread hop, on an idle session: the TS layer (src/session) enforces that rule.
    #[napi(catch_unwind, ts_return_type = "Array<unknown> | string")]
    pub fn run_sync(&self, env: Env, feeds: Unknown, outputs: Option<Vec<String>>) -> Result<Unknown<'_>> {
        let (scheduler, inputs, wanted) = self.request(&env, &feeds, outputs).js()?;
        let r = scheduler.run_now(oxinfer_core::model_run(inputs, wanted));
        let v = payload::outcome(env.raw(), &r, Format::Plain).js()?;
        unsafe { Unknown::from_napi_value(env.raw(), v) }
    }

    /// Opens a stateful stream: `state_outputs[k]` feeds `state_inputs[k]`
    /// on the next call; `initial` (flat feeds) gives starting values, zeros
    /// otherwise; each call returns `outputs` (default: the non-state outputs).
    #[napi(catch_unwind)]
    pub fn open_stream(&self, env: Env, state_outputs: Vec<String>, state_inputs: Vec<String>, initial: Option<Unknown>, outputs: Option<Vec<String>>) -> Result<NativeStream> {
        let scheduler = self.scheduler().js()?;
        let info = &self.info;
        let bad = |m: String| crate::errors::to_napi(CoreError::InvalidArgument(m));
        if state_outputs.len() != state_inputs.len() {
            return Err(bad("state outputs and inputs must pair up".into()));
        }
        let mut pairs = Vec::with_capacity(state_outputs.len());
        for (o, i) in state_outputs.iter().zip(&state_inputs) {
            let oi = info.outputs.iter().position(|x| &x.name == o).ok_or_else(|| bad(format!("stream: unknown state output '{o}'; the model's outputs are: {}", names(&info.outputs))))?;
            let ii = info.inputs.iter().position(|x| &x.name == i).ok_or_else(|| bad(format!("stream: unknown state input '{i}'; the model's inputs are: {}", names(&info.inputs))))?;
            pairs.push((oi, ii));
        }
        let initial = match initial {
            Some(v) => feeds::parse(env.raw(), v.value().value).js()?.into_iter().map(|t| t.into_owned()).collect(),
            None => Vec::new(),
        };
        let outputs = match outputs {
            Some(list) => validate::check_outputs(info, Some(&list)).js()?,
            None => {
                let rest: Vec<String> = info.outputs.iter().enumerate().filter(|(k, _)| !pairs.iter().any(|(o, _)| o == k)).map(|(_, o)| o.name.clone()).collect();
                validate::check_outputs(info, Some(&rest)).js()?
            }
        };
        let spec = oxinfer_core::stream::StreamSpec { state: pairs, initial };
        let inner = oxinfer_core::stream::Stream::open(scheduler, info, spec, Arc::clone(&self.streams)).js()?;
        Ok(NativeStream { inner, hub: Arc::clone(&self.hub), outputs, zero_copy: self.zero_copy })
    }

    /// How many runs may execute at once: the pool the session was given, or chose.
    #[napi(getter)]
    pub fn pool_size(&self) -> u32 {
        self.pool_size
    }

    /// Streams open on this session.
    #[napi(getter)]
    pub fn open_streams(&self) -> u32 {
        self.streams.load(Ordering::SeqCst) as u32
    }

    /// 0: unknown or finished; 1: removed from the queue (settle now);
    /// 2: executing, asked to stop (its completion follows).
    #[napi]
    pub fn abort(&self, id: f64) -> u32 {
        let Ok(s) = self.scheduler() else { return 0 };
        match s.abort(id as u64) {
            Aborted::Dequeued(_) => 1,
            Aborted::Signalled => 2,
            Aborted::Unknown => 0,
        }
    }

    /// What the session's requests did since it loaded (JSON): successes,
    /// failures by code, executions, mean time per stage, percentiles.
    #[napi]
    pub fn stats(&self) -> Result<String> {
        let s = self.scheduler().js()?;
        Ok(serde_json::to_string(&s.stats()).unwrap_or_default())
    }

    /// Queued plus executing runs.
    #[napi(getter)]
    pub fn pending(&self) -> u32 {
        self.scheduler().map(|s| s.pending() as u32).unwrap_or(0)
    }

    /// Starts disposal; `Event::Disposed(id)` follows once executing runs end.
    /// Returns false when already disposed.
    #[napi(catch_unwind)]
    pub fn dispose(&self, id: f64) -> bool {
        let Some(s) = self.scheduler.lock().unwrap_or_else(|e| e.into_inner()).take() else { return false };
        let hub = Arc::clone(&self.hub);
        if self.borrowed {
            // A served model's scheduler: this handle lets go; the server keeps serving.
            drop(s);
            hub.push(Event::Disposed(id as u64));
            return true;
        }
        let keep = Arc::clone(&s);
        s.dispose(Box::new(move || {
            // Dropping the last handle frees the engine sessions before JS hears back.
            drop(keep);
            hub.push(Event::Disposed(id as u64));
        }));
        true
    }
}


fn names(list: &[oxinfer_core::ValueInfo]) -> String {
    list.iter().map(|v| format!("'{}'", v.name)).collect::<Vec<_>>().join(", ")
}
