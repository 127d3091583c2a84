//! A loaded TorchScript model as a core `Backend`: forward runs under
//! inference mode with inputs in the signature's order; its result is split
//! into the named outputs by the layout `declare` worked out.

use oxinfer_core::backend::{Backend, ModelInfo, ModelSource, RunControl, ValueKind};
use oxinfer_core::plugin::LoadOptions;
use oxinfer_core::threads::Threads;
use oxinfer_core::{Error, InputTensor, OutputTensor};
use tch::{CModule, Device, IValue, Tensor};

use crate::convert::{from_tensor, to_tensor};
use crate::declare::{self, Declarations, Layout};
use crate::device;
use crate::error::{torch_message, TorchError};
use crate::schema::{self, InferenceMode};

pub struct TorchBackend {
    info: ModelInfo,
    module: CModule,
    device: Device,
    layout: Layout,
    slots: usize,
    /// Intra-op threads of each thread that runs forward (0: libtorch's default).
    threads: usize,
}

thread_local! {
    /// The intra-op thread count this thread last set in libtorch.
    static THREADS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Sets libtorch's intra-op threads for the calling thread. OpenMP keeps the
/// count per thread, so a count set on the loading thread does not reach the
/// workers (or the JS thread) that run forward: each sets it on first use.
fn threads_on_this_thread(n: usize) {
    if n == 0 {
        return;
    }
    THREADS.with(|c| {
        if c.get() != n {
            tch::set_num_threads(n as i32);
            c.set(n);
        }
    });
}

fn check_file(path: &std::path::Path) -> Result<(), TorchError> {
    let fail = |reason: String| TorchError::File { path: path.display().to_string(), reason };
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(fail("not a regular file".into())),
        Err(e) => return Err(fail(e.to_string())),
    }
    std::fs::File::open(path).map(|_| ()).map_err(|e| fail(e.to_string()))
}

impl TorchBackend {
    pub fn load(source: ModelSource, options: &LoadOptions) -> Result<Self, TorchError> {
        if let ModelSource::Path(p) = &source {
            check_file(p)?;
        }
        let device = device::resolve(&options.device, options.engine_dir.as_deref())?;
        // Inter-op threads can be set once, before any inter-op work; a
        // second try would throw, so later sessions keep the first count.
        if options.inter_op_threads > 1 {
            static INTEROP: std::sync::Once = std::sync::Once::new();
            let n = options.inter_op_threads as i32;
            INTEROP.call_once(|| {
                let _ = std::panic::catch_unwind(|| tch::set_num_interop_threads(n));
            });
        }
        let what = match &source {
            ModelSource::Path(p) => format!("'{}'", p.display()),
            ModelSource::Bytes(b) => format!("from {} bytes", b.len()),
        };
        let loaded = match &source {
            ModelSource::Path(p) => CModule::load_on_device(p, device),
            ModelSource::Bytes(b) => CModule::load_data_on_device(&mut std::io::Cursor::new(b), device),
        };
        let mut module = loaded.map_err(|e| {
            TorchError::Load(format!("failed to load TorchScript model {what}: {} (is it a TorchScript archive from torch.jit.save? weights saved with torch.save are not)", torch_message(&e)))
        })?;
        module.f_set_eval().map_err(|e| TorchError::Load(torch_message(&e)))?;
        let sig = schema::forward(&module)?;
        let stored = declare::from_archive(&source)?;
        let decl = Declarations { inputs: options.inputs.clone().or(stored.inputs), outputs: options.outputs.clone().or(stored.outputs) };
        let typed: Vec<String> = decl.outputs.iter().flatten().filter(|d| d.dtype.is_some()).map(|d| d.name.clone()).collect();
        let (info, layout) = declare::model_info(&sig, &decl)?;
        // TorchScript's forward may run on several threads at once; each slot
        // is a concurrent caller of the one module.
        let threads = if options.auto_threads { 1 } else { options.intra_op_threads };
        let mut backend = TorchBackend { info, module, device, layout, slots: options.pool_size.max(1), threads };
        backend.learn_output_types(&typed);
        if options.auto_threads {
            // The engine-neutral rule (oxinfer_core::threads): a light model
            // gets one thread per slot and several slots, a heavy one a
            // thread per core. A GPU model keeps one slot.
            let size = match &source {
                ModelSource::Path(p) => std::fs::metadata(p).map_or(u64::MAX, |m| m.len()),
                ModelSource::Bytes(b) => b.len() as u64,
            };
            let probe = if device == Device::Cpu && size <= Threads::LARGE_MODEL { backend.probe() } else { None };
            let (threads, slots) = if device == Device::Cpu { Threads::choose(probe, size, Threads::cores()) } else { (Threads::cores(), 1) };
            backend.threads = threads;
            backend.slots = slots;
        }
        Ok(backend)
    }

