//! oxinfer-torch: oxinfer's TorchScript backend, on libtorch through `tch`.
//! Built as its own shared library (`packages/torch`) that the main addon
//! loads on first use, so that neither the addon nor a default install needs
//! libtorch. It implements the core's `Backend` and exports it through the
//! core's plugin ABI.

mod convert;
mod declare;
mod device;
mod error;
mod model;
mod schema;

pub use error::TorchError;
pub use model::TorchBackend;

use oxinfer_core::plugin::LoadOptions;
use oxinfer_core::{Backend, ModelSource};

/// The engine this plugin runs, as `versions()` reports it.
pub fn engine_version() -> String {
    format!("libtorch {}", schema::torch_version())
}

fn load(source: ModelSource, options: &LoadOptions) -> oxinfer_core::Result<Box<dyn Backend>> {
    Ok(Box::new(TorchBackend::load(source, options)?))
}

oxinfer_core::export_backend!("torch", engine_version(), load);
