//! Starting the native KServe v2 server from JS: options converted once, the
//! server run on its own runtime (no request ever touches JS), and handles to
//! its served models' schedulers, so in-process calls share their queues.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use oxinfer_server::external::{External, ExternalModel, Reply};
use oxinfer_server::model::TensorMeta;
use oxinfer_server::{Server, ServerError, ServerOptions};

use crate::errors::{server_to_napi, to_napi};
use crate::hub::NativeHub;
use crate::pipeline::NativePipeline;
use crate::session::NativeSession;

#[napi(object)]
pub struct NativeServeOptions {
    pub repository: String,
    pub host: String,
    pub port: u32,
    pub library: String,
    pub poll_ms: Option<u32>,
    pub token: Option<String>,
    pub max_body_bytes: Option<f64>,
    pub timeout_ms: Option<f64>,
    pub threads: Option<u32>,
    pub models: Option<Vec<String>>,
    pub listen: Option<bool>,
    pub drain_ms: Option<f64>,
    /// The torch plugin, for TorchScript models.
    pub torch: Option<crate::session::NativePlugin>,
    /// Why there is no torch plugin (the message TorchScript models fail with).
    pub torch_missing: Option<String>,
}

#[napi(object)]
pub struct NativeLoadFailure {
    pub model: String,
    pub reason: String,
}

/// A served model version as JS sees it.
#[napi(object)]
pub struct NativeServedModel {
    pub name: String,
    pub version: String,
    pub platform: String,
    /// The pipeline spec (JSON) when the version is a pipeline.
    pub spec: Option<String>,
    pub max_batch_size: u32,
}

pub struct StartTask(Option<ServerOptions>);

impl Task for StartTask {
    type Output = Server;
    type JsValue = NativeServer;

    fn compute(&mut self) -> Result<Self::Output> {
        let options = self.0.take().ok_or_else(|| to_napi(oxinfer_core::Error::Backend("start ran twice".into())))?;
        std::panic::catch_unwind(move || Server::start(options)).unwrap_or_else(|p| Err(oxinfer_core::Error::from_panic(p).into())).map_err(server_to_napi)
    }

    fn resolve(&mut self, _env: Env, server: Self::Output) -> Result<Self::JsValue> {
        Ok(NativeServer { server: Arc::new(Mutex::new(Some(server))), js_calls: Default::default(), next_call: Arc::new(AtomicU64::new(1)) })
    }
}

/// Loads the repository and starts serving, off the JS thread.
#[napi(catch_unwind, ts_return_type = "Promise<NativeServer>")]
pub fn start_server(o: NativeServeOptions) -> Result<AsyncTask<StartTask>> {
    let bad = |m: String| to_napi(oxinfer_core::Error::InvalidArgument(m));
    let port = u16::try_from(o.port).map_err(|_| bad(format!("port must be from 0 to 65535, got {}", o.port)))?;
    let mut options = ServerOptions { repository: PathBuf::from(o.repository), host: o.host, port, library: PathBuf::from(o.library), token: o.token, models: o.models, ..ServerOptions::default() };
    options.torch = match (&o.torch, o.torch_missing) {
        (Some(p), _) => Ok(crate::session::plugin_spec(p)),
        (None, Some(why)) => Err(why),
        (None, None) => Err(oxinfer_server::model::engines::NO_TORCH.into()),
    };
    if let Some(ms) = o.poll_ms {
        options.poll = Some(std::time::Duration::from_millis(ms.max(10) as u64));
    }
    if let Some(b) = o.max_body_bytes {
        options.max_body_bytes = b as usize;
    }
    options.timeout_ms = o.timeout_ms.filter(|t| *t > 0.0);
    options.listen = o.listen.unwrap_or(true);
    if let Some(ms) = o.drain_ms.filter(|d| d.is_finite() && *d >= 0.0) {
        options.drain = std::time::Duration::from_secs_f64(ms / 1000.0);
    }
    if let Some(t) = o.threads {
        options.threads = t.max(1) as usize;
    }
    Ok(AsyncTask::new(StartTask(Some(options))))
}


pub struct CloseTask(Arc<Mutex<Option<Server>>>);

impl Task for CloseTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        let server = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut s) = server {
            s.close();
        }
        Ok(())
    }

    fn resolve(&mut self, _env: Env, _: ()) -> Result<()> {
        Ok(())
    }
}

