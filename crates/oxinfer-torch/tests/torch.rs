//! The torch backend on real TorchScript models (__test__/fixtures/torch,
//! made by scripts/make_torch_fixtures.py): parity with PyTorch's own outputs
//! and with the ONNX twin on ONNX Runtime, element types, output layouts and
//! the errors bad models and inputs get.

use std::path::{Path, PathBuf};

use oxinfer_core::onnx::{library, OnnxBackend, OnnxOptions};
use oxinfer_core::plugin::{Declared, LoadOptions};
use oxinfer_core::{Backend, DType, ErrorCode, InputTensor, ModelSource, OutputTensor, RunControl, ValueKind};
use oxinfer_torch::TorchBackend;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn fixture(name: &str) -> PathBuf {
    root().join("__test__/fixtures/torch").join(name)
}

fn reference() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("reference.json")).unwrap()).unwrap()
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn load(name: &str) -> TorchBackend {
    TorchBackend::load(ModelSource::Path(fixture(name)), &LoadOptions { device: "cpu".into(), ..LoadOptions::default() }).unwrap()
}

fn run(b: &dyn Backend, inputs: &[InputTensor]) -> oxinfer_core::Result<Vec<OutputTensor>> {
    let all: Vec<usize> = (0..b.info().outputs.len()).collect();
    b.run(0, inputs, &all, &RunControl::new())
}

fn close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol, "element {i}: {x} vs {y}");
    }
}

#[test]
fn the_mlp_matches_pytorch_and_its_onnx_twin() {
    let r = reference();
    let x = floats(&r["features"]);
    let torch = load("mlp.pt");
    let info = torch.info();
    assert_eq!(info.inputs[0].name, "features");
    assert_eq!(info.inputs[0].kind, ValueKind::Tensor(DType::Float32));
    assert_eq!(info.outputs[0].name, "logits");
    let input = InputTensor::from_values("features", DType::Float32, &[5, 32], &x).unwrap();
    let out = run(&torch, &[input.clone()]).unwrap();
    assert_eq!(out[0].dims, [5, 10]);
    let got = out[0].to_vec::<f32>().unwrap();
    close(&got, &floats(&r["logits"]), 1e-5);

    let lib = std::env::var_os("OXINFER_ORT_DYLIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1"));
    let rt = library::runtime(&lib).expect("ONNX Runtime (npm install first)");
    let onnx = OnnxBackend::load(rt, ModelSource::Path(fixture("mlp.onnx")), &OnnxOptions::default()).unwrap();
    let via_ort = run(&onnx, &[input]).unwrap()[0].to_vec::<f32>().unwrap();
    close(&got, &via_ort, 1e-5);
}

#[test]
fn undeclared_models_take_names_from_forward_and_float32() {
    let b = load("mlp_plain.pt");
    let info = b.info();
    assert_eq!(info.inputs.len(), 1);
    assert_eq!(info.inputs[0].name, "features");
    assert_eq!(info.inputs[0].kind, ValueKind::Tensor(DType::Float32));
    assert!(info.inputs[0].dims.is_empty());
    assert_eq!(info.outputs[0].name, "output");
    // A wrong shape reaches libtorch, whose complaint is an input error.
    let bad = InputTensor::from_values("features", DType::Float32, &[2, 3], &[0f32; 6]).unwrap();
    let e = run(&b, &[bad]).unwrap_err();
    assert_eq!(e.kind(), ErrorCode::InvalidInput, "{e}");
    assert!(e.to_string().contains("mat1 and mat2 shapes cannot be multiplied"), "{e}");
}

