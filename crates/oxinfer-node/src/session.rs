//! `NativeSession`: a loaded model and its scheduler, driven by `index.ts`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::*;
use oxinfer_core::onnx::{library, Device, GraphOptimization, ModelSource, OnnxBackend, OnnxOptions};
use oxinfer_core::scheduler::Aborted;
use oxinfer_core::{validate, Backend, Dim, Error as CoreError, Job, ModelInfo, RunControl, Scheduler};

use crate::errors::IntoNapi;
use crate::hub::{Event, Hub, NativeHub};
use crate::pipeline::NativePipeline;
use crate::stream::NativeStream;
use oxinfer_core::pipeline::RunOptions;
use crate::payload::Format;
use crate::{feeds, payload};

#[napi(object)]
pub struct NativeSessionOptions {
    pub intra_op_threads: u32,
    pub inter_op_threads: u32,
    pub graph_optimization: String,
    pub device: String,
    pub pool_size: u32,
    pub intra_op_spinning: bool,
    /// 'low' (default) or 'normal'.
    pub worker_priority: String,
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
    let graph_optimization = match o.graph_optimization.as_str() {
        "none" => GraphOptimization::None,
        "basic" => GraphOptimization::Basic,
        "extended" => GraphOptimization::Extended,
        "all" => GraphOptimization::All,
        g => return Err(bad(format!("graphOptimization must be 'none', 'basic', 'extended' or 'all', got '{g}'"))),
    };
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
        graph_optimization,
        device,
        pool_size: o.pool_size.max(1) as usize,
        intra_op_spinning: o.intra_op_spinning,
    })
}

enum Source {
    Path(String),
    Bytes(Uint8Array),
}

pub struct CreateTask {
    source: Option<Source>,
    options: OnnxOptions,
    low_priority: bool,
    max_batch: usize,
    max_queue: usize,
    levels: usize,
    max_delay: std::time::Duration,
    preferred: Vec<usize>,
    layout: oxinfer_core::batch::Layout,
    library: String,
    hub: Arc<Hub>,
}

impl Task for CreateTask {
    type Output = (Arc<Scheduler>, ModelInfo);
    type JsValue = NativeSession;

