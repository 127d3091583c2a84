//! Loading the ONNX Runtime shared library: once per process, never retried.
//! A failure is remembered and returned to every later caller.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
pub use ort::logging::LogLevel;

use crate::error::{Error, Result};

/// The loaded library and the process-wide ORT environment built on it.
pub struct Runtime {
    pub path: PathBuf,
    pub version: String,
    pub env: Environment,
}

static RUNTIME: OnceLock<std::result::Result<Runtime, Error>> = OnceLock::new();
static ATTEMPTED: OnceLock<PathBuf> = OnceLock::new();
static LOG_LEVEL: Mutex<Option<LogLevel>> = Mutex::new(None);

/// Sets the ORT log level used when the environment is built (or applies it now).
pub fn set_log_level(level: LogLevel) {
    *LOG_LEVEL.lock().unwrap_or_else(|e| e.into_inner()) = Some(level);
    if let Some(Ok(rt)) = RUNTIME.get() {
        rt.env.set_log_level(level);
    }
}

/// The path of the library once loaded or tried, if any.
pub fn attempted_path() -> Option<PathBuf> {
    ATTEMPTED.get().cloned()
}


/// Loads the library at `path` on first call; later calls return the first outcome.
pub fn runtime(path: &Path) -> Result<&'static Runtime> {
    let outcome = RUNTIME.get_or_init(|| {
        let _ = ATTEMPTED.set(path.to_path_buf());
        load(path)
    });
    outcome.as_ref().map_err(Clone::clone)
}

fn load(path: &Path) -> std::result::Result<Runtime, Error> {
    let fail = |why: String| Error::Unsupported(format!("cannot load ONNX Runtime from '{}': {why}", path.display()));
    if !path.is_absolute() {
        return Err(fail("the path must be absolute".into()));
    }
    let what = "the ONNX Runtime library";
    let meta = std::fs::metadata(path).map_err(|e| Error::file(what, path, e))?;
    if !meta.is_file() {
        return Err(Error::file(what, path, "not a regular file"));
    }
    // Read the version first through our own handle: dlopen of the same file
    // returns the same library, so this costs nothing extra.
    let version = read_version(path).map_err(fail)?;
    let builder = ort::init_from(path).map_err(|e| fail(e.to_string()))?;
    let env = builder.with_name("oxinfer").with_telemetry(false).build().map_err(|e| fail(e.to_string()))?;
    let level = LOG_LEVEL.lock().unwrap_or_else(|e| e.into_inner()).unwrap_or(LogLevel::Fatal);
    env.set_log_level(level);
    Ok(Runtime { path: path.to_path_buf(), version, env })
}

fn read_version(path: &Path) -> std::result::Result<String, String> {
    // SAFETY: loading ONNX Runtime runs only its static initialisers.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| e.to_string())?;
    type GetBase = unsafe extern "C" fn() -> *const ort::sys::OrtApiBase;
    // SAFETY: the symbol has this signature in every ONNX Runtime release.
    let get: libloading::Symbol<GetBase> =
        unsafe { lib.get(b"OrtGetApiBase") }.map_err(|_| "the file does not export OrtGetApiBase".to_string())?;
    let base = unsafe { get() };
    if base.is_null() {
        return Err("OrtGetApiBase returned null".into());
    }
    let raw = unsafe { ((*base).GetVersionString)() };
    let version = unsafe { std::ffi::CStr::from_ptr(raw) }.to_string_lossy().into_owned();
    // Keep the handle: ort holds its own, and unloading ORT is never safe.
    std::mem::forget(lib);
    Ok(version)
}

/// An ONNX Runtime library already mapped into this process (by onnxruntime-node,
/// say), so that both share one copy instead of loading a second.
pub fn already_mapped() -> Option<PathBuf> {
    #[cfg(target_os = "linux")]
    {
        let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
        for line in maps.lines() {
            if let Some(idx) = line.find('/') {
                let p = &line[idx..];
                let file = p.rsplit('/').next().unwrap_or("");
                if file.starts_with("libonnxruntime.so") {
                    return Some(PathBuf::from(p));
                }
            }
        }
        None
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}