#[napi]
pub struct NativeServer {
    server: Arc<Mutex<Option<Server>>>,
    /// JS-model requests waiting for their handler's answer, by call id.
    js_calls: Arc<Mutex<HashMap<u64, Reply>>>,
    next_call: Arc<AtomicU64>,
}

/// A tensor a JS model declares.
#[napi(object)]
pub struct NativeTensorMeta {
    pub name: String,
    /// The protocol's datatype (`FP32`, `BYTES`, ...).
    pub datatype: String,
    pub shape: Vec<i64>,
}

/// A JS model: each request becomes a hub event for its handler, answered
/// through `NativeServer.replyJs`.
struct JsModel {
    hub: Arc<crate::hub::Hub>,
    id: u64,
    calls: Arc<Mutex<HashMap<u64, Reply>>>,
    next: Arc<AtomicU64>,
}

impl ExternalModel for JsModel {
    fn call(&self, inputs: Vec<oxinfer_core::InputTensor>, wanted: Vec<String>, reply: Reply) {
        let call = self.next.fetch_add(1, Ordering::Relaxed);
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).insert(call, reply);
        if !self.hub.try_push(crate::hub::Event::JsCall(self.id, call, inputs, wanted)) {
            // JS is gone (the environment is shutting down): answer now.
            if let Some(reply) = self.calls.lock().unwrap_or_else(|e| e.into_inner()).remove(&call) {
                reply(Err(ServerError::Unavailable { message: "the JS side of this server has shut down".into(), retry_after: None }));
            }
        }
    }
}

impl NativeServer {
    fn with<T>(&self, f: impl FnOnce(&Server) -> T) -> Result<T> {
        let guard = self.server.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().map(f).ok_or_else(|| to_napi(oxinfer_core::Error::Disposed("the server was closed".into())))
    }
}

#[napi]
impl NativeServer {
    /// The address listened on; null without a socket.
    #[napi(getter)]
    pub fn host(&self) -> Result<Option<String>> {
        self.with(|s| s.addr.map(|a| a.ip().to_string()))
    }

    #[napi(getter)]
    pub fn port(&self) -> Result<Option<u32>> {
        self.with(|s| s.addr.map(|a| a.port() as u32))
    }

    /// Answers one HTTP request without a socket (the Fastify plugin's path):
    /// decoding, inference and encoding stay native on the server's runtime,
    /// and the answer comes back through the hub as `[status, headers, body]`
    /// for request `id`. No thread waits for it.
    #[napi]
    pub fn handle(&self, hub: &NativeHub, id: f64, method: String, url: String, headers: Vec<Vec<String>>, body: Buffer) -> Result<()> {
        let headers = headers.into_iter().filter_map(|h| match <[String; 2]>::try_from(h) {
            Ok([k, v]) => Some((k, v)),
            Err(_) => None,
        });
        let req = oxinfer_server::Exchange { method, url, headers: headers.collect(), body: body.to_vec() };
        // The server is looked up, not held, while the request runs, so that a close can proceed.
        let handler = self.with(|s| s.handler())?;
        let hub = Arc::clone(&hub.hub);
        let id = id as u64;
        handler.spawn(req, Box::new(move |answer| hub.push(crate::hub::Event::Http(id, answer))));
        Ok(())
    }

    /// Models that failed to load at start.
    #[napi(getter)]
    pub fn failures(&self) -> Result<Vec<NativeLoadFailure>> {
        self.with(|s| s.failures.iter().map(|(m, r)| NativeLoadFailure { model: m.clone(), reason: r.clone() }).collect())
    }

    /// The ready model versions.
    #[napi]
    pub fn models(&self) -> Result<Vec<NativeServedModel>> {
        self.with(|s| {
            s.app
                .repo
                .all()
                .iter()
                .map(|v| NativeServedModel {
                    name: v.model.clone(),
                    version: v.version.to_string(),
                    platform: v.platform().into(),
                    spec: match &v.kind {
                        oxinfer_server::model::Kind::Pipeline(p) => serde_json::to_string(p.spec()).ok(),
                        _ => None,
                    },
                    max_batch_size: v.config.max_batch_size,
                })
                .collect()
        })
    }

