//! Node-API binding of oxinfer-core. Thin by design: argument decoding, the
//! completion channel, and error encoding; all inference logic lives in the core.

#[macro_use]
extern crate napi_derive;

mod columns;
mod errors;
mod feeds;
mod graph;
mod hub;
pub(crate) mod image;
mod job;
mod js;
mod log;
mod options;
mod payload;
mod pipeline;
mod server;
mod session;
mod store;
mod stream;
mod submit;
mod text;

use std::path::PathBuf;

use napi::bindgen_prelude::*;
use oxinfer_core::onnx::library;

use crate::errors::IntoNapi;

#[napi(object)]
pub struct NativeVersions {
    pub oxinfer: String,
    pub onnxruntime: String,
    pub napi: String,
}

/// Loads ONNX Runtime from `library` if not loaded yet (once per process).
#[napi(catch_unwind)]
pub fn ort_versions(library: String) -> Result<NativeVersions> {
    let rt = library::runtime(&PathBuf::from(library)).js()?;
    Ok(NativeVersions { oxinfer: oxinfer_core::VERSION.into(), onnxruntime: rt.version.clone(), napi: env!("CARGO_PKG_VERSION").into() })
}

/// The library path that was loaded or tried; null before the first attempt.
#[napi]
pub fn ort_loaded_path() -> Option<String> {
    library::attempted_path().map(|p| p.to_string_lossy().into_owned())
}

/// An ONNX Runtime library already mapped in this process (onnxruntime-node's), if any.
#[napi]
pub fn ort_already_mapped() -> Option<String> {
    library::already_mapped().map(|p| p.to_string_lossy().into_owned())
}

#[napi]
pub fn ort_set_log_level(level: options::LogLevel) {
    library::set_log_level(level.into());
}

/// Result column names of pipelines, in the order their packed name ids count.
#[napi]
pub fn pipeline_column_names() -> Vec<&'static str> {
    payload::PACKED_NAMES.to_vec()
}

/// How many numbers of timing end each run's packed header.
#[napi]
pub const TIMING_LEN: u32 = oxinfer_core::Timing::LEN as u32;


/// Panics on purpose, so tests can show that a Rust panic becomes a JS error
/// and never takes the process down. Not part of the public API.
#[napi(catch_unwind)]
pub fn debug_panic() {
    panic!("deliberate panic for testing");
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