    fn compute(&mut self) -> Result<Self::Output> {
        let source = self.source.take().ok_or_else(|| Error::from_reason("create ran twice"))?;
        let options = self.options.clone();
        let library = self.library.clone();
        let low = self.low_priority;
        let max_batch = self.max_batch;
        let max_queue = self.max_queue;
        let levels = self.levels;
        let max_delay = self.max_delay;
        let preferred_batch_rows = self.preferred.clone();
        let layout = self.layout.clone();
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let rt = library::runtime(&PathBuf::from(&library))?;
            let source = match source {
                Source::Path(p) => ModelSource::Path(PathBuf::from(p)),
                Source::Bytes(b) => ModelSource::Bytes(b.to_vec()),
            };
            // Built on a lowered thread, ORT's own intra-op threads inherit its priority.
            let backend = if low {
                oxinfer_core::priority::on_low_priority_thread(move || OnnxBackend::load(rt, source, &options))?
            } else {
                OnnxBackend::load(rt, source, &options)?
            };
            let info = backend.info().clone();
            if max_batch > 1 {
                check_layout(&info, &layout)?;
            }
            let backend: Arc<dyn Backend> = Arc::new(backend);
            let options = oxinfer_core::SchedulerOptions { low_priority: low, max_batch_rows: max_batch, max_queue, priority_levels: levels, max_delay, preferred_batch_rows, layout };
            Ok((Arc::new(Scheduler::with_options(backend, options)?), info))
        }))
        .unwrap_or_else(|p| Err(CoreError::from_panic(p)))
        .js()
    }

    fn resolve(&mut self, _env: Env, (scheduler, info): Self::Output) -> Result<Self::JsValue> {
        Ok(NativeSession { scheduler: Mutex::new(Some(scheduler)), info, hub: Arc::clone(&self.hub), streams: Arc::new(AtomicUsize::new(0)) })
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
    let low_priority = match options.worker_priority.as_str() {
        "low" => true,
        "normal" => false,
        p => return Err(crate::errors::to_napi(CoreError::InvalidArgument(format!("workerPriority must be 'low' or 'normal', got '{p}'")))),
    };
    let max_batch = options.max_batch_size as usize;
    let max_queue = options.max_queue as usize;
    let levels = options.priority_levels.max(1) as usize;
    let max_delay = std::time::Duration::from_micros(options.max_delay_micros as u64);
    let layout = oxinfer_core::batch::Layout {
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
    let options = parse_options(&options).js()?;
    let source = match model {
        Either::A(p) => Source::Path(p),
        Either::B(b) => Source::Bytes(b),
    };
    Ok(AsyncTask::new(CreateTask { source: Some(source), options, low_priority, max_batch, max_queue, levels, max_delay, preferred, layout, library, hub: Arc::clone(&hub.hub) }))
}

#[napi]
pub struct NativeSession {
    scheduler: Mutex<Option<Arc<Scheduler>>>,
    info: ModelInfo,
    hub: Arc<Hub>,
    /// Streams open on this session.
    streams: Arc<AtomicUsize>,
}

fn value_infos(list: &[oxinfer_core::ValueInfo]) -> Vec<NativeValueInfo> {
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
    pub(crate) fn model_info(&self) -> &ModelInfo {
        &self.info
    }

    fn scheduler(&self) -> std::result::Result<Arc<Scheduler>, CoreError> {
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
    /// turn: `list` is flat, `[id, feeds, outputs | null, timeoutMs, priority |
    /// undefined, ...]`. Returns `[id, encodedError, ...]` for the runs refused
    /// (invalid, overloaded or disposed), or null when all were queued.
    #[napi(catch_unwind, ts_return_type = "Array<number | string> | null")]
    pub fn submit_many(&self, env: Env, list: Unknown) -> Result<Unknown<'_>> {
        let raw = env.raw();
        let v = list.value().value;
        let n = crate::js::array_len(raw, v).js()?;
        let mut failed: Vec<(u64, CoreError)> = Vec::new();
        let mut jobs = Vec::with_capacity(n as usize / 5);
        let scheduler = self.scheduler();
        for k in (0..n).step_by(5) {
            let at = |i: u32| crate::js::element(raw, v, k + i);
            let id = crate::js::number(raw, at(0).js()?).js()?.unwrap_or(0.0) as u64;
            let parsed = (|| -> std::result::Result<Job, CoreError> {
                // Disposed: every run is refused alike.
                scheduler.as_ref().map_err(Clone::clone)?;
                let inputs = feeds::parse(raw, at(1)?)?;
                let outputs = crate::js::strings_or_null(raw, at(2)?)?;
                let wanted = validate::check_request(&self.info, &inputs, outputs.as_deref())?;
                let timeout = crate::js::number(raw, at(3)?)?;
                let priority = crate::js::number(raw, at(4)?)?.map(|p| p as u32);
                let hub = Arc::clone(&self.hub);
                Ok(Job {
                    id,
                    deadline: deadline(timeout),
                    priority: level(priority),
                    work: oxinfer_core::model_run(inputs, wanted),
                    ctl: Arc::new(RunControl::new()),
                    done: Box::new(move |r| hub.push(Event::Run(id, r, Format::Plain))),
                })
            })();
            match parsed {
                Ok(job) => jobs.push(job),
                Err(e) => failed.push((id, e)),
            }
        }
        if let Ok(s) = &scheduler {
            failed.extend(s.submit_many(jobs));
        }
        if failed.is_empty() {
            return unsafe { Unknown::from_napi_value(raw, crate::js::null(raw).js()?) };
        }
        let out = crate::js::new_array(raw, failed.len() * 2).js()?;
        for (i, (id, e)) in failed.iter().enumerate() {
            crate::js::set(raw, out, 2 * i as u32, crate::js::new_number(raw, *id as f64).js()?).js()?;
            crate::js::set(raw, out, 2 * i as u32 + 1, crate::payload::failure(raw, e).js()?).js()?;
        }
        unsafe { Unknown::from_napi_value(raw, out) }
    }

    /// Runs on the calling (JS) thread. Only for runs measured shorter than a
    /// thread hop, on an idle session: `index.ts` enforces that rule.
    #[napi(catch_unwind, ts_return_type = "Array<unknown> | string")]
    pub fn run_sync(&self, env: Env, feeds: Unknown, outputs: Option<Vec<String>>) -> Result<Unknown<'_>> {
        let (scheduler, inputs, wanted) = self.request(&env, &feeds, outputs).js()?;
        let r = scheduler.run_now(oxinfer_core::model_run(inputs, wanted));
        let v = payload::outcome(env.raw(), &r, Format::Plain).js()?;
        unsafe { Unknown::from_napi_value(env.raw(), v) }
    }

    /// Queues a pipeline run over a columnar batch; results arrive named, under `id`.
    #[napi(catch_unwind)]
    pub fn submit_pipeline(&self, env: Env, id: f64, pipeline: &NativePipeline, batch: Unknown, fail_fast: bool, timings: bool, timeout_ms: Option<f64>, priority: Option<u32>) -> Result<()> {
        let scheduler = self.scheduler().js()?;
        let batch = crate::pipeline::parse_batch(env.raw(), pipeline.inner.spec(), batch.value().value).js()?;
        let p = Arc::clone(&pipeline.inner);
        let hub = Arc::clone(&self.hub);
        let id = id as u64;
        let opts = RunOptions { fail_fast, timings };
        let job = Job {
            id,
            deadline: deadline(timeout_ms),
            priority: level(priority),
            work: oxinfer_core::Work::Custom(Box::new(move |backend, slot, ctl, timing| p.run(&batch, opts, backend, slot, ctl, timing))),
            ctl: Arc::new(RunControl::new()),
            done: Box::new(move |r| hub.push(Event::Run(id, r, Format::Packed))),
        };
        scheduler.submit(job).js()
    }

    /// A pipeline run on the calling thread (the inline rule applies, as for `runSync`).
    #[napi(catch_unwind, ts_return_type = "Array<unknown> | string")]
    pub fn run_pipeline_sync(&self, env: Env, pipeline: &NativePipeline, batch: Unknown, fail_fast: bool, timings: bool) -> Result<Unknown<'_>> {
        let scheduler = self.scheduler().js()?;
        let batch = crate::pipeline::parse_batch(env.raw(), pipeline.inner.spec(), batch.value().value).js()?;
        let p = Arc::clone(&pipeline.inner);
        let opts = RunOptions { fail_fast, timings };
        let r = scheduler.run_now(oxinfer_core::Work::Custom(Box::new(move |backend, slot, ctl, timing| p.run(&batch, opts, backend, slot, ctl, timing))));
        let v = payload::outcome(env.raw(), &r, Format::Packed).js()?;
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
        Ok(NativeStream { inner, hub: Arc::clone(&self.hub), outputs })
    }

    /// Streams open on this session.
    #[napi(getter)]
    pub fn open_streams(&self) -> u32 {
        self.streams.load(Ordering::SeqCst) as u32
    }

    /// Starts a batch job of `pipeline` over a file; its events arrive
    /// through the hub under `id` (see `payload::job_event`).
    #[napi(catch_unwind)]
    pub fn start_job(&self, id: f64, pipeline: &NativePipeline, options: crate::job::NativeJobOptions) -> Result<crate::job::NativeJob> {
        let scheduler = self.scheduler().js()?;
        crate::job::start(scheduler, Arc::clone(&pipeline.inner), Arc::clone(&self.hub), id as u64, &options)
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

/// A queue deadline `timeout_ms` from now (none when absent or 0).
fn deadline(timeout_ms: Option<f64>) -> Option<std::time::Instant> {
    timeout_ms.filter(|t| *t > 0.0).map(|t| std::time::Instant::now() + std::time::Duration::from_secs_f64(t / 1000.0))
}

/// JS counts priority levels from 1 (Triton's convention); the default is the least urgent.
fn level(priority: Option<u32>) -> usize {
    priority.map(|p| p.saturating_sub(1) as usize).unwrap_or(usize::MAX)
}

/// Batching needs a dynamic dim on every batched input's batch axis, and
/// names that exist.
fn check_layout(info: &ModelInfo, layout: &oxinfer_core::batch::Layout) -> std::result::Result<(), CoreError> {
    let bad = |m: String| Err(CoreError::InvalidArgument(m));
    for name in layout.input_axes.keys().chain(layout.shared.iter()) {
        if !info.inputs.iter().any(|i| &i.name == name) {
            return bad(format!("batching names an unknown input '{name}'"));
        }
    }
    for name in layout.output_axes.keys().chain(layout.output_pad.keys()) {
        if !info.outputs.iter().any(|o| &o.name == name) {
            return bad(format!("batching names an unknown output '{name}'"));
        }
    }
    for (name, &(pad_axis, _)) in &layout.pad {
        let Some(i) = info.inputs.iter().find(|i| &i.name == name) else {
            return bad(format!("batching names an unknown input '{name}'"));
        };
        let axis = layout.input_axes.get(name).copied().unwrap_or(0);
        if layout.shared.contains(name) {
            return bad(format!("batching: input '{name}' cannot be both shared and padded"));
        }
        if pad_axis == axis {
            return bad(format!("batching: input '{name}' pads axis {pad_axis}, which is its batch axis"));
        }
        if !matches!(i.dims.get(pad_axis), Some(Dim::Symbolic(_) | Dim::Dynamic)) {
            return bad(format!(
                "batching: input '{name}' pads axis {pad_axis}, but that dim is not dynamic (dims {})",
                validate::show_dims(&i.dims)
            ));
        }
    }
    for (name, &pad_axis) in &layout.output_pad {
        if layout.output_axes.get(name).copied().unwrap_or(0) == pad_axis {
            return bad(format!("batching: output '{name}' crops axis {pad_axis}, which is its batch axis"));
        }
    }
    if !layout.output_pad.is_empty() && layout.pad.is_empty() {
        return bad("batching: outputs crop to the request's length, but no input is padded".into());
    }
    for i in info.inputs.iter().filter(|i| !layout.shared.contains(&i.name)) {
        let axis = layout.input_axes.get(&i.name).copied().unwrap_or(0);
        if !matches!(i.dims.get(axis), Some(Dim::Symbolic(_) | Dim::Dynamic)) {
            return bad(format!(
                "batching needs a dynamic batch dim on every input, but input '{}' has dims {} (batch axis {axis}); declare its axis, or mark it shared",
                i.name,
                validate::show_dims(&i.dims)
            ));
        }
    }
    Ok(())
}
