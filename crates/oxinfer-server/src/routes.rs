//! The KServe v2 REST routes (and Triton's configuration, statistics and
//! repository extensions) over the repository. Each handler decodes with
//! `protocol`, runs on the model's scheduler and encodes natively.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::error::ServerError;
use crate::model::{InferOptions, Version};
use crate::protocol;
use crate::app::App;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/stats", get(all_stats))
        .route("/v2/models/{m}", get(metadata))
        .route("/v2/models/{m}/ready", get(model_ready))
        .route("/v2/models/{m}/infer", post(infer))
        .route("/v2/models/{m}/config", get(config))
        .route("/v2/models/{m}/stats", get(stats))
        .route("/v2/models/{m}/drift", get(drift))
        .route("/v2/models/{m}/feedback", post(feedback))
        .route("/v2/models/{m}/versions/{v}/feedback", post(feedback_v))
        .route("/v2/models/{m}/versions/{v}/drift", get(drift_v))
        .route("/v2/models/{m}/versions/{v}", get(metadata_v))
        .route("/v2/models/{m}/versions/{v}/ready", get(model_ready_v))
        .route("/v2/models/{m}/versions/{v}/infer", post(infer_v))
        .route("/v2/models/{m}/versions/{v}/config", get(config_v))
        .route("/v2/models/{m}/versions/{v}/stats", get(stats_v))
        .route("/v2/repository/index", post(index))
        .route("/v2/repository/models/{m}/load", post(load))
        .route("/v2/repository/models/{m}/unload", post(unload))
        .route("/metrics", get(metrics))
        .fallback(|| async { error(ServerError::NotFound("no such route".into())) })
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&app), guard))
        .with_state(app)
}

