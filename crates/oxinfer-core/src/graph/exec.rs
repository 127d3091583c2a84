//! Running a graph request: completion-based, like the scheduler. Each
//! request keeps its values and counters under one lock; a node starts as
//! soon as every value it waits for has settled, so independent branches run
//! concurrently and a node feeding several others runs once. Tensor ops run
//! inline on the thread that settled their last input; model runs go to
//! their runner and settle on whatever thread completes them.
//!
//! The first error fails the request; whatever settles afterwards is
//! ignored. `done` is called exactly once.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::backend::{RunControl, ValueInfo};
use crate::error::{Error, Result};
use crate::graph::build::{Exec, Graph, Plan};
use crate::graph::ops::num::output;
use crate::graph::rank::{Ranker, Runs};
use crate::graph::runner::{dropped, CallContext, NodeRunner};
use crate::graph::switch::Load;
use crate::graph::value::{into_output, Value};
use crate::request::{Completion, RunOutput};
use crate::tensor::{InputTensor, OutputTensor};
use crate::timing::Timing;
use crate::validate;

/// Called once with a graph request's outcome.
pub type GraphDone = Box<dyn FnOnce(Result<GraphResult>) + Send>;

/// A per-request choice of a switch's variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The variant at this position in the spec's `variants`.
    Index(usize),
    /// The variant of this name (its `name`, or its model key).
    Name(String),
}

/// Options of one graph request.
#[derive(Clone, Default)]
pub struct GraphRunOptions {
    /// Queue priority level of every model run, 0 the most urgent.
    pub priority: usize,
    /// Model runs still queued at this instant fail with `ERR_TIMEOUT`.
    pub deadline: Option<Instant>,
    /// Variants chosen for this request, by switch node name. Honoured by
    /// every policy; `explicit` switches use the best quality when absent.
    pub variants: HashMap<String, Variant>,
    /// Once aborted, nodes not yet started fail the request with `ERR_ABORTED`
    /// (model runs already queued or running finish).
    pub ctl: Option<Arc<RunControl>>,
    /// Short models with empty queues may run on the thread that calls
    /// `run` (a caller that measured the graph as fast, and is idle).
    pub inline: bool,
    /// The request's id, under which `feedback` switches keep what their
    /// variants predicted until `Graph::feedback` brings the outcome.
    pub id: Option<String>,
}

/// One graph output: its tensor, or None when the node producing it was skipped.
#[derive(Debug)]
pub struct GraphOutput {
    /// The graph output's name.
    pub name: String,
    /// None: skipped.
    pub value: Option<OutputTensor>,
}

/// Whether a node ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeStatus {
    /// It ran (for an op: inline).
    Ran,
    /// Its predicate was false, or a value it needs was skipped.
    Skipped,
}

/// Where one node's time went.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeReport {
    /// The node's name ("outer/inner" for a nested graph's nodes).
    pub node: String,
    /// Whether it ran or was skipped.
    pub status: NodeStatus,
    /// From the node's start to its settling, µs (queue wait included).
    pub wall_us: u64,
    /// The engine's own timing (summed over a rank node's runs; zero for ops).
    pub timing: Timing,
    /// Model runs made (0 for ops and skipped nodes).
    pub runs: u32,
    /// The variant a switch node chose.
    pub variant: Option<usize>,
}

/// A graph request's outputs and where its time went.
#[derive(Debug)]
pub struct GraphResult {
    /// In the order of `Graph::outputs`.
    pub outputs: Vec<GraphOutput>,
    /// Every node that ran or was skipped, in spec order (nested nodes after
    /// their graph node).
    pub nodes: Vec<NodeReport>,
    /// From `run` to the last node settling, µs.
    pub wall_us: u64,
}

impl GraphResult {
    /// The output named `name` (None also when it was skipped).
    pub fn get(&self, name: &str) -> Option<&OutputTensor> {
        self.outputs.iter().find(|o| o.name == name).and_then(|o| o.value.as_ref())
    }

