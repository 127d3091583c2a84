//! The graph spec, version 1: what a graph declares (inputs, nodes, outputs),
//! read from JSON with errors that carry the node and the JSON path of the
//! offending value, as pipeline spec errors do.
//!
//! Nodes are read in two steps (the common keys, then the keys of their
//! kind) so that an unknown key or kind is named with its full path.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result, SpecSource};
use crate::tensor::DType;

use super::op_spec::dtype;
pub use super::op_spec::{Loaded, LoadedTokenizer, OpSpec, TokenizePadding};

/// The spec versions this build reads.
pub const VERSION: u32 = 1;

/// A parsed graph spec (also the inline spec of a nested `graph` node).
#[derive(Clone, Debug)]
pub struct GraphSpec {
    /// The graph's inputs by name.
    pub inputs: BTreeMap<String, InputSpec>,
    /// The nodes, in the order written.
    pub nodes: Vec<NodeSpec>,
    /// The graph's outputs: name -> reference ("node.output" or a graph input).
    pub outputs: BTreeMap<String, String>,
    /// Where this spec sits in the file: "" for a top-level graph,
    /// "nodes[2].graph." for a nested one (prefixes every JSON path).
    pub path: String,
    /// The folder that files the spec names (a `ctc_decode` vocabulary) are
    /// relative to; None: the working directory.
    pub base: Option<std::path::PathBuf>,
}

impl GraphSpec {
    /// The spec with files resolved from `base`, nested graphs included.
    pub fn with_base(mut self, base: Option<&std::path::Path>) -> GraphSpec {
        self.base = base.map(std::path::Path::to_path_buf);
        for n in &mut self.nodes {
            if let NodeKind::Graph(g) = &mut n.kind {
                let inner = std::mem::replace(&mut **g, GraphSpec { inputs: Default::default(), nodes: Vec::new(), outputs: Default::default(), path: String::new(), base: None });
                **g = inner.with_base(base);
            }
        }
        self
    }
}

/// A declared graph input: its element type and shape (-1: any size; no
/// shape: any rank).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// The element type (`type` in JSON).
    #[serde(rename = "type", deserialize_with = "dtype")]
    pub dtype: DType,
    /// Dims, -1 for any size; absent: any rank.
    #[serde(default)]
    pub shape: Option<Vec<i64>>,
}

/// One node: its unique name, what it is, where its inputs come from, and an
/// optional predicate that decides whether it runs.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// Unique within its graph.
    pub name: String,
    /// What the node does.
    pub kind: NodeKind,
    /// (node input name, reference), in a fixed order: an object's keys
    /// sorted by name, or an array's order (names "0", "1", ...).
    pub inputs: Vec<(String, String)>,
    /// Whether `inputs` was written as an array (positional).
    pub positional: bool,
    /// The predicate that decides whether the node runs.
    pub when: Option<When>,
    /// The node's JSON path ("nodes[2]", or "nodes[1].graph.nodes[0]").
    pub path: String,
}

impl NodeSpec {
    /// How errors name the node: `nodes[2] (cls)`.
    pub fn label(&self) -> String {
        format!("{} ({})", self.path, self.name)
    }

    /// The JSON path of the node input `name`.
    pub fn input_path(&self, name: &str) -> String {
        if self.positional {
            format!("{}.inputs[{name}]", self.path)
        } else {
            format!("{}.inputs.{name}", self.path)
        }
    }
}

/// What a node does.
#[derive(Clone, Debug)]
pub enum NodeKind {
    /// A model supplied by the caller under `model` (a key of the models map).
    Model { model: String },
    /// A tensor op, run inline.
    Op(OpSpec),
    /// A nested graph, whose inputs and outputs are the node's.
    Graph(Box<GraphSpec>),
    /// One of several variants of a model, chosen per request by a policy.
    Switch(SwitchSpec),
    /// Ranks candidates for a query with a scoring model.
    Rank(RankSpec),
}

impl NodeKind {
    /// The kind as written in the spec.
    pub fn name(&self) -> &'static str {
        match self {
            NodeKind::Model { .. } => "model",
            NodeKind::Op(_) => "op",
            NodeKind::Graph(_) => "graph",
            NodeKind::Switch(_) => "switch",
            NodeKind::Rank(_) => "rank",
        }
    }
}

