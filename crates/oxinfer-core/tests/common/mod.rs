//! What the integration tests share: the repository root, ONNX Runtime (from
//! the onnxruntime-node devDependency, or OXINFER_ORT_DYLIB) and the penguins
//! model.

pub mod graph;

use std::path::{Path, PathBuf};

use oxinfer_core::onnx::{library, ModelSource, OnnxBackend, OnnxOptions};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// ONNX Runtime, from the onnxruntime-node devDependency or OXINFER_ORT_DYLIB.
#[allow(dead_code)]
pub fn runtime() -> &'static library::Runtime {
    let lib = std::env::var_os("OXINFER_ORT_DYLIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1"));
    library::runtime(&lib).expect("ONNX Runtime library (run `npm install` first, or set OXINFER_ORT_DYLIB)")
}

/// The penguins classifier on ONNX Runtime.
#[allow(dead_code)]
pub fn penguins_backend() -> OnnxBackend {
    OnnxBackend::load(runtime(), ModelSource::Path(root().join("__test__/fixtures/penguins/penguins.onnx")), &OnnxOptions::default()).unwrap()
}