    /// Engine time of the model runs (pre, inference and post), µs; compare
    /// with `wall_us` for the graph's own overhead.
    pub fn engine_us(&self) -> u64 {
        self.nodes.iter().filter(|n| !n.node.contains('/')).map(|n| n.timing.pre_us + n.timing.infer_us + n.timing.post_us).sum()
    }
}

enum Slot {
    Pending,
    Ready(Arc<Value>),
    Skipped,
}

/// What a node hands back when it settles.
struct Finished {
    /// Per node output, in order; None: skipped (or not produced).
    outputs: Vec<Option<OutputTensor>>,
    report: NodeReport,
    /// A nested graph's node reports.
    inner: Vec<NodeReport>,
}

struct State {
    slots: Vec<Slot>,
    /// Nodes each node still waits for.
    waiting: Vec<usize>,
    /// Needed nodes not yet settled.
    left: usize,
    reports: Vec<(usize, NodeReport)>,
    done: Option<GraphDone>,
}

struct Run {
    plan: Arc<Plan>,
    opts: GraphRunOptions,
    started: Instant,
    state: Mutex<State>,
}

impl Run {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn call(done: GraphDone, r: Result<GraphResult>) {
    // A panicking callback must not unwind into an engine's worker.
    let _ = catch_unwind(AssertUnwindSafe(|| done(r)));
}

/// The same error, its message prefixed with the node it came from.
fn in_node(e: Error, node: &str) -> Error {
    let p = |m: String| format!("graph node '{node}': {m}");
    match e {
        Error::InvalidArgument(m) => Error::InvalidArgument(p(m)),
        Error::InvalidInput { message, input, row, field } => Error::InvalidInput { message: p(message), input, row, field },
        Error::InvalidSpec { message, stage, at, origin } => Error::InvalidSpec { message: p(message), stage, at, origin },
        Error::ModelLoad(m) => Error::ModelLoad(p(m)),
        Error::File { message, path } => Error::File { message: p(message), path },
        Error::Unsupported(m) => Error::Unsupported(p(m)),
        Error::Aborted(m) => Error::Aborted(p(m)),
        Error::Disposed(m) => Error::Disposed(p(m)),
        Error::Overloaded(m) => Error::Overloaded(p(m)),
        Error::Timeout(m) => Error::Timeout(p(m)),
        Error::Backend(m) => Error::Backend(p(m)),
        Error::Unavailable(m) => Error::Unavailable(p(m)),
    }
}

fn micros(since: Instant) -> u64 {
    since.elapsed().as_micros() as u64
}

impl Graph {
    /// Runs one request. `inputs` are checked against the graph's declared
    /// inputs (`ERR_INVALID_INPUT`); `done` is called exactly once, on the
    /// thread that settles the last node (or on this one for an immediate
    /// error). Borrowed input data must stay valid until `done` is called.
    /// `run`, started on the compute pool instead of the calling thread, so
    /// that ops before the first model (an image decode, say) never hold a
    /// caller's thread (the JS thread, an HTTP runtime's). Returns at once.
    pub fn run_detached(&self, inputs: Vec<InputTensor>, opts: GraphRunOptions, done: GraphDone) {
        let g = self.clone();
        rayon::spawn(move || g.run(inputs, opts, done));
    }