/// A switch node: variants of one model and the policy that picks one.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchSpec {
    /// The variants, which must share input and output names and types.
    pub variants: Vec<VariantSpec>,
    /// How one is picked per request.
    pub policy: PolicySpec,
}

/// One variant of a switch: a model key and its declared quality (higher is better).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantSpec {
    /// The model key (supplied at build).
    pub model: String,
    /// The variant's name for explicit choice and stats (default: the model key).
    #[serde(default)]
    pub name: Option<String>,
    /// Declared quality: higher is preferred.
    #[serde(default)]
    pub quality: f64,
}

/// How a switch picks its variant.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case", rename_all_fields = "camelCase", deny_unknown_fields)]
pub enum PolicySpec {
    /// The best-quality variant whose observed p95 plus current queue wait
    /// fits `sloMs`; a better variant is taken back only below
    /// `sloMs × (1 − hysteresis)`. p95 is over the last `window` runs of each
    /// variant. Every `probeEvery`-th decision while degraded goes to the next
    /// better variant to refresh its latency (0: never).
    LatencySlo {
        slo_ms: f64,
        #[serde(default = "default_hysteresis")]
        hysteresis: f64,
        #[serde(default = "default_window")]
        window: usize,
        #[serde(default = "default_probe")]
        probe_every: u64,
    },
    /// The best-quality variant whose queue depth is below `maxQueue`; a
    /// better variant is taken back only at or below `maxQueue × (1 − hysteresis)`.
    Load {
        max_queue: usize,
        #[serde(default = "default_hysteresis")]
        hysteresis: f64,
    },
    /// The variant named (or indexed) in the run options; the best-quality
    /// one when none is given.
    Explicit {},
    /// Champion and challenger compared on outcomes fed back by request id
    /// (`Graph::feedback`): the challenger takes a `split` share of the
    /// requests (or, in `shadow` mode, runs beside the champion on that share
    /// without its output being used), and is promoted only when a
    /// sequential test finds its mean loss lower at `confidence`; found
    /// worse, it is retired. See `graph::trial`.
    Feedback(TrialSpec),
}

/// How a challenger meets traffic.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum TrialMode {
    /// Its share of requests is served by it.
    #[default]
    Split,
    /// Its share of requests also runs on it; the champion's output is served.
    Shadow,
}

/// The loss a prediction is scored by against its outcome.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum TrialMetric {
    /// 0 when the predicted class is the true one, else 1 (the class: the
    /// argmax of a score row, a 0.5 threshold on a single probability, or an
    /// integer label as is).
    Accuracy,
    /// The absolute error of a single score.
    Mae,
    /// The squared error of a single score.
    Mse,
}

/// A `feedback` policy's parameters.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrialSpec {
    /// The challenger's variant name.
    pub challenger: String,
    /// The champion's variant name (default: the best declared quality among the others).
    #[serde(default)]
    pub champion: Option<String>,
    #[serde(default)]
    pub mode: TrialMode,
    /// The share of requests the challenger takes (split) or shadows, 0 to 1.
    #[serde(default = "default_split")]
    pub split: f64,
    pub metric: TrialMetric,
    /// The variants' output scored (default: their first).
    #[serde(default)]
    pub output: Option<String>,
    /// Class names, so that outcomes may be given as labels (index i: class i).
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    /// Confidence of a decision (1 − α); both promotion and retirement need it.
    #[serde(default = "default_confidence")]
    pub confidence: f64,
    /// Outcomes each arm needs before any decision.
    #[serde(default = "default_min_samples")]
    pub min_samples: u64,
    /// Outcomes per arm after which the trial ends undecided (0: never).
    #[serde(default)]
    pub max_samples: u64,
    /// The difference in mean loss the test is tuned for (default: a quarter
    /// of the pooled standard deviation of the loss, fixed once both arms
    /// have `minSamples` outcomes).
    #[serde(default)]
    pub effect: Option<f64>,
    /// Predictions kept for their outcome, at most (the oldest go first).
    #[serde(default = "default_keep")]
    pub keep: usize,
}

fn default_split() -> f64 {
    0.1
}
fn default_confidence() -> f64 {
    0.95
}
fn default_min_samples() -> u64 {
    100
}
fn default_keep() -> usize {
    100_000
}

