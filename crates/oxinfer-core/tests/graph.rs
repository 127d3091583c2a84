//! Graphs end to end: real ONNX models through `SchedulerRunner` (outputs
//! equal to running the models by hand, merged batches under concurrency),
//! and test runners for what needs control: counting, sleeping, scoring,
//! failing. Also every build-time error, conditional skips and switches.

#[allow(dead_code)]
mod common;

// In a module so that `cargo test graph` selects these tests by name.
mod graph {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{mpsc, Arc, Mutex};
    use std::time::{Duration, Instant};

    use oxinfer_core::graph::{Graph, GraphResult, GraphRunOptions, NodeRunner, NodeStatus, SchedulerRunner, Variant};
    use oxinfer_core::onnx::OnnxBackend;
    use oxinfer_core::tensor::AlignedBytes;
    use oxinfer_core::{
        Backend, Completion, DType, Dim, Error, InputTensor, OutputData, OutputTensor, RunControl, RunOutput, SchedulerOptions, Timing, ValueInfo, ValueKind,
    };

    use super::common::graph::{models, plain, session};

    fn run(g: &Graph, inputs: Vec<InputTensor>, opts: GraphRunOptions) -> oxinfer_core::Result<GraphResult> {
        let (tx, rx) = mpsc::channel();
        g.run(inputs, opts, Box::new(move |r| tx.send(r).unwrap()));
        rx.recv_timeout(Duration::from_secs(30)).expect("the graph settled")
    }

    fn f32s(t: &OutputTensor) -> Vec<f32> {
        t.to_vec::<f32>().unwrap()
    }

    fn x(rows: usize, seed: f32) -> (Vec<f32>, InputTensor) {
        let v: Vec<f32> = (0..rows * 16).map(|i| (i as f32 * 0.37 + seed).sin() * 2.0).collect();
        let t = InputTensor::from_values("x", DType::Float32, &[rows as i64, 16], &v).unwrap();
        (v, t)
    }

    fn by_hand(b: &OnnxBackend, name: &str, dims: &[i64], v: &[f32]) -> Vec<f32> {
        let t = InputTensor::from_values(name, DType::Float32, dims, v).unwrap();
        f32s(&b.run(0, &[t], &[0], &RunControl::new()).unwrap()[0])
    }

