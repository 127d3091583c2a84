//! Batch jobs: a pipeline over a whole CSV or JSONL file, in bounded memory.
//!
//! A reader thread parses the file a chunk at a time; the job's driver thread
//! submits each chunk to the session's scheduler (so the pool's slots are
//! shared fairly with other runs) and takes the finished chunks back in input
//! order, to write them to the output file or hand them to the caller. Parsing,
//! the pipeline and writing run on different threads, so they overlap across
//! the cores; with `poolSize` > 1, chunks also run the model in parallel. At
//! most `concurrency + 2` chunks are between reading and delivery at any time
//! (`concurrency` for the model, one being read, one being written), and the
//! caller holds at most `concurrency` undelivered chunks (credits), so memory
//! is bounded by about `2 × concurrency + 2` chunks whatever the file's size.

pub mod read;
pub mod shard;
pub mod write;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::backend::RunControl;
use crate::error::{Error, Result};
use crate::pipeline::spec::UnknownFields;
use crate::pipeline::{Pipeline, RunOptions};
use crate::request::{pipeline_run, Request, RunOutput};
use crate::scheduler::Scheduler;

pub use read::{InputFormat, Reader};
pub use shard::{merge, Manifest, MergeReport, Shard};
pub use write::{OutputFormat, Writer};

#[derive(Clone, Debug)]
pub struct JobOptions {
    pub input: PathBuf,
    pub input_format: InputFormat,
    /// Results go to this file; None hands them to the caller as events.
    pub output: Option<(PathBuf, OutputFormat)>,
    pub chunk_rows: usize,
    /// Chunks submitted to the model at once (at least 1); one more may be
    /// read ahead and one more written meanwhile.
    pub concurrency: usize,
    /// A bad row fails the job (else it gets an error beside the good rows).
    pub fail_fast: bool,
    pub progress_every: Duration,
    /// File columns or JSON keys that are not spec fields.
    pub unknown_fields: UnknownFields,
    /// Score one shard of the input into `<output>.shard-<i>-of-<n>` (see
    /// `shard.rs`); needs `output`.
    pub shard: Option<Shard>,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    pub rows_done: u64,
    pub errors: u64,
    /// Input bytes up to the end of the last chunk done.
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub seconds: f64,
}

pub enum JobEvent {
    /// Results of rows `first_row..`, in input order (no output file).
    Chunk { first_row: usize, output: RunOutput },
    Progress(Progress),
    /// The job finished; the last progress.
    Done(Progress),
    Failed(Error),
}

/// Abort flag, delivery credits and the running chunks of one job.
#[derive(Default)]
pub struct Control {
    aborted: AtomicBool,
    credits: Mutex<usize>,
    changed: Condvar,
    running: Mutex<Vec<Arc<RunControl>>>,
}

impl Control {
    pub fn new(credits: usize) -> Self {
        Control { credits: Mutex::new(credits), ..Default::default() }
    }

    /// Stops the job: no more chunks start, running ones are terminated.
    pub fn abort(&self) {
        self.aborted.store(true, Ordering::Release);
        for c in self.running.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            c.abort();
        }
        let _g = self.credits.lock().unwrap_or_else(|e| e.into_inner());
        self.changed.notify_all();
    }

    pub fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }

    /// The caller consumed `n` delivered chunks.
    pub fn release(&self, n: usize) {
        *self.credits.lock().unwrap_or_else(|e| e.into_inner()) += n;
        self.changed.notify_all();
    }

    /// Waits for room to deliver one chunk; false once aborted.
    fn take_credit(&self) -> bool {
        let mut c = self.credits.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if self.is_aborted() {
                return false;
            }
            if *c > 0 {
                *c -= 1;
                return true;
            }
            c = self.changed.wait(c).unwrap_or_else(|e| e.into_inner());
        }
    }
}

static ACTIVE: AtomicUsize = AtomicUsize::new(0);
/// Scheduler ids of chunks, far from the ids the bindings hand out.
static NEXT_ID: AtomicU64 = AtomicU64::new(1 << 60);

/// Jobs whose driver thread is still running (for leak checks).
pub fn active() -> usize {
    ACTIVE.load(Ordering::Acquire)
}

