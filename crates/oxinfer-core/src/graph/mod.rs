//! Graphs of models and tensor ops: a versioned JSON spec of nodes (models,
//! ops, nested graphs, switches between model variants, rankers) wired by
//! named edges, validated once at build and run per request natively, with
//! independent branches in parallel and shared nodes run once.
//!
//! The core does not load models here: the caller supplies each `model` key
//! of the spec as a `NodeRunner` (a session's `SchedulerRunner`, a
//! pipeline, a test double).
//!
//! # Spec, version 1
//!
//! - `inputs`: name -> `{"type": <DType name>, "shape": [-1, 16]}` (-1: any
//!   size; no shape: any rank).
//! - `nodes`: each with a unique `name` ([A-Za-z0-9_-]), a `kind`, `inputs`
//!   (node input name -> reference, or a list of references for ops) and an
//!   optional `when`. A reference is `"node.output"` or a graph input's name.
//!   - `model`: `{"model": "<key>"}`; inputs named as the model's.
//!   - `op`: `{"op": "concat" | "slice" | "gather" | "argmax" | "topk" | "add"
//!     | "sub" | "mul" | "div" | "max" | "min" | "sigmoid" | "softmax" |
//!     "cast" | "reshape", ...}` (see `spec::OpSpec`); inputs in order (a
//!     list's order, or an object's keys sorted); output `y` (`topk`:
//!     `values`, `indices`).
//!   - `graph`: `{"graph": {<inputs, nodes, outputs>}}`, a nested graph.
//!   - `switch`: `{"variants": [{"model", "quality", "name"?}], "policy":
//!     {"kind": "latency-slo", "sloMs", "hysteresis"?, "window"?, "probeEvery"?}
//!     | {"kind": "load", "maxQueue", "hysteresis"?} | {"kind": "explicit"}}`
//!     (see `switch`).
//!   - `rank`: `{"model", "strategy": "pointwise" | "pairwise" | "listwise",
//!     "input"?, "output"?, "maxBatch"?}`, inputs `candidates` and optional
//!     `query`, outputs `order` and `scores` (see `rank`).
//! - `when`: `{"input": <reference>, "op": ">" | ">=" | "<" | "<=" | "==" |
//!   "!=", "value": <number>, "reduce": "any" | "all"}`. A node whose
//!   predicate is false is skipped, so are the nodes that consume its outputs,
//!   and graph outputs it would have produced are reported as skipped.
//! - `outputs`: graph output name -> reference (reported sorted by name).
//!
//! Nodes that no graph output depends on are not run.
//!
//! ```
//! let spec = oxinfer_core::graph::parse(r#"{
//!   "version": 1,
//!   "inputs": {"x": {"type": "float32", "shape": [-1, 16]}},
//!   "nodes": [
//!     {"name": "gate", "kind": "model", "model": "cheap", "inputs": {"x": "x"}},
//!     {"name": "p", "kind": "op", "op": "softmax", "axis": 1, "inputs": ["gate.y"]},
//!     {"name": "hard", "kind": "op", "op": "slice", "axis": 1, "start": 1, "end": 2, "inputs": ["p.y"]},
//!     {"name": "big", "kind": "switch", "inputs": {"x": "x"},
//!      "variants": [{"model": "accurate", "quality": 0.9}, {"model": "fast", "quality": 0.7}],
//!      "policy": {"kind": "latency-slo", "sloMs": 20, "hysteresis": 0.1, "window": 200},
//!      "when": {"input": "hard.y", "op": ">", "value": 0.5, "reduce": "any"}},
//!     {"name": "label", "kind": "op", "op": "argmax", "axis": 1, "inputs": ["big.y"]}
//!   ],
//!   "outputs": {"probs": "p.y", "label": "label.y"}
//! }"#).unwrap();
//! assert_eq!(spec.nodes.len(), 5);
//! ```

mod build;
mod exec;
mod feedback;
mod op_spec;
pub mod ops;
pub mod rank;
pub mod runner;
pub mod spec;
pub mod switch;
pub mod trial;
pub mod types;
mod value;

pub use build::Graph;
pub use exec::{GraphDone, GraphOutput, GraphResult, GraphRunOptions, NodeReport, NodeStatus, Variant};
pub use runner::{CallContext, NodeRunner, PipelineRunner, SchedulerRunner};
pub use spec::{parse, GraphSpec};
pub use switch::{Load, Policy, SwitchState, SwitchStats, VariantStats};