#[test]
fn a_recurrent_model_steps_like_pytorch() {
    let r = reference();
    let frames = floats(&r["frames"]);
    let b = load("gru.pt");
    assert_eq!(b.info().outputs.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), ["score", "next_state"]);
    let mut state = vec![0f32; 3 * 16];
    for t in 0..4 {
        let x = InputTensor::from_values("x", DType::Float32, &[3, 8], &frames[t * 24..(t + 1) * 24]).unwrap();
        let h = InputTensor::from_values("state", DType::Float32, &[3, 16], &state).unwrap();
        let out = run(&b, &[x, h]).unwrap();
        close(&out[0].to_vec::<f32>().unwrap(), &floats(&r["scores"][t]), 1e-5);
        state = out[1].to_vec::<f32>().unwrap();
    }
    close(&state, &floats(&r["final_state"]), 1e-5);
}

#[test]
fn element_types_and_dict_outputs() {
    let b = load("mixed.pt");
    let kinds: Vec<_> = b.info().inputs.iter().map(|i| i.kind.clone()).collect();
    assert_eq!(kinds, [ValueKind::Tensor(DType::Int64), ValueKind::Tensor(DType::Float16), ValueKind::Tensor(DType::BFloat16)]);
    let ids = InputTensor::from_values("ids", DType::Int64, &[2, 4], &[1i64, 2, 3, 4, 0, 0, 5, 1 << 40]).unwrap();
    let scale: Vec<u16> = [1.5f32, -0.25].iter().map(|&v| half_bits(v)).collect();
    let scale = InputTensor::from_values("scale", DType::Float16, &[2], &scale).unwrap();
    let bias: Vec<u16> = [2.0f32, -3.5].iter().map(|&v| (v.to_bits() >> 16) as u16).collect();
    let bias = InputTensor::from_values("bias", DType::BFloat16, &[2], &bias).unwrap();
    let out = run(&b, &[ids, scale, bias]).unwrap();
    let names: Vec<_> = out.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["total", "scaled", "shifted", "count"]);
    assert_eq!(out[0].to_vec::<i64>().unwrap(), [10, 5 + (1 << 40)]);
    assert_eq!(out[1].dtype, DType::Float16);
    assert_eq!(out[1].to_vec::<u16>().unwrap(), [half_bits(3.0), half_bits(-0.5)]);
    assert_eq!(out[2].dtype, DType::BFloat16);
    let shifted: Vec<f32> = out[2].to_vec::<u16>().unwrap().iter().map(|&b| f32::from_bits((b as u32) << 16)).collect();
    assert_eq!(shifted, [3.0, -2.5]);
    assert_eq!(out[3].dtype, DType::Int32);
    assert_eq!(out[3].to_vec::<i32>().unwrap(), [4, 2]);
    // Asking for one output returns that one.
    let ids = InputTensor::from_values("ids", DType::Int64, &[1, 4], &[1i64, 1, 1, 1]).unwrap();
    let scale = InputTensor::from_values("scale", DType::Float16, &[1], &[half_bits(1.0)]).unwrap();
    let bias = InputTensor::from_values("bias", DType::BFloat16, &[1], &[0u16]).unwrap();
    let one = b.run(0, &[ids, scale, bias], &[3], &RunControl::new()).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].name, "count");
}

fn half_bits(v: f32) -> u16 {
    // Exact for the values used here (small dyadic rationals).
    let bits = v.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    if v == 0.0 {
        return sign;
    }
    let exp = ((bits >> 23) & 0xff) as i32 - 127 + 15;
    let mant = ((bits >> 13) & 0x3ff) as u16;
    sign | ((exp as u16) << 10) | mant
}

