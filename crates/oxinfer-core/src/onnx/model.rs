//! A loaded ONNX model with a pool of ORT sessions sharing pre-packed weights.

use std::sync::{Arc, Mutex};

use ort::ep::ExecutionProvider;
use ort::session::builder::{GraphOptimizationLevel, PrepackedWeights, SessionBuilder};
use ort::session::{OutputSelector, RunOptions, Session};
use ort::session::HasSelectedOutputs;

use super::convert::{from_value, to_value, value_info};
use super::library::Runtime;
use crate::threads::Threads;
use crate::backend::{Backend, Dim, ModelInfo, ModelMetadata, ModelSource, RunControl, ValueKind};
use crate::error::{Error, Result};
use crate::tensor::{AlignedBytes, DType, InputData, InputTensor, OutputTensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GraphOptimization {
    None,
    Basic,
    Extended,
    #[default]
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Device {
    #[default]
    Cpu,
    Cuda(i32),
}

/// Options of an ONNX session. Zero thread counts leave ORT's own default.
#[derive(Clone, Debug)]
pub struct OnnxOptions {
    pub intra_op_threads: usize,
    pub inter_op_threads: usize,
    pub graph_optimization: GraphOptimization,
    pub device: Device,
    pub pool_size: usize,
    pub intra_op_spinning: bool,
    /// Choose intra-op threads and the pool size from a measured run (the
    /// user set neither): see `Threads`.
    pub auto_threads: bool,
    /// The CUDA execution provider's memory arena limit in bytes (0: none).
    pub gpu_memory_limit: usize,
}

impl Default for OnnxOptions {
    fn default() -> Self {
        OnnxOptions {
            intra_op_threads: 0,
            inter_op_threads: 0,
            graph_optimization: GraphOptimization::All,
            device: Device::Cpu,
            pool_size: 1,
            intra_op_spinning: false,
            auto_threads: false,
            gpu_memory_limit: 0,
        }
    }
}

pub struct OnnxBackend {
    info: ModelInfo,
    slots: Vec<Mutex<Session>>,
    _weights: PrepackedWeights,
}

/// `RunOptions` whose only cross-thread use is `terminate`, which ORT
/// implements as an atomic flag.
struct Terminable(RunOptions<HasSelectedOutputs>);
// SAFETY: no pre-allocated outputs are selected, so sharing only exposes `terminate`.
unsafe impl Sync for Terminable {}

fn load_err(source: &ModelSource, e: impl std::fmt::Display) -> Error {
    match source {
        ModelSource::Path(p) => Error::ModelLoad(format!("failed to load model '{}': {e}", p.display())),
        ModelSource::Bytes(b) => Error::ModelLoad(format!("failed to load model from {} bytes: {e}", b.len())),
    }
}

impl OnnxBackend {
    pub fn load(rt: &Runtime, source: ModelSource, opts: &OnnxOptions) -> Result<Self> {
        if opts.pool_size == 0 {
            return Err(Error::InvalidArgument("poolSize must be at least 1".into()));
        }
        if let ModelSource::Path(p) = &source {
            // Checked here so that a missing or unreadable file is `File`, and
            // only what ONNX Runtime cannot parse is `ModelLoad`. Metadata
            // first: opening a FIFO would block.
            match std::fs::metadata(p) {
                Ok(m) if m.is_file() => {}
                Ok(_) => return Err(Error::file("the model", p, "not a regular file")),
                Err(e) => return Err(Error::file("the model", p, e)),
            }
            if let Err(e) = std::fs::File::open(p) {
                return Err(Error::file("the model", p, e));
            }
        }
        if let ModelSource::Bytes(b) = &source {
            if b.is_empty() {
                return Err(load_err(&source, "the model bytes are empty"));
            }
        }
        if let Device::Cuda(id) = opts.device {
            let available = ort::ep::CUDA::is_available().unwrap_or(false);
            if !available {
                return Err(Error::Unsupported(format!(
                    "device 'cuda:{id}' was requested, but the ONNX Runtime library at '{}' (version {}) has no CUDA execution provider",
                    rt.path.display(),
                    rt.version
                )));
            }
        }
        let weights = PrepackedWeights::new();
        let mut opts = opts.clone();
        if opts.auto_threads {
            (opts.intra_op_threads, opts.pool_size) = (1, 1);
        }
        let mut slots = Vec::with_capacity(opts.pool_size);
        for _ in 0..opts.pool_size {
            slots.push(Mutex::new(slot(rt, &opts, &weights, &source)?));
        }
        let info = {
            let s = slots[0].lock().unwrap_or_else(|e| e.into_inner());
            let inputs = s.inputs().iter().map(|o| value_info(o.name(), o.dtype())).collect();
            let outputs = s.outputs().iter().map(|o| value_info(o.name(), o.dtype())).collect();
            let metadata = s.metadata().map(|m| {
                let custom = m
                    .custom_keys()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|k| {
                        let v = m.custom(&k).unwrap_or_default();
                        (k, v)
                    })
                    .collect();
                ModelMetadata {
                    producer: m.producer().unwrap_or_default(),
                    // ORT reports i64::MAX when the model sets no version.
                    version: m.version().filter(|v| *v != i64::MAX).unwrap_or(0),
                    description: m.description().unwrap_or_default(),
                    domain: m.domain().unwrap_or_default(),
                    graph_name: m.name().unwrap_or_default(),
                    custom,
                }
            });
            ModelInfo { inputs, outputs, metadata: metadata.unwrap_or_default() }
        };
        let mut backend = OnnxBackend { info, slots, _weights: weights };
        if opts.auto_threads {
            let size = match &source {
                ModelSource::Path(p) => std::fs::metadata(p).map_or(u64::MAX, |m| m.len()),
                ModelSource::Bytes(b) => b.len() as u64,
            };
            // Probed only where the rule can pay off: on the CPU, and for a
            // model small enough that a pool of copies is cheap.
            let probe = if matches!(opts.device, Device::Cpu) && size <= Threads::LARGE_MODEL { backend.probe() } else { None };
            let (threads, pool) = match opts.device {
                Device::Cpu => Threads::choose(probe, size, Threads::cores()),
                // A GPU session per slot is not what a light model needs.
                _ => (Threads::cores(), 1),
            };
            if threads > 1 {
                opts.intra_op_threads = threads;
                backend.slots[0] = Mutex::new(slot(rt, &opts, &backend._weights, &source)?);
            }
            for _ in 1..pool {
                backend.slots.push(Mutex::new(slot(rt, &opts, &backend._weights, &source)?));
            }
        }
        Ok(backend)
    }

    /// The fastest of a few runs on zero inputs (dynamic dims as 1) on slot
    /// 0, fetching its tensor outputs; None when the model cannot be probed
    /// that way (non-tensor or string inputs, no tensor output, or a run that
    /// fails on zeros).
    fn probe(&self) -> Option<std::time::Duration> {
        let mut inputs = Vec::with_capacity(self.info.inputs.len());
        for v in &self.info.inputs {
            let ValueKind::Tensor(dtype) = &v.kind else { return None };
            if *dtype == DType::String {
                return None;
            }
            let dims: Vec<i64> = v.dims.iter().map(|d| if let Dim::Fixed(n) = d { (*n).max(0) } else { 1 }).collect();
            // A model declaring huge fixed inputs is not light: no probe.
            let len = dims.iter().try_fold(dtype.size(), |acc, &d| acc.checked_mul(d as usize)).filter(|&n| n <= Threads::MAX_PROBE_BYTES)?;
            inputs.push(InputTensor { name: v.name.clone(), dtype: *dtype, dims, data: InputData::Owned(AlignedBytes::zeroed(len)) });
        }
        // Tensor outputs only: ONNX Runtime's values for an empty optional
        // cannot even be wrapped (ort panics reading their type), so the
        // probe must not ask for them, or such a model would not load.
        let outputs: Vec<usize> = (0..self.info.outputs.len()).filter(|&i| matches!(self.info.outputs[i].kind, ValueKind::Tensor(_))).collect();
        if outputs.is_empty() {
            return None;
        }
        let ctl = RunControl::new();
        let mut best = std::time::Duration::MAX;
        for k in 0..4 {
            let t = std::time::Instant::now();
            self.run(0, &inputs, &outputs, &ctl).ok()?;
            let took = t.elapsed();
            if took > Threads::CLEARLY_HEAVY {
                return Some(took);
            }
            // The first run pays one-off allocations: it only screens.
            if k > 0 {
                best = best.min(took);
            }
        }
        Some(best)
    }
}

/// One engine session of the pool.
fn slot(rt: &Runtime, opts: &OnnxOptions, weights: &PrepackedWeights, source: &ModelSource) -> Result<Session> {
    let mut b = builder(rt, opts, weights)?;
    match source {
        ModelSource::Path(p) => b.commit_from_file(p),
        ModelSource::Bytes(bytes) => b.commit_from_memory(bytes),
    }
    .map_err(|e| match e.code() {
        ort::error::ErrorCode::ExecutionProviderFailure => Error::Unsupported(e.message().to_string()),
        _ => load_err(source, e.message()),
    })
}

fn builder(rt: &Runtime, opts: &OnnxOptions, weights: &PrepackedWeights) -> Result<SessionBuilder> {
    let e = |e: ort::Error<SessionBuilder>| Error::Backend(format!("configuring the session: {}", e.message()));
    let mut b = Session::builder(&rt.env).map_err(|e| Error::Backend(e.message().to_string()))?;
    if opts.intra_op_threads > 0 {
        b = b.with_intra_threads(opts.intra_op_threads).map_err(e)?;
    }
    if opts.inter_op_threads > 0 {
        b = b.with_inter_threads(opts.inter_op_threads).map_err(e)?;
        if opts.inter_op_threads > 1 {
            b = b.with_parallel_execution(true).map_err(e)?;
        }
    }
    b = b.with_intra_op_spinning(opts.intra_op_spinning).map_err(e)?;
    b = b.with_inter_op_spinning(opts.intra_op_spinning).map_err(e)?;
    let level = match opts.graph_optimization {
        GraphOptimization::None => GraphOptimizationLevel::Disable,
        GraphOptimization::Basic => GraphOptimizationLevel::Level1,
        GraphOptimization::Extended => GraphOptimizationLevel::Level2,
        GraphOptimization::All => GraphOptimizationLevel::Level3,
    };
    b = b.with_optimization_level(level).map_err(e)?;
    b = b.with_prepacked_weights(weights).map_err(e)?;
    if let Device::Cuda(id) = opts.device {
        let mut cuda = ort::ep::CUDA::default().with_device_id(id);
        if opts.gpu_memory_limit > 0 {
            cuda = cuda.with_memory_limit(opts.gpu_memory_limit);
        }
        b = b
            .with_execution_providers([cuda.build().error_on_failure()])
            .map_err(|e| cuda_unavailable(id, rt, e.message()))?;
    }
    Ok(b)
}

/// Why CUDA cannot be used, as a sentence on what is missing, from ONNX
/// Runtime's own report (a source location, then the reason).
fn cuda_unavailable(id: i32, rt: &Runtime, raw: &str) -> Error {
    let reason = raw.rsplit(" : ").next().unwrap_or(raw).trim();
    let missing = reason
        .strip_prefix("Failed to load library ")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|lib| std::path::Path::new(lib).file_name())
        .map(|f| f.to_string_lossy().into_owned());
    let what = match missing {
        Some(file) => format!("it cannot load {file} (missing, or its CUDA and cuDNN libraries are)"),
        None => format!("ONNX Runtime reports: {reason}"),
    };
    Error::Unsupported(format!(
        "device 'cuda:{id}' needs ONNX Runtime's CUDA execution provider beside the library at '{}', and {what}. \
         Point OXINFER_ORT_DYLIB or configure({{ ortLibrary }}) at an ONNX Runtime build with the CUDA provider, or use device 'cpu'",
        rt.path.display()
    ))
}

