//! Delivers completions from worker threads to JS. Many completions share one
//! wake-up of the JS thread: the first push schedules a single threadsafe-
//! function call, which drains everything queued by the time it runs.

use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::*;
use napi::sys;
use oxinfer_core::{Result as CoreResult, RunOutput};

use crate::js;
use crate::payload;

pub enum Event {
    /// A run finished (or failed), and how to hand its outputs over.
    Run(u64, CoreResult<RunOutput>, payload::Format),
    /// A batch job's chunk, progress or end (one id, many events).
    Job(u64, oxinfer_core::job::JobEvent),
    /// A dispose finished: every executing run has ended.
    Disposed(u64),
    /// A server request for a JS model (the model's id, the call's id, its
    /// inputs and the outputs asked for).
    JsCall(u64, u64, Vec<oxinfer_core::InputTensor>, Vec<String>),
    /// A socketless HTTP exchange's answer (the Fastify plugin's path).
    Http(u64, oxinfer_server::Answer),
    /// A native log line (pino-compatible JSON) for the log listener.
    Log(u64, String),
    /// A graph request's outcome.
    Graph(u64, CoreResult<payload::GraphDelivery>),
    /// A pipeline's drift event (JSON) for its listener.
    Drift(u64, String),
}

struct Inner {
    events: Vec<Event>,
    /// Null once Node has torn the function down (environment exit).
    tsfn: sys::napi_threadsafe_function,
}

pub struct Hub {
    inner: Mutex<Inner>,
    scheduled: AtomicBool,
}

// SAFETY: the raw tsfn pointer is only used under the mutex, and threadsafe
// functions may be called from any thread.
unsafe impl Send for Hub {}
unsafe impl Sync for Hub {}

impl Hub {
    pub fn push(&self, ev: Event) {
        self.try_push(ev);
    }

    /// Queues `ev` for JS; false when JS has torn the channel down (the event is dropped).
    pub fn try_push(&self, ev: Event) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.tsfn.is_null() {
            return false;
        }
        inner.events.push(ev);
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            // Called under the lock so teardown cannot free the function meanwhile.
            unsafe { sys::napi_call_threadsafe_function(inner.tsfn, ptr::null_mut(), sys::ThreadsafeFunctionCallMode::nonblocking) };
        }
        true
    }

    fn drain(&self) -> Vec<Event> {
        self.scheduled.store(false, Ordering::Release);
        std::mem::take(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()).events)
    }

    /// Puts back events that did not fit this turn's budget, ahead of newer
    /// ones, and asks for another turn.
    fn requeue(&self, mut rest: Vec<Event>) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.tsfn.is_null() {
            return;
        }
        rest.append(&mut inner.events);
        inner.events = rest;
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            unsafe { sys::napi_call_threadsafe_function(inner.tsfn, ptr::null_mut(), sys::ThreadsafeFunctionCallMode::nonblocking) };
        }
    }

    fn tsfn(&self) -> sys::napi_threadsafe_function {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).tsfn
    }
}

unsafe extern "C" fn call_js(env: sys::napi_env, cb: sys::napi_value, context: *mut c_void, _data: *mut c_void) {
    let hub = unsafe { &*(context as *const Hub) };
    let events = hub.drain();
    if env.is_null() || cb.is_null() {
        return;
    }
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| deliver(hub, env, cb, events)));
}

/// Building payloads (mostly copying outputs into JS memory) stops after this
/// long; the rest waits for the next turn so the event loop keeps moving.
const TURN_BUDGET: std::time::Duration = std::time::Duration::from_micros(500);

/// Results up to this size (header and data) share one buffer per delivery,
/// which saves an ArrayBuffer (and its GC bookkeeping) per result.
const SHARED_MAX_RESULT: usize = 4096;
/// The shared buffer's size at most, which bounds what one retained view of a
/// small result keeps alive.
const SHARED_MAX: usize = 256 * 1024;

