//! Stateful streams: a model's state outputs fed back as its state inputs
//! from one call to the next, kept in native memory. A stream's calls run in
//! the order they were made, one at a time (each needs the state the last one
//! left); many streams' calls meet in the scheduler, which batches them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::backend::{Dim, ModelInfo, RunControl, ValueKind};
use crate::error::{Error, Result};
use crate::request::{model_run, Completion, Request, RunOutput};
use crate::scheduler::Scheduler;
use crate::tensor::{AlignedBytes, DType, InputData, InputTensor, OutputData, OutputTensor};
use crate::validate;

/// Which output feeds which input, and the state's starting values.
pub struct StreamSpec {
    /// (output index, input index) pairs.
    pub state: Vec<(usize, usize)>,
    /// Starting values by input name; missing ones start as zeros.
    pub initial: Vec<InputTensor>,
}

/// One call: the caller's inputs, the outputs it wants back (model output
/// indices, in order), and where its outcome goes.
struct Call {
    id: u64,
    inputs: Vec<InputTensor>,
    outputs: Vec<usize>,
    priority: usize,
    /// Made with the call, so an abort before it reaches the scheduler still counts.
    ctl: Arc<RunControl>,
    done: Completion,
}

struct Inner {
    /// The current state, one tensor per state input (named as the input).
    state: Vec<InputTensor>,
    pending: VecDeque<Call>,
    /// A call is queued or running in the scheduler.
    busy: bool,
    /// That call's id and control, for abort.
    current: Option<(u64, Arc<RunControl>)>,
    closed: bool,
}

struct Shared {
    inner: Mutex<Inner>,
    scheduler: Arc<Scheduler>,
    info: ModelInfo,
    /// (output index, position among the state tensors).
    feeds: Vec<(usize, usize)>,
    open: Arc<AtomicUsize>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An open stream. Dropping it closes it.
pub struct Stream {
    shared: Arc<Shared>,
}

fn closed() -> Error {
    Error::Disposed("the stream was closed".into())
}

/// Zeros shaped as `input` declares, each dynamic dim taken as 1 (one stream is one row).
fn zeros(name: &str, dtype: DType, dims: &[Dim]) -> Result<InputTensor> {
    if dtype == DType::String {
        return Err(Error::InvalidArgument(format!("state input '{name}' holds strings; give its initial value")));
    }
    let dims: Vec<i64> = dims.iter().map(|d| if let Dim::Fixed(n) = d { *n } else { 1 }).collect();
    let n = crate::tensor::element_count(&dims)?;
    Ok(InputTensor { name: name.into(), dtype, dims, data: InputData::Owned(AlignedBytes::zeroed(n * dtype.size())) })
}

/// An output as the input it feeds next time.
fn as_state(name: &str, t: &OutputTensor) -> InputTensor {
    let data = match &t.data {
        OutputData::Strings(s) => InputData::Strings(s.clone()),
        OutputData::Buffer(b) => InputData::Owned(AlignedBytes::from_slice(b.bytes())),
        // A non-tensor cannot be fed back (inputs are tensors): the next run refuses the empty value.
        OutputData::Value(_) => InputData::Strings(Vec::new()),
    };
    InputTensor { name: name.into(), dtype: t.dtype, dims: t.dims.clone(), data }
}

impl Stream {
    /// Opens a stream on `scheduler`'s model. `open` counts the open streams.
    pub fn open(scheduler: Arc<Scheduler>, info: &ModelInfo, spec: StreamSpec, open: Arc<AtomicUsize>) -> Result<Self> {
        if spec.state.is_empty() {
            return Err(Error::InvalidArgument("a stream needs at least one state output → input pair".into()));
        }
        let mut state = Vec::with_capacity(spec.state.len());
        let mut feeds = Vec::with_capacity(spec.state.len());
        for (k, &(o, i)) in spec.state.iter().enumerate() {
            let (Some(out), Some(inp)) = (info.outputs.get(o), info.inputs.get(i)) else {
                return Err(Error::InvalidArgument("a state pair names an output or input the model lacks".into()));
            };
            if spec.state[..k].iter().any(|&(o2, i2)| o2 == o || i2 == i) {
                return Err(Error::InvalidArgument(format!("output '{}' or input '{}' appears in two state pairs", out.name, inp.name)));
            }
            let (ValueKind::Tensor(od), ValueKind::Tensor(id)) = (&out.kind, &inp.kind) else {
                return Err(Error::InvalidArgument(format!("state pair '{}' → '{}' must be tensors", out.name, inp.name)));
            };
            let (od, id) = (*od, *id);
            // The output must be able to take the input's shape: same rank, equal fixed dims.
            let fits = out.dims.len() == inp.dims.len()
                && out.dims.iter().zip(&inp.dims).all(|(a, b)| !matches!((a, b), (Dim::Fixed(x), Dim::Fixed(y)) if x != y));
            if !fits {
                return Err(Error::InvalidArgument(format!(
                    "state output '{}' {} cannot feed input '{}' {}",
                    out.name,
                    validate::show_dims(&out.dims),
                    inp.name,
                    validate::show_dims(&inp.dims)
                )));
            }
            if od != id {
                return Err(Error::InvalidArgument(format!("state output '{}' is {} but input '{}' is {}", out.name, od.name(), inp.name, id.name())));
            }
            let t = match spec.initial.iter().find(|t| t.name == inp.name) {
                Some(t) => {
                    let t = t.clone();
                    validate::check_given(info, std::slice::from_ref(&t)).map_err(|e| Error::InvalidArgument(format!("initial state: {e}")))?;
                    t
                }
                None => zeros(&inp.name, id, &inp.dims)?,
            };
            state.push(t);
            feeds.push((o, k));
        }
        if let Some(t) = spec.initial.iter().find(|t| !state.iter().any(|s| s.name == t.name)) {
            return Err(Error::InvalidArgument(format!("an initial value is given for '{}', which is not a state input", t.name)));
        }
        open.fetch_add(1, Ordering::SeqCst);
        let inner = Inner { state, pending: VecDeque::new(), busy: false, current: None, closed: false };
        Ok(Stream { shared: Arc::new(Shared { inner: Mutex::new(inner), scheduler, info: info.clone(), feeds, open }) })
    }

