//! Turning a spec into a runnable graph: resolving references and models,
//! rejecting duplicate names, cycles, dangling inputs and edges whose types
//! or shapes disagree (each error naming the nodes involved), inferring op
//! output types, and laying out the plan that `exec` runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::backend::{ModelInfo, ValueInfo};
use crate::error::Result;
use crate::graph::ops::{numeric, Op};
use crate::graph::rank::Ranker;
use crate::graph::runner::{find, names, NodeRunner};
use crate::graph::spec::{self, error, GraphSpec, NodeKind, NodeSpec, RankStrategy, When};
use crate::graph::switch::{Policy, SwitchState, SwitchStats};
use crate::graph::trial::Trial;
use crate::graph::types::{fixed, mismatch, Ty};

/// A validated graph, ready to run; cheap to clone (shared).
#[derive(Clone)]
pub struct Graph {
    pub(crate) plan: Arc<Plan>,
}

/// What a node runs.
pub(crate) enum Exec {
    Model(Arc<dyn NodeRunner>),
    Op(Op),
    Graph(Graph),
    Switch { runners: Vec<Arc<dyn NodeRunner>>, state: Box<Mutex<SwitchState>> },
    Rank { runner: Arc<dyn NodeRunner>, ranker: Ranker },
}

/// One node of the plan. Values live in slots: the graph inputs first, then
/// each node's outputs in a run starting at `first`.
pub(crate) struct PlanNode {
    pub name: String,
    pub exec: Exec,
    /// (node input name, slot), in the spec's order.
    pub args: Vec<(String, usize)>,
    pub when: Option<(usize, When)>,
    pub outputs: Vec<String>,
    pub first: usize,
    /// Distinct needed nodes this one waits for.
    pub deps: usize,
    /// Distinct needed nodes waiting for this one.
    pub consumers: Vec<usize>,
    /// Outputs something consumes (what a runner is asked for).
    pub wanted: Vec<String>,
    /// Whether a graph output depends on it (others never run).
    pub needed: bool,
}

/// A built graph.
pub(crate) struct Plan {
    /// The graph inputs, in slot order (slots 0..n), as a model declares them.
    pub inputs: ModelInfo,
    /// The graph outputs with their static types.
    pub outputs: Vec<ValueInfo>,
    /// The slot of each graph output.
    pub out_slots: Vec<usize>,
    pub nodes: Vec<PlanNode>,
    pub slots: usize,
    /// A switch (nested graphs' included) runs a `feedback` trial.
    pub feedback: bool,
    /// A node (nested graphs' included) waits on a network service (a lookup).
    pub io: bool,
}

impl Graph {
    /// Builds a graph from spec JSON text, with the models its nodes name
    /// (`model` keys) supplied by the caller. Every problem is
    /// `ERR_INVALID_SPEC` naming the nodes involved, with the JSON path of
    /// the value at fault.
    pub fn build(spec: &str, models: &HashMap<String, Arc<dyn NodeRunner>>) -> Result<Graph> {
        Self::from_spec(&spec::parse(spec)?, models)
    }

    /// Builds a graph from a spec already read as JSON.
    pub fn from_value(spec: &serde_json::Value, models: &HashMap<String, Arc<dyn NodeRunner>>) -> Result<Graph> {
        Self::from_spec(&spec::from_value(spec)?, models)
    }

    /// Builds a graph from spec JSON text whose files (a `ctc_decode`
    /// vocabulary) are relative to `base`.
    pub fn build_in(spec: &str, models: &HashMap<String, Arc<dyn NodeRunner>>, base: Option<&std::path::Path>) -> Result<Graph> {
        Self::from_spec(&spec::parse(spec)?.with_base(base), models)
    }

    /// Builds a graph from a parsed spec.
    pub fn from_spec(spec: &GraphSpec, models: &HashMap<String, Arc<dyn NodeRunner>>) -> Result<Graph> {
        Ok(Graph { plan: Arc::new(plan(spec, models)?) })
    }

