//! Starting and stopping the server: its own tokio runtime on its own
//! thread, the repository loaded before the socket answers, polling for
//! changed models, and a graceful close that lets every accepted request
//! finish.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

pub use crate::app::{App, ServerOptions};
use crate::error::{Result, ServerError};
use crate::metrics::Metrics;
use crate::repository::Repository;

/// A running server.
pub struct Server {
    /// Where it listens (None when started without a socket).
    pub addr: Option<SocketAddr>,
    pub app: Arc<App>,
    /// Models that failed to load at start, with the reason.
    pub failures: Vec<(String, String)>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    router: axum::Router,
    runtime: tokio::runtime::Handle,
}

impl Server {
    /// Loads the repository, binds the socket and starts serving. Blocking.
    pub fn start(options: ServerOptions) -> Result<Server> {
        let rt = oxinfer_core::onnx::library::runtime(&options.library)?;
        let repo = Repository::new(&options.repository, crate::model::Engines { onnx: rt, torch: options.torch.clone() })?;
        let mut names = options.models.clone().unwrap_or_else(|| repo.on_disk());
        // Graphs run other served models: those load first.
        names.sort_by_key(|n| repo.is_graph(n));
        let mut failures = Vec::new();
        for n in &names {
            if let Err(e) = repo.load(n, None) {
                failures.push((n.clone(), e.to_string()));
            }
        }
        let listener = if options.listen {
            let addr = format!("{}:{}", options.host, options.port);
            let l = std::net::TcpListener::bind(&addr).map_err(|e| ServerError::Core(oxinfer_core::Error::InvalidArgument(format!("cannot listen on {addr}: {e}"))))?;
            l.set_nonblocking(true).map_err(|e| ServerError::Core(oxinfer_core::Error::Backend(e.to_string())))?;
            Some(l)
        } else {
            None
        };
        let addr = match &listener {
            Some(l) => Some(l.local_addr().map_err(|e| ServerError::Core(oxinfer_core::Error::Backend(e.to_string())))?),
            None => None,
        };
        let threads = options.threads.max(1);
        let poll = options.poll;
        let drain = options.drain;
        let app = Arc::new(App { repo, metrics: Metrics::new(), options, draining: AtomicBool::new(false), externals: Default::default(), exchanges: Default::default() });
        let router = crate::routes::router(Arc::clone(&app));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (up_tx, up_rx) = std::sync::mpsc::channel::<Result<tokio::runtime::Handle>>();
        let served = Arc::clone(&app);
        let routes = router.clone();
        let thread = std::thread::Builder::new()
            .name("oxinfer-server".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(threads).thread_name("oxinfer-http").enable_all().build() {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = up_tx.send(Err(ServerError::Core(oxinfer_core::Error::Backend(format!("cannot start the HTTP runtime: {e}")))));
                        return;
                    }
                };
                let handle = runtime.handle().clone();
                runtime.block_on(async move {
                    if let Some(every) = poll {
                        tokio::spawn(poll_loop(Arc::clone(&served), every));
                    }
                    let draining = Arc::clone(&served);
                    // Told when the close begins, so that the drain deadline counts from there.
                    let (closing_tx, closing_rx) = tokio::sync::oneshot::channel::<()>();
                    let stopped = async move {
                        let _ = stop_rx.await;
                        draining.draining.store(true, Relaxed);
                        let _ = closing_tx.send(());
                    };
                    let deadline = async move {
                        if closing_rx.await.is_ok() {
                            tokio::time::sleep(drain).await;
                        } else {
                            std::future::pending::<()>().await;
                        }
                    };
                    tokio::pin!(deadline);
                    let mut passed = false;
                    match listener {
                        None => {
                            let _ = up_tx.send(Ok(handle));
                            stopped.await;
                        }
                        Some(listener) => {
                            let listener = match tokio::net::TcpListener::from_std(listener) {
                                Ok(l) => l,
                                Err(e) => {
                                    let _ = up_tx.send(Err(ServerError::Core(oxinfer_core::Error::Backend(e.to_string()))));
                                    return;
                                }
                            };
                            let _ = up_tx.send(Ok(handle));
                            let serving = axum::serve(listener, routes).with_graceful_shutdown(stopped);
                            tokio::select! {
                                r = std::future::IntoFuture::into_future(serving) => if let Err(e) = r {
                                    tracing::error!(error = %e, "the server stopped");
                                },
                                _ = &mut deadline => {
                                    passed = true;
                                    tracing::warn!(drain_ms = drain.as_millis() as u64, "the drain deadline passed with connections still open; closing them");
                                }
                            }
                        }
                    }
                    // Socketless exchanges (the Fastify plugin's) finish too,
                    // within the same deadline (a finished deadline is not polled again).
                    if !passed {
                        tokio::select! {
                            _ = served.exchanges.idle() => {}
                            _ = &mut deadline => {
                                tracing::warn!(in_flight = served.exchanges.in_flight(), "the drain deadline passed with plugin requests in flight; they answer 503");
                            }
                        }
                    }
                });
            })
            .map_err(|e| ServerError::Core(oxinfer_core::Error::Backend(format!("cannot start the server thread: {e}"))))?;
        let runtime = match up_rx.recv() {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(ServerError::Core(oxinfer_core::Error::Backend("the server thread ended while starting".into()))),
        };
        tracing::info!(addr = ?addr, "serving");
        Ok(Server { addr, app, failures, stop: Some(stop_tx), thread: Some(thread), router, runtime })
    }

    /// What answers requests without a socket (see `Handler`).
    pub fn handler(&self) -> Handler {
        Handler { router: self.router.clone(), runtime: self.runtime.clone(), app: Arc::clone(&self.app) }
    }

    /// Stops accepting connections, lets every request already accepted
    /// finish, and returns once the server has stopped. Blocking.
    pub fn close(&mut self) {
        self.app.draining.store(true, Relaxed);
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    /// A server dropped without `close` stops the same way, but is not
    /// waited for: the drop may run on a thread that must not block (a JS
    /// finaliser), and the server thread ends by itself.
    fn drop(&mut self) {
        self.app.draining.store(true, Relaxed);
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.thread.take();
    }
}

