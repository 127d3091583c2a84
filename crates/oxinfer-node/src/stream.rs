//! `NativeStream`: a stateful stream on a session (see oxinfer-core's `stream`).

use std::sync::Arc;

use napi::bindgen_prelude::*;
use oxinfer_core::stream::Stream;

use crate::errors::IntoNapi;
use crate::feeds;
use crate::hub::{Event, Hub};
use crate::payload::Format;

#[napi]
pub struct NativeStream {
    pub(crate) inner: Stream,
    pub(crate) hub: Arc<Hub>,
    /// Output indices each call returns.
    pub(crate) outputs: Vec<usize>,
    /// Calls borrow their feeds' buffers (the session's `zeroCopy`).
    pub(crate) zero_copy: bool,
}

#[napi]
impl NativeStream {
    /// Queues a call behind the stream's earlier ones; its outcome arrives
    /// through the hub under `id`. Throws (encoded) for invalid feeds or a
    /// closed stream.
    #[napi(catch_unwind)]
    pub fn call(&self, env: Env, id: f64, feeds: Unknown, priority: Option<u32>) -> Result<()> {
        let inputs = feeds::queued(feeds::parse(env.raw(), feeds.value().value).js()?, self.zero_copy);
        let hub = Arc::clone(&self.hub);
        let id = id as u64;
        let level = oxinfer_core::request::level(priority);
        self.inner.call(id, inputs, self.outputs.clone(), level, Box::new(move |r| hub.push(Event::Run(id, r, Format::Plain)))).js()
    }

    /// True when the call was still waiting behind others and is now removed
    /// (settle it now); otherwise a running call is asked to stop.
    #[napi]
    pub fn abort(&self, id: f64) -> bool {
        self.inner.abort(id as u64).is_some()
    }

    /// Frees the state; waiting calls settle with ERR_DISPOSED. False if already closed.
    #[napi]
    pub fn close(&self) -> bool {
        self.inner.close()
    }

    /// Calls made and not yet settled.
    #[napi(getter)]
    pub fn pending(&self) -> u32 {
        self.inner.pending() as u32
    }
}