fn aborted() -> Error {
    Error::Aborted("the job was aborted".into())
}

/// Opens the files (so a missing input or unwritable output fails here, on
/// the caller's thread) and starts the job's driver thread. `emit` receives
/// every event; the last is `Done` or `Failed`.
pub fn start(pipeline: Arc<Pipeline>, scheduler: Arc<Scheduler>, opts: JobOptions, ctl: Arc<Control>, emit: Box<dyn Fn(JobEvent) + Send>) -> Result<()> {
    if opts.chunk_rows == 0 || opts.concurrency == 0 {
        return Err(Error::InvalidArgument("chunkSize and concurrency must be at least 1".into()));
    }
    if let Some(why) = pipeline.unfitted() {
        return Err(why.clone());
    }
    let mut sharded = match (opts.shard, &opts.output) {
        (None, _) => None,
        (Some(_), None) => return Err(Error::InvalidArgument("a sharded job needs an output file: each shard writes its own part of it".into())),
        (Some(s), Some((path, _))) => {
            let identity = shard::input_identity(&opts.input)?;
            let part = s.part_path(path);
            shard::invalidate(&part)?;
            // Written under a name of its own and renamed once complete, so
            // that two attempts at one shard never write into one file.
            let writing = shard::attempt_path(&part);
            Some(Sharded { shard: s, identity, range: s.range(identity.0), part, writing, span_start: 0 })
        }
    };
    let reader = Reader::open_range(&opts.input, opts.input_format, &pipeline.spec().fields, opts.unknown_fields, sharded.as_ref().map(|sh| sh.range))?;
    // Progress counts a shard's own bytes, from where its rows start.
    let mut progress = Progress { bytes_total: reader.bytes_total(), ..Progress::default() };
    if let Some(sh) = &mut sharded {
        sh.span_start = reader.offset();
        progress.bytes_total = sh.range.1 - sh.range.0;
    }
    let writer = match (&opts.output, &sharded) {
        (Some((_, format)), Some(sh)) => Some(Writer::create(&sh.writing, *format, pipeline.spec())?),
        (Some((path, format)), None) => Some(Writer::create(path, *format, pipeline.spec())?),
        (None, _) => None,
    };
    ACTIVE.fetch_add(1, Ordering::AcqRel);
    let spawned = std::thread::Builder::new().name("oxinfer-job".into()).spawn(move || {
        let span_start = sharded.as_ref().map_or(0, |s| s.span_start);
        let mut driver = Driver { pipeline, scheduler, opts, ctl, emit: &*emit, writer, progress, clock: Instant::now(), span_start, span_end: 0 };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| driver.run(reader))).unwrap_or_else(|p| Err(Error::from_panic(p)));
        let Driver { writer, progress, emit, opts, span_end, .. } = driver;
        match r {
            Ok(()) => {
                let mut flushed = writer.map_or(Ok(()), Writer::finish);
                if let (Ok(()), Some(sh), Some((_, format))) = (&flushed, &sharded, &opts.output) {
                    // The part is complete once its manifest exists.
                    let m = Manifest::new(&opts.input, opts.input_format, *format, sh.shard, sh.identity, [sh.span_start, span_end], progress.rows_done, progress.errors);
                    flushed = std::fs::rename(&sh.writing, &sh.part).map_err(|e| Error::file_op("write", "the shard's part", &sh.part, e)).and_then(|()| m.write(&sh.part));
                    if flushed.is_err() {
                        let _ = std::fs::remove_file(&sh.writing);
                    }
                }
                ACTIVE.fetch_sub(1, Ordering::AcqRel);
                emit(match flushed {
                    Ok(()) => JobEvent::Done(progress),
                    Err(e) => JobEvent::Failed(e),
                });
            }
            Err(e) => {
                if let Some(w) = writer {
                    w.discard();
                }
                ACTIVE.fetch_sub(1, Ordering::AcqRel);
                emit(JobEvent::Failed(e));
            }
        }
    });
    if let Err(e) = spawned {
        ACTIVE.fetch_sub(1, Ordering::AcqRel);
        return Err(Error::Backend(format!("cannot start the job thread: {e}")));
    }
    Ok(())
}