    /// Zero inputs (dynamic dims as 1), when every input's type and dims are known.
    fn zeros(&self) -> Option<Vec<IValue>> {
        let mut args = Vec::new();
        for i in &self.info.inputs {
            if i.dims.is_empty() {
                return None;
            }
            let ValueKind::Tensor(d) = i.kind else { return None };
            let kind = crate::convert::kind_of(d).ok()?;
            let dims: Vec<i64> = i.dims.iter().map(|d| if let oxinfer_core::Dim::Fixed(n) = d { *n } else { 1 }).collect();
            args.push(IValue::Tensor(Tensor::f_zeros(&dims, (kind, self.device)).ok()?));
        }
        Some(args)
    }

    /// The fastest of a few single-threaded runs on zero inputs, or None
    /// when the inputs are not declared well enough to make them. The first
    /// two runs are not timed: TorchScript's executor profiles and then
    /// optimises the graph on them, which takes milliseconds once.
    fn probe(&self) -> Option<std::time::Duration> {
        let args = self.zeros()?;
        threads_on_this_thread(1);
        let _mode = InferenceMode::enter();
        for _ in 0..2 {
            self.module.forward_is(&args).ok()?;
        }
        let mut best = std::time::Duration::MAX;
        for _ in 0..3 {
            let t = std::time::Instant::now();
            self.module.forward_is(&args).ok()?;
            let took = t.elapsed();
            if took > Threads::CLEARLY_HEAVY {
                return Some(took);
            }
            best = best.min(took);
        }
        Some(best)
    }

    /// Outputs whose type was not declared report float32 unless a run on
    /// zero inputs (possible when every input's type and dims are declared;
    /// dynamic dims as 1) shows their real types and ranks.
    fn learn_output_types(&mut self, typed: &[String]) {
        let open: Vec<usize> = (0..self.info.outputs.len()).filter(|&i| !typed.contains(&self.info.outputs[i].name)).collect();
        if open.is_empty() {
            return;
        }
        let Some(args) = self.zeros() else { return };
        // One thread: an OpenMP team made here, on the loading thread, would
        // idle beside the runners' own and crowd the cores.
        threads_on_this_thread(1);
        let _mode = InferenceMode::enter();
        let Ok(result) = self.module.forward_is(&args) else { return };
        let Ok(split) = self.split(result) else { return };
        for i in open {
            if let Some(t) = &split[i] {
                if let Some(d) = t.f_kind().ok().and_then(crate::convert::dtype_of) {
                    let o = &mut self.info.outputs[i];
                    o.kind = ValueKind::Tensor(d);
                    if o.dims.is_empty() {
                        o.dims = vec![oxinfer_core::Dim::Dynamic; t.dim()];
                    }
                }
            }
        }
    }

    pub fn device(&self) -> Device {
        self.device
    }

