//! What the request handlers share: the repository, the metrics, the
//! options the server was started with, and whether it is draining.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::metrics::Metrics;
use crate::protocol::Limits;
use crate::repository::Repository;

/// How the server is set up.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    pub repository: PathBuf,
    pub host: String,
    /// 0: any free port.
    pub port: u16,
    /// The ONNX Runtime shared library.
    pub library: PathBuf,
    /// Poll the repository for changed models this often.
    pub poll: Option<Duration>,
    /// Require `Authorization: Bearer <token>` (health routes excepted).
    pub token: Option<String>,
    pub max_body_bytes: usize,
    /// Queue timeout of requests that set none, in ms.
    pub timeout_ms: Option<f64>,
    pub limits: Limits,
    /// Threads of the HTTP runtime (decoding and encoding run there).
    pub threads: usize,
    /// Models to load at start; None: every model folder.
    pub models: Option<Vec<String>>,
    /// Bind the socket (false: requests come only through `handle`, as
    /// from the Fastify plugin).
    pub listen: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            repository: PathBuf::from("."),
            host: "127.0.0.1".into(),
            port: 8000,
            library: PathBuf::new(),
            poll: None,
            token: None,
            max_body_bytes: 64 << 20,
            timeout_ms: None,
            limits: Limits::default(),
            threads: 2,
            models: None,
            listen: true,
        }
    }
}

/// What the handlers share.
pub struct App {
    pub repo: Repository,
    pub metrics: Metrics,
    pub options: ServerOptions,
    /// Set while closing: readiness turns false.
    pub draining: AtomicBool,
    /// Models answered outside the engine (JS handlers).
    pub externals: crate::external::Externals,
}