impl Backend for OnnxBackend {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn slots(&self) -> usize {
        self.slots.len()
    }

    fn run(&self, slot: usize, inputs: &[InputTensor], outputs: &[usize], ctl: &RunControl) -> Result<Vec<OutputTensor>> {
        let mut session = self.slots[slot % self.slots.len()].lock().unwrap_or_else(|e| e.into_inner());
        let values = inputs
            .iter()
            .map(|t| Ok((std::borrow::Cow::Borrowed(t.name.as_str()), to_value(t)?)))
            .collect::<Result<Vec<_>>>()?;
        let selector = outputs.iter().fold(OutputSelector::no_default(), |s, &i| s.with(self.info.outputs[i].name.as_str()));
        let opts = RunOptions::new().map_err(|e| Error::Backend(e.message().to_string()))?.with_outputs(selector);
        let opts = Arc::new(Terminable(opts));
        let stop = Arc::clone(&opts);
        if !ctl.arm(Box::new(move || {
            let _ = stop.0.terminate();
        })) {
            return Err(Error::Aborted("the run was aborted".into()));
        }
        let failed = |e: ort::Error| {
            if ctl.is_aborted() {
                Error::Aborted("the run was aborted".into())
            } else if e.code() == ort::error::ErrorCode::InvalidArgument {
                Error::InvalidInput { message: e.message().to_string(), input: None, row: None, field: None }
            } else {
                Error::Backend(e.message().to_string())
            }
        };
        // ort cannot return an empty optional (it panics reading its type): such requests run through the C API.
        if outputs.iter().any(|&i| self.info.outputs[i].kind == ValueKind::Optional) {
            let wanted: Vec<(&str, bool)> =
                outputs.iter().map(|&i| (self.info.outputs[i].name.as_str(), self.info.outputs[i].kind == ValueKind::Optional)).collect();
            let result = super::optional::run(&mut session, &values, &wanted, ort::AsPointer::ptr(&opts.0));
            ctl.disarm();
            let outs = result.map_err(failed)?;
            drop(session);
            return outs
                .into_iter()
                .zip(wanted)
                .map(|(v, (name, _))| match v {
                    Some(v) => from_value(name, v),
                    // An empty optional: JSON null, as a non-tensor value.
                    None => Ok(OutputTensor::value(name, "null".into())),
                })
                .collect();
        }
        let result = session.run_with_options(values, &opts.0);
        ctl.disarm();
        let mut outs = result.map_err(failed)?;
        let mut tensors = Vec::with_capacity(outputs.len());
        for &i in outputs {
            let name = &self.info.outputs[i].name;
            let v = outs.remove(name.as_str()).ok_or_else(|| Error::Backend(format!("the engine returned no output '{name}'")))?;
            tensors.push(from_value(name, v)?);
        }
        drop(outs);
        Ok(tensors)
    }
}
