//! The core scheduler merging pipeline requests by itself (no JS): runs of
//! one pipeline queued together run as one batch, and each caller gets
//! what an unbatched run of its own records gives (scores to 1e-6: a batched
//! GEMM may round differently), labels and bad rows exactly.

use std::sync::{mpsc, Arc};
use std::time::Duration;

use oxinfer_core::onnx::OnnxBackend;
use oxinfer_core::pipeline::{self, Batch, InColumn, Pipeline, RunOptions};
use oxinfer_core::{pipeline_run, Backend, Error, OutputTensor, Request, RunControl, RunOutput, Scheduler, SchedulerOptions};

mod common;

use common::root;

fn backend() -> OnnxBackend {
    common::penguins_backend()
}

fn records() -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(root().join("__test__/fixtures/penguins/records.json")).unwrap()).unwrap();
    v["records"].as_array().unwrap().clone()
}

/// `rows` as a batch. Dictionaries are built back to front when `reverse`, so
/// that merged requests disagree on category codes.
fn batch(rows: &[serde_json::Value], reverse: bool, rejected: Vec<(usize, Error)>) -> Batch {
    let mut columns = Vec::new();
    for f in ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"] {
        columns.push((f.to_string(), InColumn::OwnedNum(rows.iter().map(|r| r[f].as_f64().unwrap_or(f64::NAN)).collect())));
    }
    for f in ["island", "sex"] {
        let mut uniques: Vec<String> = Vec::new();
        let order: Vec<&serde_json::Value> = if reverse { rows.iter().rev().collect() } else { rows.iter().collect() };
        for r in order {
            if let Some(s) = r[f].as_str() {
                if !uniques.iter().any(|u| u == s) {
                    uniques.push(s.to_string());
                }
            }
        }
        let codes = rows.iter().map(|r| r[f].as_str().map_or(-1, |s| uniques.iter().position(|u| u == s).unwrap() as i32)).collect();
        columns.push((f.to_string(), InColumn::OwnedCat { codes, uniques }));
    }
    Batch { rows: rows.len(), columns, rejected }
}

fn column<'a>(out: &'a [OutputTensor], name: &str) -> Option<&'a OutputTensor> {
    out.iter().find(|t| t.name == name)
}

/// Scores rounded to 1e-6 (a batched GEMM may differ from a single-row one
/// in the last bits; NaN stays NaN), labels and error rows and messages
/// exactly: what a caller sees.
fn summary(out: &[OutputTensor]) -> (Vec<String>, Vec<i32>, Vec<i32>, Vec<String>) {
    let scores = column(out, "scores").unwrap().to_vec::<f32>().unwrap().iter().map(|x| format!("{x:.6}")).collect();
    let labels = column(out, "label").map(|t| t.to_vec::<i32>().unwrap()).unwrap_or_default();
    let rows = column(out, "error_row").map(|t| t.to_vec::<i32>().unwrap()).unwrap_or_default();
    let messages = column(out, "error_message").and_then(|t| t.strings().map(|s| s.to_vec())).unwrap_or_default();
    (scores, labels, rows, messages)
}