/// Answers requests without a socket, on the server's runtime: the path of
/// the Fastify plugin. Holds no lock on the server, so a close can proceed
/// while requests are answered.
#[derive(Clone)]
pub struct Handler {
    router: axum::Router,
    runtime: tokio::runtime::Handle,
    app: Arc<App>,
}

/// An HTTP exchange in plain parts: method, URL (path and query), headers, body.
pub struct Exchange {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Handler {
    /// Answers `x` on the server's runtime and calls `done` with status,
    /// headers and body; a request that is not valid HTTP is a 400 like any
    /// other. Returns at once: no thread waits for the answer, and a close
    /// waits for it to be sent.
    pub fn spawn(&self, x: Exchange, done: Box<dyn FnOnce(Answer) + Send>) {
        let guard = self.app.exchanges.enter();
        let router = self.router.clone();
        // Answered exactly once: a task dropped unfinished (the runtime shut
        // down past the drain deadline) answers 503, a panic 500.
        let mut reply = Reply(Some(done));
        self.runtime.spawn(async move {
            let _guard = guard;
            let answered = match tokio::spawn(answer(router, x)).await {
                Ok(a) => a,
                Err(e) => plain(500, &format!("the request failed: {}", if e.is_panic() { "a panic in the server" } else { "cancelled" })),
            };
            if let Some(done) = reply.0.take() {
                done(answered);
            }
        });
    }

    /// The same as `spawn`, waiting for the answer. Blocking: call it off the runtime.
    pub fn handle(&self, x: Exchange) -> Answer {
        let _guard = self.app.exchanges.enter();
        self.runtime.block_on(answer(self.router.clone(), x))
    }
}

/// Status, headers and body of an answer.
pub type Answer = (u16, Vec<(String, String)>, Vec<u8>);

/// An error answer in the protocol's JSON.
fn plain(status: u16, message: &str) -> Answer {
    (status, vec![("content-type".into(), "application/json".into())], crate::protocol::encode_error(message))
}

/// A socketless exchange's reply, sent with 503 if dropped unsent.
struct Reply(Option<Box<dyn FnOnce(Answer) + Send>>);

impl Drop for Reply {
    fn drop(&mut self) {
        if let Some(done) = self.0.take() {
            done(plain(503, "the server closed before answering"));
        }
    }
}

async fn answer(router: axum::Router, x: Exchange) -> Answer {
    use tower::ServiceExt;
    let mut builder = axum::http::Request::builder().method(x.method.as_str()).uri(x.url.as_str());
    for (k, v) in &x.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let req = match builder.body(axum::body::Body::from(x.body)) {
        Ok(r) => r,
        Err(e) => return plain(400, &format!("not a valid HTTP request: {e}")),
    };
    let response = match router.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.map(|b| b.to_vec()).unwrap_or_default();
    let headers = parts.headers.iter().filter_map(|(k, v)| v.to_str().ok().map(|v| (k.to_string(), v.to_string()))).collect();
    (parts.status.as_u16(), headers, bytes)
}

/// Reloads changed model folders (and new ones, unless the server was
/// started with a list of models), and forgets removed ones, every `every`.
async fn poll_loop(app: Arc<App>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        if app.draining.load(Relaxed) {
            return;
        }
        let a = Arc::clone(&app);
        let _ = tokio::task::spawn_blocking(move || {
            for n in a.repo.removed() {
                tracing::info!(model = %n, "model folder removed; unloading");
                a.repo.forget(&n);
            }
            // With an explicit list of models to load, new folders wait for
            // the API, as in Triton's explicit mode; otherwise they load.
            let mut changed = a.repo.changed(a.options.models.is_none());
            // Graphs after the models they run, as at start.
            changed.sort_by_key(|n| a.repo.is_graph(n));
            for n in changed {
                // A failure is recorded in the index; the old version keeps serving.
                let _ = a.repo.reload_changed(&n);
            }
        })
        .await;
    }
}
