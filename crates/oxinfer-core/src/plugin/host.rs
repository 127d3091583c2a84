//! The host side of the ABI: opens a plugin library once (after the engine
//! libraries it needs, loaded globally so that its own links resolve to
//! them) and wraps each model it loads as a `Backend`.

use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::abi::{self, LoadOptions, OutputView, Sink, Str, TensorView, Vtable};
use crate::backend::{Backend, ModelInfo, ModelSource, RunControl};
use crate::error::{Error, ErrorCode, Result};
use crate::tensor::{DType, InputData, InputTensor, OutputBuffer, OutputData, OutputTensor};

/// An opened plugin library; never unloaded (its engine's static state and
/// threads would not survive it).
pub struct Plugin {
    vtable: &'static Vtable,
    pub path: PathBuf,
    /// The backend's name (`torch`).
    pub name: String,
    /// Its engine and version (`libtorch 2.11.0`).
    pub engine: String,
}

// SAFETY: the table is immutable static data of a library never unloaded.
unsafe impl Send for Plugin {}
unsafe impl Sync for Plugin {}

static OPENED: Mutex<Vec<&'static Plugin>> = Mutex::new(Vec::new());

/// Opens the plugin at `path` after loading each of `preload` globally, or
/// returns the one already opened from that path (after loading any of
/// `preload` not yet in: a later session may need more, such as CUDA).
pub fn open(path: &Path, preload: &[PathBuf]) -> Result<&'static Plugin> {
    let mut opened = OPENED.lock().unwrap_or_else(|e| e.into_inner());
    for lib in preload {
        // Loading a library already in only counts a reference; never unloaded.
        let handle = load_global(lib).map_err(|e| Error::Unsupported(format!("cannot load '{}', which the backend plugin '{}' needs: {e}", lib.display(), path.display())))?;
        std::mem::forget(handle);
    }
    if let Some(p) = opened.iter().find(|p| p.path == path) {
        return Ok(p);
    }
    let what = "the backend plugin";
    let meta = std::fs::metadata(path).map_err(|e| Error::file(what, path, e))?;
    if !meta.is_file() {
        return Err(Error::file(what, path, "not a regular file"));
    }
    let fail = |why: String| Error::Unsupported(format!("cannot load the backend plugin '{}': {why}", path.display()));
    let lib = load_global(path).map_err(fail)?;
    type Entry = unsafe extern "C" fn() -> *const Vtable;
    // SAFETY: a plugin exports the entry with this signature (`export_backend!`).
    let entry: libloading::os::unix::Symbol<Entry> = unsafe { lib.get(abi::ENTRY) }.map_err(|_| fail("it is not an oxinfer backend plugin".into()))?;
    // SAFETY: the entry returns a pointer to a static table, or null.
    let vtable = unsafe { entry().as_ref() }.ok_or_else(|| fail("its entry returned no table".into()))?;
    std::mem::forget(lib);
    if vtable.abi != abi::ABI_VERSION {
        return Err(fail(format!("it speaks plugin ABI {}, and this oxinfer speaks {}", vtable.abi, abi::ABI_VERSION)));
    }
    // SAFETY: the table's texts are static in the plugin.
    let (core, name, engine) = unsafe { (vtable.core_version.get(), vtable.name.get().to_string(), vtable.engine.get().to_string()) };
    if core != crate::VERSION {
        return Err(fail(format!("it was built for oxinfer {core}, and this is oxinfer {}; install the matching version", crate::VERSION)));
    }
    let plugin: &'static Plugin = Box::leak(Box::new(Plugin { vtable, path: path.to_path_buf(), name, engine }));
    opened.push(plugin);
    Ok(plugin)
}

#[cfg(unix)]
fn load_global(path: &Path) -> std::result::Result<libloading::os::unix::Library, String> {
    use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
    // SAFETY: loading runs the library's initialisers, which is what is asked for.
    unsafe { Library::open(Some(path), RTLD_NOW | RTLD_GLOBAL) }.map_err(|e| std::error::Error::source(&e).map_or_else(|| e.to_string(), |s| s.to_string()))
}

#[cfg(not(unix))]
fn load_global(_path: &Path) -> std::result::Result<libloading::os::unix::Library, String> {
    Err("backend plugins are supported on Linux and macOS only".into())
}