    /// The graph's declared inputs.
    pub fn inputs(&self) -> &[ValueInfo] {
        &self.plan.inputs.inputs
    }

    /// The graph's outputs, with the types inferred for them (no dims: unknown).
    pub fn outputs(&self) -> &[ValueInfo] {
        &self.plan.outputs
    }

    /// The names of the nodes that run (those the outputs depend on), in spec order.
    pub fn nodes(&self) -> Vec<&str> {
        self.plan.nodes.iter().filter(|n| n.needed).map(|n| n.name.as_str()).collect()
    }

    /// Whether a switch (nested graphs' included) runs a `feedback` trial:
    /// requests then need an id for their outcome to count.
    pub fn takes_feedback(&self) -> bool {
        self.plan.feedback
    }

    /// Whether a node waits on a network service (a feature store lookup):
    /// such a graph never runs on its caller's thread.
    pub fn waits_on_io(&self) -> bool {
        self.plan.io
    }

    /// Decisions and latencies of every switch node, nested graphs' included
    /// (named "outer/inner").
    pub fn switch_stats(&self) -> Vec<SwitchStats> {
        let mut out = Vec::new();
        for n in &self.plan.nodes {
            match &n.exec {
                Exec::Switch { state, .. } => out.push(state.lock().unwrap_or_else(|e| e.into_inner()).stats()),
                Exec::Graph(g) => out.extend(g.switch_stats().into_iter().map(|mut s| {
                    s.node = format!("{}/{}", n.name, s.node);
                    s
                })),
                _ => {}
            }
        }
        out
    }
}

/// How edges and errors name a node input: "cls.x".
fn end(node: &str, input: &str) -> String {
    format!("{node}.{input}")
}

fn model<'a>(models: &'a HashMap<String, Arc<dyn NodeRunner>>, node: &NodeSpec, key: &str, at: String) -> Result<&'a Arc<dyn NodeRunner>> {
    models.get(key).ok_or_else(|| {
        let mut keys: Vec<&str> = models.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let given = if keys.is_empty() { "none".to_string() } else { keys.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(", ") };
        error(Some(node.label()), &at, format!("node '{}' uses model '{key}', which was not supplied (models given: {given})", node.name))
    })
}

