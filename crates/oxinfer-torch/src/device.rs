//! Devices: `cpu`, `cuda` and `cuda:N`. The plugin links only libtorch's CPU
//! libraries, so that it loads on machines without CUDA; libtorch's CUDA
//! library (which registers CUDA with libtorch as it loads) is loaded from
//! libtorch's folder the first time a CUDA device is asked for. The host
//! loads it before the plugin when the first session asks for CUDA: libtorch
//! settles once per process whether CUDA exists (its CUDA hooks), so nothing
//! here asks libtorch about CUDA before the library is in.

use std::path::Path;
use std::sync::OnceLock;

use tch::Device;

use crate::error::TorchError;

pub fn parse(spec: &str) -> Result<Option<usize>, TorchError> {
    match spec {
        "" | "cpu" => Ok(None),
        "cuda" => Ok(Some(0)),
        s => s
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
            .map(Some)
            .ok_or_else(|| TorchError::Declaration(format!("device must be 'cpu', 'cuda' or 'cuda:N', got '{s}'"))),
    }
}

static CUDA: OnceLock<Result<(), String>> = OnceLock::new();

/// Whether libtorch's CUDA library is already in the process (loaded by the host).
#[cfg(unix)]
fn cuda_library_loaded() -> bool {
    use libloading::os::unix::{Library, RTLD_NOW};
    // SAFETY: RTLD_NOLOAD loads nothing; it only finds a library already in.
    unsafe { Library::open(Some("libtorch_cuda.so"), RTLD_NOW | libc::RTLD_NOLOAD) }.is_ok()
}

fn enable_cuda(engine_dir: Option<&str>) -> Result<(), String> {
    #[cfg(unix)]
    if !cuda_library_loaded() {
        use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
        let dir = engine_dir.ok_or("libtorch's folder is not known, so its CUDA library cannot be found")?;
        let lib = Path::new(dir).join("libtorch_cuda.so");
        if !lib.exists() {
            return Err(format!("libtorch at '{dir}' has no libtorch_cuda.so (a CPU-only libtorch)"));
        }
        // SAFETY: loading libtorch's own CUDA library runs its registration.
        let handle = unsafe { Library::open(Some(&lib), RTLD_NOW | RTLD_GLOBAL) }.map_err(|e| {
            let e = std::error::Error::source(&e).map_or_else(|| e.to_string(), |s| s.to_string());
            format!("'{}' failed to load ({e}); it needs the CUDA 13 libraries (cuBLAS, cuDNN, ...) that a full PyTorch install brings", lib.display())
        })?;
        // Never unloaded: libtorch keeps pointers into it.
        std::mem::forget(handle);
    }
    if !tch::Cuda::is_available() {
        return Err("CUDA reports no usable device (no GPU, or no driver), though libtorch's CUDA library loaded".into());
    }
    Ok(())
}

/// The tch device for `spec`, loading CUDA support on first use. A GPU that
/// is not there is an error, never a silent fallback to the CPU.
pub fn resolve(spec: &str, engine_dir: Option<&str>) -> Result<Device, TorchError> {
    let Some(index) = parse(spec)? else { return Ok(Device::Cpu) };
    CUDA.get_or_init(|| enable_cuda(engine_dir))
        .clone()
        .map_err(|why| TorchError::Unsupported(format!("device '{spec}' was requested, but {why}")))?;
    let count = tch::Cuda::device_count().max(0) as usize;
    if index >= count {
        return Err(TorchError::Unsupported(format!("device '{spec}' was requested, but this machine has {count} CUDA device(s)")));
    }
    Ok(Device::Cuda(index))
}