    /// Queues a call behind this stream's earlier ones. `inputs` are the
    /// model's other inputs; `outputs` the output indices wanted back.
    /// Fails at once when closed or when the inputs are invalid.
    pub fn call(&self, id: u64, inputs: Vec<InputTensor>, outputs: Vec<usize>, priority: usize, done: Completion) -> Result<()> {
        let s = &self.shared;
        let mut inner = s.lock();
        if inner.closed {
            return Err(closed());
        }
        if let Some(t) = inputs.iter().find(|t| inner.state.iter().any(|st| st.name == t.name)) {
            return Err(Error::invalid_input(&t.name, format!("input '{}' is the stream's state, which the stream feeds itself", t.name)));
        }
        // Validated with the current state, so the error reaches this caller now.
        let mut all = inputs.clone();
        all.extend(inner.state.iter().cloned());
        validate::check_inputs(&s.info, &all)?;
        let call = Call { id, inputs, outputs, priority, ctl: Arc::new(RunControl::new()), done };
        if inner.busy {
            inner.pending.push_back(call);
            return Ok(());
        }
        inner.busy = true;
        inner.current = Some((id, Arc::clone(&call.ctl)));
        drop(inner);
        drive(s, call);
        Ok(())
    }

    /// Removes a call still waiting behind others (true), or asks the
    /// scheduler to abort the running one (its completion reports it).
    pub fn abort(&self, id: u64) -> Option<Completion> {
        let mut inner = self.shared.lock();
        if let Some(pos) = inner.pending.iter().position(|c| c.id == id) {
            return inner.pending.remove(pos).map(|c| c.done);
        }
        if let Some((_, ctl)) = inner.current.as_ref().filter(|(cid, _)| *cid == id) {
            // Marked first: a call not yet handed to the scheduler then fails
            // as aborted when it starts.
            ctl.abort();
            drop(inner);
            // Dequeued, it is settled here so the chain moves on; running, its
            // completion reports the abort.
            if let crate::scheduler::Aborted::Dequeued(job) = self.shared.scheduler.abort(id) {
                (job.done)(Err(Error::Aborted("the run was aborted".into())));
            }
        }
        None
    }