/// The executor and output names of each node (types come later, in order).
fn executor(n: &NodeSpec, models: &HashMap<String, Arc<dyn NodeRunner>>, base: Option<&std::path::Path>) -> Result<(Exec, Vec<String>)> {
    let fail = |at: String, m: String| error(Some(n.label()), &at, m);
    let out_names = |list: &[ValueInfo]| list.iter().map(|v| v.name.clone()).collect::<Vec<_>>();
    Ok(match &n.kind {
        NodeKind::Model { model: key } => {
            let r = model(models, n, key, format!("{}.model", n.path))?;
            let outs = out_names(r.outputs());
            (Exec::Model(Arc::clone(r)), outs)
        }
        NodeKind::Op(o) => {
            let mut o = o.clone();
            let resolve = |f: &str| base.map_or_else(|| std::path::PathBuf::from(f), |b| b.join(f));
            match &mut o {
                crate::graph::spec::OpSpec::CtcDecode { vocabulary, loaded } => {
                    let file = resolve(vocabulary);
                    let text = std::fs::read_to_string(&file).map_err(|e| crate::error::Error::file("the ctc_decode vocabulary", &file, e))?;
                    loaded.0 = Some(Arc::new(crate::vision::Vocabulary::from_keys(&text)));
                }
                crate::graph::spec::OpSpec::Tokenize { tokenizer, loaded, .. } => {
                    loaded.0 = Some(Arc::new(crate::text::TextTokenizer::from_file(&resolve(tokenizer))?));
                }
                crate::graph::spec::OpSpec::Lookup { store, view, features, missing, loaded, .. } => {
                    let found = crate::store::find(store)
                        .ok_or_else(|| fail(format!("{}.store", n.path), format!("node '{}': no feature store named '{store}' is open: open it before building the graph", n.name)))?;
                    let v = found.view(view).map_err(|e| fail(format!("{}.view", n.path), format!("node '{}': {e}", n.name)))?;
                    if features.is_empty() {
                        return Err(fail(format!("{}.features", n.path), format!("node '{}': name the features to read", n.name)));
                    }
                    for (j, f) in features.iter().enumerate() {
                        match v.spec.features.iter().find(|x| &x.name == f) {
                            None => return Err(fail(format!("{}.features[{j}]", n.path), format!("node '{}': view '{view}' has no feature '{f}'", n.name))),
                            Some(x) if x.kind.is_category() => {
                                return Err(fail(format!("{}.features[{j}]", n.path), format!("node '{}': feature '{f}' is a category; a graph lookup reads numbers (a pipeline's lookup stage reads categories)", n.name)))
                            }
                            Some(_) => {}
                        }
                    }
                    if *missing == crate::pipeline::spec::LookupPolicy::Use {
                        return Err(fail(format!("{}.missing", n.path), format!("node '{}': missing takes default, nan or error", n.name)));
                    }
                    loaded.0 = Some(found);
                }
                _ => {}
            }
            let op = Op(o);
            op.check_arity(n.inputs.len()).map_err(|m| fail(format!("{}.inputs", n.path), format!("node '{}': {m}", n.name)))?;
            let outs = op.outputs().iter().map(|s| s.to_string()).collect();
            (Exec::Op(op), outs)
        }
        NodeKind::Graph(g) => {
            let nested = Graph::from_spec(g, models)?;
            let outs = out_names(nested.outputs());
            (Exec::Graph(nested), outs)
        }
        NodeKind::Switch(s) => {
            if s.variants.is_empty() {
                return Err(fail(format!("{}.variants", n.path), format!("switch '{}' needs at least one variant", n.name)));
            }
            let mut runners: Vec<Arc<dyn NodeRunner>> = Vec::new();
            let mut labels: Vec<(String, f64)> = Vec::new();
            for (i, v) in s.variants.iter().enumerate() {
                let at = format!("{}.variants[{i}]", n.path);
                let r = model(models, n, &v.model, format!("{at}.model"))?;
                let name = v.name.clone().unwrap_or_else(|| v.model.clone());
                if labels.iter().any(|(l, _)| *l == name) {
                    return Err(fail(at, format!("switch '{}' has two variants named '{name}'; give them distinct names", n.name)));
                }
                if let Some(first) = runners.first() {
                    compatible(n, &labels[0].0, first.as_ref(), &name, r.as_ref(), &at)?;
                }
                runners.push(Arc::clone(r));
                labels.push((name, v.quality));
            }
            let outs = out_names(runners[0].outputs());
            let mut state = SwitchState::new(&n.name, Policy::from_spec(&s.policy), &labels);
            if let spec::PolicySpec::Feedback(t) = &s.policy {
                state = state.with_trial(trial(n, t, &labels, runners[0].outputs())?);
            }
            (Exec::Switch { runners, state: Box::new(Mutex::new(state)) }, outs)
        }
        NodeKind::Rank(r) => {
            let runner = model(models, n, &r.model, format!("{}.model", n.path))?;
            let input = match &r.input {
                Some(i) if find(runner.inputs(), i).is_some() => i.clone(),
                Some(i) => {
                    return Err(fail(format!("{}.input", n.path), format!("rank '{}': model '{}' has no input '{i}'; its inputs: {}", n.name, r.model, names(runner.inputs()))))
                }
                None if runner.inputs().len() == 1 => runner.inputs()[0].name.clone(),
                None => {
                    return Err(fail(
                        format!("{}.model", n.path),
                        format!("rank '{}': model '{}' has {} inputs ({}); name the one to feed with 'input'", n.name, r.model, runner.inputs().len(), names(runner.inputs())),
                    ))
                }
            };
            let output = match &r.output {
                Some(o) if find(runner.outputs(), o).is_some() => o.clone(),
                Some(o) => {
                    return Err(fail(format!("{}.output", n.path), format!("rank '{}': model '{}' has no output '{o}'; its outputs: {}", n.name, r.model, names(runner.outputs()))))
                }
                None => match runner.outputs().first() {
                    Some(o) => o.name.clone(),
                    None => return Err(fail(format!("{}.model", n.path), format!("rank '{}': model '{}' has no outputs", n.name, r.model))),
                },
            };
            let fixed_rows = match r.strategy {
                RankStrategy::Listwise => None,
                _ => find(runner.inputs(), &input).and_then(|i| i.dims.first()).and_then(fixed).map(|k| k.max(1) as usize),
            };
            let ranker = Ranker { strategy: r.strategy, input, output, max_rows: r.max_batch, fixed_rows };
            (Exec::Rank { runner: Arc::clone(runner), ranker }, vec!["order".into(), "scores".into()])
        }
    })
}