    fn split(&self, out: IValue) -> Result<Vec<Option<Tensor>>, TorchError> {
        let n = self.info.outputs.len();
        let unexpected = |got: &str| TorchError::Engine(format!("forward returned {got}, not the {n} output(s) its signature declares"));
        let tensor = |v: IValue, name: &str| match v {
            IValue::Tensor(t) => Ok(t),
            other => Err(TorchError::Engine(format!("output '{name}' is not a tensor ({})", ivalue_kind(&other)))),
        };
        let names = || self.info.outputs.iter().map(|o| o.name.as_str());
        Ok(match (&self.layout, out) {
            (Layout::Single, IValue::Tensor(t)) => vec![Some(t)],
            (Layout::Positional, IValue::Tuple(items) | IValue::GenericList(items)) => {
                if items.len() != n {
                    return Err(unexpected(&format!("{} values", items.len())));
                }
                items.into_iter().zip(names()).map(|(v, name)| tensor(v, name).map(Some)).collect::<Result<_, _>>()?
            }
            (Layout::Positional, IValue::TensorList(items)) => {
                if items.len() != n {
                    return Err(unexpected(&format!("{} tensors", items.len())));
                }
                items.into_iter().map(Some).collect()
            }
            (Layout::Keyed, IValue::GenericDict(entries)) => {
                let mut slots: Vec<Option<Tensor>> = (0..n).map(|_| None).collect();
                for (k, v) in entries {
                    let IValue::String(key) = k else { continue };
                    if let Some(i) = names().position(|name| name == key) {
                        slots[i] = Some(tensor(v, &key)?);
                    }
                }
                slots
            }
            (_, other) => return Err(unexpected(ivalue_kind(&other))),
        })
    }
}

fn ivalue_kind(v: &IValue) -> &'static str {
    match v {
        IValue::None => "None",
        IValue::Tensor(_) => "a tensor",
        IValue::Tuple(_) => "a tuple",
        IValue::GenericList(_) | IValue::TensorList(_) => "a list",
        IValue::GenericDict(_) => "a dict",
        IValue::Double(_) | IValue::Int(_) | IValue::Bool(_) => "a number",
        _ => "a non-tensor value",
    }
}

/// A failed forward: the inputs' fault when libtorch's message is about
/// shapes or types (the usual case once the declared checks passed),
/// otherwise the engine's.
fn forward_error(e: &tch::TchError) -> TorchError {
    let m = torch_message(e);
    let lower = m.to_lowercase();
    let about_inputs = ["shape", "dimension", "dtype", "scalar type", "mat1", "size of tensor", "sizes of tensors", "must match the size"].iter().any(|k| lower.contains(k));
    if about_inputs {
        TorchError::Input(format!("the model rejected the inputs: {m}"))
    } else {
        TorchError::Engine(format!("the model failed: {m}"))
    }
}

impl Backend for TorchBackend {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn slots(&self) -> usize {
        self.slots
    }

    fn run(&self, _slot: usize, inputs: &[InputTensor], outputs: &[usize], ctl: &RunControl) -> oxinfer_core::Result<Vec<OutputTensor>> {
        if ctl.is_aborted() {
            return Err(Error::Aborted("the run was aborted".into()));
        }
        threads_on_this_thread(self.threads);
        let _mode = InferenceMode::enter();
        let mut args = Vec::with_capacity(self.info.inputs.len());
        for decl in &self.info.inputs {
            let t = inputs
                .iter()
                .find(|t| t.name == decl.name)
                .ok_or_else(|| Error::invalid_input(&decl.name, format!("missing input '{}'", decl.name)))?;
            args.push(IValue::Tensor(to_tensor(t, self.device)?));
        }
        let result = self.module.forward_is(&args).map_err(|e| forward_error(&e))?;
        drop(args);
        let mut split = self.split(result)?;
        let mut out = Vec::with_capacity(outputs.len());
        for &i in outputs {
            let o = &self.info.outputs[i];
            let t = split[i].take().ok_or_else(|| TorchError::Engine(format!("forward's result has no entry '{}'", o.name)))?;
            let ValueKind::Tensor(reported) = o.kind else { return Err(TorchError::Engine(format!("output '{}' is not a tensor", o.name)).into()) };
            out.push(from_tensor(&o.name, t, reported, inputs)?);
        }
        Ok(out)
    }
}
