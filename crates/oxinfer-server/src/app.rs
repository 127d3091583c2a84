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
    /// How long a close waits for requests in flight before it drops them
    /// (Kubernetes gives 30 s between SIGTERM and SIGKILL by default).
    pub drain: Duration,
    /// The torch plugin, for TorchScript models (`model.pt`), or why there
    /// is none (the reason such models fail to load with).
    pub torch: std::result::Result<oxinfer_core::plugin::PluginSpec, String>,
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
            drain: Duration::from_secs(30),
            torch: Err(crate::model::engines::NO_TORCH.into()),
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
    /// Socketless exchanges in flight (the Fastify plugin's), which a close waits for.
    pub exchanges: std::sync::Arc<Exchanges>,
}

/// A count of work in flight that a close can wait to reach zero.
#[derive(Default)]
pub struct Exchanges {
    count: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

impl Exchanges {
    /// Counts one in; the guard counts it out when dropped.
    pub fn enter(self: &std::sync::Arc<Self>) -> ExchangeGuard {
        self.count.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        ExchangeGuard(std::sync::Arc::clone(self))
    }

    pub fn in_flight(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Resolves once nothing is in flight.
    pub async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.in_flight() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// One exchange in flight (see `Exchanges::enter`).
pub struct ExchangeGuard(std::sync::Arc<Exchanges>);

impl Drop for ExchangeGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

