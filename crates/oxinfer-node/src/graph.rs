//! Graphs from JS: the spec's model keys listed for the TS layer to resolve,
//! each key bound to a session's scheduler, the graph built and validated
//! natively, and each request run there with its outputs (and where its time
//! went) delivered through the hub.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::*;
use oxinfer_core::graph::{self, spec::GraphSpec, spec::NodeKind, Graph, GraphResult, GraphRunOptions, NodeRunner, NodeStatus, PipelineRunner, SchedulerRunner, Variant};
use oxinfer_core::{Error as CoreError, RunOutput, Timing};

use crate::errors::IntoNapi;
use crate::hub::{Event, Hub, NativeHub};
use crate::payload::{GraphDelivery, NativeNodeReport};
use crate::session::{NativeSession, NativeValueInfo};

fn in_file(e: CoreError, text: &str, file: Option<&str>) -> CoreError {
    match file {
        Some(f) => oxinfer_core::pipeline::locate::in_file(e, text, f),
        None => e,
    }
}

/// Every model key a spec names (model, switch variant and rank nodes,
/// nested graphs included), sorted and without repeats.
fn keys(spec: &GraphSpec, out: &mut Vec<String>) {
    for n in &spec.nodes {
        match &n.kind {
            NodeKind::Model { model } => out.push(model.clone()),
            NodeKind::Switch(s) => out.extend(s.variants.iter().map(|v| v.model.clone())),
            NodeKind::Rank(r) => out.push(r.model.clone()),
            NodeKind::Graph(g) => keys(g, out),
            NodeKind::Op(_) => {}
        }
    }
}

/// Parses `spec` (errors located in `file` when given) and lists the model
/// keys it names, for the caller to bind before building.
#[napi(catch_unwind)]
pub fn graph_model_keys(spec: String, file: Option<String>) -> Result<Vec<String>> {
    let parsed = graph::parse(&spec).map_err(|e| in_file(e, &spec, file.as_deref())).js()?;
    let mut out = Vec::new();
    keys(&parsed, &mut out);
    out.sort();
    out.dedup();
    Ok(out)
}

/// Collects the sessions a graph's model keys stand for, then builds it.
#[napi]
pub struct NativeGraphBuilder {
    runners: HashMap<String, Arc<dyn NodeRunner>>,
}

#[napi]
impl NativeGraphBuilder {
    #[napi(constructor)]
    pub fn new() -> Self {
        NativeGraphBuilder { runners: HashMap::new() }
    }

    /// Binds `key` to `session`'s queue: the graph's runs of that model merge
    /// with the session's own (and other graphs') into batches.
    #[napi]
    pub fn bind(&mut self, key: String, session: &NativeSession) -> Result<()> {
        let scheduler = session.scheduler().js()?;
        self.runners.insert(key, Arc::new(SchedulerRunner::new(scheduler, session.model_info().clone())));
        Ok(())
    }

    /// Binds `key` to a pipeline compiled against `session`'s model: the
    /// node's inputs are its fields, its outputs the result columns, and
    /// its runs merge with the pipeline's own on that session's queue.
    #[napi]
    pub fn bind_pipeline(&mut self, key: String, pipeline: &crate::pipeline::NativePipeline, session: &NativeSession) -> Result<()> {
        let scheduler = session.scheduler().js()?;
        let runner = PipelineRunner::new(Arc::clone(&pipeline.inner), scheduler).js()?;
        self.runners.insert(key, Arc::new(runner));
        Ok(())
    }

    /// Builds the graph: every check of the spec against the models runs
    /// here (cycles, dangling inputs, types and shapes on edges). Files the
    /// spec names are relative to `base`.
    #[napi(catch_unwind)]
    pub fn build(&self, hub: &NativeHub, spec: String, file: Option<String>, base: Option<String>) -> Result<NativeGraph> {
        let base = base.map(std::path::PathBuf::from);
        let g = Graph::build_in(&spec, &self.runners, base.as_deref()).map_err(|e| in_file(e, &spec, file.as_deref())).js()?;
        Ok(NativeGraph { inner: Arc::new(g), hub: Arc::clone(&hub.hub), running: Default::default() })
    }
}

