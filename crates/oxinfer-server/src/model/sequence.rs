//! Stateful models served through Triton's sequence parameters
//! (`sequence_id`, `sequence_start`, `sequence_end`): each sequence is a
//! core stream whose state outputs feed its state inputs natively between
//! requests, as `session.stream` does in-process. Idle sequences are closed
//! after `max_sequence_idle_microseconds` (default 60 s), and at most
//! `max_sequences` are open at once.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oxinfer_core::stream::{Stream, StreamSpec};
use oxinfer_core::{InputTensor, ModelInfo, RunOutput, Scheduler};
use serde_json::{Map, Value};

use crate::error::{Result, ServerError};
use crate::repository::config::SequenceBatching;

pub struct Sequences {
    /// (state output, state input) index pairs.
    state: Vec<(usize, usize)>,
    live: Mutex<HashMap<String, (Arc<Stream>, Instant)>>,
    idle: Duration,
    max: usize,
    open: Arc<AtomicUsize>,
}

/// A request's sequence parameters.
#[derive(Clone, Debug)]
pub struct Control {
    pub id: String,
    pub start: bool,
    pub end: bool,
}

impl Control {
    /// Reads them from the request's parameters; None when the request names no sequence.
    pub fn read(p: &Map<String, Value>) -> Result<Option<Control>> {
        let id = match p.get("sequence_id") {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n > 0) => n.to_string(),
            Some(Value::String(s)) if !s.is_empty() => format!("s:{s}"),
            Some(v) => return Err(ServerError::bad(format!("parameters.sequence_id must be a positive integer or a non-empty string, got {v}"))),
        };
        let flag = |k: &str| match p.get(k) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(ServerError::bad(format!("parameters.{k} must be a boolean, got {v}"))),
        };
        Ok(Some(Control { id, start: flag("sequence_start")?, end: flag("sequence_end")? }))
    }
}

impl Sequences {
    /// The state pairs named by the configuration, checked against the model.
    pub fn new(info: &ModelInfo, config: &SequenceBatching) -> Result<Sequences> {
        if config.state.is_empty() {
            return Err(ServerError::Repository("sequence_batching needs at least one state pair ({\"input_name\", \"output_name\"})".into()));
        }
        let mut state = Vec::new();
        for s in &config.state {
            let o = info.outputs.iter().position(|v| v.name == s.output_name).ok_or_else(|| ServerError::Repository(format!("sequence_batching: the model has no output '{}'", s.output_name)))?;
            let i = info.inputs.iter().position(|v| v.name == s.input_name).ok_or_else(|| ServerError::Repository(format!("sequence_batching: the model has no input '{}'", s.input_name)))?;
            state.push((o, i));
        }
        let idle = if config.max_sequence_idle_microseconds > 0 { Duration::from_micros(config.max_sequence_idle_microseconds) } else { Duration::from_secs(60) };
        let max = if config.max_sequences > 0 { config.max_sequences.min(1 << 20) as usize } else { 1024 };
        Ok(Sequences { state, live: Mutex::new(HashMap::new()), idle, max, open: Arc::new(AtomicUsize::new(0)) })
    }

    /// Whether input `i` or output `o` is state the server feeds itself.
    pub fn is_state_input(&self, i: usize) -> bool {
        self.state.iter().any(|&(_, si)| si == i)
    }

    pub fn is_state_output(&self, o: usize) -> bool {
        self.state.iter().any(|&(so, _)| so == o)
    }

    /// Open sequences.
    pub fn len(&self) -> usize {
        self.live.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs one step of sequence `c`: opened by `sequence_start`, closed
    /// after `sequence_end` (or when idle too long).
    pub async fn step(&self, scheduler: &Arc<Scheduler>, info: &ModelInfo, c: Control, inputs: Vec<InputTensor>, outputs: Vec<usize>, priority: usize) -> Result<RunOutput> {
        let stream = {
            let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            live.retain(|_, (s, last)| {
                let keep = now.duration_since(*last) < self.idle;
                if !keep {
                    s.close();
                }
                keep
            });
            if c.start {
                if let Some((old, _)) = live.remove(&c.id) {
                    old.close();
                }
                if live.len() >= self.max {
                    return Err(ServerError::Unavailable { message: format!("{} sequences are open, the most this model keeps (sequence_batching.max_sequences); end one or retry later", live.len()), retry_after: Some(1) });
                }
                let s = Stream::open(Arc::clone(scheduler), info, StreamSpec { state: self.state.clone(), initial: vec![] }, Arc::clone(&self.open))?;
                live.insert(c.id.clone(), (Arc::new(s), now));
            }
            let Some((s, last)) = live.get_mut(&c.id) else {
                return Err(ServerError::bad(format!("sequence {} is not open: start it with parameters.sequence_start = true", shown(&c.id))));
            };
            *last = now;
            Arc::clone(s)
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        stream.call(0, inputs, outputs, priority, Box::new(move |r| {
            let _ = tx.send(r);
        }))?;
        let out = rx.await.map_err(|_| ServerError::Core(oxinfer_core::Error::Backend("the sequence step ended without an outcome".into())))?;
        if c.end {
            let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            if live.get(&c.id).is_some_and(|(s, _)| Arc::ptr_eq(s, &stream)) {
                live.remove(&c.id);
            }
            stream.close();
        }
        Ok(out?)
    }

    /// Closes every sequence (the version is being unloaded or replaced).
    pub fn close_all(&self) {
        for (_, (s, _)) in self.live.lock().unwrap_or_else(|e| e.into_inner()).drain() {
            s.close();
        }
    }
}

fn shown(id: &str) -> String {
    match id.strip_prefix("s:") {
        Some(s) => format!("'{s}'"),
        None => id.to_string(),
    }
}
