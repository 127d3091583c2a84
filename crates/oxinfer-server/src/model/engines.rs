//! The engines a repository's models load on: ONNX Runtime, and the torch
//! plugin when the server was given one. A model file's extension picks the
//! engine (`.pt`, `.pth`, `.pts`, `.torchscript`: TorchScript).

use std::path::Path;
use std::sync::Arc;

use oxinfer_core::onnx::library::Runtime;
use oxinfer_core::onnx::{Device, ModelSource, OnnxBackend, OnnxOptions};
use oxinfer_core::plugin::{Declared, LoadOptions, PluginSpec};
use oxinfer_core::Backend;

use crate::error::{Result, ServerError};
use crate::protocol::parse_datatype;
use crate::repository::config::{ModelConfig, TensorConfig};

/// Triton's default model file for its PyTorch backend.
pub const TORCH_FILE: &str = "model.pt";

/// Why TorchScript models cannot load when nothing more is known.
pub const NO_TORCH: &str = "the torch backend is not installed (npm install @oxinfer/torch, then npx oxinfer-torch-install)";

pub struct Engines {
    pub onnx: &'static Runtime,
    /// The torch plugin, or why there is none.
    pub torch: std::result::Result<PluginSpec, String>,
}

/// Whether `path` names a TorchScript archive.
pub fn is_torch(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref(), Some("pt" | "pth" | "pts" | "torchscript"))
}

/// The configuration's `input`/`output` as declarations: Triton's
/// `TYPE_FP32` as `float32`, and a leading batch dimension when
/// `max_batch_size` is above 0 (Triton's dims leave it out).
fn declared(list: &[TensorConfig], batched: bool) -> Result<Option<Vec<Declared>>> {
    if list.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(list.len());
    for t in list {
        let dtype = match &t.data_type {
            None => None,
            Some(d) => {
                let protocol = d.strip_prefix("TYPE_").unwrap_or(d).replace("STRING", "BYTES");
                let dtype = parse_datatype(&protocol).map_err(|_| ServerError::Repository(format!("'{}' has data_type {d}, which oxinfer does not know", t.name)))?;
                Some(dtype.name().to_string())
            }
        };
        let dims = (!t.dims.is_empty()).then(|| if batched { std::iter::once(-1).chain(t.dims.iter().copied()).collect() } else { t.dims.clone() });
        out.push(Declared { name: t.name.clone(), dtype, dims });
    }
    Ok(Some(out))
}

impl Engines {
    /// Loads `path` on the engine its extension names. `intra` and `pool`
    /// are a pipeline spec's session options; the configuration's
    /// `intra_op_threads` parameter and `instance_group` count go first.
    /// `own_io`: the configuration's `input`/`output` describe this model
    /// (a plain model.pt), not a pipeline or graph around it.
    pub fn load(&self, path: &Path, config: &ModelConfig, intra: Option<usize>, pool: Option<usize>, own_io: bool) -> Result<(Arc<dyn Backend>, usize)> {
        let intra = config.parameter("intra_op_threads").and_then(|s| s.parse().ok()).or(intra);
        let pool = config.instances().or(pool);
        let device = match config.parameter("device").as_deref() {
            None | Some("cpu") => Device::Cpu,
            Some("cuda") => Device::Cuda(0),
            Some(d) => match d.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
                Some(n) => Device::Cuda(n),
                None => return Err(ServerError::Repository(format!("parameter device must be 'cpu', 'cuda' or 'cuda:N', got '{d}'"))),
            },
        };
        if is_torch(path) {
            return self.load_torch(path, config, intra, pool, device, own_io);
        }
        let options = OnnxOptions { intra_op_threads: intra.unwrap_or(0), pool_size: pool.unwrap_or(1), auto_threads: intra.is_none() && pool.is_none(), device, ..OnnxOptions::default() };
        let rt = self.onnx;
        let backend = oxinfer_core::priority::on_low_priority_thread({
            let path = path.to_path_buf();
            move || OnnxBackend::load(rt, ModelSource::Path(path), &options)
        })?;
        let slots = backend.slots();
        Ok((Arc::new(backend), slots))
    }

    fn load_torch(&self, path: &Path, config: &ModelConfig, intra: Option<usize>, pool: Option<usize>, device: Device, own_io: bool) -> Result<(Arc<dyn Backend>, usize)> {
        let spec = self.torch.clone().map_err(|why| ServerError::Core(oxinfer_core::Error::Unsupported(format!("'{}' is a TorchScript model, and {why}", path.display()))))?;
        let batched = config.max_batch_size > 0;
        let options = LoadOptions {
            device: match device {
                Device::Cpu => "cpu".into(),
                Device::Cuda(i) => format!("cuda:{i}"),
            },
            intra_op_threads: intra.unwrap_or(0),
            inter_op_threads: 0,
            pool_size: pool.unwrap_or(1),
            auto_threads: intra.is_none() && pool.is_none(),
            inputs: if own_io { declared(&config.input, batched)? } else { None },
            outputs: if own_io { declared(&config.output, batched)? } else { None },
            engine_dir: None,
        };
        let backend = oxinfer_core::priority::on_low_priority_thread({
            let path = path.to_path_buf();
            move || spec.load(&ModelSource::Path(path), options)
        })?;
        let slots = backend.slots();
        Ok((Arc::new(backend), slots))
    }
}