impl Default for NativeGraphBuilder {
    fn default() -> Self {
        Self::new()
    }
}

#[napi]
pub struct NativeGraph {
    inner: Arc<Graph>,
    hub: Arc<Hub>,
    /// Aborters of requests in flight, by request id.
    running: Arc<Mutex<HashMap<u64, Arc<oxinfer_core::RunControl>>>>,
}

/// Where an outcome goes: kept for the `run` call still on the stack (an
/// inline request), or, once that call has returned, to the hub.
enum Handoff {
    Waiting,
    Done(oxinfer_core::Result<GraphDelivery>),
    Gone,
}

fn delivery(r: GraphResult) -> GraphDelivery {
    let engine: u64 = r.engine_us();
    let mut skipped = Vec::new();
    let mut tensors = Vec::new();
    for o in r.outputs {
        match o.value {
            Some(t) => tensors.push(t),
            None => skipped.push(o.name),
        }
    }
    let nodes = r
        .nodes
        .iter()
        .map(|n| NativeNodeReport {
            node: n.node.clone(),
            ran: n.status == NodeStatus::Ran,
            wall_us: n.wall_us as f64,
            queue_us: n.timing.queue_us as f64,
            engine_us: (n.timing.pre_us + n.timing.infer_us + n.timing.post_us) as f64,
            batch_rows: n.timing.batch_rows,
            runs: n.runs,
            variant: n.variant.map(|v| v as u32),
        })
        .collect();
    let timing = Timing { infer_us: engine, ..Timing::default() };
    GraphDelivery { outputs: RunOutput { tensors, micros: r.wall_us, timing }, skipped, nodes }
}

#[napi]
impl NativeGraph {
    #[napi(getter)]
    pub fn inputs(&self) -> Vec<NativeValueInfo> {
        crate::session::value_infos(self.inner.inputs())
    }

    #[napi(getter)]
    pub fn outputs(&self) -> Vec<NativeValueInfo> {
        crate::session::value_infos(self.inner.outputs())
    }

    /// The node names, in spec order.
    #[napi(getter)]
    pub fn nodes(&self) -> Vec<String> {
        self.inner.nodes().into_iter().map(String::from).collect()
    }

    /// Every switch node's decisions and per-variant latencies (JSON).
    #[napi]
    pub fn switch_stats(&self) -> String {
        use serde_json::json;
        let list: Vec<serde_json::Value> = self
            .inner
            .switch_stats()
            .iter()
            .map(|s| {
                json!({
                    "node": s.node, "policy": s.policy, "current": s.current, "decisions": s.decisions, "switches": s.switches, "probes": s.probes,
                    "variants": s.variants.iter().map(|v| json!({ "name": v.name, "quality": v.quality, "chosen": v.chosen, "runs": v.runs, "p50Us": v.p50_us, "p95Us": v.p95_us, "lastUs": v.last_us })).collect::<Vec<_>>(),
                    "events": s.events.iter().map(|e| json!({ "decision": e.decision, "from": e.from, "to": e.to, "measure": e.measure })).collect::<Vec<_>>(),
                    "trial": s.trial,
                })
            })
            .collect();
        serde_json::Value::Array(list).to_string()
    }

    /// Whether a node waits on a network service (a lookup): never inline.
    #[napi(getter)]
    pub fn waits_on_io(&self) -> bool {
        self.inner.waits_on_io()
    }

    /// Whether a switch runs a `feedback` trial (requests then carry ids).
    #[napi(getter)]
    pub fn takes_feedback(&self) -> bool {
        self.inner.takes_feedback()
    }