    /// A session over the served model's own scheduler (the latest version when none is given).
    #[napi]
    pub fn session(&self, hub: &NativeHub, name: String, version: Option<String>) -> Result<NativeSession> {
        let v = self.with(|s| s.app.repo.get(&name, version.as_deref()))?.map_err(server_to_napi)?;
        let scheduler = v.scheduler.clone().ok_or_else(|| to_napi(oxinfer_core::Error::InvalidArgument(format!("model '{name}' is a graph: it has no session of its own"))))?;
        Ok(NativeSession::over(scheduler, v.info.clone(), Arc::clone(&hub.hub), v.pool_size as u32))
    }

    /// The served pipeline's compiled form, to run in-process on the same scheduler.
    #[napi]
    pub fn pipeline(&self, name: String, version: Option<String>) -> Result<Option<NativePipeline>> {
        let v = self.with(|s| s.app.repo.get(&name, version.as_deref()))?.map_err(server_to_napi)?;
        Ok(match &v.kind {
            oxinfer_server::model::Kind::Pipeline(p) => Some(NativePipeline { inner: Arc::clone(p) }),
            _ => None,
        })
    }

    /// Serves `name` through the protocol with a JS handler: each request
    /// arrives as a hub event for `id`; the handler answers with `replyJs`.
    #[napi]
    pub fn add_js_model(&self, hub: &NativeHub, name: String, id: f64, inputs: Vec<NativeTensorMeta>, outputs: Vec<NativeTensorMeta>) -> Result<()> {
        oxinfer_server::repository::check_name(&name).map_err(server_to_napi)?;
        let metas = |list: Vec<NativeTensorMeta>| -> Result<Vec<TensorMeta>> {
            list.into_iter()
                .map(|m| Ok(TensorMeta { dtype: oxinfer_server::protocol::parse_datatype(&m.datatype).map_err(server_to_napi)?, name: m.name, shape: m.shape }))
                .collect()
        };
        let (inputs, outputs) = (metas(inputs)?, metas(outputs)?);
        let model = JsModel { hub: Arc::clone(&hub.hub), id: id as u64, calls: Arc::clone(&self.js_calls), next: Arc::clone(&self.next_call) };
        self.with(|s| {
            if s.app.repo.get(&name, None).is_ok() || s.app.externals.get(&name).is_some() {
                return Err(to_napi(oxinfer_core::Error::InvalidArgument(format!("a model named '{name}' is already served"))));
            }
            s.app.externals.add(External { name, model: Arc::new(model), inputs, outputs, stats: Default::default() });
            Ok(())
        })?
    }

    /// Answers JS-model request `call`: its outputs as feeds (`[name, typeCode, data, dims, ...]`), or an error message.
    #[napi]
    pub fn reply_js(&self, env: Env, call: f64, outputs: Unknown, error: Option<String>) -> Result<()> {
        let Some(reply) = self.js_calls.lock().unwrap_or_else(|e| e.into_inner()).remove(&(call as u64)) else { return Ok(()) };
        if let Some(message) = error {
            reply(Err(ServerError::Core(oxinfer_core::Error::Backend(message))));
            return Ok(());
        }
        match crate::feeds::parse(env.raw(), outputs.value().value) {
            // Copied out now: the answer is encoded on another thread, after this call returns.
            Ok(list) => reply(Ok(list.iter().map(|t| t.to_output()).collect())),
            Err(e) => reply(Err(ServerError::Core(oxinfer_core::Error::Backend(format!("the handler's outputs: {e}"))))),
        }
        Ok(())
    }

    /// The Prometheus text exposition.
    #[napi]
    pub fn metrics(&self) -> Result<String> {
        self.with(|s| s.app.metrics.render(&s.app.repo, &s.app.externals))
    }

    /// The metrics as prom-client's `metric.get()` shapes them (JSON), for a host registry to merge.
    #[napi]
    pub fn metrics_json(&self) -> Result<String> {
        self.with(|s| s.app.metrics.families_json(&s.app.repo, &s.app.externals).to_string())
    }

    /// The statistics extension's JSON for every ready version.
    #[napi]
    pub fn stats(&self) -> Result<String> {
        self.with(|s| oxinfer_server::routes_stats(&s.app).to_string())
    }

    /// Stops accepting, lets accepted requests finish, then resolves.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close(&self) -> AsyncTask<CloseTask> {
        AsyncTask::new(CloseTask(Arc::clone(&self.server)))
    }
}
