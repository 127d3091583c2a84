//! Between core tensors and tch tensors. CPU inputs are viewed in place
//! (`from_blob`) for the length of a run; outputs keep their tch tensor
//! alive and are read in place by the host.

use oxinfer_core::tensor::OutputBuffer;
use oxinfer_core::{DType, InputTensor, OutputData, OutputTensor};
use tch::{Device, Kind, Tensor};

use crate::error::{torch_message, TorchError};

/// Inputs at least this large go to a GPU through pinned memory, whose copy
/// is faster than pageable memory's and can run asynchronously.
const PIN_BYTES: usize = 1 << 20;

pub fn kind_of(d: DType) -> Result<Kind, TorchError> {
    Ok(match d {
        DType::Float32 => Kind::Float,
        DType::Float64 => Kind::Double,
        DType::Float16 => Kind::Half,
        DType::BFloat16 => Kind::BFloat16,
        DType::Int8 => Kind::Int8,
        DType::Uint8 => Kind::Uint8,
        DType::Int16 => Kind::Int16,
        DType::Int32 => Kind::Int,
        DType::Int64 => Kind::Int64,
        DType::Bool => Kind::Bool,
        DType::Uint16 | DType::Uint32 | DType::Uint64 | DType::String => {
            return Err(TorchError::Unsupported(format!("libtorch has no {} tensors", d.name())));
        }
    })
}

pub fn dtype_of(k: Kind) -> Option<DType> {
    Some(match k {
        Kind::Float => DType::Float32,
        Kind::Double => DType::Float64,
        Kind::Half => DType::Float16,
        Kind::BFloat16 => DType::BFloat16,
        Kind::Int8 => DType::Int8,
        Kind::Uint8 => DType::Uint8,
        Kind::Int16 => DType::Int16,
        Kind::Int => DType::Int32,
        Kind::Int64 => DType::Int64,
        Kind::Bool => DType::Bool,
        _ => return None,
    })
}

fn engine(what: &str) -> impl Fn(tch::TchError) -> TorchError + '_ {
    move |e| TorchError::Engine(format!("{what}: {}", torch_message(&e)))
}

/// `t` as a tch tensor on `device`, in memory of its own: TorchScript may
/// write to its inputs in place (`x /= 255` compiles to an in-place op), and
/// the caller's buffer is read-only (ONNX Runtime never writes to inputs).
/// One copy on the CPU; the copy to a GPU is the one copy there.
pub fn to_tensor(t: &InputTensor, device: Device) -> Result<Tensor, TorchError> {
    let kind = kind_of(t.dtype).map_err(|e| TorchError::Input(format!("input '{}': {e}", t.name)))?;
    let bytes = t.bytes();
    let cpu = if bytes.is_empty() {
        Tensor::f_zeros(&t.dims, (kind, Device::Cpu)).map_err(engine("allocating an empty input"))?
    } else if t.dtype == DType::Bool {
        // Any non-zero byte is true, as in JS; libtorch wants 0 or 1.
        // SAFETY: `bytes` holds the tensor's elements, checked against dims.
        let raw = unsafe { Tensor::f_from_blob(bytes.as_ptr(), &t.dims, &[], Kind::Uint8, Device::Cpu) }.map_err(engine("reading a bool input"))?;
        raw.f_ne(0).map_err(engine("reading a bool input"))?
    } else {
        // SAFETY: as above; the memory outlives the run (the core's contract).
        unsafe { Tensor::f_from_blob(bytes.as_ptr(), &t.dims, &[], kind, Device::Cpu) }.map_err(engine("reading an input"))?
    };
    if device == Device::Cpu {
        // The bool path already made a tensor of its own.
        return Ok(if t.dtype == DType::Bool { cpu } else { cpu.copy() });
    }
    if bytes.len() >= PIN_BYTES {
        let pinned = cpu.f_pin_memory(device).map_err(engine("pinning an input"))?;
        return pinned.f_to_device_(device, kind, true, false).map_err(engine("copying an input to the GPU"));
    }
    cpu.f_to_device(device).map_err(engine("copying an input to the GPU"))
}

/// An output's memory: the tch tensor itself, contiguous on the CPU.
struct Held {
    tensor: Tensor,
    len: usize,
}

// SAFETY: the tensor is only read once made, and libtorch tensors may be
// read from any thread.
unsafe impl Sync for Held {}

impl OutputBuffer for Held {
    fn bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: a contiguous CPU tensor of exactly `len` bytes, owned by self.
        unsafe { std::slice::from_raw_parts(self.tensor.data_ptr() as *const u8, self.len) }
    }
}

/// `t` as output `name`: brought to the CPU, made contiguous, and copied
/// when it aliases one of `inputs` (kept as a safeguard: inputs are copied
/// in, so an output can only alias the caller's memory if that changes).
pub fn from_tensor(name: &str, t: Tensor, reported: DType, inputs: &[InputTensor]) -> Result<OutputTensor, TorchError> {
    let kind = t.f_kind().map_err(engine("reading an output"))?;
    let dtype = dtype_of(kind).ok_or_else(|| TorchError::Unsupported(format!("output '{name}' has element type {kind:?}, which oxinfer does not return")))?;
    // The session's metadata never says one type and returns another.
    if reported != dtype {
        return Err(TorchError::Engine(format!(
            "output '{name}' is {} in the model's metadata (declared, or assumed when undeclared) but the model returned {}; declare its type",
            reported.name(),
            dtype.name()
        )));
    }
    let cpu = if t.device() == Device::Cpu { t } else { t.f_to_device(Device::Cpu).map_err(engine("copying an output from the GPU"))? };
    let mut held = if cpu.is_contiguous() { cpu } else { cpu.f_contiguous().map_err(engine("laying out an output"))? };
    let dims = held.size();
    let len = held.numel() * dtype.size();
    let start = held.data_ptr() as usize;
    let aliases = len > 0
        && inputs.iter().any(|i| {
            let b = i.bytes();
            let (lo, hi) = (b.as_ptr() as usize, b.as_ptr() as usize + b.len());
            start < hi && start + len > lo
        });
    if aliases {
        held = held.copy();
    }
    Ok(OutputTensor { name: name.to_string(), dtype, dims, data: OutputData::Buffer(Box::new(Held { tensor: held, len })) })
}