#[test]
fn the_scheduler_merges_pipeline_requests_and_splits_them_back() {
    let b = Arc::new(backend());
    let spec = pipeline::parse(&std::fs::read_to_string(root().join("__test__/fixtures/penguins/pipeline.json")).unwrap()).unwrap();
    let p = Arc::new(Pipeline::compile(spec, b.info()).unwrap());
    let recs = records();
    let bad = |row: usize| vec![(row, Error::bad_record(row, "island", format!("row {row}: field 'island' expects a category string")))];

    // (records, reverse dictionaries, rejected rows, fail_fast)
    let mut cases: Vec<(Vec<serde_json::Value>, bool, Vec<(usize, Error)>, bool)> = Vec::new();
    for i in 0..20 {
        cases.push((recs[i..i + 1].to_vec(), i % 2 == 1, vec![], false));
    }
    cases.push((recs[40..43].to_vec(), true, bad(1), false)); // a bad middle row stays this request's row 1
    cases.push((recs[50..51].to_vec(), false, bad(0), true)); // fail_fast with a bad row fails alone
    cases.push((recs[60..65].to_vec(), false, vec![], false));
    cases.push((recs[3..4].iter().map(|r| {
        let mut r = r.clone();
        r["body_mass_g"] = serde_json::Value::Null; // imputed: not an error
        r
    }).collect(), false, vec![], false));

    // Unbatched references, one run per request.
    let want: Vec<Result<(Vec<String>, Vec<i32>, Vec<i32>, Vec<String>), String>> = cases
        .iter()
        .map(|(rows, rev, rejected, fail_fast)| {
            p.run(&batch(rows, *rev, rejected.clone()), RunOptions { fail_fast: *fail_fast, timings: false }, &*b, 0, &RunControl::new(), &mut Default::default())
                .map(|o| summary(&o))
                .map_err(|e| format!("{} {:?} {e}", e.code(), e.row()))
        })
        .collect();

    let options = SchedulerOptions { max_batch_rows: 64, max_delay: Duration::from_millis(300), priority_levels: 1, ..Default::default() };
    let scheduler = Scheduler::with_options(b.clone() as Arc<dyn Backend>, options).unwrap();
    let (tx, rx) = mpsc::channel::<(u64, oxinfer_core::Result<RunOutput>)>();
    let requests: Vec<Request> = cases
        .iter()
        .enumerate()
        .map(|(id, (rows, rev, rejected, fail_fast))| {
            let tx = tx.clone();
            let id = id as u64;
            Request {
                id,
                deadline: None,
                priority: 0,
                work: pipeline_run(Arc::clone(&p), batch(rows, *rev, rejected.clone()), RunOptions { fail_fast: *fail_fast, timings: true }),
                ctl: Arc::new(RunControl::new()),
                done: Box::new(move |r| {
                    let _ = tx.send((id, r));
                }),
            }
        })
        .collect();
    assert!(scheduler.submit_many(requests).is_empty());
    let mut got: Vec<Option<oxinfer_core::Result<RunOutput>>> = (0..cases.len()).map(|_| None).collect();
    for _ in 0..cases.len() {
        let (id, r) = rx.recv_timeout(Duration::from_secs(20)).expect("every request settles");
        assert!(got[id as usize].is_none(), "request {id} settled twice");
        got[id as usize] = Some(r);
    }
    let total_rows: u32 = cases.iter().map(|c| c.0.len() as u32).sum();
    for (i, (r, w)) in got.into_iter().zip(want).enumerate() {
        match (r.unwrap(), w) {
            (Ok(out), Ok(w)) => {
                assert_eq!(summary(&out.tensors), w, "request {i}: the batched result differs from its unbatched run");
                assert_eq!(out.timing.batch_requests as usize, cases.len(), "request {i}: every request ran in one batch");
                assert_eq!(out.timing.batch_rows, total_rows, "request {i}");
                assert_eq!(column(&out.tensors, "timings").unwrap().dims, vec![4]);
            }
            (Err(e), Err(w)) => assert_eq!(format!("{} {:?} {e}", e.code(), e.row()), w, "request {i}"),
            (r, w) => panic!("request {i}: batched {:?} but unbatched {:?}", r.map(|o| summary(&o.tensors)).map_err(|e| e.to_string()), w),
        }
    }
}

#[test]
fn a_malformed_request_fails_alone_and_other_pipelines_never_merge() {
    let b = Arc::new(backend());
    let spec = pipeline::parse(&std::fs::read_to_string(root().join("__test__/fixtures/penguins/pipeline.json")).unwrap()).unwrap();
    let p = Arc::new(Pipeline::compile(spec.clone(), b.info()).unwrap());
    let other = Arc::new(Pipeline::compile(spec, b.info()).unwrap());
    let recs = records();
    let options = SchedulerOptions { max_batch_rows: 64, max_delay: Duration::from_millis(300), priority_levels: 1, ..Default::default() };
    let scheduler = Scheduler::with_options(b.clone() as Arc<dyn Backend>, options).unwrap();
    let (tx, rx) = mpsc::channel::<(u64, oxinfer_core::Result<RunOutput>)>();
    let mut malformed = batch(&recs[0..2], false, vec![]);
    malformed.columns[0].1 = InColumn::OwnedNum(vec![1.0]); // one value for two rows
    let works = vec![
        pipeline_run(Arc::clone(&p), batch(&recs[0..1], false, vec![]), RunOptions::default()),
        pipeline_run(Arc::clone(&p), malformed, RunOptions::default()),
        pipeline_run(Arc::clone(&p), batch(&recs[1..2], false, vec![]), RunOptions::default()),
        pipeline_run(Arc::clone(&other), batch(&recs[2..3], false, vec![]), RunOptions::default()),
    ];
    let requests = works
        .into_iter()
        .enumerate()
        .map(|(id, work)| {
            let tx = tx.clone();
            let id = id as u64;
            Request { id, deadline: None, priority: 0, work, ctl: Arc::new(RunControl::new()), done: Box::new(move |r| drop(tx.send((id, r)))) }
        })
        .collect();
    assert!(scheduler.submit_many(requests).is_empty());
    let mut got: Vec<(u64, oxinfer_core::Result<RunOutput>)> = (0..4).map(|_| rx.recv_timeout(Duration::from_secs(20)).unwrap()).collect();
    got.sort_by_key(|(id, _)| *id);
    let e = got[1].1.as_ref().err().expect("the malformed request fails");
    assert_eq!(e.code(), "ERR_INVALID_ARGUMENT");
    assert_eq!(got[0].1.as_ref().unwrap().timing.batch_requests, 2);
    assert_eq!(got[2].1.as_ref().unwrap().timing.batch_requests, 2);
    assert_eq!(got[3].1.as_ref().unwrap().timing.batch_requests, 1, "another pipeline never joins the batch");
}
