//! Pipelines in the core, without JS: the penguins spec on its real model.

use oxinfer_core::onnx::OnnxBackend;
use oxinfer_core::pipeline::{self, Batch, InColumn, Pipeline, RunOptions};
use oxinfer_core::{Backend, RunControl};

mod common;

use common::root;

fn backend() -> OnnxBackend {
    common::penguins_backend()
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
    let out = p.run(&batch, RunOptions { fail_fast: true, timings: true }, &b, 0, &RunControl::new(), &mut Default::default()).unwrap();
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
fn a_failed_batch_leaves_the_drift_windows_as_they_were() {
    use oxinfer_core::monitor::{MonitorSpec, Thresholds};
    let b = backend();
    let (batch, _) = batch();
    let plain = Pipeline::compile(spec("pipeline.json"), b.info()).unwrap();
    let reference = plain.profile(&batch, &b, 0, &RunControl::new()).unwrap();
    let mut s = spec("pipeline.json");
    s.monitor = Some(MonitorSpec { reference, window: 10_000, check_every: usize::MAX, min_interval_ms: 0, thresholds: Thresholds::default(), feedback: None, log: None, window_ms: 0, metrics: Vec::new() });
    let p = Pipeline::compile(s, b.info()).unwrap();
    let windows = |p: &Pipeline| p.monitor().unwrap().report().features.iter().map(|f| (f.name.clone(), f.records)).collect::<Vec<_>>();
    // The run fails at the model (its control is aborted), after the inputs were read.
    let aborted = RunControl::new();
    aborted.abort();
    let e = p.run(&batch, RunOptions { fail_fast: false, timings: false }, &b, 0, &aborted, &mut Default::default()).unwrap_err();
    assert_eq!(e.code(), "ERR_ABORTED");
    assert!(windows(&p).iter().all(|(_, n)| *n == 0), "{:?}", windows(&p));
    assert_eq!(p.monitor().unwrap().report().records, 0);
    p.run(&batch, RunOptions { fail_fast: false, timings: false }, &b, 0, &RunControl::new(), &mut Default::default()).unwrap();
    let filled = windows(&p);
    assert!(filled.iter().any(|(n, _)| n == "bill_length_mm") && filled.iter().any(|(n, _)| n == "score"), "{filled:?}");
    // Every feature, inputs and predictions alike, holds the batch's rows (NaN inputs count as missing values).
    assert!(filled.iter().all(|(_, n)| *n == batch.rows), "{filled:?}");
}
