//! Dynamic batching against a recording backend: padding with a waste cap,
//! cropping back to each caller's length, preferred batch sizes, and the
//! timing each request is given. The first run is held at a gate so that
//! everything submitted meanwhile is queued when batching starts.

use std::collections::HashMap;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use oxinfer_core::layout::Layout;
use oxinfer_core::tensor::AlignedBytes;
use oxinfer_core::{Backend, DType, InputTensor, Request, ModelInfo, OutputData, OutputTensor, RunControl, RunOutput, Scheduler, SchedulerOptions};

/// Returns `tok` = ids as f32 ([rows, len]) and `sum` = each row's sum ([rows]),
/// and records the dims of every `ids` it is given.
struct Recorder {
    info: ModelInfo,
    seen: Mutex<Vec<Vec<i64>>>,
    gate: Mutex<Option<mpsc::Receiver<()>>>,
}

impl Backend for Recorder {
    fn info(&self) -> &ModelInfo {
        &self.info
    }
    fn slots(&self) -> usize {
        1
    }
    fn run(&self, _slot: usize, inputs: &[InputTensor], _o: &[usize], _ctl: &RunControl) -> oxinfer_core::Result<Vec<OutputTensor>> {
        if let Some(gate) = self.gate.lock().unwrap().take() {
            let _ = gate.recv_timeout(Duration::from_secs(10));
        }
        let ids = &inputs[0];
        self.seen.lock().unwrap().push(ids.dims.clone());
        let vals: Vec<f32> = ids.bytes().chunks_exact(8).map(|c| i64::from_ne_bytes(c.try_into().unwrap()) as f32).collect();
        let (rows, len) = (ids.dims[0] as usize, ids.dims[1] as usize);
        let sums: Vec<f32> = (0..rows).map(|r| vals[r * len..(r + 1) * len].iter().sum()).collect();
        let buf = |v: &[f32]| OutputData::Buffer(Box::new(AlignedBytes::from_slice(&v.iter().flat_map(|x| x.to_ne_bytes()).collect::<Vec<u8>>())));
        Ok(vec![
            OutputTensor { name: "tok".into(), dtype: DType::Float32, dims: ids.dims.clone(), data: buf(&vals) },
            OutputTensor { name: "sum".into(), dtype: DType::Float32, dims: vec![rows as i64], data: buf(&sums) },
        ])
    }
}

type Done = (u64, oxinfer_core::Result<RunOutput>);

/// A request of `rows` rows of length `len`, valued id*100 + position + 1
/// (never 0, the pad value, so padding that leaks would show).
fn request(id: u64, rows: usize, len: usize, tx: &mpsc::Sender<Done>) -> Request {
    let vals: Vec<i64> = (0..rows * len).map(|k| id as i64 * 100 + k as i64 + 1).collect();
    let tx = tx.clone();
    Request {
        id,
        deadline: None,
        priority: 0,
        work: oxinfer_core::model_run(vec![InputTensor::from_values("ids", DType::Int64, &[rows as i64, len as i64], &vals).unwrap()], vec![0, 1]),
        ctl: Arc::new(RunControl::new()),
        done: Box::new(move |r| {
            let _ = tx.send((id, r));
        }),
    }
}

fn scheduler(max_rows: usize, preferred: Vec<usize>, waste: f64) -> (Arc<Recorder>, Scheduler, mpsc::Sender<()>) {
    let (open, gate) = mpsc::channel();
    let rec = Arc::new(Recorder { info: ModelInfo::default(), seen: Mutex::new(Vec::new()), gate: Mutex::new(Some(gate)) });
    let layout = Layout {
        pad: HashMap::from([("ids".to_string(), (1, 0.0))]),
        output_pad: HashMap::from([("tok".to_string(), 1)]),
        max_pad_waste: waste,
        ..Layout::default()
    };
    let options = SchedulerOptions { max_batch_rows: max_rows, priority_levels: 1, preferred_batch_rows: preferred, layout, ..Default::default() };
    let s = Scheduler::with_options(Arc::clone(&rec) as Arc<dyn Backend>, options).unwrap();
    (rec, s, open)
}