/// A sharded job's part and what its manifest will say.
struct Sharded {
    shard: Shard,
    /// The input's size and modification time when the job started.
    identity: (u64, u64),
    /// The shard's byte range in that input.
    range: (u64, u64),
    part: PathBuf,
    /// This attempt's file, renamed to `part` once complete.
    writing: PathBuf,
    span_start: u64,
}

/// A chunk between submission and delivery.
struct InFlight {
    first_row: usize,
    end_byte: u64,
    ctl: Arc<RunControl>,
    result: Option<Result<RunOutput>>,
}

struct Driver<'a> {
    pipeline: Arc<Pipeline>,
    scheduler: Arc<Scheduler>,
    opts: JobOptions,
    ctl: Arc<Control>,
    emit: &'a (dyn Fn(JobEvent) + Send),
    writer: Option<Writer>,
    progress: Progress,
    clock: Instant,
    /// Where the rows start (a shard's span; 0 for a whole file), and where
    /// the reader stopped once it is done.
    span_start: u64,
    span_end: u64,
}

/// What the driver waits for: the reader's next chunk, or a finished one.
enum Msg {
    /// None at the end of the input; the reader sends nothing after None or an error.
    Read(Result<Option<read::Chunk>>),
    /// The input is done: where the reader stopped (sent before `Read(Ok(None))`).
    End(u64),
    Ran(usize, Result<RunOutput>),
}

/// How many chunks the reader may be ahead of delivery: one is taken before
/// reading a chunk and given back once the chunk is delivered.
struct Slots {
    state: Mutex<(usize, bool)>,
    changed: Condvar,
}

impl Slots {
    fn new(n: usize) -> Self {
        Slots { state: Mutex::new((n, false)), changed: Condvar::new() }
    }

    /// Waits for a free slot; false once closed.
    fn take(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if s.1 {
                return false;
            }
            if s.0 > 0 {
                s.0 -= 1;
                return true;
            }
            s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn give(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).0 += 1;
        self.changed.notify_one();
    }

    fn close(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        self.changed.notify_all();
    }
}