/// A `feedback` policy's trial, its parameters checked against the variants.
fn trial(n: &NodeSpec, t: &spec::TrialSpec, variants: &[(String, f64)], outputs: &[ValueInfo]) -> Result<Trial> {
    let at = |key: &str| format!("{}.policy.{key}", n.path);
    let fail = |key: &str, m: String| error(Some(n.label()), &at(key), format!("switch '{}': {m}", n.name));
    let listed = || variants.iter().map(|v| format!("'{}'", v.0)).collect::<Vec<_>>().join(", ");
    let index = |key: &str, name: &str| variants.iter().position(|v| v.0 == name).ok_or_else(|| fail(key, format!("no variant '{name}' (variants: {})", listed())));
    let challenger = index("challenger", &t.challenger)?;
    let champion = match &t.champion {
        Some(c) => index("champion", c)?,
        // The best declared quality among the others; ties: the first.
        None => (0..variants.len()).filter(|&v| v != challenger).fold(None, |best: Option<usize>, v| match best {
            Some(b) if variants[b].1 >= variants[v].1 => Some(b),
            _ => Some(v),
        }).ok_or_else(|| fail("challenger", "a feedback policy needs a champion besides the challenger: add a second variant".into()))?,
    };
    if champion == challenger {
        return Err(fail("champion", format!("'{}' cannot be both champion and challenger", t.challenger)));
    }
    if !(t.split > 0.0 && t.split <= 1.0) {
        return Err(fail("split", format!("split must be above 0 and at most 1, not {}", t.split)));
    }
    if t.split >= 1.0 && t.mode == spec::TrialMode::Split {
        return Err(fail("split", "split 1 would leave the champion no requests to compare: give less than 1, or shadow mode".into()));
    }
    if t.min_samples < 2 {
        return Err(fail("minSamples", format!("minSamples must be at least 2 (a variance needs two outcomes per arm), not {}", t.min_samples)));
    }
    if !(t.confidence > 0.5 && t.confidence < 1.0) {
        return Err(fail("confidence", format!("confidence must be between 0.5 and 1 (exclusive), not {}", t.confidence)));
    }
    if t.effect.is_some_and(|e| !(e.is_finite() && e > 0.0)) {
        return Err(fail("effect", "effect must be a positive number".into()));
    }
    if t.max_samples > 0 && t.max_samples < t.min_samples {
        return Err(fail("maxSamples", format!("maxSamples ({}) is below minSamples ({})", t.max_samples, t.min_samples)));
    }
    if t.keep == 0 {
        return Err(fail("keep", "keep must be at least 1".into()));
    }
    if t.labels.as_ref().is_some_and(|l| l.is_empty()) {
        return Err(fail("labels", "labels must name at least one class".into()));
    }
    let out = match &t.output {
        Some(o) => find(outputs, o).ok_or_else(|| fail("output", format!("the variants have no output '{o}'; they have {}", names(outputs))))?,
        None => outputs.first().ok_or_else(|| fail("output", "the variants have no outputs".into()))?,
    };
    if !matches!(out.kind, crate::backend::ValueKind::Tensor(d) if d != crate::tensor::DType::String) {
        return Err(fail("output", format!("output '{}' is not a numeric tensor; the trial scores one (class scores, a class index or a value)", out.name)));
    }
    let mut spec = t.clone();
    spec.output = Some(out.name.clone());
    Ok(Trial::new(spec, champion, challenger))
}