    /// Calls made and not yet settled.
    pub fn pending(&self) -> usize {
        let inner = self.shared.lock();
        inner.pending.len() + inner.busy as usize
    }

    /// Frees the state and rejects waiting calls with `ERR_DISPOSED`. A
    /// running call still settles. Returns false if already closed.
    pub fn close(&self) -> bool {
        let waiting = {
            let mut inner = self.shared.lock();
            if inner.closed {
                return false;
            }
            inner.closed = true;
            inner.state = Vec::new();
            std::mem::take(&mut inner.pending)
        };
        self.shared.open.fetch_sub(1, Ordering::SeqCst);
        for c in waiting {
            (c.done)(Err(closed()));
        }
        true
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.close();
    }
}

/// What became of a call handed to the scheduler.
enum Handed {
    Queued,
    /// Refused (overloaded, say): settled with the error; the next call may go.
    Refused,
    /// The session is gone: this call and every waiting one are settled.
    Gone,
}

/// Submits `call`, then, while calls are refused, the next waiting ones.
fn drive(s: &Arc<Shared>, mut call: Call) {
    loop {
        match submit(s, call) {
            Handed::Queued | Handed::Gone => return,
            Handed::Refused => match take_next(s) {
                Some(c) => call = c,
                None => return,
            },
        }
    }
}

/// The next waiting call, made current; or none, and the stream idle.
fn take_next(s: &Arc<Shared>) -> Option<Call> {
    let mut inner = s.lock();
    match inner.pending.pop_front() {
        Some(c) if !inner.closed => {
            inner.current = Some((c.id, Arc::clone(&c.ctl)));
            Some(c)
        }
        _ => {
            inner.busy = false;
            inner.current = None;
            None
        }
    }
}

/// Hands `call` to the scheduler with the current state; on completion,
/// stores the new state and starts the next waiting call.
fn submit(s: &Arc<Shared>, call: Call) -> Handed {
    let Call { id, mut inputs, outputs, priority, ctl, done } = call;
    let mut wanted = outputs.clone();
    // Where each state output lands among the outputs fetched.
    let mut state_at = Vec::with_capacity(s.feeds.len());
    for &(o, _) in &s.feeds {
        state_at.push(wanted.iter().position(|&w| w == o).unwrap_or_else(|| {
            wanted.push(o);
            wanted.len() - 1
        }));
    }
    {
        let inner = s.lock();
        if inner.closed {
            drop(inner);
            done(Err(closed()));
            return Handed::Refused;
        }
        inputs.extend(inner.state.iter().cloned());
    }
    let shared = Arc::clone(s);
    // Reachable from here too, so a refused submission still settles the call.
    let done = Arc::new(Mutex::new(Some(done)));
    let theirs = Arc::clone(&done);
    let job = Request {
        id,
        work: model_run(inputs, wanted),
        deadline: None,
        priority,
        ctl,
        done: Box::new(move |r: Result<RunOutput>| {
            let r = r.map(|mut out| {
                let mut inner = shared.lock();
                if !inner.closed {
                    for (k, &at) in state_at.iter().enumerate() {
                        let name = inner.state[shared.feeds[k].1].name.clone();
                        inner.state[shared.feeds[k].1] = as_state(&name, &out.tensors[at]);
                    }
                }
                drop(inner);
                out.tensors.truncate(outputs.len());
                out
            });
            if let Some(d) = theirs.lock().unwrap_or_else(|e| e.into_inner()).take() {
                d(r);
            }
            if let Some(c) = take_next(&shared) {
                drive(&shared, c);
            }
        }),
    };
    let Err(e) = s.scheduler.submit(job) else { return Handed::Queued };
    if let Some(d) = done.lock().unwrap_or_else(|e| e.into_inner()).take() {
        d(Err(e.clone()));
    }
    if !matches!(e, Error::Disposed(_)) {
        return Handed::Refused;
    }
    // The session is gone: every waiting call fails alike.
    let waiting = {
        let mut inner = s.lock();
        inner.busy = false;
        inner.current = None;
        std::mem::take(&mut inner.pending)
    };
    for c in waiting {
        (c.done)(Err(e.clone()));
    }
    Handed::Gone
}