    pub fn run(&self, inputs: Vec<InputTensor>, opts: GraphRunOptions, done: GraphDone) {
        let plan = Arc::clone(&self.plan);
        if let Err(e) = validate::check_inputs(&plan.inputs, &inputs) {
            return call(done, Err(e));
        }
        let mut slots: Vec<Slot> = (0..plan.slots).map(|_| Slot::Pending).collect();
        for t in inputs {
            if let Some(k) = plan.inputs.inputs.iter().position(|d| d.name == t.name) {
                slots[k] = Slot::Ready(Arc::new(Value::Input(t)));
            }
        }
        let needed: Vec<usize> = (0..plan.nodes.len()).filter(|&i| plan.nodes[i].needed).collect();
        let ready: Vec<usize> = needed.iter().copied().filter(|&i| plan.nodes[i].deps == 0).collect();
        let state = State { slots, waiting: plan.nodes.iter().map(|n| n.deps).collect(), left: needed.len(), reports: Vec::new(), done: Some(done) };
        let run = Arc::new(Run { plan, opts, started: Instant::now(), state: Mutex::new(state) });
        if needed.is_empty() {
            let mut st = run.lock();
            let finish = finish(&run, &mut st);
            drop(st);
            if let Some((done, r)) = finish {
                call(done, r);
            }
            return;
        }
        drive(&run, ready);
    }
}

/// Starts `ready` nodes and whatever inline nodes they make ready in turn.
fn drive(run: &Arc<Run>, mut ready: Vec<usize>) {
    while let Some(n) = ready.pop() {
        let more = catch_unwind(AssertUnwindSafe(|| start(run, n))).unwrap_or_else(|p| settle(run, n, Err(Error::from_panic(p))));
        ready.extend(more);
    }
}

/// The graph result, or None when the request has already been settled.
fn finish(run: &Run, st: &mut State) -> Option<(GraphDone, Result<GraphResult>)> {
    let done = st.done.take()?;
    let plan = &run.plan;
    let slots = std::mem::take(&mut st.slots);
    let mut values: Vec<Option<Arc<Value>>> = slots.into_iter().map(|s| if let Slot::Ready(v) = s { Some(v) } else { None }).collect();
    let mut outputs = Vec::with_capacity(plan.out_slots.len());
    for (k, &s) in plan.out_slots.iter().enumerate() {
        let name = &plan.outputs[k].name;
        // The last graph output reading a slot may move its tensor out.
        let last = !plan.out_slots[k + 1..].contains(&s);
        let v = if last { values[s].take() } else { values[s].clone() };
        outputs.push(GraphOutput { name: name.clone(), value: v.map(|v| into_output(v, name)) });
    }
    let mut reports = std::mem::take(&mut st.reports);
    reports.sort_by_key(|r| r.0);
    let result = GraphResult { outputs, nodes: reports.into_iter().map(|r| r.1).collect(), wall_us: micros(run.started) };
    Some((done, Ok(result)))
}

/// Records node `n`'s outcome. Returns the nodes it made ready; calls `done`
/// when it fails the request or was the last.
fn settle(run: &Arc<Run>, n: usize, r: Result<Finished>) -> Vec<usize> {
    let node = &run.plan.nodes[n];
    let mut st = run.lock();
    if st.done.is_none() {
        return Vec::new();
    }
    let f = match r {
        Ok(f) => f,
        Err(e) => {
            let done = st.done.take();
            // Values are released now; nodes still running hold their own.
            st.slots.clear();
            drop(st);
            if let Some(done) = done {
                call(done, Err(in_node(e, &node.name)));
            }
            return Vec::new();
        }
    };
    for (k, v) in f.outputs.into_iter().enumerate() {
        st.slots[node.first + k] = match v {
            Some(t) => Slot::Ready(Arc::new(Value::Output(t))),
            None => Slot::Skipped,
        };
    }
    st.reports.push((n, f.report));
    st.reports.extend(f.inner.into_iter().map(|mut r| {
        r.node = format!("{}/{}", node.name, r.node);
        (n, r)
    }));
    st.left -= 1;
    let mut ready = Vec::new();
    for &c in &node.consumers {
        st.waiting[c] -= 1;
        if st.waiting[c] == 0 {
            ready.push(c);
        }
    }
    if st.left == 0 {
        let finish = finish(run, &mut st);
        drop(st);
        if let Some((done, r)) = finish {
            call(done, r);
        }
    }
    ready
}

fn skipped(run: &Run, n: usize) -> Finished {
    let node = &run.plan.nodes[n];
    Finished {
        outputs: node.outputs.iter().map(|_| None).collect(),
        report: NodeReport { node: node.name.clone(), status: NodeStatus::Skipped, wall_us: 0, timing: Timing::default(), runs: 0, variant: None },
        inner: Vec::new(),
    }
}

/// The node's outputs from tensors named as its outputs; those not wanted
/// may be missing, a wanted one missing is an engine error.
fn by_name(run: &Run, n: usize, tensors: Vec<OutputTensor>) -> Result<Vec<Option<OutputTensor>>> {
    let node = &run.plan.nodes[n];
    let mut out: Vec<Option<OutputTensor>> = node.outputs.iter().map(|_| None).collect();
    for t in tensors {
        if let Some(k) = node.outputs.iter().position(|o| *o == t.name) {
            out[k] = Some(t);
        }
    }
    if let Some(w) = node.wanted.iter().find(|w| out[node.outputs.iter().position(|o| o == *w).unwrap_or(0)].is_none()) {
        return Err(Error::Backend(format!("the runner returned no output '{w}'")));
    }
    Ok(out)
}

/// A node's pending settlement: settles it with an error if dropped uncalled
/// (a runner that lost its completion), so the request never hangs.
struct Pending {
    run: Option<Arc<Run>>,
    node: usize,
}

impl Pending {
    fn complete(mut self, r: Result<Finished>) {
        if let Some(run) = self.run.take() {
            let ready = settle(&run, self.node, r);
            drive(&run, ready);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(run) = self.run.take() {
            let name = run.plan.nodes[self.node].name.clone();
            let _ = catch_unwind(AssertUnwindSafe(|| {
                let ready = settle(&run, self.node, Err(dropped(&name)));
                drive(&run, ready);
            }));
        }
    }
}

/// Starts node `n`: skips it, runs it inline, or submits it. Returns the
/// nodes an inline settlement made ready.
fn start(run: &Arc<Run>, n: usize) -> Vec<usize> {
    let node = &run.plan.nodes[n];
    if run.opts.ctl.as_ref().is_some_and(|c| c.is_aborted()) {
        return settle(run, n, Err(Error::Aborted("the graph run was aborted".into())));
    }
    let (vals, when) = {
        let st = run.lock();
        if st.done.is_none() {
            return Vec::new();
        }
        let get = |s: usize| match &st.slots[s] {
            Slot::Ready(v) => Some(Arc::clone(v)),
            _ => None,
        };
        let vals: Option<Vec<Arc<Value>>> = node.args.iter().map(|&(_, s)| get(s)).collect();
        let when = node.when.as_ref().map(|(s, w)| (get(*s), w));
        (vals, when)
    };
    // A value it needs was skipped (settled, but not ready): skipped too.
    let Some(vals) = vals else { return settle(run, n, Ok(skipped(run, n))) };
    if let Some((v, w)) = when {
        let Some(v) = v else { return settle(run, n, Ok(skipped(run, n))) };
        match v.test(w.op, w.value, w.reduce) {
            Ok(true) => {}
            Ok(false) => return settle(run, n, Ok(skipped(run, n))),
            Err(e) => return settle(run, n, Err(e)),
        }
    }
    let started = Instant::now();
    let inputs: Vec<InputTensor> = node.args.iter().zip(&vals).map(|((k, _), v)| v.feed(k)).collect();
    let report =
        |timing: Timing, runs: u32, variant: Option<usize>| NodeReport { node: node.name.clone(), status: NodeStatus::Ran, wall_us: micros(started), timing, runs, variant };
    match &node.exec {
        Exec::Op(op) => {
            let r = catch_unwind(AssertUnwindSafe(|| op.run(&inputs))).unwrap_or_else(|p| Err(Error::from_panic(p)));
            drop(inputs);
            drop(vals);
            let r = r.and_then(|ts| by_name(run, n, ts)).map(|outputs| Finished { outputs, report: report(Timing::default(), 0, None), inner: Vec::new() });
            settle(run, n, r)
        }
        Exec::Model(runner) => {
            submit(run, n, runner, inputs, vals, started, None, None);
            Vec::new()
        }
        Exec::Switch { runners, state } => {
            let explicit = match run.opts.variants.get(&node.name) {
                None => None,
                Some(Variant::Index(i)) if *i < runners.len() => Some(*i),
                Some(choice) => {
                    let st = state.lock().unwrap_or_else(|e| e.into_inner());
                    match choice {
                        Variant::Name(name) => match st.index_of(name) {
                            Some(i) => Some(i),
                            None => {
                                let names: Vec<String> = st.stats().variants.into_iter().map(|v| format!("'{}'", v.name)).collect();
                                drop(st);
                                return settle(run, n, Err(Error::InvalidArgument(format!("switch '{}' has no variant '{name}' (variants: {})", node.name, names.join(", ")))));
                            }
                        },
                        Variant::Index(i) => {
                            drop(st);
                            return settle(run, n, Err(Error::InvalidArgument(format!("switch '{}' has {} variants; index {i} is out of range", node.name, runners.len()))));
                        }
                    }
                }
            };
            let load: Vec<Load> = runners.iter().map(|r| Load { queue_wait_us: r.queue_wait_us(), queue_depth: r.queue_depth() }).collect();
            let (v, shadow) = state.lock().unwrap_or_else(|e| e.into_inner()).choose_for(&load, explicit, run.opts.id.as_deref());
            if let (Some(s), Some(id)) = (shadow, &run.opts.id) {
                let copy: Vec<InputTensor> = node.args.iter().zip(&vals).map(|((k, _), v)| v.feed(k)).collect();
                shadow_run(run, n, &runners[s], copy, vals.clone(), s, id.clone());
            }
            // Only requests the trial routed are scored: a variant the caller chose is not a sample.
            let scored = if explicit.is_none() { run.opts.id.clone() } else { None };
            submit(run, n, &runners[v], inputs, vals, started, Some(v), scored);
            Vec::new()
        }
        Exec::Graph(g) => {
            let pending = Pending { run: Some(Arc::clone(run)), node: n };
            let outputs = node.outputs.clone();
            let name = node.name.clone();
            g.run(
                inputs,
                run.opts.clone(),
                Box::new(move |r| {
                    drop(vals);
                    let r = r.map(|mut res| {
                        let mut outs = Vec::with_capacity(outputs.len());
                        for o in &outputs {
                            outs.push(res.outputs.iter_mut().find(|x| x.name == *o).and_then(|x| x.value.take()));
                        }
                        let mut timing = Timing::default();
                        let mut runs = 0;
                        for r in res.nodes.iter().filter(|r| !r.node.contains('/')) {
                            add(&mut timing, &r.timing);
                            runs += r.runs;
                        }
                        let report = NodeReport { node: name, status: NodeStatus::Ran, wall_us: micros(started), timing, runs, variant: None };
                        Finished { outputs: outs, report, inner: res.nodes }
                    });
                    pending.complete(r)
                }),
            );
            Vec::new()
        }
        Exec::Rank { runner, ranker } => {
            let arg = |name: &str| node.args.iter().position(|(k, _)| k == name).map(|p| &inputs[p]);
            let runs = match arg("candidates") {
                Some(c) => ranker.runs(c, arg("query")),
                None => Err(Error::Backend("rank: no candidates".into())),
            };
            // The runs own their rows: the inputs are no longer read.
            drop(inputs);
            drop(vals);
            match runs {
                Ok(runs) => rank(run, n, runner, ranker, runs, started),
                Err(e) => settle(run, n, Err(e)),
            }
        }
    }
}

/// Sums `b` into `a` (batch sizes: the largest).
fn add(a: &mut Timing, b: &Timing) {
    a.queue_us += b.queue_us;
    a.pre_us += b.pre_us;
    a.infer_us += b.infer_us;
    a.post_us += b.post_us;
    a.batch_rows = a.batch_rows.max(b.batch_rows);
    a.batch_requests = a.batch_requests.max(b.batch_requests);
}

fn context(run: &Run, wanted: Vec<String>) -> CallContext {
    CallContext { priority: run.opts.priority, deadline: run.opts.deadline, outputs: wanted, inline: run.opts.inline, ctl: run.opts.ctl.clone() }
}

/// What a switch node's runs are asked for: the outputs consumed, plus the
/// one its trial scores (when only some are asked for).
fn switch_context(run: &Run, n: usize) -> CallContext {
    let node = &run.plan.nodes[n];
    let mut wanted = node.wanted.clone();
    if let Exec::Switch { state, .. } = &node.exec {
        let st = state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(o) = st.trial().and_then(|t| t.output()) {
            if !wanted.is_empty() && !wanted.iter().any(|w| w == o) {
                wanted.push(o.to_string());
            }
        }
    }
    context(run, wanted)
}

/// Runs a switch's challenger beside the served variant (a `feedback` trial
/// in shadow mode): its output is only kept for scoring, and its failure
/// is counted, never the request's.
fn shadow_run(run: &Arc<Run>, n: usize, runner: &Arc<dyn NodeRunner>, inputs: Vec<InputTensor>, keep: Vec<Arc<Value>>, variant: usize, id: String) {
    // Never on the request's own thread, ahead of the variant that answers it.
    let ctx = CallContext { inline: false, ..switch_context(run, n) };
    let plan = Arc::clone(&run.plan);
    let done: Completion = Box::new(move |r: Result<RunOutput>| {
        drop(keep);
        if let Exec::Switch { state, .. } = &plan.nodes[n].exec {
            let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
            match r {
                Ok(out) => {
                    st.record(&id, variant, &out.tensors);
                    st.shadowed(true);
                }
                Err(_) => st.shadowed(false),
            }
        }
    });
    if catch_unwind(AssertUnwindSafe(|| runner.submit_with(inputs, &ctx, done))).is_err() {
        if let Exec::Switch { state, .. } = &run.plan.nodes[n].exec {
            state.lock().unwrap_or_else(|e| e.into_inner()).shadowed(false);
        }
    }
}

/// Submits a model (or switch variant) run of node `n`; `keep` holds the
/// values `inputs` borrow until the run completes.
#[allow(clippy::too_many_arguments)]
fn submit(run: &Arc<Run>, n: usize, runner: &Arc<dyn NodeRunner>, inputs: Vec<InputTensor>, keep: Vec<Arc<Value>>, started: Instant, variant: Option<usize>, scored: Option<String>) {
    let ctx = if variant.is_some() { switch_context(run, n) } else { context(run, run.plan.nodes[n].wanted.clone()) };
    // Shared with the completion, so that a panic in `submit` is reported as
    // such rather than as the completion it dropped while unwinding.
    let pending = Arc::new(Mutex::new(Some(Pending { run: Some(Arc::clone(run)), node: n })));
    let theirs = Arc::clone(&pending);
    let me = Arc::clone(run);
    let done: Completion = Box::new(move |r: Result<RunOutput>| {
        drop(keep);
        let wall = micros(started);
        let r = r.and_then(|out| {
            if let (Some(v), Exec::Switch { state, .. }) = (variant, &me.plan.nodes[n].exec) {
                // The engine's own time: queue wait is added when choosing.
                let t = &out.timing;
                let engine = t.pre_us + t.infer_us + t.post_us;
                let latency = if engine > 0 { engine } else { wall.saturating_sub(t.queue_us) };
                let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
                st.observe(v, latency);
                if let Some(id) = &scored {
                    st.record(id, v, &out.tensors);
                }
            }
            let outputs = by_name(&me, n, out.tensors)?;
            let report = NodeReport { node: me.plan.nodes[n].name.clone(), status: NodeStatus::Ran, wall_us: wall, timing: out.timing, runs: 1, variant };
            Ok(Finished { outputs, report, inner: Vec::new() })
        });
        drop(me);
        let p = theirs.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(p) = p {
            p.complete(r)
        }
    });
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| runner.submit_with(inputs, &ctx, done))) {
        let p = pending.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(p) = p {
            p.complete(Err(Error::from_panic(panic)));
        }
    }
    // Dropping the last holder of an unsettled node (a runner that dropped
    // its completion) settles it with an error.
}

