//! The ONNX Runtime backend on real models, with the library that the
//! onnxruntime-node devDependency ships (or OXINFER_ORT_DYLIB).

use std::path::PathBuf;
use std::sync::Arc;

use oxinfer_core::onnx::{ModelSource, OnnxBackend, OnnxOptions};
use oxinfer_core::{validate, Backend, DType, Dim, InputTensor, RunControl, ValueKind};

mod common;
use common::{root, runtime};

fn fixture(name: &str) -> PathBuf {
    root().join("__test__/fixtures").join(name)
}

fn load(name: &str, opts: &OnnxOptions) -> OnnxBackend {
    OnnxBackend::load(runtime(), ModelSource::Path(fixture(name)), opts).unwrap()
}

#[test]
fn tiny_mlp_matches_the_reference() {
    let expected: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixture("expected.json")).unwrap()).unwrap();
    let case = &expected["tiny_mlp"];
    let input: Vec<f32> = case["input"]["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    let want: Vec<f64> = case["output"]["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let b = load("tiny_mlp.onnx", &OnnxOptions::default());
    let x = InputTensor::from_values("x", DType::Float32, &[4, 16], &input).unwrap();
    let out = b.run(0, &[x], &[0], &RunControl::new()).unwrap();
    assert_eq!(out[0].dims, vec![4, 2]);
    let got = out[0].to_vec::<f32>().unwrap();
    for (g, w) in got.iter().zip(&want) {
        assert!((*g as f64 - w).abs() < 1e-5, "{g} vs {w}");
    }
}

#[test]
fn model_info_reports_types_dims_and_metadata() {
    let b = load("all_types.onnx", &OnnxOptions::default());
    let info = b.info();
    assert_eq!(info.inputs.len(), 13);
    let s = info.inputs.iter().find(|i| i.name == "in_string").unwrap();
    assert_eq!(s.kind, ValueKind::Tensor(DType::String));
    assert_eq!(s.dims, vec![Dim::Symbolic("batch".into()), Dim::Symbolic("n".into())]);
    assert_eq!(info.metadata.producer, "oxinfer-fixtures");
    assert_eq!(info.metadata.version, 7);
    assert!(info.metadata.custom.contains(&("author".into(), "oxinfer".into())));
    let d = load("dims.onnx", &OnnxOptions::default());
    assert_eq!(d.info().inputs[0].dims, vec![Dim::Symbolic("batch".into()), Dim::Dynamic, Dim::Fixed(3)]);
    let z = load("zipmap.onnx", &OnnxOptions::default());
    assert_eq!(z.info().outputs[1].kind, ValueKind::Sequence);
}

#[test]
fn validation_names_the_input_and_the_expectation() {
    let b = load("add_int64.onnx", &OnnxOptions::default());
    let a = InputTensor::from_values("a", DType::Int64, &[3], &[1i64, 2, 3]).unwrap();
    let wrong_dim = InputTensor::from_values("b", DType::Int64, &[4], &[1i64, 2, 3, 4]).unwrap();
    let e = validate::check_request(b.info(), &[a.clone(), wrong_dim], None).unwrap_err();
    assert_eq!((e.code(), e.input()), ("ERR_INVALID_INPUT", Some("b")));
    assert!(e.to_string().contains("expects dim 0 = 3"), "{e}");
    let wrong_type = InputTensor::from_strings("b", &[3], vec!["x".into(), "y".into(), "z".into()]).unwrap();
    let e = validate::check_request(b.info(), &[a.clone(), wrong_type], None).unwrap_err();
    assert!(e.to_string().contains("expects a int64 tensor but got string"), "{e}");
    let e = validate::check_request(b.info(), &[a.clone()], None).unwrap_err();
    assert_eq!(e.input(), Some("b"));
    assert!(e.to_string().contains("missing input 'b'"));
    let e = validate::check_request(b.info(), &[a.clone(), a.clone()], None).unwrap_err();
    assert!(e.to_string().contains("given twice"));
    let e = validate::check_request(b.info(), &[], Some(&["nope".into()])).unwrap_err();
    assert_eq!(e.code(), "ERR_INVALID_INPUT");
    let z = load("zipmap.onnx", &OnnxOptions::default());
    let x = InputTensor::from_values("float_input", DType::Float32, &[1, 4], &[0f32; 4]).unwrap();
    // Sequences and maps are fetched (as values: OutputData::Value); optionals are not.
    assert_eq!(validate::check_request(z.info(), &[x.clone()], None).unwrap(), vec![0, 1]);
    let idx = validate::check_request(z.info(), &[x], Some(&["output_label".into()])).unwrap();
    assert_eq!(idx, vec![0]);
}

