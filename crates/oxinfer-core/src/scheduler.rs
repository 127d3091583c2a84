//! Runs requests for one backend on its own worker threads, one per slot,
//! from a FIFO queue. Nothing here ever blocks the caller's thread on a run.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::backend::{Backend, RunControl};
use crate::queue::Queue;
use crate::error::{Error, Result};
use crate::tensor::{InputTensor, OutputTensor};


/// Where a request's time went, in microseconds, and the batch it ran in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timing {
    /// From submission until its batch started (including any hold for more requests).
    pub queue_us: u64,
    /// Merging a batch's inputs, or a pipeline's pre-processing and feature assembly.
    pub pre_us: u64,
    /// The engine's run of the whole batch.
    pub infer_us: u64,
    /// Splitting a batch's outputs, or a pipeline's post-processing.
    pub post_us: u64,
    /// Rows along the batch axis in the batch the request ran in.
    pub batch_rows: u32,
    /// Requests merged into that batch.
    pub batch_requests: u32,
}

/// What a finished run hands back.
pub struct RunOutput {
    pub tensors: Vec<OutputTensor>,
    /// Engine time charged to this request (its share of a merged batch), in
    /// microseconds: what the inline estimate learns from.
    pub micros: u64,
    pub timing: Timing,
}

/// Called exactly once with the outcome of a job, on a worker thread.
pub type Completion = Box<dyn FnOnce(Result<RunOutput>) + Send>;

/// What a job does with the slot it is given.
pub enum Work {
    /// A plain model run of validated inputs: the scheduler may merge it with
    /// other compatible runs along the batch axis (dynamic batching).
    Run { inputs: Vec<InputTensor>, outputs: Vec<usize> },
    /// Anything else, such as a whole pipeline (pre-processing, the model,
    /// post-processing), which reports its own phases in the `Timing`.
    Custom(Box<dyn FnOnce(&dyn Backend, usize, &RunControl, &mut Timing) -> Result<Vec<OutputTensor>> + Send>),
}

/// The work of a plain model run of validated `inputs`.
pub fn model_run(inputs: Vec<InputTensor>, outputs: Vec<usize>) -> Work {
    Work::Run { inputs, outputs }
}

pub struct Job {
    pub id: u64,
    pub work: Work,
    /// A job still queued at this instant is settled with `ERR_TIMEOUT` instead of run.
    pub deadline: Option<Instant>,
    /// Priority level, 0 the most urgent (clamped to the scheduler's levels).
    pub priority: usize,
    pub ctl: Arc<RunControl>,
    pub done: Completion,
}

/// Where a job stood when its caller aborted it.
pub enum Aborted {
    /// Still queued: removed, and handed back so the caller can settle it now.
    Dequeued(Job),
    /// Executing: the engine was asked to stop; its completion reports `ERR_ABORTED`.
    Signalled,
    /// Already finished, or never known.
    Unknown,
}

struct State {
    queue: Queue,
    running: Vec<(u64, Arc<RunControl>)>,
    disposed: bool,
    /// Workers waiting for work: a submit wakes one only if some wait.
    idle: usize,
    /// Workers holding a partial batch open for more requests.
    gathering: usize,
}

