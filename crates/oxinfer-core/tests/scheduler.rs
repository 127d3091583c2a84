//! Scheduler behaviour against a scripted backend: ordering, concurrency,
//! abort, dispose and panic isolation, without any engine involved.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oxinfer_core::scheduler::Aborted;
use oxinfer_core::tensor::AlignedBytes;
use oxinfer_core::{Backend, DType, Error, InputTensor, Request, ModelInfo, OutputData, OutputTensor, RunControl, RunOutput, Scheduler};

/// Echoes the first input; sleeps `value` ms; panics when value is negative.
struct Scripted {
    info: ModelInfo,
    slots: usize,
    busy: AtomicUsize,
    peak: AtomicUsize,
}

impl Scripted {
    fn new(slots: usize) -> Arc<Self> {
        Arc::new(Scripted { info: ModelInfo::default(), slots, busy: AtomicUsize::new(0), peak: AtomicUsize::new(0) })
    }
}

impl Backend for Scripted {
    fn info(&self) -> &ModelInfo {
        &self.info
    }
    fn slots(&self) -> usize {
        self.slots
    }
    fn run(&self, _slot: usize, inputs: &[InputTensor], _o: &[usize], ctl: &RunControl) -> oxinfer_core::Result<Vec<OutputTensor>> {
        let now = self.busy.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let v = f32::from_ne_bytes(inputs[0].bytes()[..4].try_into().unwrap());
        let _guard = Defer(|| {
            self.busy.fetch_sub(1, Ordering::SeqCst);
        });
        if v < 0.0 {
            panic!("scripted panic");
        }
        let until = Instant::now() + Duration::from_millis(v as u64);
        while Instant::now() < until {
            if ctl.is_aborted() {
                return Err(Error::Aborted("terminated".into()));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(vec![OutputTensor {
            name: "y".into(),
            dtype: DType::Float32,
            dims: vec![1],
            data: OutputData::Buffer(Box::new(AlignedBytes::from_slice(inputs[0].bytes()))),
        }])
    }
}

struct Defer<F: FnMut()>(F);
impl<F: FnMut()> Drop for Defer<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

type Done = (u64, oxinfer_core::Result<RunOutput>);

fn job(id: u64, value: f32, tx: &mpsc::Sender<Done>) -> (Request, Arc<RunControl>) {
    let tx = tx.clone();
    let ctl = Arc::new(RunControl::new());
    let j = Request {
        id,
        deadline: None,
        priority: 0,
        work: oxinfer_core::model_run(vec![InputTensor::from_values("x", DType::Float32, &[1], &[value]).unwrap()], vec![0]),
        ctl: Arc::clone(&ctl),
        done: Box::new(move |r| {
            let _ = tx.send((id, r));
        }),
    };
    (j, ctl)
}

fn value(r: &oxinfer_core::Result<RunOutput>) -> f32 {
    r.as_ref().unwrap().tensors[0].to_vec::<f32>().unwrap()[0]
}

#[test]
fn runs_in_fifo_order_on_one_slot() {
    let s = Scheduler::new(Scripted::new(1)).unwrap();
    let (tx, rx) = mpsc::channel();
    for i in 0..50 {
        s.submit(job(i, i as f32 * 0.0, &tx).0).unwrap();
    }
    let ids: Vec<u64> = (0..50).map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap().0).collect();
    assert_eq!(ids, (0..50).collect::<Vec<_>>());
}

#[test]
fn pool_runs_concurrently_up_to_its_size() {
    let backend = Scripted::new(3);
    let s = Scheduler::new(backend.clone()).unwrap();
    let (tx, rx) = mpsc::channel();
    for i in 0..9 {
        s.submit(job(i, 30.0, &tx).0).unwrap();
    }
    for _ in 0..9 {
        let (_, r) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(value(&r), 30.0);
    }
    assert_eq!(backend.peak.load(Ordering::SeqCst), 3);
}

#[test]
fn abort_removes_a_queued_job_and_stops_a_running_one() {
    let s = Scheduler::new(Scripted::new(1)).unwrap();
    let (tx, rx) = mpsc::channel();
    let (running, _) = job(1, 5000.0, &tx);
    let (queued, _) = job(2, 0.0, &tx);
    s.submit(running).unwrap();
    s.submit(queued).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert!(matches!(s.abort(2), Aborted::Dequeued(_)));
    let t0 = Instant::now();
    assert!(matches!(s.abort(1), Aborted::Signalled));
    let (id, r) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(id, 1);
    assert_eq!(r.err().unwrap().code(), "ERR_ABORTED");
    assert!(t0.elapsed() < Duration::from_secs(2), "terminate took {:?}", t0.elapsed());
    assert!(matches!(s.abort(1), Aborted::Unknown));
    // The dequeued job's completion is never called.
    assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
}

#[test]
fn dispose_settles_queued_jobs_and_waits_for_running_ones() {
    let s = Scheduler::new(Scripted::new(1)).unwrap();
    let (tx, rx) = mpsc::channel();
    s.submit(job(1, 100.0, &tx).0).unwrap();
    for i in 2..20 {
        s.submit(job(i, 0.0, &tx).0).unwrap();
    }
    std::thread::sleep(Duration::from_millis(20));
    let (dtx, drx) = mpsc::channel();
    assert!(s.dispose(Box::new(move || dtx.send(()).unwrap())));
    drx.recv_timeout(Duration::from_secs(5)).unwrap();
    let mut ok = 0;
    let mut disposed = 0;
    while let Ok((_, r)) = rx.try_recv() {
        match r {
            Ok(_) => ok += 1,
            Err(e) => {
                assert_eq!(e.code(), "ERR_DISPOSED");
                disposed += 1
            }
        }
    }
    assert_eq!((ok, disposed), (1, 18));
    let err = s.submit(job(99, 0.0, &tx).0).unwrap_err();
    assert_eq!(err.code(), "ERR_DISPOSED");
    assert!(matches!(s.run_now(oxinfer_core::model_run(vec![], vec![])), Err(Error::Disposed(_))));
    // A second dispose reports at once.
    let (dtx, drx) = mpsc::channel();
    assert!(!s.dispose(Box::new(move || dtx.send(()).unwrap())));
    drx.recv_timeout(Duration::from_millis(100)).unwrap();
}

#[test]
fn a_panic_becomes_err_backend_and_the_worker_lives_on() {
    let s = Scheduler::new(Scripted::new(1)).unwrap();
    let (tx, rx) = mpsc::channel();
    s.submit(job(1, -1.0, &tx).0).unwrap();
    s.submit(job(2, 0.0, &tx).0).unwrap();
    let (_, r1) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let e = r1.err().unwrap();
    assert_eq!(e.code(), "ERR_BACKEND");
    assert!(e.to_string().contains("scripted panic"));
    let (_, r2) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(value(&r2), 0.0);
    // Inline runs are isolated the same way.
    let bad = InputTensor::from_values("x", DType::Float32, &[1], &[-1.0f32]).unwrap();
    assert_eq!(s.run_now(oxinfer_core::model_run(vec![bad], vec![0])).err().unwrap().code(), "ERR_BACKEND");
}
