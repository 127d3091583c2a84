//! Tabular pipelines: records in, pre-processing, feature assembly into the
//! model's tensors, inference, post-processing, results out, all in Rust.

pub mod columns;
mod compile;
pub mod features;
pub mod locate;
mod lookup;
pub mod merge;
pub mod outcome;
mod plan;
pub mod post;
pub mod spec;
pub mod stages;
pub mod stats;
pub mod tensors;
mod zipmap;

pub use columns::{Batch, Col, InColumn};
pub use outcome::{Outcome, StageTimings};
pub use plan::{Pipeline, RunOptions};
pub use spec::{parse, Spec};
