//! The worker loop: runs requests for one backend on its own worker threads,
//! one per slot, from the priority queue, cutting merged batches as workers
//! free up. Nothing here ever blocks the caller's thread on a run.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::backend::{Backend, RunControl};
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::queue::Queue;
use crate::request::{execute, Request, RunOutput, Work};

/// Where a request stood when its caller aborted it.
pub enum Aborted {
    /// Still queued: removed, and handed back so the caller can settle it now.
    Dequeued(Request),
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
    layout: Layout,
    state: Mutex<State>,
    ready: Condvar,
    /// Model executions so far (a merged batch counts once), inline ones included.
    executions: std::sync::atomic::AtomicU64,
    /// What the requests did, for `stats()`.
    stats: crate::runstats::RunStats,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

thread_local! {
    /// Set on the schedulers' worker threads.
    static WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the calling thread is one of the schedulers' workers (never a
/// caller's thread, such as the JS thread): work that follows a completion
/// may run here without blocking a caller.
pub fn on_worker() -> bool {
    WORKER.with(|w| w.get())
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
    pub layout: Layout,
}

fn disposed() -> Error {
    Error::Disposed("the session was disposed".into())
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
            executions: Default::default(),
            stats: Default::default(),
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
                    WORKER.with(|w| w.set(true));
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

    /// Queues a request. Fails with `ERR_DISPOSED` (dropping the request) once
    /// disposed, or `ERR_OVERLOADED` past `max_queue`.
    pub fn submit(&self, req: Request) -> Result<()> {
        match self.submit_many(vec![req]).pop() {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    /// Queues many requests under one lock, with one wake-up. Returns the ids of
    /// the requests refused (dropped) and why: all of them once disposed, and
    /// those past `max_queue`.
    pub fn submit_many(&self, requests: Vec<Request>) -> Vec<(u64, Error)> {
        let mut refused = Vec::new();
        let mut st = self.shared.lock();
        for req in requests {
            if st.disposed {
                refused.push((req.id, disposed()));
            } else if self.shared.max_queue > 0 && st.queue.len() >= self.shared.max_queue {
                refused.push((req.id, Error::Overloaded(format!("the queue is full ({} requests waiting); try again later", st.queue.len()))));
            } else {
                let level = req.priority;
                st.queue.push(level, req);
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
        for (_, e) in &refused {
            self.shared.stats.fail(e.kind());
        }
        refused
    }

    /// What the requests did since the scheduler started (in-process `stats()`).
    pub fn stats(&self) -> crate::runstats::RunStatsSnapshot {
        let (queued, pending) = {
            let st = self.shared.lock();
            (st.queue.len(), st.queue.len() + st.running.len())
        };
        self.shared.stats.snapshot(self.executions(), queued, pending)
    }

    /// The engine this scheduler runs on.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.shared.backend
    }

    /// Runs a request on the calling thread, using slot 0. Meant for runs
    /// measured to be shorter than a cross-thread hop, when the session is idle.
    pub fn run_now(&self, work: Work) -> Result<RunOutput> {
        if self.shared.lock().disposed {
            return Err(disposed());
        }
        self.shared.executions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let r = execute(&*self.shared.backend, 0, work, &RunControl::new(), None, &self.shared.layout);
        self.shared.stats.record(&r);
        r
    }

    /// Model executions so far: a merged batch counts once (Triton's
    /// `execution_count`), runs made inline count too.
    pub fn executions(&self) -> u64 {
        self.shared.executions.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Requests waiting in the queue (not yet executing).
    pub fn queued(&self) -> usize {
        self.shared.lock().queue.len()
    }

    pub fn abort(&self, id: u64) -> Aborted {
        let mut st = self.shared.lock();
        if let Some(req) = st.queue.remove(id) {
            req.ctl.abort();
            return Aborted::Dequeued(req);
        }
        if let Some((_, ctl)) = st.running.iter().find(|(rid, _)| *rid == id) {
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

    /// Refuses new work, settles queued requests with `ERR_DISPOSED`, and calls
    /// `finished` on another thread once the executing runs have ended.
    /// Returns false if it was already disposed.
    pub fn dispose(&self, finished: Box<dyn FnOnce() + Send>) -> bool {
        let drained: Vec<Request> = {
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
        for req in drained {
            let _ = catch_unwind(AssertUnwindSafe(|| (req.done)(Err(disposed()))));
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
            let drained: Vec<Request> = st.queue.drain();
            drop(st);
            self.shared.ready.notify_all();
            for req in drained {
                let _ = catch_unwind(AssertUnwindSafe(|| (req.done)(Err(disposed()))));
            }
        }
    }
}

fn worker(shared: Arc<Shared>, slot: usize) {
    let finished = |id: u64, r: &Result<RunOutput>| {
        shared.stats.record(r);
        let mut st = shared.lock();
        forget(&mut st, id);
    };
    let mut st = shared.lock();
    loop {
        let Some((queued_at, req)) = st.queue.pop() else {
            if st.disposed {
                return;
            }
            st.idle += 1;
            st = shared.ready.wait(st).unwrap_or_else(|e| e.into_inner());
            st.idle -= 1;
            continue;
        };
        if req.deadline.is_some_and(|d| Instant::now() >= d) {
            drop(st);
            time_out(&shared, req);
            st = shared.lock();
            continue;
        }
        st.running.push((req.id, Arc::clone(&req.ctl)));
        let mut more = take_compatible(&mut st, &req, &[], &shared);
        let held = !shared.max_delay.is_zero() && !batch_done(&shared, &req, &more) && req.work.rows(&shared.layout).is_some();
        // Not full yet: hold the batch open until the first request has waited max_delay.
        if held {
            let until = queued_at + shared.max_delay;
            st.gathering += 1;
            while !st.disposed && !batch_done(&shared, &req, &more) {
                let now = Instant::now();
                if now >= until {
                    break;
                }
                st = shared.ready.wait_timeout(st, until - now).unwrap_or_else(|e| e.into_inner()).0;
                let got = take_compatible(&mut st, &req, &more, &shared);
                more.extend(got);
            }
            st.gathering -= 1;
        }
        trim_to_preferred(&mut st, &shared, &req, &mut more);
        let mut batch = Vec::with_capacity(1 + more.len());
        batch.push((queued_at, req));
        batch.extend(more.into_iter().map(|(_, at, r)| (at, r)));
        // A hold counts as time in the queue: whoever's deadline passed meanwhile times out.
        let mut expired = Vec::new();
        if held {
            let now = Instant::now();
            let (late, live): (Vec<_>, Vec<_>) = batch.into_iter().partition(|(_, r)| r.deadline.is_some_and(|d| now >= d));
            for (_, r) in &late {
                forget(&mut st, r.id);
            }
            expired = late;
            batch = live;
        }
        drop(st);
        for (_, r) in expired {
            time_out(&shared, r);
        }
        if !batch.is_empty() {
            shared.executions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if batch.len() > 1 {
            crate::batch::run_merged(&*shared.backend, slot, batch, &shared.layout, &finished);
        } else if let Some((queued_at, req)) = batch.pop() {
            let Request { id, work, ctl, done, .. } = req;
            let result = execute(&*shared.backend, slot, work, &ctl, Some(queued_at), &shared.layout);
            finished(id, &result);
            let _ = catch_unwind(AssertUnwindSafe(|| done(result)));
        }
        st = shared.lock();
    }
}

/// No longer counts `id` as executing.
fn forget(st: &mut State, id: u64) {
    if let Some(pos) = st.running.iter().position(|(rid, _)| *rid == id) {
        st.running.swap_remove(pos);
    }
}

fn time_out(shared: &Shared, req: Request) {
    shared.stats.fail(crate::error::ErrorCode::Timeout);
    let _ = catch_unwind(AssertUnwindSafe(|| (req.done)(Err(Error::Timeout("the request waited in the queue past its timeout".into())))));
}

/// A request taken from the queue with its level and the instant it was queued.
type Taken = (usize, Instant, Request);

/// Whether a held-open batch should stop waiting: full, or at a preferred size.
fn batch_done(shared: &Shared, first: &Request, more: &[Taken]) -> bool {
    let rows = batch_rows(first, more, &shared.layout);
    rows >= shared.max_batch_rows || shared.preferred.contains(&rows) || shared.preferred.last().is_some_and(|&p| rows >= p)
}

/// Cuts a batch at the largest preferred size it reaches, putting the rest
/// back at the head of their queues, in order.
fn trim_to_preferred(st: &mut State, shared: &Shared, first: &Request, more: &mut Vec<Taken>) {
    // Disposed meanwhile: the queue is drained for good, so nothing goes back.
    if st.disposed {
        return;
    }
    let mut rows = batch_rows(first, more, &shared.layout);
    let Some(&target) = shared.preferred.iter().rev().find(|&&p| p <= rows) else { return };
    let mut back = Vec::new();
    while rows > target {
        let Some(last) = more.pop() else { break };
        rows -= last.2.work.rows(&shared.layout).unwrap_or(0);
        back.push(last);
    }
    if back.is_empty() {
        return;
    }
    for (_, _, req) in &back {
        forget(st, req.id);
    }
    // Popped last-first, so pushing each to the front restores arrival order.
    for (level, at, req) in back {
        st.queue.unshift(level, at, req);
    }
    if st.idle > 0 {
        shared.ready.notify_one();
    }
}

/// Removes from the queue the requests that can join `first` in one batch
/// (the same kind, compatible shapes or the same pipeline, within the padding
/// cap), up to `max_batch_rows` rows in all, in priority then arrival order.
/// They are marked running.
fn take_compatible(st: &mut State, first: &Request, already: &[Taken], shared: &Shared) -> Vec<Taken> {
    let (max_rows, layout) = (shared.max_batch_rows, &shared.layout);
    if first.work.rows(layout).is_none() {
        return Vec::new();
    }
    // A sequence, map (a ZipMap) or optional output has no rows to split among requests: such runs go alone.
    if let crate::request::Work::Run { outputs, .. } = &first.work {
        let info = shared.backend.info();
        if outputs.iter().any(|&o| info.outputs.get(o).is_some_and(|v| !matches!(v.kind, crate::backend::ValueKind::Tensor(_)))) {
            return Vec::new();
        }
    }
    let mut rows = batch_rows(first, already, layout);
    if max_rows <= 1 || rows >= max_rows {
        return Vec::new();
    }
    // (rows, length) of each member so far, for the padding cap.
    let mut shape: Vec<(usize, usize)> = std::iter::once(first).chain(already.iter().map(|t| &t.2)).map(|r| (r.work.rows(layout).unwrap_or(0), r.work.length(layout))).collect();
    let now = Instant::now();
    let taken = st.queue.take_while_some(|req| {
        if rows >= max_rows {
            return None;
        }
        let expired = req.deadline.is_some_and(|d| now >= d);
        let fits = Some(&req.work)
            .filter(|w| !expired && first.work.joins(w, layout))
            .and_then(|w| w.rows(layout).map(|r| (r, w.length(layout))))
            .filter(|&(r, l)| rows + r <= max_rows && layout.waste_ok(shape.iter().copied().chain(std::iter::once((r, l)))));
        if let Some((r, l)) = fits {
            rows += r;
            shape.push((r, l));
        }
        Some(fits.is_some())
    });
    for (_, _, req) in &taken {
        st.running.push((req.id, Arc::clone(&req.ctl)));
    }
    taken
}

/// Rows of `first` plus `more` along their batch axes.
fn batch_rows(first: &Request, more: &[Taken], layout: &Layout) -> usize {
    std::iter::once(first).chain(more.iter().map(|t| &t.2)).map(|r| r.work.rows(layout).unwrap_or(0)).sum()
}