fn deliver(hub: &Hub, env: sys::napi_env, cb: sys::napi_value, mut events: Vec<Event>) -> CoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let start = std::time::Instant::now();
    // Small results without strings go into one shared buffer, at these offsets.
    let mut shared_len = 0usize;
    let mut places: Vec<Option<(usize, payload::Block)>> = events
        .iter()
        .map(|ev| match ev {
            Event::Run(_, Ok(out), format) => {
                let layout = payload::Block::of(out, *format);
                (!layout.has_strings() && layout.len() <= SHARED_MAX_RESULT && shared_len + layout.len() <= SHARED_MAX).then(|| {
                    let at = shared_len;
                    shared_len += layout.len();
                    (at, layout)
                })
            }
            _ => None,
        })
        .collect();
    let (shared, base) = match (shared_len > 0).then(|| js::new_arraybuffer(env, shared_len)) {
        Some(Ok(b)) => b,
        // No shared buffer: every result gets its own, so none is lost.
        Some(Err(_)) => {
            places.iter_mut().for_each(|p| *p = None);
            (js::null(env)?, ptr::null_mut())
        }
        None => (js::null(env)?, ptr::null_mut()),
    };
    let arr = js::new_array(env, 0)?;
    let mut n = 0u32;
    let mut rest = Vec::new();
    for (ev, place) in events.drain(..).zip(places) {
        // Shared ones are cheap and already have their space, so the budget
        // does not stop them; but once one result waits for the next turn,
        // every later one does too, so results keep their order.
        if n > 0 && (!rest.is_empty() || (place.is_none() && start.elapsed() > TURN_BUDGET)) {
            rest.push(ev);
            continue;
        }
        let (id, val) = match (&ev, place) {
            (Event::Run(id, Ok(out), _), Some((at, layout))) => {
                // SAFETY: `base` has shared_len bytes; this block was placed within them, 8-aligned.
                unsafe { layout.write(out, base.add(at)) };
                (*id, js::new_number(env, at as f64)?)
            }
            (Event::Run(id, r, format), None) => (*id, payload::outcome(env, r, *format)?),
            (Event::Disposed(id), _) => (*id, js::undefined(env)?),
            (Event::Run(_, Err(_), _), Some(_)) => unreachable!("only successes are placed"),
            (Event::Job(id, ev), _) => (*id, payload::job_event(env, ev)?),
            (Event::JsCall(id, call, inputs, wanted), _) => (*id, payload::js_call(env, *call, inputs, wanted)?),
            (Event::Http(id, answer), _) => (*id, payload::http_answer(env, answer)?),
            (Event::Log(id, line), _) | (Event::Drift(id, line), _) => (*id, js::new_string(env, line)?),
            (Event::Graph(id, r), _) => (*id, payload::graph_outcome(env, r)?),
        };
        js::set(env, arr, 2 * n, js::new_number(env, id as f64)?)?;
        js::set(env, arr, 2 * n + 1, val)?;
        n += 1;
    }
    drop(events);
    if !rest.is_empty() {
        hub.requeue(rest);
    }
    let recv = js::undefined(env)?;
    let mut result = ptr::null_mut();
    let args = [arr, shared];
    unsafe { sys::napi_call_function(env, recv, cb, 2, args.as_ptr(), &mut result) };
    Ok(())
}

unsafe extern "C" fn finalize(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    // `data` is the Arc<Hub> handed over at creation; mark it dead, then drop our count.
    let hub = unsafe { Arc::from_raw(data as *const Hub) };
    hub.inner.lock().unwrap_or_else(|e| e.into_inner()).tsfn = ptr::null_mut();
}

/// The JS-visible owner of the completion channel; one per JS environment.
#[napi]
pub struct NativeHub {
    pub(crate) hub: Arc<Hub>,
}

#[napi]
impl NativeHub {
    /// `handler` receives a flat array `[id, payload, id, payload, ...]` and
    /// the buffer that small payloads share (null when none do).
    #[napi(constructor)]
    pub fn new(env: Env, handler: Unknown) -> Result<Self> {
        let hub = Arc::new(Hub { inner: Mutex::new(Inner { events: Vec::new(), tsfn: ptr::null_mut() }), scheduled: AtomicBool::new(false) });
        let raw_env = env.raw();
        let mut name = ptr::null_mut();
        let label = "oxinfer.completions";
        unsafe { sys::napi_create_string_utf8(raw_env, label.as_ptr() as *const _, label.len() as isize, &mut name) };
        let context = Arc::into_raw(Arc::clone(&hub)) as *mut c_void;
        let mut tsfn = ptr::null_mut();
        let status = unsafe {
            sys::napi_create_threadsafe_function(
                raw_env,
                handler.value().value,
                ptr::null_mut(),
                name,
                0,
                1,
                context,
                Some(finalize),
                context,
                Some(call_js),
                &mut tsfn,
            )
        };
        if status != sys::Status::napi_ok {
            unsafe { drop(Arc::from_raw(context as *const Hub)) };
            return Err(crate::errors::to_napi(oxinfer_core::Error::Backend("cannot create the completion channel".into())));
        }
        // Idle by default: JS refs it only while runs are in flight.
        unsafe { sys::napi_unref_threadsafe_function(raw_env, tsfn) };
        hub.inner.lock().unwrap_or_else(|e| e.into_inner()).tsfn = tsfn;
        Ok(NativeHub { hub })
    }

    /// Keeps the process alive while work is in flight.
    #[napi(js_name = "ref")]
    pub fn hold(&self, env: Env) {
        let t = self.hub.tsfn();
        if !t.is_null() {
            unsafe { sys::napi_ref_threadsafe_function(env.raw(), t) };
        }
    }

    #[napi(js_name = "unref")]
    pub fn release(&self, env: Env) {
        let t = self.hub.tsfn();
        if !t.is_null() {
            unsafe { sys::napi_unref_threadsafe_function(env.raw(), t) };
        }
    }
}