/// An error as the protocol answers it: `{"error": "..."}` and its status.
pub fn error(e: ServerError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    // Server-side failures are logged; a client's mistakes (4xx) and the
    // answers of overload (503, 504), which come in floods, are in the access log.
    if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE && status != StatusCode::GATEWAY_TIMEOUT {
        tracing::warn!(status = status.as_u16(), code = e.code(), error = %e, "request failed");
    }
    let mut r = Response::new(Body::from(protocol::encode_error(&e.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(code) = HeaderValue::from_str(e.code()) {
        r.headers_mut().insert("x-oxinfer-error-code", code);
    }
    let retry = match &e {
        ServerError::Unavailable { retry_after, .. } => *retry_after,
        ServerError::Core(c) if c.kind() == oxinfer_core::ErrorCode::Overloaded => Some(1),
        _ => None,
    };
    if let Some(s) = retry {
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

fn json_response(v: Value) -> Response {
    let mut r = Response::new(Body::from(serde_json::to_vec(&v).unwrap_or_default()));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// Bearer-token check (health routes stay open for probes), the in-flight
/// gauge, and refusal of new requests while draining.
async fn guard(State(app): State<Arc<App>>, req: Request<Body>, next: Next) -> Response {
    let path = req.uri().path();
    let open = path.starts_with("/v2/health/");
    if let (Some(token), false) = (&app.options.token, open) {
        let given = req.headers().get(header::AUTHORIZATION).and_then(|h| h.to_str().ok()).and_then(|h| h.strip_prefix("Bearer "));
        if given.map(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) != Some(true) {
            let mut r = error(ServerError::Unauthorized("a valid bearer token is required".into()));
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    // A guard, so that a request dropped by a disconnecting client still leaves the gauge.
    struct InFlight<'a>(&'a prometheus::IntGauge);
    impl Drop for InFlight<'_> {
        fn drop(&mut self) {
            self.0.dec();
        }
    }
    app.metrics.http_in_flight.inc();
    let _guard = InFlight(&app.metrics.http_in_flight);
    // The access log is debug-level: off by default, and a disabled callsite costs a branch.
    if tracing::enabled!(tracing::Level::DEBUG) {
        let (method, path, started) = (req.method().clone(), req.uri().path().to_string(), Instant::now());
        let r = next.run(req).await;
        tracing::debug!(method = %method, path = %path, status = r.status().as_u16(), micros = started.elapsed().as_micros() as u64, "request");
        return r;
    }
    next.run(req).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn server_metadata() -> Response {
    json_response(json!({
        "name": "oxinfer",
        "version": oxinfer_core::VERSION,
        "extensions": ["binary_tensor_data", "model_repository", "model_configuration", "statistics"]
    }))
}

async fn live() -> Response {
    StatusCode::OK.into_response()
}

async fn ready(State(app): State<Arc<App>>) -> Response {
    if !app.draining.load(Relaxed) && app.repo.all_ready() {
        StatusCode::OK.into_response()
    } else {
        error(ServerError::Unavailable { message: "the server is not ready".into(), retry_after: Some(1) })
    }
}

fn version_metadata(app: &App, name: &str, v: Option<&str>) -> Result<Value, ServerError> {
    let tensors = |list: &[crate::model::TensorMeta]| -> Vec<Value> { list.iter().map(|t| json!({ "name": t.name, "datatype": protocol::datatype_name(t.dtype), "shape": t.shape })).collect() };
    if let Some(x) = external(app, name, v)? {
        return Ok(json!({ "name": name, "versions": ["1"], "platform": "oxinfer_js", "inputs": tensors(&x.inputs), "outputs": tensors(&x.outputs) }));
    }
    let ver = app.repo.get(name, v)?;
    let versions: Vec<String> = app.repo.all().iter().filter(|x| x.model == name).map(|x| x.version.to_string()).collect();
    Ok(json!({ "name": name, "versions": versions, "platform": ver.platform(), "inputs": tensors(&ver.inputs), "outputs": tensors(&ver.outputs) }))
}

/// The JS model `name`, which has the one version "1".
fn external(app: &App, name: &str, v: Option<&str>) -> Result<Option<Arc<crate::external::External>>, ServerError> {
    match app.externals.get(name) {
        None => Ok(None),
        Some(_) if v.is_some_and(|v| v != "1") => Err(ServerError::NotFound(format!("model '{name}' has no version {} ready", v.unwrap_or_default()))),
        Some(x) => Ok(Some(x)),
    }
}

async fn metadata(State(app): State<Arc<App>>, Path(m): Path<String>) -> Response {
    version_metadata(&app, &m, None).map_or_else(error, json_response)
}

async fn metadata_v(State(app): State<Arc<App>>, Path((m, v)): Path<(String, String)>) -> Response {
    version_metadata(&app, &m, Some(&v)).map_or_else(error, json_response)
}

async fn model_ready(State(app): State<Arc<App>>, Path(m): Path<String>) -> Response {
    if app.externals.get(&m).is_some() {
        return StatusCode::OK.into_response();
    }
    app.repo.get(&m, None).map_or_else(error, |_| StatusCode::OK.into_response())
}

async fn model_ready_v(State(app): State<Arc<App>>, Path((m, v)): Path<(String, String)>) -> Response {
    app.repo.get(&m, Some(&v)).map_or_else(error, |_| StatusCode::OK.into_response())
}

/// Triton's configuration JSON, as `tritonclient` and `perf_analyzer` read it.
fn config_json(v: &Version) -> Value {
    let c = &v.config;
    let batched = c.max_batch_size > 0;
    let tensors = |list: &[crate::model::TensorMeta]| -> Vec<Value> {
        list.iter()
            .map(|t| {
                let dims: Vec<i64> = if batched { t.shape.iter().skip(1).copied().collect() } else { t.shape.clone() };
                json!({ "name": t.name, "data_type": format!("TYPE_{}", protocol::datatype_name(t.dtype).replace("BYTES", "STRING")), "dims": dims, "format": "FORMAT_NONE" })
            })
            .collect()
    };
    let mut out = json!({
        "name": v.model,
        "platform": v.platform(),
        "backend": "oxinfer",
        "max_batch_size": c.max_batch_size,
        "input": tensors(&v.inputs),
        "output": tensors(&v.outputs),
        "instance_group": [{ "name": v.model, "kind": "KIND_CPU", "count": v.pool_size }],
        "version_policy": { "latest": { "num_versions": 1 } },
    });
    if let Some(sb) = &c.sequence_batching {
        out["sequence_batching"] = json!({
            "max_sequence_idle_microseconds": sb.max_sequence_idle_microseconds,
            "max_sequences": sb.max_sequences,
            "state": sb.state.iter().map(|s| json!({ "input_name": s.input_name, "output_name": s.output_name })).collect::<Vec<_>>(),
        });
    }
    if let Some(d) = &c.dynamic_batching {
        out["dynamic_batching"] = json!({
            "preferred_batch_size": d.preferred_batch_size,
            "max_queue_delay_microseconds": d.max_queue_delay_microseconds,
            "priority_levels": d.priority_levels,
        });
    }
    out
}

async fn config(State(app): State<Arc<App>>, Path(m): Path<String>) -> Response {
    app.repo.get(&m, None).map_or_else(error, |v| json_response(config_json(&v)))
}

async fn config_v(State(app): State<Arc<App>>, Path((m, v)): Path<(String, String)>) -> Response {
    app.repo.get(&m, Some(&v)).map_or_else(error, |v| json_response(config_json(&v)))
}

/// One version's statistics, as Triton's statistics extension shapes them.
fn stats_body(name: &str, version: &str, s: &crate::stats::Stats, executions: u64, pending: usize, queued: usize) -> Value {
    json!({
        "name": name,
        "version": version,
        "last_inference": s.last_inference.load(Relaxed),
        "inference_count": s.inference_count.load(Relaxed),
        "execution_count": executions,
        "inference_stats": {
            "success": s.success.json(),
            "fail": s.fail.json(),
            "queue": s.queue.json(),
            "compute_input": s.compute_input.json(),
            "compute_infer": s.compute_infer.json(),
            "compute_output": s.compute_output.json(),
        },
        "failures": *s.failures.lock().unwrap_or_else(|p| p.into_inner()),
        "pending_request_count": pending,
        "queue_size": queued,
    })
}

fn stats_json(v: &Version) -> Value {
    let mut out = stats_body(&v.model, &v.version.to_string(), &v.stats, v.executions(), v.pending(), v.queued());
    if let crate::model::Kind::Pipeline(p) = &v.kind {
        if let Some(b) = p.business() {
            out["business_metrics"] = serde_json::to_value(b.values()).unwrap_or(Value::Null);
        }
    }
    // A graph's switch nodes: their decisions and each variant's latency.
    if let crate::model::Kind::Graph(g) = &v.kind {
        let switches: Vec<Value> = g
            .graph
            .switch_stats()
            .iter()
            .map(|s| {
                json!({
                    "node": s.node, "policy": s.policy, "current": s.current, "decisions": s.decisions, "switches": s.switches, "probes": s.probes,
                    "variants": s.variants.iter().map(|x| json!({ "name": x.name, "quality": x.quality, "chosen": x.chosen, "runs": x.runs, "p50_us": x.p50_us, "p95_us": x.p95_us })).collect::<Vec<_>>(),
                    "trial": s.trial,
                })
            })
            .collect();
        out["graph_switches"] = Value::Array(switches);
    }
    out
}

/// A JS model's statistics: each request is one execution, and nothing queues natively.
fn external_stats_json(x: &crate::external::External) -> Value {
    let s = &x.stats;
    stats_body(&x.name, "1", s, s.success.count.load(Relaxed) + s.fail.count.load(Relaxed), 0, 0)
}

/// `{"model_stats": [...]}` for every ready version and every JS model.
pub fn all_stats_json(app: &App) -> Value {
    let mut list: Vec<Value> = app.repo.all().iter().map(|v| stats_json(v)).collect();
    list.extend(app.externals.all().iter().map(|x| external_stats_json(x)));
    json!({ "model_stats": list })
}

async fn all_stats(State(app): State<Arc<App>>) -> Response {
    json_response(all_stats_json(&app))
}

async fn stats(State(app): State<Arc<App>>, Path(m): Path<String>) -> Response {
    if let Some(x) = app.externals.get(&m) {
        return json_response(json!({ "model_stats": [external_stats_json(&x)] }));
    }
    match app.repo.get(&m, None) {
        Ok(_) => json_response(json!({ "model_stats": app.repo.all().iter().filter(|v| v.model == m).map(|v| stats_json(v)).collect::<Vec<_>>() })),
        Err(e) => error(e),
    }
}

async fn stats_v(State(app): State<Arc<App>>, Path((m, v)): Path<(String, String)>) -> Response {
    match external(&app, &m, Some(&v)) {
        Ok(Some(x)) => return json_response(json!({ "model_stats": [external_stats_json(&x)] })),
        Ok(None) => {}
        Err(e) => return error(e),
    }
    app.repo.get(&m, Some(&v)).map_or_else(error, |v| json_response(json!({ "model_stats": [stats_json(&v)] })))
}

/// A pipeline's drift report: its monitored features over the current window.
fn drift_json(v: &Version) -> Response {
    match v.monitor() {
        Some(m) => {
            let mut report = serde_json::to_value(m.report()).unwrap_or(Value::Null);
            if let Value::Object(o) = &mut report {
                o.insert("model".into(), json!(v.model));
                o.insert("version".into(), json!(v.version.to_string()));
            }
            json_response(report)
        }
        None => error(ServerError::bad(format!(
            "model '{}' has no drift monitor: a pipeline spec's monitor section (with a reference profile from pipeline.profile) adds one",
            v.model
        ))),
    }
}

/// Outcomes for predictions by id: `{"id", "truth"}` or `{"feedback": [...]}`.
/// Applied in order; the first refused one answers for the request (404 an
/// unknown id, 409 a second outcome, 400 a wrong truth), with the count
/// accepted before it.
fn feedback_json(v: &Version, body: &[u8]) -> Response {
    use oxinfer_core::monitor::feedback::{Refusal, Truth};
    let graph = match &v.kind {
        crate::model::Kind::Graph(g) if g.graph.takes_feedback() => Some(&g.graph),
        _ => None,
    };
    let pipeline = match (v.feedback(), &v.kind) {
        (Some(f), crate::model::Kind::Pipeline(p)) => Some((f, p)),
        _ => None,
    };
    if graph.is_none() && pipeline.is_none() {
        return error(ServerError::bad(format!(
            "model '{}' takes no feedback: a pipeline spec's monitor.feedback section (naming the records' id field), or a graph switch with a 'feedback' policy, adds it",
            v.model
        )));
    }
    let truth_of = |t: &Value| match t {
        Value::String(s) => Some(Truth::Label(s.clone())),
        Value::Number(n) => Some(Truth::Value(n.as_f64().unwrap_or(f64::NAN))),
        _ => None,
    };
    let parsed: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return error(ServerError::bad(format!("the feedback is not JSON: {e}"))),
    };
    let items: Vec<Value> = match parsed.get("feedback") {
        Some(Value::Array(list)) => list.clone(),
        Some(_) => return error(ServerError::bad("feedback must be an array of {\"id\", \"truth\"}")),
        None => vec![parsed],
    };
    let mut accepted = 0usize;
    let mut decisions = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let id = match item.get("id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return error(ServerError::bad(format!("feedback[{i}]: id must be a non-empty string"))),
        };
        // A graph takes one truth per row of the request (an array), or one.
        let truths: Option<Vec<Truth>> = match (item.get("truth"), graph.is_some()) {
            (Some(Value::Array(list)), true) if !list.is_empty() => list.iter().map(truth_of).collect(),
            (Some(t), _) => truth_of(t).map(|t| vec![t]),
            (None, _) => None,
        };
        let Some(mut truths) = truths else {
            let what = if graph.is_some() { "a class label (string), a number, or an array of them (one per row)" } else { "a class label (string) or a number" };
            return error(ServerError::bad(format!("feedback[{i}]: truth must be {what}")));
        };
        let outcome = match (graph, &pipeline) {
            (Some(g), _) => g.feedback(&id, &truths).map(|made| decisions.extend(made)),
            (None, Some((_, p))) => p.answer(&id, truths.remove(0)),
            (None, None) => unreachable!("checked above"),
        };
        if let Err(r) = outcome {
            let e = match r {
                Refusal::UnknownId(m) => ServerError::NotFound(m),
                Refusal::Answered(m) => ServerError::Conflict(m),
                Refusal::WrongTruth(m) => ServerError::bad(m),
            };
            let mut resp = error(e);
            if accepted > 0 {
                resp.headers_mut().insert("x-oxinfer-accepted", HeaderValue::from(accepted));
            }
            return resp;
        }
        accepted += 1;
    }
    match (pipeline, graph) {
        (Some((f, _)), _) => json_response(json!({ "accepted": accepted, "quality": f.quality() })),
        (None, Some(g)) => {
            let trials: Vec<Value> = g.switch_stats().into_iter().filter_map(|s| s.trial.map(|t| json!({ "node": s.node, "trial": t }))).collect();
            let made: Vec<Value> = decisions.into_iter().map(|(node, d)| json!({ "node": node, "decision": d })).collect();
            json_response(json!({ "accepted": accepted, "decisions": made, "trials": trials }))
        }
        (None, None) => unreachable!("checked above"),
    }
}

/// A fresh request id: the process's start time and a counter, unique per
/// server run and ordered.
fn request_id() -> String {
    use std::sync::atomic::AtomicU64;
    use std::sync::OnceLock;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static BOOT: OnceLock<u64> = OnceLock::new();
    let boot = *BOOT.get_or_init(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64));
    format!("ox-{boot:x}-{}", NEXT.fetch_add(1, Relaxed))
}

async fn feedback(State(app): State<Arc<App>>, Path(m): Path<String>, body: Bytes) -> Response {
    app.repo.get(&m, None).map_or_else(error, |v| feedback_json(&v, &body))
}

async fn feedback_v(State(app): State<Arc<App>>, Path((m, v)): Path<(String, String)>, body: Bytes) -> Response {
    app.repo.get(&m, Some(&v)).map_or_else(error, |v| feedback_json(&v, &body))
}

async fn drift(State(app): State<Arc<App>>, Path(m): Path<String>) -> Response {
    app.repo.get(&m, None).map_or_else(error, |v| drift_json(&v))
}

async fn drift_v(State(app): State<Arc<App>>, Path((m, v)): Path<(String, String)>) -> Response {
    app.repo.get(&m, Some(&v)).map_or_else(error, |v| drift_json(&v))
}

async fn infer(State(app): State<Arc<App>>, Path(m): Path<String>, headers: HeaderMap, body: Body) -> Response {
    run_infer(app, m, None, headers, body).await
}

async fn infer_v(State(app): State<Arc<App>>, Path((m, v)): Path<(String, String)>, headers: HeaderMap, body: Body) -> Response {
    run_infer(app, m, Some(v), headers, body).await
}

async fn read_body(app: &App, body: Body) -> Result<Bytes, ServerError> {
    let limit = app.options.max_body_bytes;
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let text = e.to_string();
        if text.contains("length limit") {
            ServerError::PayloadTooLarge(format!("the request body is over the {limit}-byte limit"))
        } else {
            ServerError::bad(format!("cannot read the request body: {text}"))
        }
    })
}

async fn run_infer(app: Arc<App>, m: String, v: Option<String>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    match external(&app, &m, v.as_deref()) {
        Ok(Some(x)) => return run_external(app, x, headers, body).await,
        Ok(None) => {}
        Err(e) => return error(e),
    }
    let version = match app.repo.get(&m, v.as_deref()) {
        Ok(x) => x,
        Err(e) => return error(e),
    };
    let mut req = match decode_request(&app, &headers, body).await {
        Ok(r) => r,
        Err(e) => {
            version.stats.count_failure(&e);
            app.metrics.observe(&version.model, &version.version.to_string(), Err(e.code()), 0, started.elapsed().as_secs_f64() * 1e6);
            return error(e);
        }
    };
    let sequence = match crate::model::sequence::Control::read(&req.parameters) {
        Ok(s) => s,
        Err(e) => return error(e),
    };
    // A graph that learns from outcomes needs every prediction's id: the
    // request's own, or one made here and echoed in the response.
    let takes_feedback = matches!(&version.kind, crate::model::Kind::Graph(g) if g.graph.takes_feedback());
    if takes_feedback && req.id.as_deref().is_none_or(str::is_empty) {
        req.id = Some(request_id());
    }
    let nodes = matches!(&version.kind, crate::model::Kind::Graph(_)).then(Default::default);
    let options = InferOptions {
        nodes: nodes.clone(),
        id: if takes_feedback { req.id.clone() } else { None },
        sequence,
        // As in Triton, priority 0 and timeout 0 mean the model's default.
        priority: req.parameters.get("priority").and_then(|p| p.as_u64()).filter(|&p| p > 0).map(|p| p.min(u32::MAX as u64) as u32),
        timeout_ms: req.parameters.get("timeout").and_then(|t| t.as_f64()).filter(|&us| us > 0.0).map(|us| us / 1000.0).or(app.options.timeout_ms),
    };
    let wanted: Vec<String> = req.outputs.iter().map(|o| o.name.clone()).collect();
    let rows = req.inputs.first().and_then(|t| t.dims.first()).map_or(1, |&n| n.max(0) as u64);
    let result = version.infer(std::mem::take(&mut req.inputs), &wanted, &options).await;
    let took = started.elapsed().as_secs_f64() * 1e6;
    match result {
        Ok((outputs, timing)) => {
            let ver = version.version.to_string();
            app.metrics.observe(&version.model, &ver, Ok(&timing), rows, took);
            if let Some(list) = &nodes {
                app.metrics.observe_nodes(&version.model, &ver, &list.lock().unwrap_or_else(|e| e.into_inner()));
            }
            let mut r = infer_response(&version.model, &ver, &req, &outputs);
            let h = r.headers_mut();
            h.insert("x-queue-time-us", HeaderValue::from(timing.queue_us));
            h.insert("x-inference-time-us", HeaderValue::from(timing.infer_us));
            r
        }
        Err(e) => {
            app.metrics.observe(&version.model, &version.version.to_string(), Err(e.code()), rows, took);
            error(e)
        }
    }
}

/// An infer request's body read (within the size limit) and decoded, with
/// the binary header length it declares; the same for every kind of model.
async fn decode_request(app: &App, headers: &HeaderMap, body: Body) -> Result<protocol::InferRequest, ServerError> {
    if let Some(enc) = headers.get(header::CONTENT_ENCODING) {
        if enc.as_bytes() != b"identity" {
            return Err(ServerError::bad(format!("Content-Encoding '{}' is not supported; send the body uncompressed", enc.to_str().unwrap_or("?"))));
        }
    }
    let body = read_body(app, body).await?;
    let header_len = match headers.get("inference-header-content-length") {
        None => None,
        Some(h) => Some(h.to_str().ok().and_then(|s| s.trim().parse::<usize>().ok()).ok_or_else(|| ServerError::bad("Inference-Header-Content-Length is not a number"))?),
    };
    protocol::decode_infer(&body, header_len, &app.options.limits)
}

/// The encoded answer: each output binary where the request asks (per
/// output, else its `binary_data_output` default).
fn infer_response(model: &str, version: &str, req: &protocol::InferRequest, outputs: &[oxinfer_core::OutputTensor]) -> Response {
    let binary: Vec<bool> = outputs.iter().map(|o| req.outputs.iter().find(|r| r.name == o.name).and_then(|r| r.binary).unwrap_or(req.binary_default)).collect();
    let enc = protocol::encode_infer(model, Some(version), req.id.as_deref(), None, outputs, &binary);
    let mut r = Response::new(Body::from(enc.body));
    let h = r.headers_mut();
    match enc.header_len {
        Some(n) => {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            h.insert("inference-header-content-length", HeaderValue::from(n));
        }
        None => {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
    }
    r
}

/// A JS model's request: the same decoding and encoding, the work done by its handler.
async fn run_external(app: Arc<App>, x: Arc<crate::external::External>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let took = || started.elapsed().as_secs_f64() * 1e6;
    let mut req = match decode_request(&app, &headers, body).await {
        Ok(r) => r,
        Err(e) => {
            x.stats.count_failure(&e);
            app.metrics.observe(&x.name, "1", Err(e.code()), 0, took());
            return error(e);
        }
    };
    let wanted: Vec<String> = req.outputs.iter().map(|o| o.name.clone()).collect();
    let rows = req.inputs.first().and_then(|t| t.dims.first()).map_or(1, |&n| n.max(0) as u64);
    let timeout = std::time::Duration::from_secs_f64(app.options.timeout_ms.unwrap_or(60_000.0) / 1000.0);
    match x.infer(std::mem::take(&mut req.inputs), &wanted, timeout).await {
        Ok((outputs, timing)) => {
            app.metrics.observe(&x.name, "1", Ok(&timing), rows, took());
            infer_response(&x.name, "1", &req, &outputs)
        }
        Err(e) => {
            app.metrics.observe(&x.name, "1", Err(e.code()), rows, took());
            error(e)
        }
    }
}

async fn index(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let ready_only = if body.is_empty() {
        false
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) => v.get("ready").and_then(|r| r.as_bool()).unwrap_or(false),
            Err(e) => return error(ServerError::bad(format!("the index request is not JSON: {e}"))),
        }
    };
    let mut list = app.repo.index(ready_only);
    for x in app.externals.all() {
        list.push(json!({ "name": x.name, "version": "1", "state": "READY", "reason": "" }));
    }
    json_response(Value::Array(list))
}

async fn load(State(app): State<Arc<App>>, Path(m): Path<String>, body: Bytes) -> Response {
    // Triton passes an override configuration as a JSON string in parameters.config.
    let config = if body.is_empty() {
        None
    } else {
        let v: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return error(ServerError::bad(format!("the load request is not JSON: {e}"))),
        };
        match v.pointer("/parameters/config") {
            None => None,
            Some(Value::String(s)) => match serde_json::from_str(s) {
                Ok(c) => Some(c),
                Err(e) => return error(ServerError::bad(format!("parameters.config is not JSON: {e}"))),
            },
            Some(c @ Value::Object(_)) => Some(c.clone()),
            Some(_) => return error(ServerError::bad("parameters.config must be a JSON string")),
        }
    };
    let repo = Arc::clone(&app);
    match tokio::task::spawn_blocking(move || repo.repo.load(&m, config)).await {
        Ok(Ok(())) => StatusCode::OK.into_response(),
        Ok(Err(e)) => error(e),
        Err(e) => error(ServerError::Core(oxinfer_core::Error::Backend(format!("the load task failed: {e}")))),
    }
}

async fn unload(State(app): State<Arc<App>>, Path(m): Path<String>) -> Response {
    for v in app.repo.all().iter().filter(|v| v.model == m) {
        if let Some(seq) = &v.sequences {
            seq.close_all();
        }
    }
    app.repo.unload(&m).map_or_else(error, |_| StatusCode::OK.into_response())
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let mut r = Response::new(Body::from(app.metrics.render(&app.repo, &app.externals)));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    r
}
