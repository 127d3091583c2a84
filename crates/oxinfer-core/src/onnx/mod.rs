//! The ONNX Runtime backend, through the `ort` crate with a dynamically loaded library.

mod convert;
pub mod library;
mod model;
mod optional;

pub use crate::backend::ModelSource;
pub use model::{Device, GraphOptimization, OnnxBackend, OnnxOptions};
