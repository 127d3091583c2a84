//! Graph specs that cannot be built: each invalid spec gives ERR_INVALID_SPEC
//! naming the nodes involved and the JSON path of the value at fault.

mod common;

use std::sync::Arc;

use common::graph::{models, plain, session};
use oxinfer_core::graph::{Graph, NodeRunner};

#[test]
fn invalid_specs_name_the_nodes() {
    let (_b, _s, mlp) = session("tiny_mlp.onnx", 1, plain());
    let (_b2, _s2, add) = session("add_int64.onnx", 1, plain());
    let m = models(&[("det", mlp.clone() as Arc<dyn NodeRunner>), ("cls", mlp as Arc<dyn NodeRunner>), ("add", add as Arc<dyn NodeRunner>)]);
    let wrap = |nodes: &str, outputs: &str| {
        format!(
            r#"{{"version": 1, "inputs": {{"x": {{"type": "float32", "shape": [-1, 16]}}, "i": {{"type": "int64", "shape": [3]}}}}, "nodes": [{nodes}], "outputs": {{{outputs}}}}}"#
        )
    };
    let det = r#"{"name": "det", "kind": "model", "model": "det", "inputs": {"x": "x"}}"#;
    let cases: Vec<(String, Vec<&str>, &str)> = vec![
        (wrap(r#"{"name": "a", "kind": "frob"}"#, r#""o": "x""#), vec!["node 'a'", "unknown kind 'frob'"], "nodes[0].kind"),
        (wrap(r#"{"name": "a", "kind": "op", "op": "frob", "inputs": ["x"]}"#, r#""o": "x""#), vec!["frob"], "nodes[0]"),
        (wrap(&format!("{det}, {det}"), r#""o": "det.y""#), vec!["duplicate node name 'det'", "nodes[0]", "nodes[1]"], "nodes[1].name"),
        (
            wrap(r#"{"name": "a", "kind": "op", "op": "sigmoid", "inputs": ["b.y"]}, {"name": "b", "kind": "op", "op": "sigmoid", "inputs": ["a.y"]}"#, r#""o": "a.y""#),
            vec!["cycle", "a -> b -> a"],
            "nodes[0].inputs",
        ),
        (
            wrap(r#"{"name": "cls", "kind": "model", "model": "cls", "inputs": {"x": "det.y"}}"#, r#""o": "cls.y""#),
            vec!["dangling input det.y -> cls.x", "no node 'det'"],
            "nodes[0].inputs.x",
        ),
        (
            wrap(&format!(r#"{det}, {{"name": "cls", "kind": "model", "model": "cls", "inputs": {{"x": "det.out"}}}}"#), r#""o": "cls.y""#),
            vec!["dangling input det.out -> cls.x", "node 'det' has no output 'out'", "'y'"],
            "nodes[1].inputs.x",
        ),
        (
            wrap(r#"{"name": "cls", "kind": "model", "model": "cls", "inputs": {"x": "nope"}}"#, r#""o": "cls.y""#),
            vec!["dangling input nope -> cls.x", "not a graph input"],
            "nodes[0].inputs.x",
        ),
        (wrap(det, r#""o": "det.z""#), vec!["dangling graph output det.z -> o", "no output 'z'"], "outputs.o"),
        (
            wrap(r#"{"name": "cls", "kind": "model", "model": "missing", "inputs": {"x": "x"}}"#, r#""o": "cls.y""#),
            vec!["node 'cls'", "model 'missing'", "not supplied"],
            "nodes[0].model",
        ),
        (
            wrap(r#"{"name": "cls", "kind": "model", "model": "cls", "inputs": {"x": "x", "z": "x"}}"#, r#""o": "cls.y""#),
            vec!["node 'cls' has no input 'z'", "'x'"],
            "nodes[0].inputs.z",
        ),
        (
            wrap(r#"{"name": "sum", "kind": "model", "model": "add", "inputs": {"a": "i"}}"#, r#""o": "sum.c""#),
            vec!["node 'sum'", "input 'b'", "not connected"],
            "nodes[0].inputs",
        ),
        (
            wrap(
                &format!(
                    r#"{det}, {{"name": "c", "kind": "op", "op": "cast", "to": "float64", "inputs": ["x"]}}, {{"name": "cls", "kind": "model", "model": "cls", "inputs": {{"x": "c.y"}}}}"#
                ),
                r#""o": "cls.y""#,
            ),
            vec!["type mismatch on edge c.y -> cls.x", "float64 vs float32"],
            "nodes[2].inputs.x",
        ),
        (
            wrap(&format!(r#"{det}, {{"name": "cls", "kind": "model", "model": "cls", "inputs": {{"x": "det.y"}}}}"#), r#""o": "cls.y""#),
            vec!["shape mismatch on edge det.y -> cls.x", "dim 1 is 2 vs 16"],
            "nodes[1].inputs.x",
        ),
        (
            wrap(
                r#"{"name": "am", "kind": "op", "op": "argmax", "axis": 1, "inputs": ["x"]}, {"name": "cls", "kind": "model", "model": "cls", "inputs": {"x": "am.y"}}"#,
                r#""o": "cls.y""#,
            ),
            vec!["mismatch on edge am.y -> cls.x", "int64 vs float32"],
            "nodes[1].inputs.x",
        ),
        (
            wrap(
                r#"{"name": "s", "kind": "op", "op": "slice", "axis": 1, "start": 0, "end": 8, "inputs": ["x"]}, {"name": "cls", "kind": "model", "model": "cls", "inputs": {"x": "s.y"}}"#,
                r#""o": "cls.y""#,
            ),
            vec!["shape mismatch on edge s.y -> cls.x", "8 vs 16"],
            "nodes[1].inputs.x",
        ),
        (
            wrap(&format!(r#"{det}, {{"name": "bad", "kind": "op", "op": "add", "inputs": ["det.y", "i"]}}"#), r#""o": "bad.y""#),
            vec!["node 'bad' (op add)", "float32 vs int64", "det.y -> bad.0", "i -> bad.1"],
            "nodes[1].inputs",
        ),
        (
            wrap(r#"{"name": "s", "kind": "switch", "variants": [{"model": "det"}, {"model": "add"}], "policy": {"kind": "explicit"}, "inputs": {"x": "x"}}"#, r#""o": "s.y""#),
            vec!["switch 's'", "variant 'add'", "variant 'det'"],
            "nodes[0].variants[1]",
        ),
        (
            wrap(r#"{"name": "r", "kind": "rank", "model": "det", "strategy": "pointwise", "inputs": {"candidates": "i"}}"#, r#""o": "r.order""#),
            vec!["rank 'r'", "int64", "i -> r.candidates"],
            "nodes[0].inputs",
        ),
        (
            wrap(r#"{"name": "g", "kind": "graph", "graph": {"nodes": [{"name": "in", "kind": "model", "model": "nope"}], "outputs": {"o": "in.y"}}}"#, r#""o": "g.o""#),
            vec!["node 'in'", "model 'nope'"],
            "nodes[0].graph.nodes[0].model",
        ),
        (
            wrap(r#"{"name": "w", "kind": "op", "op": "sigmoid", "inputs": ["x"], "when": {"input": "q.y", "op": ">", "value": 0}}"#, r#""o": "w.y""#),
            vec!["dangling input q.y -> w (when)", "no node 'q'"],
            "nodes[0].when.input",
        ),
    ];
    for (spec, wants, at) in cases {
        let e = Graph::build(&spec, &m).err().unwrap_or_else(|| panic!("accepted: {spec}"));
        assert_eq!(e.code(), "ERR_INVALID_SPEC", "{e}");
        for w in &wants {
            assert!(e.to_string().contains(w), "'{e}' should mention '{w}'");
        }
        assert!(e.spec_at().is_some_and(|a| a.starts_with(at)), "'{e}' at {:?}, expected {at}", e.spec_at());
    }
}