/// Collects a rank node's runs as they complete.
struct Gather {
    scores: Vec<Option<Vec<f64>>>,
    left: usize,
    timing: Timing,
    pending: Option<Pending>,
}

/// A rank node's outputs from the scores of all its runs' rows.
fn ranked(ranker: &Ranker, n: usize, rows: &[f64], timing: Timing, name: String, started: Instant, runs: u32) -> Finished {
    let (order, scores) = ranker.rank(n, rows);
    let len = order.len() as i64;
    Finished {
        outputs: vec![Some(output("order", vec![len], order)), Some(output("scores", vec![len], scores))],
        report: NodeReport { node: name, status: NodeStatus::Ran, wall_us: micros(started), timing, runs, variant: None },
        inner: Vec::new(),
    }
}

/// Submits a rank node's runs at once; the last to complete settles the node.
fn rank(run: &Arc<Run>, n: usize, runner: &Arc<dyn NodeRunner>, ranker: &Ranker, runs: Runs, started: Instant) -> Vec<usize> {
    let name = run.plan.nodes[n].name.clone();
    let total = runs.inputs.len();
    if total == 0 {
        return settle(run, n, Ok(ranked(ranker, runs.n, &[], Timing::default(), name, started, 0)));
    }
    let gather = Arc::new(Mutex::new(Gather { scores: vec![None; total], left: total, timing: Timing::default(), pending: Some(Pending { run: Some(Arc::clone(run)), node: n }) }));
    let ctx = context(run, vec![ranker.output.clone()]);
    let count = runs.n;
    for (k, input) in runs.inputs.into_iter().enumerate() {
        let (gather, ranker, name) = (Arc::clone(&gather), ranker.clone(), name.clone());
        let (rows, padded) = (runs.rows[k], runs.padded[k]);
        let done: Completion = Box::new(move |r: Result<RunOutput>| {
            let got = r.and_then(|out| {
                let t = out.tensors.iter().find(|t| t.name == ranker.output).ok_or_else(|| Error::Backend(format!("rank: the model returned no output '{}'", ranker.output)))?;
                Ok((ranker.scores(t, rows, padded)?, out.timing))
            });
            let mut g = gather.lock().unwrap_or_else(|e| e.into_inner());
            if g.pending.is_none() {
                return;
            }
            let settled = match got {
                Err(e) => Some(Err(e)),
                Ok((s, timing)) => {
                    g.scores[k] = Some(s);
                    add(&mut g.timing, &timing);
                    g.left -= 1;
                    (g.left == 0).then(|| {
                        let all: Vec<f64> = g.scores.iter_mut().flat_map(|s| s.take().unwrap_or_default()).collect();
                        Ok(ranked(&ranker, count, &all, g.timing, name, started, total as u32))
                    })
                }
            };
            if let Some(r) = settled {
                let p = g.pending.take();
                drop(g);
                if let Some(p) = p {
                    p.complete(r);
                }
            }
        });
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| runner.submit_with(vec![input], &ctx, done))) {
            return settle(run, n, Err(Error::from_panic(p)));
        }
    }
    Vec::new()
}