/// A rank node: which model scores, how candidates are presented to it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RankSpec {
    /// The scoring model's key.
    pub model: String,
    /// How candidates are presented to it.
    pub strategy: RankStrategy,
    /// The model input fed (default: the model's only input).
    #[serde(default)]
    pub input: Option<String>,
    /// The model output read as scores (default: its first output).
    #[serde(default)]
    pub output: Option<String>,
    /// At most this many rows per model run (default: all in one run, or the
    /// model's fixed batch dim).
    #[serde(default)]
    pub max_batch: Option<usize>,
}

/// Ranking strategies; see `graph::rank` for the exact contract.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RankStrategy {
    /// One score per candidate row.
    Pointwise,
    /// P(a before b) per ordered pair, aggregated per candidate.
    Pairwise,
    /// One run over the whole list.
    Listwise,
}

/// A predicate on an earlier value: the node runs when it holds.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct When {
    /// A reference, as in node inputs.
    pub input: String,
    /// The comparison of each element with `value`.
    pub op: Cmp,
    /// The number compared with.
    pub value: f64,
    /// How element results combine (default: any).
    #[serde(default)]
    pub reduce: Reduce,
}

/// Comparison of each element with `When::value`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub enum Cmp {
    /// `>`
    #[serde(rename = ">")]
    Gt,
    /// `>=`
    #[serde(rename = ">=")]
    Ge,
    /// `<`
    #[serde(rename = "<")]
    Lt,
    /// `<=`
    #[serde(rename = "<=")]
    Le,
    /// `==`
    #[serde(rename = "==")]
    Eq,
    /// `!=`
    #[serde(rename = "!=")]
    Ne,
}

impl Cmp {
    /// Whether `x <op> v` holds (false for NaN, except `!=`).
    pub fn holds(self, x: f64, v: f64) -> bool {
        match self {
            Cmp::Gt => x > v,
            Cmp::Ge => x >= v,
            Cmp::Lt => x < v,
            Cmp::Le => x <= v,
            Cmp::Eq => x == v,
            Cmp::Ne => x != v,
        }
    }
}

/// How element results combine: any element (empty: false) or all (empty: true).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Reduce {
    /// Any element satisfies it.
    #[default]
    Any,
    /// Every element satisfies it.
    All,
}

fn default_hysteresis() -> f64 {
    0.1
}
fn default_window() -> usize {
    200
}
fn default_probe() -> u64 {
    100
}


/// Whether `name` may name a node or a graph input: non-empty, [A-Za-z0-9_-].
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A spec error about the value at `at`, within the node labelled `stage` if any.
pub(crate) fn error(stage: Option<String>, at: &str, message: impl Into<String>) -> Error {
    Error::InvalidSpec { message: message.into(), stage, at: Some(at.to_string()).filter(|a| !a.is_empty()), origin: None }
}

/// Parses a graph spec from JSON text, checking its version first. A syntax
/// error keeps its line and column; other errors carry a JSON path (see
/// `pipeline::locate::in_file` to turn it into a line of the user's file).
pub fn parse(json: &str) -> Result<GraphSpec> {
    let value: Value = serde_json::from_str(json).map_err(|e| Error::InvalidSpec {
        message: format!("the graph spec is not valid JSON: {e}"),
        stage: None,
        at: None,
        origin: Some(SpecSource { path: String::new(), line: Some(e.line()), column: Some(e.column()) }),
    })?;
    from_value(&value)
}

/// Parses a graph spec already read as JSON.
pub fn from_value(value: &Value) -> Result<GraphSpec> {
    let o = value.as_object().ok_or_else(|| Error::spec("the graph spec must be a JSON object"))?;
    match o.get("version") {
        Some(v) if v.as_u64() == Some(VERSION as u64) => {}
        Some(v) => return Err(error(None, "version", format!("unsupported graph spec version {v}; this oxinfer reads version {VERSION}"))),
        None => return Err(error(None, "version", format!("the graph spec has no version; this oxinfer reads version {VERSION}"))),
    }
    graph(o, "", None)
}

