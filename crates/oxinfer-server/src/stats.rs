//! Per-version request statistics, in the shape of Triton's statistics
//! extension (`GET /v2/models/{m}/stats`): counts and cumulative durations,
//! kept with atomics so that recording costs a few nanoseconds.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use oxinfer_core::{OutputTensor, Timing};

use crate::error::{Result, ServerError};

#[derive(Default)]
pub struct Counter {
    pub count: AtomicU64,
    pub ns: AtomicU64,
}

impl Counter {
    fn add(&self, ns: u64) {
        self.count.fetch_add(1, Relaxed);
        self.ns.fetch_add(ns, Relaxed);
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({ "count": self.count.load(Relaxed), "ns": self.ns.load(Relaxed) })
    }
}

#[derive(Default)]
pub struct Stats {
    pub success: Counter,
    pub fail: Counter,
    pub queue: Counter,
    pub compute_input: Counter,
    pub compute_infer: Counter,
    pub compute_output: Counter,
    /// Rows inferred (Triton's inference_count).
    pub inference_count: AtomicU64,
    /// Milliseconds since the epoch of the last request.
    pub last_inference: AtomicU64,
    /// Executions already exported as the Prometheus counter.
    pub exec_seen: AtomicU64,
    /// Failures by error code.
    pub failures: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

impl Stats {
    pub fn record(&self, result: &Result<(Vec<OutputTensor>, Timing)>, rows: u64, took: Duration) {
        let ns = took.as_nanos() as u64;
        self.last_inference.store(oxinfer_core::timing::unix_ms(), Relaxed);
        match result {
            Ok((_, t)) => {
                self.success.add(ns);
                self.queue.add(t.queue_us * 1000);
                self.compute_input.add(t.pre_us * 1000);
                self.compute_infer.add(t.infer_us * 1000);
                self.compute_output.add(t.post_us * 1000);
                self.inference_count.fetch_add(rows, Relaxed);
            }
            Err(e) => {
                self.fail.add(ns);
                self.count_failure(e);
            }
        }
    }

    pub fn count_failure(&self, e: &ServerError) {
        *self.failures.lock().unwrap_or_else(|p| p.into_inner()).entry(e.code()).or_default() += 1;
    }
}
