//! The flat-list submission protocol that sessions and pipelines share: one
//! native call per event-loop turn queues every request of that turn. Each
//! entry is `stride` values: its id, what the work needs, then `timeoutMs`
//! and `priority | undefined`. A request refused (malformed, overloaded or
//! disposed) settles through the hub like any failed run, so nothing can fail
//! once requests are queued: the call throws only before queuing any.

use std::sync::Arc;

use oxinfer_core::request::{deadline, level};
use oxinfer_core::{Error as CoreError, Request, Result as CoreResult, RunControl, Scheduler, Work};

use crate::hub::{Event, Hub};
use crate::js::{self, Env, Val};
use crate::payload::Format;

/// Reads `list` entry by entry (`work` builds each one's work from its
/// values, through an accessor by position) and queues them under one lock.
/// Errors: only a list that cannot be read at all, before anything is queued.
pub fn submit_list(
    env: Env,
    list: Val,
    stride: u32,
    scheduler: CoreResult<Arc<Scheduler>>,
    hub: &Arc<Hub>,
    format: Format,
    work: impl Fn(&dyn Fn(u32) -> CoreResult<Val>) -> CoreResult<Work>,
) -> CoreResult<()> {
    let n = js::array_len(env, list)?;
    let mut failed: Vec<(u64, CoreError)> = Vec::new();
    let mut reqs = Vec::with_capacity((n / stride) as usize);
    for k in (0..n).step_by(stride as usize) {
        let at = |i: u32| js::element(env, list, k + i);
        // An entry without a readable id cannot be settled: refuse the list whole.
        let id = js::number(env, at(0)?)?.ok_or_else(|| CoreError::InvalidArgument("malformed submission".into()))? as u64;
        let parsed = (|| -> CoreResult<Request> {
            // Disposed: every request is refused alike.
            scheduler.as_ref().map_err(Clone::clone)?;
            let work = work(&at)?;
            let hub = Arc::clone(hub);
            Ok(Request {
                id,
                deadline: deadline(js::number(env, at(stride - 2)?)?),
                priority: level(js::number(env, at(stride - 1)?)?.map(|p| p as u32)),
                work,
                ctl: Arc::new(RunControl::new()),
                done: Box::new(move |r| hub.push(Event::Run(id, r, format))),
            })
        })();
        match parsed {
            Ok(req) => reqs.push(req),
            Err(e) => failed.push((id, e)),
        }
    }
    if let Ok(s) = &scheduler {
        failed.extend(s.submit_many(reqs));
    }
    for (id, e) in failed {
        hub.push(Event::Run(id, Err(e), format));
    }
    Ok(())
}