/// Deserializes `v` (the value at `base`), naming the path where reading stopped.
fn de<T: DeserializeOwned>(v: Value, base: &str, stage: Option<&str>) -> Result<T> {
    serde_path_to_error::deserialize::<_, T>(v).map_err(|e| {
        let inner = e.path().to_string();
        let message = e.inner().to_string();
        let mut rel = if inner == "." { String::new() } else { inner };
        // Inside a tagged enum serde loses the path; an unknown key is still named by its message.
        if let Some(key) = message.strip_prefix("unknown field `").and_then(|r| r.split('`').next()) {
            if !rel.ends_with(&format!(".{key}")) && rel != key {
                rel = if rel.is_empty() { key.to_string() } else { format!("{rel}.{key}") };
            }
        }
        let at = join(base, &rel);
        let shown = if at.is_empty() { "the top level".to_string() } else { at.clone() };
        // A node's label is "path (name)": the message names the node too.
        let node = stage.and_then(|s| s.rsplit_once(" (")).map(|(_, n)| format!(" (node '{}')", n.trim_end_matches(')'))).unwrap_or_default();
        error(stage.map(str::to_string), &at, format!("invalid graph spec at {shown}{node}: {message}"))
    })
}

fn join(base: &str, rel: &str) -> String {
    match (base.is_empty(), rel.is_empty()) {
        (true, _) => rel.to_string(),
        (_, true) => base.to_string(),
        _ if rel.starts_with('[') => format!("{base}{rel}"),
        _ => format!("{base}.{rel}"),
    }
}

/// A graph object at `path` ("" or "nodes[1].graph").
fn graph(o: &Map<String, Value>, path: &str, stage: Option<&str>) -> Result<GraphSpec> {
    let at = |k: &str| join(path, k);
    for key in o.keys() {
        if !matches!(key.as_str(), "$schema" | "version" | "name" | "description" | "inputs" | "nodes" | "outputs") {
            return Err(error(
                stage.map(str::to_string),
                &at(key),
                format!("unknown key '{key}' in the graph spec at {}; expected version, inputs, nodes, outputs", if path.is_empty() { "the top level" } else { path }),
            ));
        }
    }
    if let Some(v) = o.get("version") {
        if v.as_u64() != Some(VERSION as u64) {
            return Err(error(stage.map(str::to_string), &at("version"), format!("unsupported graph spec version {v}; this oxinfer reads version {VERSION}")));
        }
    }
    let inputs: BTreeMap<String, InputSpec> = de(o.get("inputs").cloned().unwrap_or(Value::Object(Map::new())), &at("inputs"), stage)?;
    for (name, decl) in &inputs {
        if !valid_name(name) {
            return Err(error(
                stage.map(str::to_string),
                &at(&format!("inputs.{name}")),
                format!("graph input name '{name}' must be non-empty and use only letters, digits, '_' and '-'"),
            ));
        }
        if let Some(bad) = decl.shape.iter().flatten().find(|&&d| d < -1) {
            return Err(error(stage.map(str::to_string), &at(&format!("inputs.{name}.shape")), format!("graph input '{name}' has dim {bad}; dims are sizes, or -1 for any size")));
        }
    }
    let Some(nodes) = o.get("nodes") else {
        return Err(error(stage.map(str::to_string), &at("nodes"), "the graph spec needs a list of nodes"));
    };
    let Some(list) = nodes.as_array() else {
        return Err(error(stage.map(str::to_string), &at("nodes"), "'nodes' must be an array of node objects"));
    };
    let nodes = list.iter().enumerate().map(|(i, v)| node(v, &at(&format!("nodes[{i}]")))).collect::<Result<Vec<_>>>()?;
    let outputs: BTreeMap<String, String> = match o.get("outputs") {
        Some(v) => de(v.clone(), &at("outputs"), stage)?,
        None => return Err(error(stage.map(str::to_string), &at("outputs"), "the graph spec needs outputs (name -> reference)")),
    };
    if outputs.is_empty() {
        return Err(error(stage.map(str::to_string), &at("outputs"), "the graph declares no outputs"));
    }
    Ok(GraphSpec { inputs, nodes, outputs, path: if path.is_empty() { String::new() } else { format!("{path}.") }, base: None })
}

