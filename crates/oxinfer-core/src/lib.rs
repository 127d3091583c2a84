//! oxinfer-core: the engine-neutral inference core of oxinfer. It knows
//! nothing of Node.js; bindings live in their own crates.

pub mod backend;
pub mod batch;
pub mod error;
pub mod graph;
pub mod image;
pub mod job;
pub mod layout;
pub mod monitor;
pub mod onnx;
pub mod padding;
pub mod pipeline;
pub mod plugin;
pub mod priority;
pub mod queue;
pub mod request;
pub mod runstats;
pub mod scheduler;
pub mod store;
pub mod stream;
pub mod tensor;
pub mod text;
pub mod threads;
pub mod timing;
pub mod validate;
pub mod vision;

pub use backend::{Backend, Dim, ModelInfo, ModelMetadata, ModelSource, RunControl, ValueInfo, ValueKind};
pub use error::{Error, ErrorCode, Result};
pub use layout::Layout;
pub use request::{model_run, pipeline_run, Completion, Request, RunOutput, Work};
pub use scheduler::{Scheduler, SchedulerOptions};
pub use timing::Timing;
pub use tensor::{DType, InputData, InputTensor, OutputData, OutputTensor};

/// The version of this crate (reported as `versions().oxinfer`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