/// What a plugin reports during one call.
struct Report<'a> {
    error: Option<Error>,
    text: Option<String>,
    outputs: Vec<OutputView>,
    ctl: Option<&'a RunControl>,
}

unsafe extern "C" fn on_error(ctx: *mut c_void, code: u32, message: Str) {
    let r = &mut *(ctx as *mut Report);
    let kind = ErrorCode::ALL.get(code as usize).copied().unwrap_or(ErrorCode::Backend);
    r.error = Some(Error::with_kind(kind, message.get().to_string()));
}

unsafe extern "C" fn on_text(ctx: *mut c_void, text: Str) {
    (*(ctx as *mut Report)).text = Some(text.get().to_string());
}

unsafe extern "C" fn on_output(ctx: *mut c_void, output: OutputView) {
    (*(ctx as *mut Report)).outputs.push(output);
}

unsafe extern "C" fn on_aborted(ctx: *mut c_void) -> bool {
    (*(ctx as *mut Report)).ctl.is_some_and(|c| c.is_aborted())
}

fn sink(report: &mut Report) -> Sink {
    Sink { ctx: report as *mut Report as *mut c_void, error: on_error, text: on_text, output: on_output, aborted: on_aborted }
}

impl Plugin {
    /// Loads a model through the plugin.
    pub fn load(&'static self, source: &ModelSource, options: &LoadOptions) -> Result<PluginBackend> {
        let options = serde_json::to_string(options).map_err(|e| Error::Backend(e.to_string()))?;
        let mut report = Report { error: None, text: None, outputs: Vec::new(), ctl: None };
        let s = sink(&mut report);
        let (path, bytes, n) = match source {
            ModelSource::Path(p) => (p.to_string_lossy().into_owned(), std::ptr::null(), 0),
            ModelSource::Bytes(b) => (String::new(), b.as_ptr(), b.len()),
        };
        // SAFETY: every pointer passed lives until the call returns.
        let model = unsafe { (self.vtable.load)(Str::of(&path), bytes, n, Str::of(&options), &s) };
        if model.is_null() {
            return Err(report.error.unwrap_or_else(|| Error::Backend(format!("the {} plugin failed to load the model without saying why", self.name))));
        }
        // SAFETY: `model` came from this plugin's `load`.
        let slots = unsafe { (self.vtable.slots)(model) }.max(1);
        // Owned from here: an unreadable info frees the model on the way out.
        let mut backend = PluginBackend { plugin: self, model, info: ModelInfo::default(), slots };
        backend.info = abi::info_from_json(report.text.as_deref().unwrap_or(""))?;
        Ok(backend)
    }
}

/// A model loaded by a plugin.
pub struct PluginBackend {
    plugin: &'static Plugin,
    model: *mut c_void,
    info: ModelInfo,
    slots: usize,
}

// SAFETY: a plugin's models are `Backend`s on its side, which are Send + Sync.
unsafe impl Send for PluginBackend {}
unsafe impl Sync for PluginBackend {}

impl Drop for PluginBackend {
    fn drop(&mut self) {
        // SAFETY: freed once, after every run on it has returned (runs borrow `self`).
        unsafe { (self.plugin.vtable.free)(self.model) }
    }
}

impl PluginBackend {
    pub fn plugin(&self) -> &'static Plugin {
        self.plugin
    }
}

/// An output's memory, still owned by the plugin.
struct Foreign {
    plugin: &'static Plugin,
    owner: *mut c_void,
    data: *const u8,
    len: usize,
}

// SAFETY: the plugin's output memory is plain bytes, read only.
unsafe impl Send for Foreign {}
unsafe impl Sync for Foreign {}

impl OutputBuffer for Foreign {
    fn bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: the plugin keeps the bytes alive until `release`.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        // SAFETY: each owner is released once.
        unsafe { (self.plugin.vtable.release)(self.owner) }
    }
}

fn view(t: &InputTensor, strings: &mut Vec<Vec<Str>>) -> TensorView {
    let list: Vec<Str> = match &t.data {
        InputData::Strings(s) => s.iter().map(|s| Str::of(s)).collect(),
        _ => Vec::new(),
    };
    let bytes = t.bytes();
    let v = TensorView {
        name: Str::of(&t.name),
        dtype: t.dtype as u8,
        dims: t.dims.as_ptr(),
        ndims: t.dims.len(),
        data: bytes.as_ptr(),
        len: bytes.len(),
        strings: list.as_ptr(),
        nstrings: list.len(),
    };
    strings.push(list);
    v
}