#[test]
fn bad_models_and_options_get_typed_errors() {
    let cpu = LoadOptions { device: "cpu".into(), ..LoadOptions::default() };
    let err = |source: ModelSource, o: &LoadOptions| TorchBackend::load(source, o).err().map(oxinfer_core::Error::from).unwrap();

    let e = err(ModelSource::Path(fixture("missing.pt")), &cpu);
    assert_eq!(e.kind(), ErrorCode::File, "{e}");
    let e = err(ModelSource::Path(fixture("weights_only.pt")), &cpu);
    assert_eq!(e.kind(), ErrorCode::ModelLoad, "{e}");
    assert!(e.to_string().contains("TorchScript"), "{e}");
    let mut bytes = std::fs::read(fixture("mlp.pt")).unwrap();
    bytes.truncate(bytes.len() / 2);
    let e = err(ModelSource::Bytes(bytes), &cpu);
    assert_eq!(e.kind(), ErrorCode::ModelLoad, "{e}");
    let e = err(ModelSource::Bytes(b"not a model at all".to_vec()), &cpu);
    assert_eq!(e.kind(), ErrorCode::ModelLoad, "{e}");

    // From bytes, the archive's declarations still apply.
    let b = TorchBackend::load(ModelSource::Bytes(std::fs::read(fixture("mlp.pt")).unwrap()), &cpu).unwrap();
    assert_eq!(b.info().outputs[0].name, "logits");

    let declared = |inputs: Vec<Declared>| LoadOptions { inputs: Some(inputs), ..cpu.clone() };
    let e = err(ModelSource::Path(fixture("mlp.pt")), &declared(vec![Declared { name: "nope".into(), dtype: None, dims: None }]));
    assert_eq!(e.kind(), ErrorCode::InvalidArgument, "{e}");
    assert!(e.to_string().contains("'features'"), "{e}");
    let e = err(ModelSource::Path(fixture("mlp.pt")), &declared(vec![Declared { name: "features".into(), dtype: Some("string".into()), dims: None }]));
    assert_eq!(e.kind(), ErrorCode::InvalidArgument, "{e}");
    let e = err(ModelSource::Path(fixture("mlp.pt")), &LoadOptions { device: "gpu".into(), ..cpu.clone() });
    assert_eq!(e.kind(), ErrorCode::InvalidArgument, "{e}");

    // Options override the archive's declarations.
    let o = LoadOptions { outputs: Some(vec![Declared { name: "scores".into(), dtype: Some("float32".into()), dims: Some(vec![-1, 10]) }]), ..cpu.clone() };
    let b = TorchBackend::load(ModelSource::Path(fixture("mlp.pt")), &o).unwrap();
    assert_eq!(b.info().outputs[0].name, "scores");
}

#[test]
fn cuda_without_a_gpu_is_unsupported_not_a_silent_cpu_run() {
    if tch::Cuda::is_available() {
        return; // on a GPU machine, benchmark/gpu checks the real thing
    }
    let lib = std::env::var("LIBTORCH").ok().map(|d| format!("{d}/lib"));
    for device in ["cuda", "cuda:1"] {
        let o = LoadOptions { device: device.into(), engine_dir: lib.clone(), ..LoadOptions::default() };
        let e = TorchBackend::load(ModelSource::Path(fixture("mlp.pt")), &o).err().map(oxinfer_core::Error::from).unwrap();
        assert_eq!(e.kind(), ErrorCode::Unsupported, "{e}");
        assert!(e.to_string().contains(device), "{e}");
    }
}

#[test]
fn an_output_that_is_an_input_outlives_the_callers_memory() {
    // mixed.pt's `scaled` is computed, but a model returning its input as is
    // must not hand back the caller's buffer: checked on the plain MLP path by
    // running twice over the same buffer with different values.
    let b = load("mlp.pt");
    let mut x = vec![0.5f32; 32];
    let first = run(&b, &[InputTensor::from_values("features", DType::Float32, &[1, 32], &x).unwrap()]).unwrap();
    let kept = first[0].to_vec::<f32>().unwrap();
    x.iter_mut().for_each(|v| *v = -3.0);
    let second = run(&b, &[InputTensor::from_values("features", DType::Float32, &[1, 32], &x).unwrap()]).unwrap();
    assert_eq!(first[0].to_vec::<f32>().unwrap(), kept);
    assert_ne!(second[0].to_vec::<f32>().unwrap(), kept);
}
