//! What the integration tests share: the repository root, ONNX Runtime (from
//! the onnxruntime-node devDependency, or OXINFER_ORT_DYLIB) and the penguins
//! model.

use std::path::{Path, PathBuf};

use oxinfer_core::onnx::{library, ModelSource, OnnxBackend, OnnxOptions};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The penguins classifier on ONNX Runtime.
pub fn penguins_backend() -> OnnxBackend {
    let lib = std::env::var_os("OXINFER_ORT_DYLIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1"));
    let rt = library::runtime(&lib).expect("ONNX Runtime (npm install first)");
    OnnxBackend::load(rt, ModelSource::Path(root().join("__test__/fixtures/penguins/penguins.onnx")), &OnnxOptions::default()).unwrap()
}