impl PluginBackend {
    fn adopt(&self, name: &str, v: OutputView) -> Result<OutputTensor> {
        let foreign = Foreign { plugin: self.plugin, owner: v.owner, data: v.data, len: v.len };
        let dtype = DType::from_code(v.dtype).ok_or_else(|| Error::Backend(format!("the plugin returned output '{name}' with unknown element type code {}", v.dtype)))?;
        // SAFETY: the view's pointers are valid until `foreign` releases them.
        let dims = unsafe { if v.ndims == 0 { Vec::new() } else { std::slice::from_raw_parts(v.dims, v.ndims).to_vec() } };
        let data = if dtype == DType::String {
            let list = unsafe { if v.nstrings == 0 { &[][..] } else { std::slice::from_raw_parts(v.strings, v.nstrings) } };
            let owned = list.iter().map(|s| unsafe { s.get() }.to_string()).collect();
            drop(foreign);
            OutputData::Strings(owned)
        } else {
            OutputData::Buffer(Box::new(foreign))
        };
        let t = OutputTensor { name: name.to_string(), dtype, dims, data };
        let want = crate::tensor::element_count(&t.dims)?.checked_mul(dtype.size());
        if dtype != DType::String && want != Some(t.bytes().len()) {
            return Err(Error::Backend(format!("the plugin returned output '{name}' with dims {:?} but {} bytes", t.dims, t.bytes().len())));
        }
        Ok(t)
    }
}

impl Backend for PluginBackend {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn slots(&self) -> usize {
        self.slots
    }

    fn run(&self, slot: usize, inputs: &[InputTensor], outputs: &[usize], ctl: &RunControl) -> Result<Vec<OutputTensor>> {
        if ctl.is_aborted() {
            return Err(Error::Aborted("the run was aborted".into()));
        }
        let mut strings = Vec::new();
        let views: Vec<TensorView> = inputs.iter().map(|t| view(t, &mut strings)).collect();
        let mut report = Report { error: None, text: None, outputs: Vec::new(), ctl: Some(ctl) };
        let s = sink(&mut report);
        // SAFETY: inputs, views and the sink outlive the call.
        let ok = unsafe { (self.plugin.vtable.run)(self.model, slot % self.slots, views.as_ptr(), views.len(), outputs.as_ptr(), outputs.len(), &s) };
        let views_out = std::mem::take(&mut report.outputs);
        // Adopt every view first so that each is released even on error.
        let mut adopted = Vec::with_capacity(views_out.len());
        let mut failure = None;
        for (k, v) in views_out.into_iter().enumerate() {
            let name = outputs.get(k).and_then(|&i| self.info.outputs.get(i)).map_or("?", |o| o.name.as_str());
            match self.adopt(name, v) {
                Ok(t) => adopted.push(t),
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        if !ok {
            return Err(report.error.unwrap_or_else(|| Error::Backend(format!("the {} plugin's run failed without saying why", self.plugin.name))));
        }
        if let Some(e) = failure {
            return Err(e);
        }
        if adopted.len() != outputs.len() {
            return Err(Error::Backend(format!("the {} plugin returned {} outputs for {} asked", self.plugin.name, adopted.len(), outputs.len())));
        }
        Ok(adopted)
    }
}

/// Where a plugin library is, the engine libraries to load before it, and
/// the engine's folder (for libraries it loads on demand).
#[derive(Clone, Debug, Default)]
pub struct PluginSpec {
    pub path: PathBuf,
    pub preload: Vec<PathBuf>,
    pub engine_dir: Option<String>,
}

impl PluginSpec {
    /// Opens the plugin (once per process) and loads a model through it.
    pub fn load(&self, source: &ModelSource, options: LoadOptions) -> Result<PluginBackend> {
        let plugin = open(&self.path, &self.preload)?;
        plugin.load(source, &LoadOptions { engine_dir: options.engine_dir.or_else(|| self.engine_dir.clone()), ..options })
    }
}