#[test]
fn sequences_and_maps_come_back_as_json_values() {
    let z = load("zipmap_strings.onnx", &OnnxOptions::default());
    let x = InputTensor::from_values("float_input", DType::Float32, &[2, 4], &[0f32, 0., 0., 0., 3., 3., 0., 0.]).unwrap();
    let out = z.run(0, &[x], &[0, 1], &RunControl::new()).unwrap();
    assert_eq!(out[0].strings().map(<[String]>::len), Some(2));
    let v: serde_json::Value = serde_json::from_str(out[1].non_tensor().expect("a value")).unwrap();
    assert_eq!(v["kind"], "sequence");
    let maps = v["items"].as_array().unwrap();
    assert_eq!(maps.len(), 2);
    assert_eq!((maps[0]["kind"].as_str(), maps[0]["keyType"].as_str(), maps[0]["valueType"].as_str()), (Some("map"), Some("string"), Some("float32")));
    assert_eq!(maps[0]["keys"], serde_json::json!(["setosa", "versicolor", "virginica"]));
    let sum: f64 = maps[1]["values"].as_array().unwrap().iter().map(|p| p.as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-5, "{sum}");
    assert!(out[1].dims.is_empty() && out[1].bytes().is_empty());
    let s = load("sequence.onnx", &OnnxOptions::default());
    let x = InputTensor::from_values("x", DType::Float32, &[2, 3], &[1f32, 5., 2., 7., 0., 3.]).unwrap();
    let n = InputTensor::from_values("n", DType::Int32, &[2, 3], &[0i32; 6]).unwrap();
    let out = s.run(0, &[x, n], &[0, 1], &RunControl::new()).unwrap();
    let rows: serde_json::Value = serde_json::from_str(out[0].non_tensor().unwrap()).unwrap();
    assert_eq!(rows["items"][1], serde_json::json!({ "kind": "tensor", "type": "float32", "dims": [3], "data": [7.0, 0.0, 3.0] }));
    let ids: serde_json::Value = serde_json::from_str(out[1].non_tensor().unwrap()).unwrap();
    assert_eq!(ids["items"][0]["data"], serde_json::json!(["1"]), "int64 elements as strings");
}

#[test]
fn optional_outputs_come_back_as_their_value_or_json_null() {
    let b = load("optional.onnx", &OnnxOptions::default());
    assert_eq!(b.info().outputs[1].kind, ValueKind::Optional);
    let x = || InputTensor::from_values("x", DType::Float32, &[3], &[1f32, -2., 3.5]).unwrap();
    let out = b.run(0, &[x()], &[0, 1, 2], &RunControl::new()).unwrap();
    assert_eq!(out.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["y", "some", "none"]);
    assert_eq!(out[1].to_vec::<f32>().unwrap(), vec![1., -2., 3.5]);
    assert_eq!(out[1].dims, vec![3]);
    assert_eq!(out[2].non_tensor(), Some("null"));
    // The C API path reports the engine's refusals as the ordinary one does.
    let wrong = InputTensor::from_values("x", DType::Float64, &[1], &[1f64]).unwrap();
    let e = b.run(0, &[wrong], &[2], &RunControl::new()).err().unwrap();
    assert_eq!(e.code(), "ERR_INVALID_INPUT", "{e}");
    let ctl = RunControl::new();
    ctl.abort();
    assert_eq!(b.run(0, &[x()], &[1], &ctl).err().unwrap().code(), "ERR_ABORTED");
    assert_eq!(b.run(0, &[x()], &[2, 0], &RunControl::new()).unwrap()[1].to_vec::<f32>().unwrap(), vec![1., -2., 3.5]);
}

