//! A loaded TorchScript model as a core `Backend`: forward runs under
//! inference mode with inputs in the signature's order; its result is split
//! into the named outputs by the layout `declare` worked out.

use oxinfer_core::backend::{Backend, ModelInfo, ModelSource, RunControl, ValueKind};
use oxinfer_core::plugin::LoadOptions;
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
    /// Output types that were declared (checked on every run); undeclared
    /// outputs report the type the model returns.
    declared: Vec<bool>,
    slots: usize,
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
        // Thread counts are process-wide in libtorch: the last session to set them wins.
        if options.intra_op_threads > 0 {
            tch::set_num_threads(options.intra_op_threads as i32);
        }
        if options.inter_op_threads > 0 && tch::get_num_interop_threads() != options.inter_op_threads as i32 {
            // libtorch allows this once, before any inter-op work; later calls would abort.
            static INTEROP: std::sync::Once = std::sync::Once::new();
            INTEROP.call_once(|| tch::set_num_interop_threads(options.inter_op_threads as i32));
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
        let declared = decl.outputs.as_ref().map(|l| l.iter().filter(|d| d.dtype.is_some()).map(|d| d.name.clone()).collect::<Vec<_>>()).unwrap_or_default();
        let (info, layout) = declare::model_info(&sig, &decl)?;
        let declared = info.outputs.iter().map(|o| declared.contains(&o.name)).collect();
        // TorchScript's forward may run on several threads at once; each slot
        // is a concurrent caller of the one module.
        let slots = options.pool_size.max(1);
        Ok(TorchBackend { info, module, device, layout, declared, slots })
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
    let about_inputs = ["shape", "size", "dimension", "dtype", "scalar type", "expected", "must match", "mat1"].iter().any(|k| lower.contains(k));
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
            let declared = match (&o.kind, self.declared[i]) {
                (ValueKind::Tensor(d), true) => Some(*d),
                _ => None,
            };
            out.push(from_tensor(&o.name, t, declared, inputs)?);
        }
        Ok(out)
    }
}
