//! The ONNX Runtime backend, through the `ort` crate with a dynamically loaded library.

mod convert;
pub mod library;
mod model;

pub use model::{Device, GraphOptimization, ModelSource, OnnxBackend, OnnxOptions};
