//! oxinfer-server: the KServe v2 / Open Inference Protocol over HTTP, served
//! natively on the core's schedulers. The protocol (decoding and encoding)
//! lives in `protocol`, apart from the transport (`routes`), so that a gRPC
//! front end can reuse it without touching the model path (`model`).

pub mod app;
pub mod error;
pub mod external;
pub mod metrics;
pub mod model;
pub mod protocol;
pub mod repository;
mod routes;
pub mod server;
pub mod stats;

pub use error::{Result, ServerError};
pub use routes::all_stats_json as routes_stats;
pub use server::{Answer, Exchange, Handler, Server, ServerOptions};