impl Driver<'_> {
    /// Parsing runs on a reader thread of its own, the pipeline on the
    /// scheduler's workers, and formatting and writing here, so the three
    /// overlap across the cores.
    fn run(&mut self, mut reader: Reader) -> Result<()> {
        let (tx, rx) = mpsc::channel::<Msg>();
        // One chunk being read and one being written besides those in the
        // model: with fewer, the three stages could not all be busy at once.
        let slots = Arc::new(Slots::new(self.opts.concurrency + 2));
        let reading = {
            let (tx, slots, ctl, rows) = (tx.clone(), Arc::clone(&slots), Arc::clone(&self.ctl), self.opts.chunk_rows);
            std::thread::Builder::new()
                .name("oxinfer-job-read".into())
                .spawn(move || loop {
                    if !slots.take() || ctl.is_aborted() {
                        let _ = tx.send(Msg::Read(Err(aborted())));
                        return;
                    }
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reader.next_chunk(rows))).unwrap_or_else(|p| Err(Error::from_panic(p)));
                    let last = !matches!(r, Ok(Some(_)));
                    if matches!(r, Ok(None)) {
                        let _ = tx.send(Msg::End(reader.offset()));
                    }
                    if tx.send(Msg::Read(r)).is_err() || last {
                        return;
                    }
                })
                .map_err(|e| Error::Backend(format!("cannot start the job's reader thread: {e}")))?
        };
        let mut flight: BTreeMap<usize, InFlight> = BTreeMap::new();
        let (mut next_seq, mut next_out, mut eof) = (0usize, 0usize, false);
        let mut last_progress = Instant::now();
        let outcome = (|| -> Result<()> {
            loop {
                if self.ctl.is_aborted() {
                    return Err(aborted());
                }
                if eof && flight.is_empty() {
                    return Ok(());
                }
                match rx.recv().map_err(|_| Error::Backend("the job's channel closed".into()))? {
                    Msg::Read(Ok(Some(chunk))) => {
                        let run_ctl = Arc::new(RunControl::new());
                        self.ctl.running.lock().unwrap_or_else(|e| e.into_inner()).push(Arc::clone(&run_ctl));
                        if self.ctl.is_aborted() {
                            return Err(aborted());
                        }
                        let seq = next_seq;
                        next_seq += 1;
                        flight.insert(seq, InFlight { first_row: chunk.first_row, end_byte: chunk.end_byte, ctl: Arc::clone(&run_ctl), result: None });
                        let p = Arc::clone(&self.pipeline);
                        let tx = tx.clone();
                        let batch = chunk.batch;
                        let opts = RunOptions { fail_fast: self.opts.fail_fast, timings: false };
                        let job = Request {
                            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                            work: pipeline_run(p, batch, opts),
                            deadline: None,
                            priority: usize::MAX,
                            ctl: run_ctl,
                            done: Box::new(move |r| {
                                let _ = tx.send(Msg::Ran(seq, r));
                            }),
                        };
                        if let Err(e) = self.scheduler.submit(job) {
                            flight.remove(&seq);
                            return Err(e);
                        }
                    }
                    Msg::Read(Ok(None)) => eof = true,
                    Msg::End(offset) => self.span_end = offset,
                    Msg::Read(Err(e)) => return Err(e),
                    Msg::Ran(seq, r) => {
                        if let Some(f) = flight.get_mut(&seq) {
                            f.result = Some(r);
                        }
                        // Deliver every chunk that is next in input order.
                        while flight.get(&next_out).is_some_and(|f| f.result.is_some()) {
                            let f = flight.remove(&next_out).expect("checked above");
                            next_out += 1;
                            self.ctl.running.lock().unwrap_or_else(|e| e.into_inner()).retain(|c| !Arc::ptr_eq(c, &f.ctl));
                            self.deliver(f)?;
                            slots.give();
                            if last_progress.elapsed() >= self.opts.progress_every {
                                last_progress = Instant::now();
                                self.progress.seconds = self.clock.elapsed().as_secs_f64();
                                (self.emit)(JobEvent::Progress(self.progress));
                            }
                        }
                    }
                }
            }
        })();
        // Stop the reader and whatever still runs, and wait for both, so
        // nothing of the job outlives it.
        slots.close();
        for f in flight.values() {
            f.ctl.abort();
        }
        let mut left = flight.values().filter(|f| f.result.is_none()).count();
        drop(flight);
        while left > 0 {
            match rx.recv() {
                Ok(Msg::Ran(..)) => left -= 1,
                Ok(Msg::Read(_) | Msg::End(_)) => {}
                Err(_) => break,
            }
        }
        let _ = reading.join();
        self.ctl.running.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.progress.seconds = self.clock.elapsed().as_secs_f64();
        outcome
    }

    fn deliver(&mut self, f: InFlight) -> Result<()> {
        let out = match f.result.expect("delivered only when finished") {
            Ok(out) => out,
            Err(_) if self.ctl.is_aborted() => return Err(aborted()),
            Err(e) => return Err(at_row(e, f.first_row)),
        };
        let rows = out.tensors.iter().find(|t| t.name == "scores").and_then(|t| t.dims.first().copied()).unwrap_or(0) as u64;
        let errors = out.tensors.iter().find(|t| t.name == "error_row").and_then(|t| t.dims.first().copied()).unwrap_or(0) as u64;
        match &mut self.writer {
            Some(w) => w.write(f.first_row, &out.tensors)?,
            None => {
                if !self.ctl.take_credit() {
                    return Err(aborted());
                }
                (self.emit)(JobEvent::Chunk { first_row: f.first_row, output: out });
            }
        }
        self.progress.rows_done += rows;
        self.progress.errors += errors;
        self.progress.bytes_done = f.end_byte.saturating_sub(self.span_start).min(self.progress.bytes_total);
        Ok(())
    }
}

/// Numbers a chunk's row error within the whole input.
fn at_row(e: Error, first_row: usize) -> Error {
    match e {
        Error::InvalidInput { message, input, row: Some(r), field } => Error::InvalidInput { message, input, row: Some(first_row + r), field },
        e => e,
    }
}