/// Checks that variant `b` has the inputs and outputs of variant `a`, with compatible types.
fn compatible(n: &NodeSpec, an: &str, a: &dyn NodeRunner, bn: &str, b: &dyn NodeRunner, at: &str) -> Result<()> {
    for (what, xs, ys) in [("inputs", a.inputs(), b.inputs()), ("outputs", a.outputs(), b.outputs())] {
        let mut x: Vec<&str> = xs.iter().map(|v| v.name.as_str()).collect();
        let mut y: Vec<&str> = ys.iter().map(|v| v.name.as_str()).collect();
        x.sort_unstable();
        y.sort_unstable();
        if x != y {
            return Err(error(Some(n.label()), at, format!("switch '{}': variant '{bn}' has {what} {} but variant '{an}' has {}", n.name, names(ys), names(xs))));
        }
        for v in xs {
            let w = find(ys, &v.name).expect("same names");
            if let Some((kind, detail)) = mismatch(&Ty::of(v), &Ty::of(w)) {
                return Err(error(Some(n.label()), at, format!("switch '{}': {kind} of '{}' differs between variants '{an}' and '{bn}': {detail}", n.name, v.name)));
            }
        }
    }
    Ok(())
}

/// Where a reference points: a slot, or why it dangles.
fn resolve(r: &str, index: &HashMap<&str, usize>, outs: &[Vec<String>], first: &[usize], inputs: &[&String]) -> std::result::Result<usize, String> {
    if let Some((node, out)) = r.split_once('.') {
        let Some(&i) = index.get(node) else {
            return Err(format!("there is no node '{node}'"));
        };
        return match outs[i].iter().position(|o| o == out) {
            Some(k) => Ok(first[i] + k),
            None => Err(format!("node '{node}' has no output '{out}' (its outputs: {})", quoted(&outs[i]))),
        };
    }
    match inputs.iter().position(|i| *i == r) {
        Some(k) => Ok(k),
        None if index.contains_key(r) => Err(format!("'{r}' is a node, not a graph input; write '{r}.<output>' (its outputs: {})", quoted(&outs[index[r]]))),
        None => Err(format!(
            "'{r}' is not a graph input (graph inputs: {}); a node's output is written 'node.output'",
            quoted(&inputs.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        )),
    }
}

fn quoted(list: &[String]) -> String {
    if list.is_empty() {
        return "none".into();
    }
    list.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ")
}

/// The first cycle among `deps` (node -> the nodes it waits for), as node
/// indices in data-flow order, the first repeated at the end.
fn cycle(deps: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut mark = vec![Mark::New; deps.len()];
    for start in 0..deps.len() {
        if mark[start] != Mark::New {
            continue;
        }
        // Iterative DFS: (node, next dep to visit); `path` is the open chain.
        let mut stack = vec![(start, 0usize)];
        mark[start] = Mark::Open;
        while let Some(&mut (v, ref mut k)) = stack.last_mut() {
            if let Some(&d) = deps[v].get(*k) {
                *k += 1;
                match mark[d] {
                    Mark::New => {
                        mark[d] = Mark::Open;
                        stack.push((d, 0));
                    }
                    Mark::Open => {
                        // `d` waits (transitively) for v, which waits for d.
                        let at = stack.iter().position(|&(x, _)| x == d).unwrap_or(0);
                        let mut waits: Vec<usize> = stack[at..].iter().map(|&(x, _)| x).collect();
                        waits.push(d);
                        waits.reverse();
                        return Some(waits);
                    }
                    Mark::Done => {}
                }
            } else {
                mark[v] = Mark::Done;
                stack.pop();
            }
        }
    }
    None
}

/// Nodes in an order where each comes after those it waits for.
fn topological(deps: &[Vec<usize>]) -> Vec<usize> {
    fn visit(v: usize, deps: &[Vec<usize>], seen: &mut [bool], out: &mut Vec<usize>) {
        if seen[v] {
            return;
        }
        seen[v] = true;
        for &d in &deps[v] {
            visit(d, deps, seen, out);
        }
        out.push(v);
    }
    let mut seen = vec![false; deps.len()];
    let mut out = Vec::with_capacity(deps.len());
    for v in 0..deps.len() {
        visit(v, deps, &mut seen, &mut out);
    }
    out
}

/// Checks the edges into a node with declared inputs `decl` (a model, a
/// nested graph, a switch's variants): every input known, fed a compatible
/// value, and connected.
fn check_inputs(n: &NodeSpec, decl: &[ValueInfo], args: &[(String, usize)], tys: &[Option<Ty>], what: &str) -> Result<()> {
    for ((k, slot), (_, r)) in args.iter().zip(&n.inputs) {
        let Some(d) = find(decl, k) else {
            return Err(error(Some(n.label()), &n.input_path(k), format!("node '{}' has no input '{k}'; {what} inputs are: {}", n.name, names(decl))));
        };
        if let Some(from) = &tys[*slot] {
            if let Some((kind, detail)) = mismatch(from, &Ty::of(d)) {
                return Err(error(Some(n.label()), &n.input_path(k), format!("{kind} mismatch on edge {r} -> {}: {detail}", end(&n.name, k))));
            }
        }
    }
    if let Some(d) = decl.iter().find(|d| !args.iter().any(|(k, _)| *k == d.name)) {
        return Err(error(Some(n.label()), &format!("{}.inputs", n.path), format!("node '{}': input '{}' ({}) is not connected", n.name, d.name, Ty::of(d).show())));
    }
    Ok(())
}

fn plan(spec: &GraphSpec, models: &HashMap<String, Arc<dyn NodeRunner>>) -> Result<Plan> {
    let nodes = &spec.nodes;
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        if let Some(j) = index.insert(n.name.as_str(), i) {
            return Err(error(Some(n.label()), &format!("{}.name", n.path), format!("duplicate node name '{}' ({} and {})", n.name, nodes[j].path, n.path)));
        }
    }
    let mut execs = Vec::with_capacity(nodes.len());
    let mut outs = Vec::with_capacity(nodes.len());
    for n in nodes {
        let (e, o) = executor(n, models, spec.base.as_deref())?;
        execs.push(e);
        outs.push(o);
    }
    let input_names: Vec<&String> = spec.inputs.keys().collect();
    let mut first = Vec::with_capacity(nodes.len());
    let mut slots = input_names.len();
    let mut producer: Vec<Option<usize>> = vec![None; slots];
    for (i, o) in outs.iter().enumerate() {
        first.push(slots);
        slots += o.len();
        producer.extend(std::iter::repeat_n(Some(i), o.len()));
    }
    let at_path = |p: &str| format!("{}{p}", spec.path);
    // References.
    let mut args: Vec<Vec<(String, usize)>> = Vec::with_capacity(nodes.len());
    let mut whens: Vec<Option<(usize, When)>> = Vec::with_capacity(nodes.len());
    for n in nodes {
        let mut a = Vec::with_capacity(n.inputs.len());
        for (k, r) in &n.inputs {
            let slot =
                resolve(r, &index, &outs, &first, &input_names).map_err(|m| error(Some(n.label()), &n.input_path(k), format!("dangling input {r} -> {}: {m}", end(&n.name, k))))?;
            a.push((k.clone(), slot));
        }
        args.push(a);
        whens.push(match &n.when {
            Some(w) => {
                let slot = resolve(&w.input, &index, &outs, &first, &input_names)
                    .map_err(|m| error(Some(n.label()), &format!("{}.when.input", n.path), format!("dangling input {} -> {} (when): {m}", w.input, n.name)))?;
                Some((slot, w.clone()))
            }
            None => None,
        });
    }
    let mut out_slots = Vec::with_capacity(spec.outputs.len());
    for (name, r) in &spec.outputs {
        let slot =
            resolve(r, &index, &outs, &first, &input_names).map_err(|m| error(None, &at_path(&format!("outputs.{name}")), format!("dangling graph output {r} -> {name}: {m}")))?;
        out_slots.push(slot);
    }
    // Dependencies between nodes, then cycles.
    let deps: Vec<Vec<usize>> = (0..nodes.len())
        .map(|i| {
            let mut d: Vec<usize> = args[i].iter().map(|&(_, s)| s).chain(whens[i].as_ref().map(|w| w.0)).filter_map(|s| producer[s]).collect();
            d.sort_unstable();
            d.dedup();
            d
        })
        .collect();
    if let Some(c) = cycle(&deps) {
        let shown: Vec<&str> = c.iter().map(|&i| nodes[i].name.as_str()).collect();
        let n = &nodes[c[0]];
        return Err(error(Some(n.label()), &format!("{}.inputs", n.path), format!("the graph has a cycle: {}", shown.join(" -> "))));
    }
    // What the outputs need.
    let mut needed = vec![false; nodes.len()];
    let mut todo: Vec<usize> = out_slots.iter().filter_map(|&s| producer[s]).collect();
    while let Some(v) = todo.pop() {
        if !std::mem::replace(&mut needed[v], true) {
            todo.extend(&deps[v]);
        }
    }
    // Types, in dependency order.
    let mut tys: Vec<Option<Ty>> = vec![None; slots];
    for (k, (name, decl)) in spec.inputs.iter().enumerate() {
        debug_assert_eq!(input_names[k], name);
        tys[k] = Some(Ty::from_shape(decl.dtype, decl.shape.as_deref()));
    }
    for i in topological(&deps) {
        let n = &nodes[i];
        for (k, s) in &args[i] {
            if let Some(t) = tys[*s].as_ref().filter(|t| t.dtype().is_none()) {
                let r = &n.inputs.iter().find(|(x, _)| x == k).expect("arg").1;
                return Err(error(Some(n.label()), &n.input_path(k), format!("edge {r} -> {} carries a value of type {}; graphs pass tensors only", end(&n.name, k), t.kind.type_name())));
            }
        }
        let arg_tys: Vec<Ty> = args[i].iter().map(|(_, s)| tys[*s].clone().expect("typed in order")).collect();
        let out_tys: Vec<Ty> = match &execs[i] {
            Exec::Model(r) => {
                check_inputs(n, r.inputs(), &args[i], &tys, "its model's")?;
                r.outputs().iter().map(Ty::of).collect()
            }
            Exec::Graph(g) => {
                check_inputs(n, g.inputs(), &args[i], &tys, "the nested graph's")?;
                g.outputs().iter().map(Ty::of).collect()
            }
            Exec::Switch { runners, .. } => {
                check_inputs(n, runners[0].inputs(), &args[i], &tys, "its variants'")?;
                runners[0].outputs().iter().map(Ty::of).collect()
            }
            Exec::Op(op) => op.infer(&arg_tys).map_err(|m| {
                let edges: Vec<String> = n.inputs.iter().map(|(k, r)| format!("{r} -> {}", end(&n.name, k))).collect();
                error(Some(n.label()), &format!("{}.inputs", n.path), format!("node '{}' (op {}): {m} (edges: {})", n.name, op.name(), edges.join(", ")))
            })?,
            Exec::Rank { runner, ranker } => {
                let arg = |name: &str| args[i].iter().position(|(k, _)| k == name).map(|p| &arg_tys[p]);
                if let Some((k, _)) = args[i].iter().find(|(k, _)| k != "candidates" && k != "query") {
                    return Err(error(Some(n.label()), &n.input_path(k), format!("rank '{}' has no input '{k}'; its inputs are 'candidates' and an optional 'query'", n.name)));
                }
                let Some(cands) = arg("candidates") else {
                    return Err(error(Some(n.label()), &format!("{}.inputs", n.path), format!("rank '{}' needs a 'candidates' input", n.name)));
                };
                let model_in = find(runner.inputs(), &ranker.input).map(Ty::of).expect("checked");
                ranker.check(cands, arg("query"), &model_in).map_err(|m| {
                    let edges: Vec<String> = n.inputs.iter().map(|(k, r)| format!("{r} -> {}", end(&n.name, k))).collect();
                    error(Some(n.label()), &format!("{}.inputs", n.path), format!("rank '{}': {m} (edges: {})", n.name, edges.join(", ")))
                })?;
                Ranker::output_types(cands).to_vec()
            }
        };
        for (k, t) in out_tys.into_iter().enumerate() {
            tys[first[i] + k] = Some(t);
        }
        if let Some((s, w)) = &whens[i] {
            let t = tys[*s].as_ref().expect("typed in order");
            if !t.dtype().is_some_and(numeric) {
                return Err(error(
                    Some(n.label()),
                    &format!("{}.when.input", n.path),
                    format!("node '{}': the predicate on {} needs a numeric tensor, got {}", n.name, w.input, t.kind.type_name()),
                ));
            }
        }
    }
    let outputs: Vec<ValueInfo> = spec.outputs.keys().zip(&out_slots).map(|(name, &s)| tys[s].as_ref().expect("typed").info(name)).collect();
    let inputs = ModelInfo { inputs: spec.inputs.keys().zip(&tys).map(|(name, t)| t.as_ref().expect("typed").info(name)).collect(), ..ModelInfo::default() };
    // Counters for the run: waits and wakes among needed nodes only.
    let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut wanted: Vec<Vec<String>> = vec![Vec::new(); nodes.len()];
    let want = |slot: usize, wanted: &mut Vec<Vec<String>>| {
        if let Some(p) = producer[slot] {
            let name = &outs[p][slot - first[p]];
            if !wanted[p].contains(name) {
                wanted[p].push(name.clone());
            }
        }
    };
    for i in (0..nodes.len()).filter(|&i| needed[i]) {
        for &d in &deps[i] {
            consumers[d].push(i);
        }
        for s in args[i].iter().map(|a| a.1).chain(whens[i].as_ref().map(|w| w.0)) {
            want(s, &mut wanted);
        }
    }
    for &s in &out_slots {
        want(s, &mut wanted);
    }
    let plan_nodes = nodes
        .iter()
        .zip(execs)
        .enumerate()
        .map(|(i, (n, exec))| PlanNode {
            name: n.name.clone(),
            exec,
            args: std::mem::take(&mut args[i]),
            when: whens[i].take(),
            outputs: std::mem::take(&mut outs[i]),
            first: first[i],
            deps: if needed[i] { deps[i].len() } else { 0 },
            consumers: std::mem::take(&mut consumers[i]),
            wanted: std::mem::take(&mut wanted[i]),
            needed: needed[i],
        })
        .collect::<Vec<PlanNode>>();
    let feedback = plan_nodes.iter().any(|n| match &n.exec {
        Exec::Switch { state, .. } => state.lock().unwrap_or_else(|e| e.into_inner()).trial().is_some(),
        Exec::Graph(g) => g.takes_feedback(),
        _ => false,
    });
    let io = plan_nodes.iter().any(|n| match &n.exec {
        Exec::Op(op) => matches!(op.0, crate::graph::spec::OpSpec::Lookup { .. }),
        Exec::Graph(g) => g.waits_on_io(),
        _ => false,
    });
    Ok(Plan { inputs, outputs, out_slots, nodes: plan_nodes, slots, feedback, io })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cycles_in_data_flow_order() {
        // 0 waits for 1, 1 waits for 2, 2 waits for 0: 0 -> 2 -> 1 -> 0 in data flow.
        let c = cycle(&[vec![1], vec![2], vec![0]]).unwrap();
        assert_eq!(c.len(), 4);
        assert_eq!(c.first(), c.last());
        for w in c.windows(2) {
            // Each node feeds the next: the next waits for it.
            assert!([vec![1], vec![2], vec![0]][w[1]].contains(&w[0]), "{c:?}");
        }
        assert!(cycle(&[vec![], vec![0], vec![0, 1]]).is_none());
        assert_eq!(topological(&[vec![2], vec![], vec![1]]), vec![1, 2, 0]);
    }
}
