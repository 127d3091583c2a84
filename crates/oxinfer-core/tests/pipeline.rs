//! Pipelines in the core, without JS: the penguins spec on its real model.

use std::path::{Path, PathBuf};

use oxinfer_core::onnx::{library, ModelSource, OnnxBackend, OnnxOptions};
use oxinfer_core::pipeline::{self, Batch, InColumn, Pipeline, RunOptions};
use oxinfer_core::{Backend, RunControl};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn backend() -> OnnxBackend {
    let lib = std::env::var_os("OXINFER_ORT_DYLIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1"));
    let rt = library::runtime(&lib).expect("ONNX Runtime (npm install first)");
    OnnxBackend::load(rt, ModelSource::Path(root().join("__test__/fixtures/penguins/penguins.onnx")), &OnnxOptions::default()).unwrap()
}

fn spec(name: &str) -> pipeline::Spec {
    pipeline::parse(&std::fs::read_to_string(root().join("__test__/fixtures/penguins").join(name)).unwrap()).unwrap()
}

/// The penguins records as columns, with categories dictionary-coded.
fn batch() -> (Batch, Vec<Vec<f64>>) {
    let records: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(root().join("__test__/fixtures/penguins/records.json")).unwrap()).unwrap();
    let reference: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(root().join("__test__/fixtures/penguins/reference.json")).unwrap()).unwrap();
    let rows = records["records"].as_array().unwrap();
    let mut columns = Vec::new();
    for f in ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"] {
        columns.push((f.to_string(), InColumn::OwnedNum(rows.iter().map(|r| r[f].as_f64().unwrap_or(f64::NAN)).collect())));
    }
    for f in ["island", "sex"] {
        let mut uniques: Vec<String> = Vec::new();
        let codes = rows
            .iter()
            .map(|r| match r[f].as_str() {
                Some(s) => match uniques.iter().position(|u| u == s) {
                    Some(i) => i as i32,
                    None => {
                        uniques.push(s.to_string());
                        uniques.len() as i32 - 1
                    }
                },
                None => -1,
            })
            .collect();
        columns.push((f.to_string(), InColumn::OwnedCat { codes, uniques }));
    }
    let proba = reference["predict_proba"].as_array().unwrap().iter().map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()).collect();
    (Batch { rows: rows.len(), columns, rejected: vec![] }, proba)
}

#[test]
fn penguins_match_scikit_learn() {
    let b = backend();
    let p = Pipeline::compile(spec("pipeline.json"), b.info()).unwrap();
    let (batch, proba) = batch();
    let out = p.run(&batch, RunOptions { fail_fast: true, timings: true }, &b, 0, &RunControl::new()).unwrap();
    let scores = out.iter().find(|t| t.name == "scores").unwrap().to_vec::<f32>().unwrap();
    for (i, want) in proba.iter().enumerate() {
        for (j, w) in want.iter().enumerate() {
            assert!((scores[i * 3 + j] as f64 - w).abs() < 1e-5, "row {i}");
        }
    }
}

#[test]
fn fit_reproduces_the_fitted_spec() {
    let b = backend();
    let unfitted = spec("pipeline.unfitted.json");
    assert!(Pipeline::compile(unfitted.clone(), b.info()).unwrap().unfitted().is_some());
    let (all, _) = batch();
    let fitted = Pipeline::fit(&unfitted, &all).unwrap();
    let p = Pipeline::compile(fitted, b.info()).unwrap();
    assert!(p.unfitted().is_none());
}

#[test]
fn spec_errors_name_the_stage() {
    let b = backend();
    let mut s = spec("pipeline.json");
    s.features[0].names.pop();
    let e = Pipeline::compile(s, b.info()).err().unwrap();
    assert_eq!(e.code(), "ERR_INVALID_SPEC");
    assert!(e.stage().unwrap().starts_with("features[0]"), "{e}");
    let e = pipeline::parse(r#"{"version":1,"model":"m","fields":[],"features":[],"output":{"tensor":"y"},"preprocess":[{"op":"zscore","fields":["a"]}]}"#).unwrap_err();
    assert_eq!(e.stage(), Some("preprocess[0] (zscore)"));
}

#[test]
#[ignore]
fn small_batch_cost() {
    let b = backend();
    let p = Pipeline::compile(spec("pipeline.json"), b.info()).unwrap();
    let (all, _) = batch();
    // One-row batch from row 0.
    let cols = all
        .columns
        .iter()
        .map(|(n, c)| {
            let c = match c {
                InColumn::OwnedNum(v) => InColumn::OwnedNum(vec![v[0]]),
                InColumn::OwnedCat { codes, uniques } => InColumn::OwnedCat { codes: vec![codes[0]], uniques: uniques.clone() },
                _ => unreachable!(),
            };
            (n.clone(), c)
        })
        .collect();
    let one = Batch { rows: 1, columns: cols, rejected: vec![] };
    let mut sum = [0f64; 4];
    let n = 20000;
    let t0 = std::time::Instant::now();
    for _ in 0..n {
        let out = p.run(&one, RunOptions { fail_fast: true, timings: true }, &b, 0, &RunControl::new()).unwrap();
        let t = out.iter().find(|t| t.name == "timings").unwrap().to_vec::<f64>().unwrap();
        for i in 0..4 {
            sum[i] += t[i];
        }
    }
    let total = t0.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!("per run {total:.2} us; stages (us): {:?}", sum.map(|s| s / n as f64 / 1000.0));
}

#[test]
#[ignore]
fn raw_model_cost() {
    let lib = root().join("node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1");
    let rt = library::runtime(&lib).unwrap();
    for (model, input, width, out) in [("__test__/fixtures/penguins/penguins.onnx", "float_input", 10i64, 1usize), ("__test__/fixtures/tiny_mlp.onnx", "x", 16, 0)] {
        for intra in [0usize, 1] {
            let b = OnnxBackend::load(rt, ModelSource::Path(root().join(model)), &OnnxOptions { intra_op_threads: intra, ..Default::default() }).unwrap();
            let x = oxinfer_core::InputTensor::from_values(input, oxinfer_core::DType::Float32, &[1, width], &vec![0.3f32; width as usize]).unwrap();
            let n = 20000;
            for _ in 0..2000 {
                b.run(0, std::slice::from_ref(&x), &[out], &RunControl::new()).unwrap();
            }
            let t0 = std::time::Instant::now();
            for _ in 0..n {
                b.run(0, std::slice::from_ref(&x), &[out], &RunControl::new()).unwrap();
            }
            println!("{model} intra {intra}: {:.2} us", t0.elapsed().as_secs_f64() * 1e6 / n as f64);
        }
    }
}