/// A graph is itself a node runner (to be served as a model, or nested by a
/// binding): its outputs that were skipped are left out of the run's tensors.
impl NodeRunner for Graph {
    fn inputs(&self) -> &[ValueInfo] {
        Graph::inputs(self)
    }

    fn outputs(&self) -> &[ValueInfo] {
        Graph::outputs(self)
    }

    fn submit(&self, inputs: Vec<InputTensor>, done: Completion) {
        self.submit_with(inputs, &CallContext::default(), done)
    }

    fn submit_with(&self, inputs: Vec<InputTensor>, ctx: &CallContext, done: Completion) {
        let opts = GraphRunOptions { priority: ctx.priority, deadline: ctx.deadline, inline: ctx.inline, ctl: ctx.ctl.clone(), ..Default::default() };
        let wanted = ctx.outputs.clone();
        self.run(
            inputs,
            opts,
            Box::new(move |r| {
                done(r.map(|res| {
                    let mut timing = Timing::default();
                    for n in res.nodes.iter().filter(|n| !n.node.contains('/')) {
                        add(&mut timing, &n.timing);
                    }
                    let tensors = res.outputs.into_iter().filter(|o| wanted.is_empty() || wanted.contains(&o.name)).filter_map(|o| o.value).collect();
                    RunOutput { tensors, micros: res.wall_us, timing }
                }))
            }),
        );
    }
}