    /// The outcome of request `id`, one truth per row (a class label, index
    /// or value); the decisions it made, as JSON `[[node, decision]...]`.
    #[napi]
    pub fn feedback(&self, id: String, truths: Vec<Either<String, f64>>) -> Result<String> {
        use oxinfer_core::monitor::feedback::Truth;
        let truths: Vec<Truth> = truths
            .into_iter()
            .map(|t| match t {
                Either::A(l) => Truth::Label(l),
                Either::B(v) => Truth::Value(v),
            })
            .collect();
        let decisions = self.inner.feedback(&id, &truths).map_err(oxinfer_core::monitor::feedback::Refusal::into_error).js()?;
        Ok(serde_json::to_string(&decisions).unwrap_or_default())
    }

    /// Runs one request (`feeds` flat: `[name, typeCode, data, dims, ...]`,
    /// copied now). `variants` maps switch node names to a variant name or
    /// index. With `inline`, short models with empty queues run on this
    /// thread; a request that finishes before this call returns has its
    /// outcome returned, any other arrives through the hub for `id`.
    #[napi]
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        env: Env,
        id: f64,
        feeds: Unknown,
        timeout_ms: Option<f64>,
        priority: Option<u32>,
        variants: Option<HashMap<String, Either<u32, String>>>,
        inline: Option<bool>,
        request_id: Option<String>,
    ) -> Result<Unknown<'_>> {
        let id = id as u64;
        let inputs: Vec<oxinfer_core::InputTensor> = crate::feeds::parse(env.raw(), feeds.value().value).js()?.into_iter().map(|t| t.into_owned()).collect();
        let ctl = Arc::new(oxinfer_core::RunControl::new());
        let inline = inline.unwrap_or(false);
        let opts = GraphRunOptions {
            priority: oxinfer_core::request::level(priority),
            deadline: oxinfer_core::request::deadline(timeout_ms),
            variants: variants
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| {
                    (
                        k,
                        match v {
                            Either::A(i) => Variant::Index(i as usize),
                            Either::B(s) => Variant::Name(s),
                        },
                    )
                })
                .collect(),
            ctl: Some(Arc::clone(&ctl)),
            inline,
            id: request_id,
        };
        self.running.lock().unwrap_or_else(|e| e.into_inner()).insert(id, ctl);
        // While this call runs, an outcome is kept for it; after, it goes to the hub.
        let here: Arc<Mutex<Handoff>> = Arc::new(Mutex::new(Handoff::Waiting));
        let theirs = Arc::clone(&here);
        let (hub, running) = (Arc::clone(&self.hub), Arc::clone(&self.running));
        let done: oxinfer_core::graph::GraphDone = Box::new(move |r| {
                running.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                let r = r.map(delivery);
                let mut h = theirs.lock().unwrap_or_else(|e| e.into_inner());
                match *h {
                    Handoff::Waiting if inline => *h = Handoff::Done(r),
                    _ => {
                        drop(h);
                        hub.push(Event::Graph(id, r));
                    }
                }
            });
        // Inline: on this thread (measured short). Otherwise off it, ops before the first model included.
        if inline {
            self.inner.run(inputs, opts, done);
        } else {
            self.inner.run_detached(inputs, opts, done);
        }
        let done = std::mem::replace(&mut *here.lock().unwrap_or_else(|e| e.into_inner()), Handoff::Gone);
        let value = match done {
            Handoff::Done(r) => crate::payload::graph_outcome(env.raw(), &r).js()?,
            _ => crate::js::undefined(env.raw()).js()?,
        };
        // SAFETY: a value made in this call's scope, returned to JS at once.
        unsafe { Unknown::from_napi_value(env.raw(), value) }
    }

    /// Aborts request `id`: nodes not yet started are not run.
    #[napi]
    pub fn abort(&self, id: f64) {
        if let Some(ctl) = self.running.lock().unwrap_or_else(|e| e.into_inner()).get(&(id as u64)) {
            ctl.abort();
        }
    }
}
