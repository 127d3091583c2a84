//! Batch jobs in the core, without JS: the penguins pipeline over a CSV file,
//! on a real scheduler and model.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use oxinfer_core::job::{self, Control, InputFormat, JobEvent, JobOptions, OutputFormat};
use oxinfer_core::onnx::{library, ModelSource, OnnxBackend, OnnxOptions};
use oxinfer_core::pipeline::{self, Pipeline};
use oxinfer_core::{Backend, Scheduler};

/// The tests check the process-wide count of running jobs, so they take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn setup() -> (Arc<Pipeline>, Arc<Scheduler>) {
    let lib = std::env::var_os("OXINFER_ORT_DYLIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1"));
    let rt = library::runtime(&lib).expect("ONNX Runtime (npm install first)");
    let dir = root().join("__test__/fixtures/penguins");
    let backend = OnnxBackend::load(rt, ModelSource::Path(dir.join("penguins.onnx")), &OnnxOptions::default()).unwrap();
    let spec = pipeline::parse(&std::fs::read_to_string(dir.join("pipeline.json")).unwrap()).unwrap();
    let p = Pipeline::compile(spec, backend.info()).unwrap();
    (Arc::new(p), Arc::new(Scheduler::new(Arc::new(backend)).unwrap()))
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("oxinfer-job-{}-{name}", std::process::id()))
}

/// Rows cycling through a few penguins; row 37 has an unparsable number.
fn write_csv(path: &Path, rows: usize) {
    let base = ["Torgersen,39.1,18.7,181,3750,MALE", "Biscoe,46.1,13.2,211,4500,FEMALE", "Dream,46.5,17.9,192,3500,FEMALE", "Biscoe,,,,,"];
    let mut s = String::from("id,island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex\n");
    for i in 0..rows {
        let line = if i == 37 { "Biscoe,abc,13.2,211,4500,FEMALE" } else { base[i % base.len()] };
        s.push_str(&format!("{i},{line}\n"));
    }
    std::fs::write(path, s).unwrap();
}

fn run(p: &Arc<Pipeline>, s: &Arc<Scheduler>, opts: JobOptions, ctl: Arc<Control>) -> (Vec<JobEvent>, mpsc::Receiver<JobEvent>) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    job::start(Arc::clone(p), Arc::clone(s), opts, ctl, Box::new(move |e| tx.lock().unwrap().send(e).unwrap())).unwrap();
    let mut events = Vec::new();
    loop {
        let e = rx.recv_timeout(Duration::from_secs(60)).unwrap();
        let last = matches!(e, JobEvent::Done(_) | JobEvent::Failed(_));
        events.push(e);
        if last {
            return (events, rx);
        }
    }
}

fn options(input: &Path, output: Option<&Path>, fail_fast: bool) -> JobOptions {
    JobOptions {
        input: input.to_path_buf(),
        input_format: InputFormat::Csv,
        output: output.map(|o| (o.to_path_buf(), OutputFormat::Jsonl)),
        chunk_rows: 10,
        concurrency: 3,
        fail_fast,
        progress_every: Duration::ZERO,
        unknown_fields: oxinfer_core::pipeline::spec::UnknownFields::Ignore,
        shard: None,
    }
}

#[test]
fn a_csv_file_becomes_ordered_jsonl_with_row_errors() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (p, s) = setup();
    let (input, output) = (temp("in.csv"), temp("out.jsonl"));
    write_csv(&input, 95);
    let (events, _) = run(&p, &s, options(&input, Some(&output), false), Arc::new(Control::new(3)));
    let JobEvent::Done(done) = events.last().unwrap() else { panic!("the job failed") };
    assert_eq!((done.rows_done, done.errors), (95, 1));
    assert_eq!(done.bytes_done, done.bytes_total);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&output).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 95);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["row"], i);
    }
    assert_eq!(lines[0]["label"], "Adelie");
    assert_eq!(lines[1]["label"], "Gentoo");
    assert_eq!(lines[2]["label"], "Chinstrap");
    assert_eq!(lines[37]["error"]["field"], "bill_length_mm");
    let progress: Vec<u64> = events.iter().filter_map(|e| if let JobEvent::Progress(p) = e { Some(p.rows_done) } else { None }).collect();
    assert!(progress.windows(2).all(|w| w[0] <= w[1]) && !progress.is_empty());

    // Failing fast names the row in the whole file, and removes the output.
    let (events, _) = run(&p, &s, options(&input, Some(&output), true), Arc::new(Control::new(3)));
    let JobEvent::Failed(e) = events.last().unwrap() else { panic!("the job should fail") };
    assert_eq!((e.code(), e.row(), e.field()), ("ERR_INVALID_INPUT", Some(37), Some("bill_length_mm")));
    assert!(!output.exists());
    assert_eq!(job::active(), 0);
    std::fs::remove_file(input).ok();
}

#[test]
fn chunks_come_in_order_within_credits_and_an_abort_stops_the_job() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (p, s) = setup();
    let input = temp("in2.csv");
    write_csv(&input, 200);
    let ctl = Arc::new(Control::new(2));
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    job::start(Arc::clone(&p), Arc::clone(&s), options(&input, None, false), Arc::clone(&ctl), Box::new(move |e| tx.lock().unwrap().send(e).unwrap())).unwrap();
    let mut next = 0;
    let mut held = 0;
    while next < 50 {
        match rx.recv_timeout(Duration::from_secs(60)).unwrap() {
            JobEvent::Chunk { first_row, .. } => {
                assert_eq!(first_row, next);
                next += 10;
                held += 1;
                // Without credits given back, no third chunk comes.
                assert!(held <= 2);
                if held == 2 {
                    assert!(rx.recv_timeout(Duration::from_millis(100)).map_or(true, |e| !matches!(e, JobEvent::Chunk { .. })));
                    ctl.release(2);
                    held = 0;
                }
            }
            JobEvent::Progress(_) => {}
            _ => panic!("the job ended early"),
        }
    }
    ctl.abort();
    loop {
        match rx.recv_timeout(Duration::from_secs(60)).unwrap() {
            JobEvent::Failed(e) => {
                assert_eq!(e.code(), "ERR_ABORTED");
                break;
            }
            JobEvent::Done(_) => panic!("the job should be aborted"),
            _ => {}
        }
    }
    assert_eq!(job::active(), 0);
    std::fs::remove_file(input).ok();
}