fn collect(rx: &mpsc::Receiver<Done>, n: usize) -> HashMap<u64, RunOutput> {
    (0..n).map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap()).map(|(id, r)| (id, r.unwrap())).collect()
}

fn floats(t: &OutputTensor) -> Vec<f32> {
    t.to_vec::<f32>().unwrap()
}

#[test]
fn padded_batches_keep_within_the_waste_cap_and_crop_back() {
    let (rec, s, open) = scheduler(8, vec![], 0.1);
    let (tx, rx) = mpsc::channel();
    // The gated first request is larger than the batch budget: it runs alone.
    s.submit(request(0, 9, 1, &tx)).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    // Lengths 10 and 2 interleaved: a 2 beside one 10 wastes 40 %, beside
    // four 10s 16 %, both over the 10 % cap.
    for id in 1..=8 {
        s.submit(request(id, 1, if id % 2 == 1 { 10 } else { 2 }, &tx)).unwrap();
    }
    open.send(()).unwrap();
    let out = collect(&rx, 9);
    assert_eq!(*rec.seen.lock().unwrap(), vec![vec![9, 1], vec![4, 10], vec![4, 2]]);
    for id in 1..=8u64 {
        let len = if id % 2 == 1 { 10 } else { 2 };
        let r = &out[&id];
        let want: Vec<f32> = (0..len).map(|k| (id * 100 + k + 1) as f32).collect();
        assert_eq!(r.tensors[0].dims, vec![1, len as i64], "tok of {id} is cropped to its length");
        assert_eq!(floats(&r.tensors[0]), want);
        assert_eq!(floats(&r.tensors[1]), vec![want.iter().sum::<f32>()]);
        assert_eq!((r.timing.batch_rows, r.timing.batch_requests), (4, 4));
    }
    assert_eq!((out[&0].timing.batch_rows, out[&0].timing.batch_requests), (9, 1));
}

#[test]
fn a_looser_cap_pads_mixed_lengths_into_one_batch() {
    let (rec, s, open) = scheduler(16, vec![], 1.0);
    let (tx, rx) = mpsc::channel();
    s.submit(request(0, 17, 1, &tx)).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    for id in 1..=6 {
        s.submit(request(id, 1 + (id as usize % 2), 1 + id as usize, &tx)).unwrap();
    }
    open.send(()).unwrap();
    let out = collect(&rx, 7);
    assert_eq!(rec.seen.lock().unwrap()[1], vec![9, 7]);
    for id in 1..=6u64 {
        let (rows, len) = (1 + (id % 2), 1 + id);
        let r = &out[&id];
        assert_eq!(r.tensors[0].dims, vec![rows as i64, len as i64]);
        let want: Vec<f32> = (0..rows * len).map(|k| (id * 100 + k + 1) as f32).collect();
        assert_eq!(floats(&r.tensors[0]), want);
        assert_eq!((r.timing.batch_rows, r.timing.batch_requests), (9, 6));
    }
}

#[test]
fn batches_are_cut_at_the_largest_preferred_size() {
    let (rec, s, open) = scheduler(8, vec![4], 0.25);
    let (tx, rx) = mpsc::channel();
    s.submit(request(0, 9, 1, &tx)).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    for id in 1..=11 {
        s.submit(request(id, 1, 3, &tx)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(20));
    open.send(()).unwrap();
    let out = collect(&rx, 12);
    let rows: Vec<i64> = rec.seen.lock().unwrap().iter().map(|d| d[0]).collect();
    assert_eq!(rows, vec![9, 4, 4, 3]);
    // Arrival order is kept across the cut: the first four ran together.
    for id in 1..=4 {
        assert_eq!(out[&id].timing.batch_requests, 4);
    }
    assert_eq!(out[&11].timing.batch_requests, 3);
    // Queue wait is measured from submission: all waited at the gate.
    assert!((1..=11).all(|id| out[&id].timing.queue_us >= 20_000));
}