fn node(v: &Value, path: &str) -> Result<NodeSpec> {
    let Some(o) = v.as_object() else {
        return Err(error(None, path, format!("{path} must be a node object")));
    };
    let name = match o.get("name") {
        Some(Value::String(n)) if valid_name(n) => n.clone(),
        Some(Value::String(n)) => {
            return Err(error(Some(format!("{path} ({n})")), &format!("{path}.name"), format!("node name '{n}' must be non-empty and use only letters, digits, '_' and '-'")))
        }
        _ => return Err(error(Some(path.to_string()), &format!("{path}.name"), format!("{path} needs a name (a string)"))),
    };
    let label = format!("{path} ({name})");
    let stage = Some(label.as_str());
    let kind = match o.get("kind") {
        Some(Value::String(k)) => k.clone(),
        _ => return Err(error(Some(label.clone()), &format!("{path}.kind"), format!("node '{name}' needs a kind: model, op, graph, switch or rank"))),
    };
    let (inputs, positional) = match o.get("inputs") {
        None => (Vec::new(), false),
        Some(Value::Array(refs)) => {
            let refs: Vec<String> = de(Value::Array(refs.clone()), &format!("{path}.inputs"), stage)?;
            (refs.into_iter().enumerate().map(|(i, r)| (i.to_string(), r)).collect(), true)
        }
        Some(v @ Value::Object(_)) => {
            let refs: BTreeMap<String, String> = de(v.clone(), &format!("{path}.inputs"), stage)?;
            (refs.into_iter().collect(), false)
        }
        Some(_) => return Err(error(Some(label.clone()), &format!("{path}.inputs"), format!("node '{name}': 'inputs' must map input names to references (or list references)"))),
    };
    let when: Option<When> = match o.get("when") {
        Some(w) => Some(de(w.clone(), &format!("{path}.when"), stage)?),
        None => None,
    };
    let rest: Map<String, Value> = o.iter().filter(|(k, _)| !matches!(k.as_str(), "name" | "kind" | "inputs" | "when")).map(|(k, v)| (k.clone(), v.clone())).collect();
    let kind = match kind.as_str() {
        "model" => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct M {
                model: String,
            }
            NodeKind::Model { model: de::<M>(Value::Object(rest), path, stage)?.model }
        }
        "op" => NodeKind::Op(de(Value::Object(rest), path, stage)?),
        "graph" => {
            let mut inner = None;
            for (k, v) in &rest {
                match (k.as_str(), v) {
                    ("graph", Value::Object(g)) => inner = Some(g),
                    ("graph", _) => return Err(error(Some(label.clone()), &format!("{path}.graph"), format!("node '{name}': 'graph' must be a graph spec object"))),
                    _ => return Err(error(Some(label.clone()), &format!("{path}.{k}"), format!("node '{name}': unknown key '{k}' for a graph node"))),
                }
            }
            let Some(g) = inner else {
                return Err(error(Some(label.clone()), &format!("{path}.graph"), format!("node '{name}' of kind graph needs an inline 'graph' spec")));
            };
            NodeKind::Graph(Box::new(graph(g, &format!("{path}.graph"), stage)?))
        }
        "switch" => NodeKind::Switch(de(Value::Object(rest), path, stage)?),
        "rank" => NodeKind::Rank(de(Value::Object(rest), path, stage)?),
        other => return Err(error(Some(label.clone()), &format!("{path}.kind"), format!("node '{name}' has unknown kind '{other}'; expected model, op, graph, switch or rank"))),
    };
    Ok(NodeSpec { name, kind, inputs, positional, when, path: path.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> Error {
        parse(json).unwrap_err()
    }

    #[test]
    fn reads_a_full_spec() {
        let s = parse(
            r#"{"version": 1, "inputs": {"x": {"type": "float32", "shape": [-1, 16]}},
            "nodes": [
              {"name": "m", "kind": "model", "model": "mlp", "inputs": {"x": "x"}},
              {"name": "p", "kind": "op", "op": "softmax", "axis": 1, "inputs": ["m.y"], "when": {"input": "m.y", "op": ">", "value": 0.5}},
              {"name": "t", "kind": "op", "op": "top_k", "k": 1, "inputs": ["p.y"]},
              {"name": "s", "kind": "switch", "variants": [{"model": "a", "quality": 0.9}, {"model": "b", "quality": 0.5}],
               "policy": {"kind": "latency-slo", "sloMs": 20}, "inputs": {"x": "x"}},
              {"name": "g", "kind": "graph", "graph": {"inputs": {"a": {"type": "float32"}}, "nodes": [], "outputs": {"b": "a"}}, "inputs": {"a": "x"}},
              {"name": "r", "kind": "rank", "model": "scorer", "strategy": "pairwise", "maxBatch": 64, "inputs": {"candidates": "x"}}
            ],
            "outputs": {"probs": "p.y"}}"#,
        )
        .unwrap();
        assert_eq!(s.inputs["x"].dtype, DType::Float32);
        assert_eq!(s.inputs["x"].shape, Some(vec![-1, 16]));
        assert_eq!(s.nodes.len(), 6);
        assert!(matches!(&s.nodes[1].kind, NodeKind::Op(OpSpec::Softmax { axis: 1 })));
        assert_eq!(s.nodes[1].inputs, vec![("0".to_string(), "m.y".to_string())]);
        assert_eq!(s.nodes[1].when.as_ref().unwrap().op, Cmp::Gt);
        assert!(matches!(&s.nodes[2].kind, NodeKind::Op(OpSpec::Topk { k: 1, axis: -1 })));
        let NodeKind::Switch(sw) = &s.nodes[3].kind else { panic!() };
        assert_eq!(sw.policy, PolicySpec::LatencySlo { slo_ms: 20.0, hysteresis: 0.1, window: 200, probe_every: 100 });
        let NodeKind::Graph(g) = &s.nodes[4].kind else { panic!() };
        assert_eq!(g.path, "nodes[4].graph.");
        let NodeKind::Rank(r) = &s.nodes[5].kind else { panic!() };
        assert_eq!((r.strategy, r.max_batch), (RankStrategy::Pairwise, Some(64)));
    }

    #[test]
    fn errors_carry_the_node_and_path() {
        let e = err(r#"{"version": 1, "nodes": [{"name": "a", "kind": "nope"}], "outputs": {"o": "a.y"}}"#);
        assert_eq!(e.code(), "ERR_INVALID_SPEC");
        assert!(e.to_string().contains("unknown kind 'nope'"), "{e}");
        assert_eq!((e.stage(), e.spec_at()), (Some("nodes[0] (a)"), Some("nodes[0].kind")));

        let e = err(r#"{"version": 1, "nodes": [{"name": "a", "kind": "op", "op": "frobnicate"}], "outputs": {"o": "a.y"}}"#);
        assert!(e.to_string().contains("frobnicate") && e.to_string().contains("(node 'a')"), "{e}");
        assert_eq!(e.stage(), Some("nodes[0] (a)"));

        let e = err(r#"{"version": 1, "nodes": [{"name": "a", "kind": "op", "op": "concat", "axis": 1, "extra": 2}], "outputs": {"o": "a.y"}}"#);
        assert_eq!(e.spec_at(), Some("nodes[0].extra"), "{e}");

        let e = err(r#"{"version": 1, "nodes": [{"name": "a b", "kind": "op", "op": "sigmoid"}], "outputs": {"o": "x"}}"#);
        assert_eq!(e.spec_at(), Some("nodes[0].name"));

        let e = err(r#"{"version": 1, "inputs": {"x": {"type": "float99"}}, "nodes": [], "outputs": {"o": "x"}}"#);
        assert!(e.to_string().contains("unknown type 'float99'"), "{e}");
        assert_eq!(e.spec_at(), Some("inputs.x.type"));

        let e = err(r#"{"version": 2, "nodes": [], "outputs": {"o": "x"}}"#);
        assert_eq!(e.spec_at(), Some("version"));

        let e = err(
            r#"{"version": 1, "nodes": [{"name": "g", "kind": "graph", "graph": {"nodes": [{"name": "i", "kind": "op", "op": "cast", "to": "int5"}], "outputs": {"o": "i.y"}}}], "outputs": {"o": "g.o"}}"#,
        );
        assert_eq!(e.stage(), Some("nodes[0].graph.nodes[0] (i)"), "{e}");

        let e = err(r#"{"version": 1, "nodes": [{"name": "s", "kind": "switch", "variants": [], "policy": {"kind": "latency-slo", "slo": 3}}], "outputs": {"o": "s.y"}}"#);
        assert!(e.spec_at().unwrap().starts_with("nodes[0].policy"), "{e}");
    }

    #[test]
    fn syntax_errors_keep_their_line() {
        let e = err("{\n \"version\": 1,,\n}");
        assert!(matches!(e, Error::InvalidSpec { origin: Some(SpecSource { line: Some(2), .. }), .. }));
    }
}