#[test]
fn bad_model_bytes_fail_to_load() {
    let rt = runtime();
    let good = std::fs::read(fixture("tiny_mlp.onnx")).unwrap();
    let mut random = vec![0u8; 4096];
    let mut x = 0x2545F4914F6CDD1Du64;
    for b in random.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    for bytes in [Vec::new(), good[..good.len() / 2].to_vec(), random] {
        let e = OnnxBackend::load(rt, ModelSource::Bytes(bytes), &OnnxOptions::default()).err().unwrap();
        assert_eq!(e.code(), "ERR_MODEL_LOAD", "{e}");
    }
    // A file that cannot be opened is ERR_FILE with its path, not a parse failure.
    let missing = fixture("missing.onnx");
    let e = OnnxBackend::load(rt, ModelSource::Path(missing.clone()), &OnnxOptions::default()).err().unwrap();
    assert_eq!(e.code(), "ERR_FILE");
    assert_eq!(e.path(), Some(missing.to_str().unwrap()));
    assert!(e.to_string().contains("missing.onnx"));
    let e = OnnxBackend::load(rt, ModelSource::Path(fixture("")), &OnnxOptions::default()).err().unwrap();
    assert_eq!(e.code(), "ERR_FILE", "{e}");
    assert!(e.to_string().contains("not a regular file"), "{e}");
}

#[test]
fn a_running_loop_is_terminated() {
    let b = Arc::new(load("slow_loop.onnx", &OnnxOptions { intra_op_threads: 1, ..Default::default() }));
    let x = InputTensor::from_values("x", DType::Float32, &[256, 256], &vec![0.01f32; 256 * 256]).unwrap();
    let iters = InputTensor::from_values("iters", DType::Int64, &[], &[1_000_000i64]).unwrap();
    stopped_midway(|ctl| b.run(0, &[x, iters], &[0], ctl).err());
}

/// Runs `run` with a control aborted 100 ms in: it must fail with ERR_ABORTED well before it would end.
fn stopped_midway(run: impl FnOnce(&RunControl) -> Option<oxinfer_core::Error>) {
    let ctl = Arc::new(RunControl::new());
    let c2 = Arc::clone(&ctl);
    let t = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(100));
        c2.abort();
    });
    let t0 = std::time::Instant::now();
    let e = run(&ctl).expect("the run was stopped");
    t.join().unwrap();
    assert_eq!(e.code(), "ERR_ABORTED", "{e}");
    assert!(t0.elapsed().as_secs_f64() < 3.0, "took {:?}", t0.elapsed());
}

#[test]
fn a_run_fetching_an_optional_is_terminated() {
    let b = Arc::new(load("optional_slow.onnx", &OnnxOptions { intra_op_threads: 1, ..Default::default() }));
    assert_eq!(b.info().outputs[0].kind, ValueKind::Optional);
    let x = || InputTensor::from_values("x", DType::Float32, &[64, 64], &vec![0.01f32; 64 * 64]).unwrap();
    let iters = |n: i64| InputTensor::from_values("iters", DType::Int64, &[], &[n]).unwrap();
    let done = b.run(0, &[x(), iters(2)], &[0], &RunControl::new()).unwrap();
    assert_eq!(done[0].dims, vec![64, 64]);
    stopped_midway(|ctl| b.run(0, &[x(), iters(100_000_000)], &[0], ctl).err());
    // The session serves the next run.
    assert_eq!(b.run(0, &[x(), iters(1)], &[0], &RunControl::new()).unwrap()[0].dims, vec![64, 64]);
}

#[test]
fn cuda_is_refused_without_a_cuda_build() {
    let opts = OnnxOptions { device: oxinfer_core::onnx::Device::Cuda(0), ..Default::default() };
    let e = OnnxBackend::load(runtime(), ModelSource::Path(fixture("tiny_mlp.onnx")), &opts).err().unwrap();
    assert_eq!(e.code(), "ERR_UNSUPPORTED");
}