    const CHAIN: &str = r#"{
  "version": 1,
  "inputs": {"x": {"type": "float32", "shape": [-1, 16]}},
  "nodes": [
    {"name": "first", "kind": "model", "model": "mlp", "inputs": {"x": "x"}},
    {"name": "head", "kind": "op", "op": "slice", "axis": 1, "start": 0, "end": 14, "inputs": ["x"]},
    {"name": "joined", "kind": "op", "op": "concat", "axis": 1, "inputs": ["head.y", "first.y"]},
    {"name": "second", "kind": "model", "model": "mlp", "inputs": {"x": "joined.y"}},
    {"name": "sum", "kind": "op", "op": "add", "inputs": ["first.y", "second.y"]},
    {"name": "probs", "kind": "op", "op": "softmax", "axis": 1, "inputs": ["second.y"]},
    {"name": "best", "kind": "op", "op": "argmax", "axis": 1, "inputs": ["probs.y"]},
    {"name": "unused", "kind": "op", "op": "sigmoid", "inputs": ["x"]}
  ],
  "outputs": {"first": "first.y", "second": "second.y", "sum": "sum.y", "probs": "probs.y", "best": "best.y", "echo": "x"}
}"#;

    #[test]
    fn graph_outputs_equal_the_models_run_and_wired_by_hand() {
        let (b, _s, mlp) = session("tiny_mlp.onnx", 1, plain());
        let g = Graph::build(CHAIN, &models(&[("mlp", mlp)])).unwrap();
        assert_eq!(g.nodes(), vec!["first", "head", "joined", "second", "sum", "probs", "best"], "an unused node is pruned");
        assert_eq!(g.outputs().iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), vec!["best", "echo", "first", "probs", "second", "sum"]);
        assert_eq!(g.outputs()[0].kind, ValueKind::Tensor(DType::Int64));
        let rows = 5;
        let (xv, xt) = x(rows, 0.5);
        let out = run(&g, vec![xt], GraphRunOptions::default()).unwrap();

        // By hand: the first model, the wiring, the second model.
        let first = by_hand(&b, "x", &[rows as i64, 16], &xv);
        let mut joined = Vec::new();
        for r in 0..rows {
            joined.extend_from_slice(&xv[r * 16..r * 16 + 14]);
            joined.extend_from_slice(&first[r * 2..r * 2 + 2]);
        }
        let second = by_hand(&b, "x", &[rows as i64, 16], &joined);
        assert_eq!(f32s(out.get("first").unwrap()), first);
        assert_eq!(f32s(out.get("second").unwrap()), second);
        assert_eq!(out.get("second").unwrap().dims, vec![rows as i64, 2]);
        let sum: Vec<f32> = first.iter().zip(&second).map(|(a, b)| a + b).collect();
        assert_eq!(f32s(out.get("sum").unwrap()), sum);
        let best: Vec<i64> = (0..rows).map(|r| if second[r * 2 + 1] > second[r * 2] { 1 } else { 0 }).collect();
        assert_eq!(out.get("best").unwrap().to_vec::<i64>().unwrap(), best);
        let probs = f32s(out.get("probs").unwrap());
        for r in 0..rows {
            let (a, c) = (second[r * 2] as f64, second[r * 2 + 1] as f64);
            let p1 = 1.0 / (1.0 + (a - c).exp());
            assert!((probs[r * 2 + 1] as f64 - p1).abs() < 1e-6);
        }
        assert_eq!(f32s(out.get("echo").unwrap()), xv);

        // Timings: every node that ran is reported once; model nodes carry engine time.
        let names: Vec<&str> = out.nodes.iter().map(|n| n.node.as_str()).collect();
        assert_eq!(names, vec!["first", "head", "joined", "second", "sum", "probs", "best"]);
        let second_node = out.nodes.iter().find(|n| n.node == "second").unwrap();
        assert_eq!((second_node.runs, second_node.status), (1, NodeStatus::Ran));
        assert!(second_node.timing.infer_us > 0 && out.engine_us() > 0 && out.wall_us >= out.engine_us());
    }

    #[test]
    fn graph_inputs_are_checked_like_session_inputs() {
        let (_b, _s, mlp) = session("tiny_mlp.onnx", 1, plain());
        let g = Graph::build(CHAIN, &models(&[("mlp", mlp)])).unwrap();
        let bad = InputTensor::from_values("x", DType::Float32, &[1, 15], &[0f32; 15]).unwrap();
        let e = run(&g, vec![bad], GraphRunOptions::default()).unwrap_err();
        assert_eq!((e.code(), e.input()), ("ERR_INVALID_INPUT", Some("x")));
        let e = run(&g, vec![], GraphRunOptions::default()).unwrap_err();
        assert!(e.to_string().contains("missing input 'x'"), "{e}");
    }

    /// Counts submissions, then delegates.
    struct Counting {
        inner: Arc<dyn NodeRunner>,
        count: AtomicUsize,
    }

    impl NodeRunner for Counting {
        fn inputs(&self) -> &[ValueInfo] {
            self.inner.inputs()
        }
        fn outputs(&self) -> &[ValueInfo] {
            self.inner.outputs()
        }
        fn submit(&self, inputs: Vec<InputTensor>, done: Completion) {
            self.count.fetch_add(1, Ordering::SeqCst);
            self.inner.submit(inputs, done)
        }
    }

    #[test]
    fn a_shared_node_runs_once_per_request() {
        let (_b, _s, mlp) = session("tiny_mlp.onnx", 2, plain());
        let shared = Arc::new(Counting { inner: mlp.clone(), count: AtomicUsize::new(0) });
        let spec = r#"{
      "version": 1,
      "inputs": {"x": {"type": "float32", "shape": [-1, 16]}},
      "nodes": [
        {"name": "shared", "kind": "model", "model": "counted", "inputs": {"x": "x"}},
        {"name": "a", "kind": "op", "op": "sigmoid", "inputs": ["shared.y"]},
        {"name": "b", "kind": "op", "op": "mul", "scalar": 2, "inputs": ["shared.y"]},
        {"name": "wide", "kind": "op", "op": "concat", "axis": 1, "inputs": ["shared.y", "a.y", "b.y", "shared.y", "a.y", "b.y", "shared.y", "shared.y"]},
        {"name": "c", "kind": "model", "model": "mlp", "inputs": {"x": "wide.y"}}
      ],
      "outputs": {"a": "a.y", "b": "b.y", "c": "c.y", "raw": "shared.y"}
    }"#;
        let g = Graph::build(spec, &models(&[("counted", shared.clone() as Arc<dyn NodeRunner>), ("mlp", mlp)])).unwrap();
        let (tx, rx) = mpsc::channel();
        for i in 0..8 {
            let tx = tx.clone();
            g.run(vec![x(2, i as f32).1], GraphRunOptions::default(), Box::new(move |r| tx.send(r).unwrap()));
        }
        for _ in 0..8 {
            let out = rx.recv_timeout(Duration::from_secs(30)).unwrap().unwrap();
            let raw = f32s(out.get("raw").unwrap());
            assert_eq!(f32s(out.get("b").unwrap()), raw.iter().map(|v| v * 2.0).collect::<Vec<_>>());
            assert_eq!(out.get("c").unwrap().dims, vec![2, 2]);
        }
        assert_eq!(shared.count.load(Ordering::SeqCst), 8, "one run of the shared node per request");
    }

    /// Echoes its input `x` as `y` after sleeping, recording when each run
    /// started and ended; completes on a thread of its own.
    struct Sleeper {
        decl: Vec<ValueInfo>,
        out: Vec<ValueInfo>,
        sleep: Duration,
        spans: Arc<Mutex<Vec<(Instant, Instant)>>>,
        fail: bool,
    }

    fn info(name: &str, dtype: DType, dims: &[i64]) -> ValueInfo {
        ValueInfo { name: name.into(), kind: ValueKind::Tensor(dtype), dims: dims.iter().map(|&d| if d < 0 { Dim::Dynamic } else { Dim::Fixed(d) }).collect() }
    }

    fn sleeper(ms: u64, fail: bool) -> Arc<Sleeper> {
        Arc::new(Sleeper {
            decl: vec![info("x", DType::Float32, &[-1, 16])],
            out: vec![info("y", DType::Float32, &[-1, 16])],
            sleep: Duration::from_millis(ms),
            spans: Arc::default(),
            fail,
        })
    }

    fn owned(name: &str, t: &InputTensor) -> OutputTensor {
        OutputTensor { name: name.into(), dtype: t.dtype, dims: t.dims.clone(), data: OutputData::Buffer(Box::new(AlignedBytes::from_slice(t.bytes()))) }
    }

    impl NodeRunner for Sleeper {
        fn inputs(&self) -> &[ValueInfo] {
            &self.decl
        }
        fn outputs(&self) -> &[ValueInfo] {
            &self.out
        }
        fn submit(&self, inputs: Vec<InputTensor>, done: Completion) {
            let start = Instant::now();
            // Borrowed inputs are only valid until `done`: copied to cross threads.
            let t = inputs.into_iter().next().unwrap().into_owned();
            let (sleep, fail, spans) = (self.sleep, self.fail, Arc::clone(&self.spans));
            std::thread::spawn(move || {
                std::thread::sleep(sleep);
                spans.lock().unwrap().push((start, Instant::now()));
                if fail {
                    return done(Err(Error::Backend("scripted failure".into())));
                }
                done(Ok(RunOutput { tensors: vec![owned("y", &t)], micros: sleep.as_micros() as u64, timing: Timing { infer_us: sleep.as_micros() as u64, ..Timing::default() } }));
            });
        }
    }

    const BRANCHES: &str = r#"{
  "version": 1,
  "inputs": {"x": {"type": "float32", "shape": [-1, 16]}},
  "nodes": [
    {"name": "left", "kind": "model", "model": "left", "inputs": {"x": "x"}},
    {"name": "right", "kind": "model", "model": "right", "inputs": {"x": "x"}},
    {"name": "join", "kind": "op", "op": "add", "inputs": ["left.y", "right.y"]}
  ],
  "outputs": {"y": "join.y"}
}"#;

    #[test]
    fn independent_branches_overlap_in_time() {
        let (left, right) = (sleeper(150, false), sleeper(150, false));
        let g = Graph::build(BRANCHES, &models(&[("left", left.clone() as Arc<dyn NodeRunner>), ("right", right.clone() as Arc<dyn NodeRunner>)])).unwrap();
        let (xv, xt) = x(1, 0.0);
        let t0 = Instant::now();
        let out = run(&g, vec![xt], GraphRunOptions::default()).unwrap();
        let wall = t0.elapsed();
        assert_eq!(f32s(out.get("y").unwrap()), xv.iter().map(|v| v + v).collect::<Vec<_>>());
        let (l, r) = (left.spans.lock().unwrap()[0], right.spans.lock().unwrap()[0]);
        assert!(l.0 < r.1 && r.0 < l.1, "the two branches' runs overlap");
        assert!(wall < Duration::from_millis(290), "{wall:?}: not one after the other");
    }

    #[test]
    fn real_model_branches_overlap_on_the_session_pool() {
        // heavy_matmul at 256 rows is tens of ms per run; two slots run both branches at once.
        let (_b, _s, heavy) = session("heavy_matmul.onnx", 2, plain());
        struct Spans(Arc<SchedulerRunner>, Arc<Mutex<Vec<(Instant, Instant)>>>);
        impl NodeRunner for Spans {
            fn inputs(&self) -> &[ValueInfo] {
                self.0.inputs()
            }
            fn outputs(&self) -> &[ValueInfo] {
                self.0.outputs()
            }
            fn submit(&self, inputs: Vec<InputTensor>, done: Completion) {
                let (start, spans) = (Instant::now(), Arc::clone(&self.1));
                self.0.submit(
                    inputs,
                    Box::new(move |r| {
                        // When the engine started: after its queue wait.
                        let queued = r.as_ref().map_or(0, |o| o.timing.queue_us);
                        spans.lock().unwrap().push((start + Duration::from_micros(queued), Instant::now()));
                        done(r)
                    }),
                )
            }
        }
        let spans = Arc::new(Mutex::new(Vec::new()));
        let runner: Arc<dyn NodeRunner> = Arc::new(Spans(heavy, Arc::clone(&spans)));
        let spec = BRANCHES.replace("-1, 16", "-1, 1024");
        let g = Graph::build(&spec, &models(&[("left", runner.clone()), ("right", runner)])).unwrap();
        let v: Vec<f32> = (0..256 * 1024).map(|i| (i % 7) as f32 * 0.01).collect();
        let xt = InputTensor::from_values("x", DType::Float32, &[256, 1024], &v).unwrap();
        let out = run(&g, vec![xt], GraphRunOptions::default()).unwrap();
        assert_eq!(out.get("y").unwrap().dims, vec![256, 1024]);
        let s = spans.lock().unwrap();
        assert_eq!(s.len(), 2);
        assert!(s[0].0 < s[1].1 && s[1].0 < s[0].1, "both model runs executed at once: {s:?}");
    }

    #[test]
    fn the_first_error_fails_the_request_once() {
        let (fails, slow) = (sleeper(1, true), sleeper(80, false));
        let g = Graph::build(BRANCHES, &models(&[("left", fails.clone() as Arc<dyn NodeRunner>), ("right", slow.clone() as Arc<dyn NodeRunner>)])).unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        let c = Arc::clone(&calls);
        g.run(
            vec![x(1, 0.0).1],
            GraphRunOptions::default(),
            Box::new(move |r| {
                c.fetch_add(1, Ordering::SeqCst);
                tx.send(r).unwrap();
            }),
        );
        let e = rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap_err();
        assert_eq!(e.code(), "ERR_BACKEND");
        assert!(e.to_string().contains("graph node 'left'") && e.to_string().contains("scripted failure"), "{e}");
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(slow.spans.lock().unwrap().len(), 1, "the other branch finished, and was ignored");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    /// Misbehaving runners: one that panics in submit, one that drops its completion.
    struct Rogue {
        decl: Vec<ValueInfo>,
        panic: bool,
    }

    impl NodeRunner for Rogue {
        fn inputs(&self) -> &[ValueInfo] {
            &self.decl
        }
        fn outputs(&self) -> &[ValueInfo] {
            &self.decl
        }
        fn submit(&self, _inputs: Vec<InputTensor>, done: Completion) {
            if self.panic {
                panic!("rogue runner");
            }
            drop(done);
        }
    }

    #[test]
    fn runner_panics_and_lost_completions_fail_cleanly() {
        for (panic, want) in [(true, "rogue runner"), (false, "without an outcome")] {
            let rogue: Arc<dyn NodeRunner> = Arc::new(Rogue { decl: vec![info("x", DType::Float32, &[-1, 16])], panic });
            let spec = r#"{"version": 1, "inputs": {"x": {"type": "float32", "shape": [-1, 16]}},
          "nodes": [{"name": "r", "kind": "model", "model": "rogue", "inputs": {"x": "x"}}], "outputs": {"y": "r.x"}}"#;
            let g = Graph::build(spec, &models(&[("rogue", rogue)])).unwrap();
            let e = run(&g, vec![x(1, 0.0).1], GraphRunOptions::default()).unwrap_err();
            assert_eq!(e.code(), "ERR_BACKEND");
            assert!(e.to_string().contains(want), "{e}");
        }
    }

    /// Build errors: each is ERR_INVALID_SPEC naming the nodes (and edge) involved.
    const GATED: &str = r#"{
      "version": 1,
      "inputs": {"x": {"type": "float32", "shape": [-1, 16]}, "t": {"type": "float32", "shape": [1]}},
      "nodes": [
    {"name": "gate", "kind": "model", "model": "mlp", "inputs": {"x": "x"}},
    {"name": "score", "kind": "op", "op": "sub", "inputs": ["gate.y", "t"]},
    {"name": "expensive", "kind": "model", "model": "mlp", "inputs": {"x": "x"}, "when": {"input": "score.y", "op": ">", "value": 0, "reduce": "all"}},
    {"name": "after", "kind": "op", "op": "softmax", "axis": 1, "inputs": ["expensive.y"]},
    {"name": "cheap", "kind": "op", "op": "sigmoid", "inputs": ["gate.y"]}
      ],
      "outputs": {"after": "after.y", "cheap": "cheap.y", "expensive": "expensive.y"}
    }"#;

    #[test]
    fn a_false_predicate_skips_the_node_and_what_depends_on_it() {
        let (_b, _s, mlp) = session("tiny_mlp.onnx", 1, plain());
        let counted = Arc::new(Counting { inner: mlp, count: AtomicUsize::new(0) });
        let g = Graph::build(GATED, &models(&[("mlp", counted.clone() as Arc<dyn NodeRunner>)])).unwrap();
        let t = |v: f32| InputTensor::from_values("t", DType::Float32, &[1], &[v]).unwrap();
        // Threshold above every score: skipped.
        let out = run(&g, vec![x(3, 0.0).1, t(1e9)], GraphRunOptions::default()).unwrap();
        assert!(out.get("cheap").is_some());
        for name in ["after", "expensive"] {
            let o = out.outputs.iter().find(|o| o.name == name).unwrap();
            assert!(o.value.is_none(), "{name} is reported skipped");
        }
        let status = |out: &GraphResult, n: &str| out.nodes.iter().find(|r| r.node == n).unwrap().status;
        assert_eq!((status(&out, "expensive"), status(&out, "after"), status(&out, "cheap")), (NodeStatus::Skipped, NodeStatus::Skipped, NodeStatus::Ran));
        assert_eq!(counted.count.load(Ordering::SeqCst), 1, "only the gate ran");
        // Threshold below every score: runs.
        let out = run(&g, vec![x(3, 0.0).1, t(-1e9)], GraphRunOptions::default()).unwrap();
        assert_eq!(out.get("after").unwrap().dims, vec![3, 2]);
        assert_eq!(status(&out, "expensive"), NodeStatus::Ran);
        assert_eq!(counted.count.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn concurrent_requests_are_merged_into_batches_at_a_model_node() {
        let options = SchedulerOptions { max_batch_rows: 64, priority_levels: 1, max_delay: Duration::from_millis(20), ..Default::default() };
        let (b, sched, mlp) = session("tiny_mlp.onnx", 1, options);
        let spec = r#"{"version": 1, "inputs": {"x": {"type": "float32", "shape": [-1, 16]}},
      "nodes": [{"name": "m", "kind": "model", "model": "mlp", "inputs": {"x": "x"}},
                {"name": "p", "kind": "op", "op": "softmax", "axis": -1, "inputs": ["m.y"]}],
      "outputs": {"y": "m.y", "p": "p.y"}}"#;
        let g = Graph::build(spec, &models(&[("mlp", mlp)])).unwrap();
        let requests = 32;
        let (tx, rx) = mpsc::channel();
        let mut wants = Vec::new();
        for i in 0..requests {
            let (v, t) = x(1, i as f32);
            wants.push(by_hand(&b, "x", &[1, 16], &v));
            let tx = tx.clone();
            g.run(vec![t], GraphRunOptions::default(), Box::new(move |r| tx.send((i, r)).unwrap()));
        }
        let mut merged = 0;
        for _ in 0..requests {
            let (i, r) = rx.recv_timeout(Duration::from_secs(30)).unwrap();
            let out = r.unwrap();
            // A batched GEMM may round differently from a single row's.
            for (g, w) in f32s(out.get("y").unwrap()).iter().zip(&wants[i]) {
                assert!((g - w).abs() < 1e-5, "request {i}: {g} vs {w}");
            }
            let m = out.nodes.iter().find(|n| n.node == "m").unwrap();
            if m.timing.batch_requests > 1 {
                merged += 1;
            }
        }
        let runs = sched.executions();
        assert!(runs < requests as u64 / 2, "{runs} executions for {requests} graph requests");
        assert!(merged > requests / 2, "{merged} requests ran in merged batches");
    }

    /// Scores rows synchronously (on the caller's thread): pointwise and
    /// pairwise rows [q0, q1, a0, a1(, b0, b1)], listwise [1, N, 2].
    struct Scorer {
        decl: Vec<ValueInfo>,
        out: Vec<ValueInfo>,
        strategy: &'static str,
        rows: Mutex<Vec<i64>>,
    }

    fn scorer(strategy: &'static str, width: i64, batch: i64) -> Arc<Scorer> {
        let (decl, out) = if strategy == "listwise" {
            (vec![info("feats", DType::Float32, &[1, -1, width])], vec![info("s", DType::Float32, &[1, -1])])
        } else {
            (vec![info("feats", DType::Float32, &[batch, width])], vec![info("s", DType::Float32, &[batch])])
        };
        Arc::new(Scorer { decl, out, strategy, rows: Mutex::new(Vec::new()) })
    }

    impl NodeRunner for Scorer {
        fn inputs(&self) -> &[ValueInfo] {
            &self.decl
        }
        fn outputs(&self) -> &[ValueInfo] {
            &self.out
        }
        fn submit(&self, inputs: Vec<InputTensor>, done: Completion) {
            let t = &inputs[0];
            let v: Vec<f32> = t.bytes().chunks_exact(4).map(|c| f32::from_ne_bytes(c.try_into().unwrap())).collect();
            let w = *t.dims.last().unwrap() as usize;
            let rows: Vec<&[f32]> = v.chunks(w).collect();
            self.rows.lock().unwrap().push(rows.len() as i64);
            let scores: Vec<f32> = match self.strategy {
                // q · candidate
                "pointwise" => rows.iter().map(|r| r[0] * r[2] + r[1] * r[3]).collect(),
                // P(a before b) = sigmoid(q · a − q · b)
                "pairwise" => rows.iter().map(|r| 1.0 / (1.0 + (-((r[0] * r[2] + r[1] * r[3]) - (r[0] * r[4] + r[1] * r[5]))).exp())).collect(),
                // Each candidate's first feature against the list's mean.
                _ => {
                    let mean = rows.iter().map(|r| r[0]).sum::<f32>() / rows.len() as f32;
                    rows.iter().map(|r| r[0] - mean).collect()
                }
            };
            let dims = if self.strategy == "listwise" { vec![1, scores.len() as i64] } else { vec![scores.len() as i64] };
            let bytes: Vec<u8> = scores.iter().flat_map(|s| s.to_ne_bytes()).collect();
            done(Ok(RunOutput {
                tensors: vec![OutputTensor { name: "s".into(), dtype: DType::Float32, dims, data: OutputData::Buffer(Box::new(AlignedBytes::from_slice(&bytes))) }],
                micros: 1,
                timing: Timing::default(),
            }))
        }
    }

    fn rank_graph(strategy: &str, with_query: bool, runner: Arc<Scorer>) -> Graph {
        let query = if with_query { r#", "query": "q""# } else { "" };
        let spec = format!(
            r#"{{"version": 1, "inputs": {{"c": {{"type": "float32", "shape": [-1, 2]}}, "q": {{"type": "float32", "shape": [2]}}}},
        "nodes": [{{"name": "r", "kind": "rank", "model": "scorer", "strategy": "{strategy}", "inputs": {{"candidates": "c"{query}}}}}],
        "outputs": {{"order": "r.order", "scores": "r.scores"}}}}"#
        );
        Graph::build(&spec, &models(&[("scorer", runner as Arc<dyn NodeRunner>)])).unwrap()
    }

    #[test]
    fn ranking_strategies_order_a_constructed_case() {
        let cands = || InputTensor::from_values("c", DType::Float32, &[4, 2], &[1f32, 0., 0., 3., 2., 2., 0.2, 0.5]).unwrap();
        let query = || InputTensor::from_values("q", DType::Float32, &[2], &[1f32, 1.5]).unwrap();
        // q · c = [1, 4.5, 5, 0.95]: best first 2, 1, 0, 3.
        let s = scorer("pointwise", 4, -1);
        let out = run(&rank_graph("pointwise", true, s.clone()), vec![cands(), query()], GraphRunOptions::default()).unwrap();
        assert_eq!(out.get("order").unwrap().to_vec::<i64>().unwrap(), vec![2, 1, 0, 3]);
        assert_eq!(f32s(out.get("scores").unwrap()), vec![5.0, 4.5, 1.0, 0.95]);
        assert_eq!(*s.rows.lock().unwrap(), vec![4], "one run for all candidates");

        let s = scorer("pairwise", 6, -1);
        let out = run(&rank_graph("pairwise", true, s.clone()), vec![cands(), query()], GraphRunOptions::default()).unwrap();
        assert_eq!(out.get("order").unwrap().to_vec::<i64>().unwrap(), vec![2, 1, 0, 3]);
        let scores = f32s(out.get("scores").unwrap());
        assert!(scores.windows(2).all(|w| w[0] >= w[1]) && (scores.iter().sum::<f32>() - 6.0).abs() < 1e-4, "win counts sum to C(4,2): {scores:?}");
        assert_eq!(*s.rows.lock().unwrap(), vec![12], "all ordered pairs in one run");
        assert_eq!(out.nodes[0].runs, 1);

        let s = scorer("listwise", 2, -1);
        let out = run(&rank_graph("listwise", false, s.clone()), vec![cands(), query()], GraphRunOptions::default()).unwrap();
        // First features [1, 0, 2, 0.2]: 2, 0, 3, 1.
        assert_eq!(out.get("order").unwrap().to_vec::<i64>().unwrap(), vec![2, 0, 3, 1]);
        assert_eq!(*s.rows.lock().unwrap(), vec![4]);

        // A fixed batch dim of 3: two runs, the second padded.
        let s = scorer("pointwise", 4, 3);
        let out = run(&rank_graph("pointwise", true, s.clone()), vec![cands(), query()], GraphRunOptions::default()).unwrap();
        assert_eq!(out.get("order").unwrap().to_vec::<i64>().unwrap(), vec![2, 1, 0, 3]);
        assert_eq!(*s.rows.lock().unwrap(), vec![3, 3]);
    }

    const SWITCH: &str = r#"{
  "version": 1,
  "inputs": {"x": {"type": "float32", "shape": [-1, 16]}},
  "nodes": [{"name": "pick", "kind": "switch",
             "variants": [{"model": "accurate", "quality": 0.9}, {"model": "fast", "quality": 0.5}],
             "policy": {"kind": "latency-slo", "sloMs": 20, "hysteresis": 0.2, "window": 10, "probeEvery": 0},
             "inputs": {"x": "x"}}],
  "outputs": {"y": "pick.y"}
}"#;

    #[test]
    fn a_latency_slo_switch_moves_off_a_variant_that_breaks_it() {
        let (accurate, fast) = (sleeper(60, false), sleeper(1, false));
        let g = Graph::build(SWITCH, &models(&[("accurate", accurate.clone() as Arc<dyn NodeRunner>), ("fast", fast.clone() as Arc<dyn NodeRunner>)])).unwrap();
        let chosen: Vec<Option<usize>> = (0..4).map(|_| run(&g, vec![x(1, 0.0).1], GraphRunOptions::default()).unwrap().nodes[0].variant).collect();
        // No latency known at first: the best quality; 60 ms observed > 20 ms: the fast one.
        assert_eq!(chosen, vec![Some(0), Some(1), Some(1), Some(1)]);
        let st = &g.switch_stats()[0];
        assert_eq!((st.node.as_str(), st.policy, st.current, st.switches, st.decisions), ("pick", "latency-slo", 1, 1, 4));
        assert!(st.variants[0].p95_us.unwrap() >= 60_000 && st.variants[1].runs == 3);
        // An explicit choice wins for one request.
        let opts = GraphRunOptions { variants: HashMap::from([("pick".to_string(), Variant::Name("accurate".into()))]), ..Default::default() };
        assert_eq!(run(&g, vec![x(1, 0.0).1], opts).unwrap().nodes[0].variant, Some(0));
        let opts = GraphRunOptions { variants: HashMap::from([("pick".to_string(), Variant::Name("nope".into()))]), ..Default::default() };
        assert_eq!(run(&g, vec![x(1, 0.0).1], opts).unwrap_err().code(), "ERR_INVALID_ARGUMENT");
    }

    #[test]
    fn a_nested_graph_runs_as_one_node() {
        let (b, _s, mlp) = session("tiny_mlp.onnx", 1, plain());
        let spec = r#"{
      "version": 1,
      "inputs": {"x": {"type": "float32", "shape": [-1, 16]}},
      "nodes": [
        {"name": "inner", "kind": "graph", "inputs": {"features": "x"}, "graph": {
          "inputs": {"features": {"type": "float32", "shape": [-1, 16]}},
          "nodes": [{"name": "m", "kind": "model", "model": "mlp", "inputs": {"x": "features"}},
                    {"name": "t", "kind": "op", "op": "topk", "k": 1, "inputs": ["m.y"]}],
          "outputs": {"logits": "m.y", "best": "t.indices"}}},
        {"name": "twice", "kind": "op", "op": "mul", "scalar": 2, "inputs": ["inner.logits"]}
      ],
      "outputs": {"twice": "twice.y", "best": "inner.best"}
    }"#;
        let g = Graph::build(spec, &models(&[("mlp", mlp)])).unwrap();
        let (v, t) = x(3, 1.0);
        let out = run(&g, vec![t], GraphRunOptions::default()).unwrap();
        let want = by_hand(&b, "x", &[3, 16], &v);
        assert_eq!(f32s(out.get("twice").unwrap()), want.iter().map(|v| v * 2.0).collect::<Vec<_>>());
        let best: Vec<i64> = (0..3).map(|r| if want[r * 2 + 1] > want[r * 2] { 1 } else { 0 }).collect();
        assert_eq!(out.get("best").unwrap().to_vec::<i64>().unwrap(), best);
        assert_eq!(out.get("best").unwrap().dims, vec![3, 1]);
        let names: Vec<&str> = out.nodes.iter().map(|n| n.node.as_str()).collect();
        assert_eq!(names, vec!["inner", "inner/m", "inner/t", "twice"]);
        assert_eq!(out.nodes[0].runs, 1);

        // The nested graph's edges are checked too: its input is [-1, 16].
        let bad = spec.replace(r#""features": {"type": "float32", "shape": [-1, 16]}"#, r#""features": {"type": "float32", "shape": [-1, 15]}"#);
        let e = Graph::build(&bad, &models(&[("mlp", Arc::new(Counting { inner: backend_runner(), count: AtomicUsize::new(0) }) as Arc<dyn NodeRunner>)])).err().unwrap();
        assert!(e.to_string().contains("shape mismatch on edge features -> m.x"), "{e}");
        assert_eq!(e.spec_at(), Some("nodes[0].graph.nodes[0].inputs.x"));
    }

    #[test]
    fn a_graph_serves_as_a_node_runner_and_can_be_aborted() {
        let (b, _s, mlp) = session("tiny_mlp.onnx", 1, plain());
        let inner = Graph::build(
            r#"{"version": 1, "inputs": {"x": {"type": "float32", "shape": [-1, 16]}},
              "nodes": [{"name": "m", "kind": "model", "model": "mlp", "inputs": {"x": "x"}}], "outputs": {"y": "m.y"}}"#,
            &models(&[("mlp", mlp)]),
        )
        .unwrap();
        let outer = Graph::build(
            r#"{"version": 1, "inputs": {"x": {"type": "float32", "shape": [-1, 16]}},
              "nodes": [{"name": "g", "kind": "model", "model": "inner", "inputs": {"x": "x"}},
                        {"name": "neg", "kind": "op", "op": "mul", "scalar": -1, "inputs": ["g.y"]}],
              "outputs": {"y": "neg.y"}}"#,
            &models(&[("inner", Arc::new(inner) as Arc<dyn NodeRunner>)]),
        )
        .unwrap();
        let (v, t) = x(2, 3.0);
        let out = run(&outer, vec![t], GraphRunOptions::default()).unwrap();
        assert_eq!(f32s(out.get("y").unwrap()), by_hand(&b, "x", &[2, 16], &v).iter().map(|v| -v).collect::<Vec<_>>());
        assert!(out.nodes[0].timing.infer_us > 0, "the inner graph's engine time is reported");

        let ctl = Arc::new(RunControl::new());
        ctl.abort();
        let e = run(&outer, vec![x(1, 0.0).1], GraphRunOptions { ctl: Some(ctl), ..Default::default() }).unwrap_err();
        assert_eq!(e.code(), "ERR_ABORTED");
    }

    fn backend_runner() -> Arc<dyn NodeRunner> {
        session("tiny_mlp.onnx", 1, plain()).2
    }
}
