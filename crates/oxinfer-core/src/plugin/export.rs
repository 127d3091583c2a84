//! The plugin side of the ABI: a backend crate built as a `cdylib` calls
//! `export_backend!` with its load function, and this module answers the
//! host's calls with it, catching panics so that none crosses the boundary.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::OnceLock;

use super::abi::{self, LoadOptions, OutputView, Sink, Str, TensorView, Vtable};
use crate::backend::{Backend, ModelSource, RunControl};
use crate::error::{Error, ErrorCode, Result};
use crate::tensor::{BorrowedBytes, DType, InputData, InputTensor, OutputData, OutputTensor};

/// A plugin's model loader.
pub type LoadFn = fn(ModelSource, &LoadOptions) -> Result<Box<dyn Backend>>;

struct Exported {
    vtable: Vtable,
    load: LoadFn,
    // Kept alive for the `Str`s in `vtable`.
    _texts: [String; 3],
}

// SAFETY: the `Str`s point into `_texts`, owned by the same immutable static.
unsafe impl Send for Exported {}
unsafe impl Sync for Exported {}

static EXPORTED: OnceLock<Exported> = OnceLock::new();

/// Exports a backend: `export_backend!("torch", engine_version(), load)` in
/// the plugin crate's root defines the entry symbol the host looks for.
#[macro_export]
macro_rules! export_backend {
    ($name:expr, $engine:expr, $load:path) => {
        #[no_mangle]
        pub extern "C" fn oxinfer_backend_plugin_v1() -> *const $crate::plugin::abi::Vtable {
            $crate::plugin::export::vtable($name, || $engine, $load)
        }
    };
}

/// The table for `export_backend!`; built once.
pub fn vtable(name: &str, engine: impl FnOnce() -> String, load: LoadFn) -> *const Vtable {
    let e = EXPORTED.get_or_init(|| {
        let texts = [crate::VERSION.to_string(), name.to_string(), engine()];
        let vtable = Vtable {
            abi: abi::ABI_VERSION,
            core_version: Str::of(&texts[0]),
            name: Str::of(&texts[1]),
            engine: Str::of(&texts[2]),
            load: plugin_load,
            slots: plugin_slots,
            run: plugin_run,
            release: plugin_release,
            free: plugin_free,
        };
        // The Strs point at the Strings' heap buffers, which moving the array does not move.
        Exported { vtable, load, _texts: texts }
    });
    &e.vtable
}

unsafe fn report(sink: *const Sink, e: &Error) {
    let code = ErrorCode::ALL.iter().position(|k| *k == e.kind()).unwrap_or(ErrorCode::ALL.len() - 1);
    let message = e.to_string();
    ((*sink).error)((*sink).ctx, code as u32, Str::of(&message));
}

fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| Err(Error::from_panic(p)))
}

unsafe extern "C" fn plugin_load(path: Str, bytes: *const u8, nbytes: usize, options: Str, sink: *const Sink) -> *mut c_void {
    let outcome = guarded(|| {
        let load = EXPORTED.get().ok_or_else(|| Error::Backend("the plugin was not initialised".into()))?.load;
        let options: LoadOptions = serde_json::from_str(options.get())
            .map_err(|e| Error::InvalidArgument(format!("the plugin could not read its load options: {e}")))?;
        let source = if bytes.is_null() {
            ModelSource::Path(PathBuf::from(path.get()))
        } else {
            ModelSource::Bytes(std::slice::from_raw_parts(bytes, nbytes).to_vec())
        };
        let backend = load(source, &options)?;
        let info = abi::info_to_json(backend.info());
        ((*sink).text)((*sink).ctx, Str::of(&info));
        Ok(Box::into_raw(Box::new(backend)) as *mut c_void)
    });
    match outcome {
        Ok(p) => p,
        Err(e) => {
            report(sink, &e);
            std::ptr::null_mut()
        }
    }
}

unsafe extern "C" fn plugin_slots(model: *mut c_void) -> usize {
    (*(model as *mut Box<dyn Backend>)).slots()
}

unsafe fn input(v: &TensorView) -> Result<InputTensor> {
    let dtype = DType::from_code(v.dtype).ok_or_else(|| Error::Backend(format!("unknown element type code {}", v.dtype)))?;
    let dims = if v.ndims == 0 { Vec::new() } else { std::slice::from_raw_parts(v.dims, v.ndims).to_vec() };
    let data = if dtype == DType::String {
        let list = if v.nstrings == 0 { &[][..] } else { std::slice::from_raw_parts(v.strings, v.nstrings) };
        InputData::Strings(list.iter().map(|s| s.get().to_string()).collect())
    } else {
        // The host keeps the bytes alive until `run` returns.
        InputData::Borrowed(BorrowedBytes::new(v.data, v.len))
    };
    Ok(InputTensor { name: v.name.get().to_string(), dtype, dims, data })
}

unsafe extern "C" fn plugin_run(
    model: *mut c_void,
    slot: usize,
    inputs: *const TensorView,
    ninputs: usize,
    outputs: *const usize,
    noutputs: usize,
    sink: *const Sink,
) -> bool {
    let outcome = guarded(|| {
        let backend = &*(model as *mut Box<dyn Backend>);
        let views = if ninputs == 0 { &[][..] } else { std::slice::from_raw_parts(inputs, ninputs) };
        let tensors = views.iter().map(|v| input(v)).collect::<Result<Vec<_>>>()?;
        let wanted = if noutputs == 0 { &[][..] } else { std::slice::from_raw_parts(outputs, noutputs) };
        let ctl = RunControl::new();
        if ((*sink).aborted)((*sink).ctx) {
            ctl.abort();
        }
        backend.run(slot, &tensors, wanted, &ctl)
    });
    match outcome {
        Ok(outs) => {
            for t in outs {
                let owned = Box::new(t);
                let (data, len) = (owned.bytes().as_ptr(), owned.bytes().len());
                let strings: Vec<Str> = match &owned.data {
                    OutputData::Strings(s) => s.iter().map(|s| Str::of(s)).collect(),
                    // Plugins run TorchScript, whose outputs oxinfer reads as tensors only.
                    OutputData::Buffer(_) | OutputData::Value(_) => Vec::new(),
                };
                let view = OutputView {
                    dtype: owned.dtype as u8,
                    dims: owned.dims.as_ptr(),
                    ndims: owned.dims.len(),
                    data,
                    len,
                    strings: strings.as_ptr(),
                    nstrings: strings.len(),
                    owner: Box::into_raw(Box::new((owned, strings))) as *mut c_void,
                };
                ((*sink).output)((*sink).ctx, view);
            }
            true
        }
        Err(e) => {
            report(sink, &e);
            false
        }
    }
}

unsafe extern "C" fn plugin_release(owner: *mut c_void) {
    drop(Box::from_raw(owner as *mut (Box<OutputTensor>, Vec<Str>)));
}

unsafe extern "C" fn plugin_free(model: *mut c_void) {
    let _ = catch_unwind(AssertUnwindSafe(|| drop(Box::from_raw(model as *mut Box<dyn Backend>))));
}