struct Shared {
    backend: Arc<dyn Backend>,
    max_batch_rows: usize,
    max_queue: usize,
    max_delay: std::time::Duration,
    preferred: Vec<usize>,
    layout: crate::batch::Layout,
    state: Mutex<State>,
    ready: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct Scheduler {
    shared: Arc<Shared>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

/// How the workers treat queued runs.
#[derive(Clone, Debug, Default)]
pub struct SchedulerOptions {
    /// Lower the workers' OS priority below the caller's.
    pub low_priority: bool,
    /// Merge compatible queued runs into batches of up to this many rows
    /// along axis 0 (0 or 1: no merging). A batch is cut as soon as a worker
    /// is free, so batches grow with load.
    pub max_batch_rows: usize,
    /// Refuse new requests with `ERR_OVERLOADED` while this many are queued (0: no limit).
    pub max_queue: usize,
    /// Priority levels (at least 1).
    pub priority_levels: usize,
    /// How long a batch may wait for more requests after its first was
    /// queued, when not full (0: cut as soon as a worker is free).
    pub max_delay: std::time::Duration,
    /// Batch sizes (in rows) to cut at when more requests wait than fit: the
    /// largest of these that the queue can fill, as Triton does. While a batch
    /// is held open (`max_delay`), reaching one of them cuts it early.
    pub preferred_batch_rows: Vec<usize>,
    /// Batch axes, shared and padded inputs.
    pub layout: crate::batch::Layout,
}

fn disposed() -> Error {
    Error::Disposed("the session was disposed".into())
}

/// Runs one request, turning a panic anywhere in the work into `ERR_BACKEND`.
/// `queued` is when it was submitted (None: run inline, never queued).
pub(crate) fn execute(backend: &dyn Backend, slot: usize, work: Work, ctl: &RunControl, queued: Option<Instant>, layout: &crate::batch::Layout) -> Result<RunOutput> {
    if ctl.is_aborted() {
        return Err(Error::Aborted("the run was aborted".into()));
    }
    let start = Instant::now();
    let mut timing = Timing { queue_us: queued.map_or(0, |q| start.saturating_duration_since(q).as_micros() as u64), batch_requests: 1, ..Timing::default() };
    let tensors = catch_unwind(AssertUnwindSafe(|| match work {
        Work::Run { inputs, outputs } => {
            timing.batch_rows = layout.rows(&inputs).unwrap_or(0) as u32;
            backend.run(slot, &inputs, &outputs, ctl)
        }
        Work::Custom(f) => f(backend, slot, ctl, &mut timing),
    }))
    .unwrap_or_else(|p| Err(Error::from_panic(p)))?;
    let micros = start.elapsed().as_micros() as u64;
    if timing.infer_us == 0 {
        timing.infer_us = micros.saturating_sub(timing.pre_us + timing.post_us);
    }
    Ok(RunOutput { tensors, micros, timing })
}

impl Scheduler {
    /// Starts one worker per backend slot. `low_priority` lowers the workers'
    /// OS priority below the JS thread's (Linux: nice +10), so inference
    /// yields the CPU to the event loop when both want it.
    pub fn new(backend: Arc<dyn Backend>) -> Result<Self> {
        Self::with_options(backend, SchedulerOptions { low_priority: true, ..Default::default() })
    }

    pub fn with_options(backend: Arc<dyn Backend>, options: SchedulerOptions) -> Result<Self> {
        let low_priority = options.low_priority;
        let shared = Arc::new(Shared {
            backend,
            max_batch_rows: options.max_batch_rows,
            max_queue: options.max_queue,
            max_delay: options.max_delay,
            preferred: {
                let mut p: Vec<usize> = options.preferred_batch_rows.iter().copied().filter(|&r| r > 0 && (options.max_batch_rows <= 1 || r <= options.max_batch_rows)).collect();
                p.sort_unstable();
                p.dedup();
                p
            },
            layout: options.layout.clone(),
            state: Mutex::new(State { queue: Queue::new(options.priority_levels), running: Vec::new(), disposed: false, idle: 0, gathering: 0 }),
            ready: Condvar::new(),
        });
        let mut workers = Vec::new();
        // Each worker reports once its priority is set, so a caller never sees
        // a worker still running at the old priority.
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        for slot in 0..shared.backend.slots() {
            let s = Arc::clone(&shared);
            let ready = ready_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("oxinfer-run-{slot}"))
                .spawn(move || {
                    if low_priority {
                        crate::priority::lower_current_thread();
                    }
                    let _ = ready.send(());
                    worker(s, slot)
                })
                .map_err(|e| Error::Backend(format!("cannot start a worker thread: {e}")))?;
            workers.push(handle);
        }
        drop(ready_tx);
        for _ in 0..workers.len() {
            let _ = ready_rx.recv();
        }
        Ok(Scheduler { shared, workers: Mutex::new(workers) })
    }

    /// Queues a job. Fails with `ERR_DISPOSED` (dropping the job) once
    /// disposed, or `ERR_OVERLOADED` past `max_queue`.
    pub fn submit(&self, job: Job) -> Result<()> {
        match self.submit_many(vec![job]).pop() {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    /// Queues many jobs under one lock, with one wake-up. Returns the ids of
    /// the jobs refused (dropped) and why: all of them once disposed, and
    /// those past `max_queue`.
    pub fn submit_many(&self, jobs: Vec<Job>) -> Vec<(u64, Error)> {
        let mut refused = Vec::new();
        let mut st = self.shared.lock();
        for job in jobs {
            if st.disposed {
                refused.push((job.id, disposed()));
            } else if self.shared.max_queue > 0 && st.queue.len() >= self.shared.max_queue {
                refused.push((job.id, Error::Overloaded(format!("the queue is full ({} requests waiting); try again later", st.queue.len()))));
            } else {
                let level = job.priority;
                st.queue.push(level, job);
            }
        }
        let (idle, gathering) = (st.idle, st.gathering);
        drop(st);
        if gathering > 0 {
            // A worker holding a batch open must see the newcomers.
            self.shared.ready.notify_all();
        } else if idle > 0 {
            self.shared.ready.notify_one();
        }
        refused
    }

    /// Runs a request on the calling thread, using slot 0. Meant for runs
    /// measured to be shorter than a cross-thread hop, when the session is idle.
    pub fn run_now(&self, work: Work) -> Result<RunOutput> {
        if self.shared.lock().disposed {
            return Err(disposed());
        }
        execute(&*self.shared.backend, 0, work, &RunControl::new(), None, &self.shared.layout)
    }

    pub fn abort(&self, id: u64) -> Aborted {
        let mut st = self.shared.lock();
        if let Some(job) = st.queue.remove(id) {
            job.ctl.abort();
            return Aborted::Dequeued(job);
        }
        if let Some((_, ctl)) = st.running.iter().find(|(jid, _)| *jid == id) {
            ctl.abort();
            return Aborted::Signalled;
        }
        Aborted::Unknown
    }

    /// Queued plus executing requests.
    pub fn pending(&self) -> usize {
        let st = self.shared.lock();
        st.queue.len() + st.running.len()
    }

    /// Refuses new work, settles queued jobs with `ERR_DISPOSED`, and calls
    /// `finished` on another thread once the executing runs have ended.
    /// Returns false if it was already disposed.
    pub fn dispose(&self, finished: Box<dyn FnOnce() + Send>) -> bool {
        let drained: Vec<Job> = {
            let mut st = self.shared.lock();
            if st.disposed {
                drop(st);
                finished();
                return false;
            }
            st.disposed = true;
            st.queue.drain()
        };
        self.shared.ready.notify_all();
        for job in drained {
            let _ = catch_unwind(AssertUnwindSafe(|| (job.done)(Err(disposed()))));
        }
        let workers: Vec<JoinHandle<()>> = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|e| e.into_inner()));
        let wait = move || {
            for w in workers {
                let _ = w.join();
            }
            finished();
        };
        // Waited for on a thread of its own; should none be available, the
        // wait happens here instead, so `finished` is always called.
        let pending = Arc::new(Mutex::new(Some(wait)));
        let theirs = Arc::clone(&pending);
        let spawned = std::thread::Builder::new().name("oxinfer-dispose".into()).spawn(move || {
            if let Some(w) = theirs.lock().unwrap_or_else(|e| e.into_inner()).take() {
                w();
            }
        });
        if spawned.is_err() {
            if let Some(w) = pending.lock().unwrap_or_else(|e| e.into_inner()).take() {
                w();
            }
        }
        true
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        if !st.disposed {
            st.disposed = true;
            let drained: Vec<Job> = st.queue.drain();
            drop(st);
            self.shared.ready.notify_all();
            for job in drained {
                let _ = catch_unwind(AssertUnwindSafe(|| (job.done)(Err(disposed()))));
            }
        }
    }
}

fn worker(shared: Arc<Shared>, slot: usize) {
    loop {
        let (queued_at, job) = {
            let mut st = shared.lock();
            loop {
                if let Some((queued_at, job)) = st.queue.pop() {
                    if job.deadline.is_some_and(|d| Instant::now() >= d) {
                        drop(st);
                        let _ = catch_unwind(AssertUnwindSafe(|| (job.done)(Err(Error::Timeout("the request waited in the queue past its timeout".into())))));
                        st = shared.lock();
                        continue;
                    }
                    st.running.push((job.id, Arc::clone(&job.ctl)));
                    let mut more = take_compatible(&mut st, &job, &[], &shared);
                    // Not full yet: hold the batch open until the first request has waited max_delay.
                    if !shared.max_delay.is_zero() && !batch_done(&shared, &job, &more) && shared.layout.rows(job_inputs(&job)).is_some() {
                        let until = queued_at + shared.max_delay;
                        st.gathering += 1;
                        while !st.disposed && !batch_done(&shared, &job, &more) {
                            let now = Instant::now();
                            if now >= until {
                                break;
                            }
                            st = shared.ready.wait_timeout(st, until - now).unwrap_or_else(|e| e.into_inner()).0;
                            let got = take_compatible(&mut st, &job, &more, &shared);
                            more.extend(got);
                        }
                        st.gathering -= 1;
                    }
                    trim_to_preferred(&mut st, &shared, &job, &mut more);
                    if !more.is_empty() {
                        drop(st);
                        let mut batch = vec![(queued_at, job)];
                        batch.extend(more.into_iter().map(|(_, at, j)| (at, j)));
                        crate::batch::run_merged(&*shared.backend, slot, batch, &shared.layout, &|id| {
                            let mut st = shared.lock();
                            if let Some(pos) = st.running.iter().position(|(jid, _)| *jid == id) {
                                st.running.swap_remove(pos);
                            }
                        });
                        st = shared.lock();
                        continue;
                    }
                    break (queued_at, job);
                }
                if st.disposed {
                    return;
                }
                st.idle += 1;
                st = shared.ready.wait(st).unwrap_or_else(|e| e.into_inner());
                st.idle -= 1;
            }
        };
        let Job { id, work, ctl, done, .. } = job;
        let result = execute(&*shared.backend, slot, work, &ctl, Some(queued_at), &shared.layout);
        {
            let mut st = shared.lock();
            if let Some(pos) = st.running.iter().position(|(jid, _)| *jid == id) {
                st.running.swap_remove(pos);
            }
        }
        let _ = catch_unwind(AssertUnwindSafe(|| done(result)));
    }
}

/// A job taken from the queue with its level and the instant it was queued.
type Taken = (usize, Instant, Job);

/// Whether a held-open batch should stop waiting: full, or at a preferred size.
fn batch_done(shared: &Shared, first: &Job, more: &[Taken]) -> bool {
    let rows = batch_rows(first, more, &shared.layout);
    rows >= shared.max_batch_rows || shared.preferred.contains(&rows) || shared.preferred.last().is_some_and(|&p| rows >= p)
}

/// Cuts a batch at the largest preferred size it reaches, putting the rest
/// back at the head of their queues, in order.
fn trim_to_preferred(st: &mut State, shared: &Shared, first: &Job, more: &mut Vec<Taken>) {
    // Disposed meanwhile: the queue is drained for good, so nothing goes back.
    if st.disposed {
        return;
    }
    let mut rows = batch_rows(first, more, &shared.layout);
    let Some(&target) = shared.preferred.iter().rev().find(|&&p| p <= rows) else { return };
    let mut back = Vec::new();
    while rows > target {
        let Some(last) = more.pop() else { break };
        rows -= shared.layout.rows(job_inputs(&last.2)).unwrap_or(0);
        back.push(last);
    }
    if back.is_empty() {
        return;
    }
    for (_, _, job) in &back {
        if let Some(pos) = st.running.iter().position(|(jid, _)| *jid == job.id) {
            st.running.swap_remove(pos);
        }
    }
    // Popped last-first, so pushing each to the front restores arrival order.
    for (level, at, job) in back {
        st.queue.unshift(level, at, job);
    }
    if st.idle > 0 {
        shared.ready.notify_one();
    }
}

/// Removes from the queue the runs that can join `first` in one batch
/// (compatible shapes, same outputs, within the padding cap), up to
/// `max_batch_rows` rows in all, in priority then arrival order. They are
/// marked running.
fn take_compatible(st: &mut State, first: &Job, already: &[Taken], shared: &Shared) -> Vec<Taken> {
    let (max_rows, layout) = (shared.max_batch_rows, &shared.layout);
    let Work::Run { inputs, outputs } = &first.work else { return Vec::new() };
    if layout.rows(inputs).is_none() {
        return Vec::new();
    }
    let mut rows = batch_rows(first, already, layout);
    if max_rows <= 1 || rows >= max_rows {
        return Vec::new();
    }
    // (rows, length) of each member so far, for the padding cap.
    let mut shape: Vec<(usize, usize)> = std::iter::once(first).chain(already.iter().map(|t| &t.2)).map(|j| (layout.rows(job_inputs(j)).unwrap_or(0), layout.length(job_inputs(j)))).collect();
    let now = Instant::now();
    let taken = st.queue.take_while_some(|job| {
        if rows >= max_rows {
            return None;
        }
        let expired = job.deadline.is_some_and(|d| now >= d);
        let fits = match &job.work {
            Work::Run { inputs: other, outputs: o } if !expired && o == outputs && layout.compatible(inputs, other) => layout
                .rows(other)
                .filter(|r| rows + r <= max_rows)
                .map(|r| (r, layout.length(other)))
                .filter(|&(r, l)| layout.waste_ok(shape.iter().copied().chain(std::iter::once((r, l))))),
            _ => None,
        };
        if let Some((r, l)) = fits {
            rows += r;
            shape.push((r, l));
        }
        Some(fits.is_some())
    });
    for (_, _, job) in &taken {
        st.running.push((job.id, Arc::clone(&job.ctl)));
    }
    taken
}

fn job_inputs(job: &Job) -> &[InputTensor] {
    match &job.work {
        Work::Run { inputs, .. } => inputs,
        Work::Custom(_) => &[],
    }
}

/// Rows of `first` plus `more` along their batch axes.
fn batch_rows(first: &Job, more: &[Taken], layout: &crate::batch::Layout) -> usize {
    std::iter::once(first).chain(more.iter().map(|t| &t.2)).map(|j| layout.rows(job_inputs(j)).unwrap_or(0)).sum()
}
