//! What a scheduler's requests did, for `stats()` in-process: successes,
//! failures by error code, time per stage (queue, pre-processing,
//! inference, post-processing) summed, and the distribution of each
//! request's total in log-spaced buckets (four per power of two, so a
//! percentile is read to within 19 %). Lock-free: one atomic add per figure
//! per request, on the thread that settles it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

use crate::error::{ErrorCode, Result};
use crate::request::RunOutput;

/// Buckets per power of two.
const SUB: f64 = 4.0;
/// Bucket count: up to 2^28 µs (about 4.5 minutes), then the last bucket.
const BUCKETS: usize = 28 * 4 + 1;

pub struct RunStats {
    ok: AtomicU64,
    failed: [AtomicU64; ErrorCode::ALL.len()],
    queue_us: AtomicU64,
    pre_us: AtomicU64,
    infer_us: AtomicU64,
    post_us: AtomicU64,
    batch_rows: AtomicU64,
    total: [AtomicU64; BUCKETS],
}

/// A snapshot of a scheduler's figures since it started.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunStatsSnapshot {
    /// Requests that succeeded.
    pub success: u64,
    /// Failed requests by error code (codes with none left out).
    pub failures: std::collections::BTreeMap<&'static str, u64>,
    /// Model executions (a merged batch counts once).
    pub executions: u64,
    /// Mean time per successful request in each stage, µs.
    pub mean_queue_us: f64,
    pub mean_pre_us: f64,
    pub mean_infer_us: f64,
    pub mean_post_us: f64,
    /// Mean rows of the batch a request ran in.
    pub mean_batch_rows: f64,
    /// Percentiles of a successful request's queue + engine time, µs (bucket upper bounds).
    pub p50_us: Option<f64>,
    pub p90_us: Option<f64>,
    pub p99_us: Option<f64>,
    /// Requests queued now, and queued or running.
    pub queued: usize,
    pub pending: usize,
}

fn bucket(us: u64) -> usize {
    if us <= 1 {
        return 0;
    }
    (((us as f64).log2() * SUB).ceil() as usize).min(BUCKETS - 1)
}

fn upper(b: usize) -> f64 {
    2f64.powf(b as f64 / SUB)
}

impl Default for RunStats {
    fn default() -> Self {
        RunStats {
            ok: AtomicU64::new(0),
            failed: std::array::from_fn(|_| AtomicU64::new(0)),
            queue_us: AtomicU64::new(0),
            pre_us: AtomicU64::new(0),
            infer_us: AtomicU64::new(0),
            post_us: AtomicU64::new(0),
            batch_rows: AtomicU64::new(0),
            total: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl RunStats {
    /// Counts one settled request.
    pub fn record(&self, r: &Result<RunOutput>) {
        match r {
            Ok(out) => {
                let t = &out.timing;
                self.ok.fetch_add(1, Relaxed);
                self.queue_us.fetch_add(t.queue_us, Relaxed);
                self.pre_us.fetch_add(t.pre_us, Relaxed);
                self.infer_us.fetch_add(t.infer_us, Relaxed);
                self.post_us.fetch_add(t.post_us, Relaxed);
                self.batch_rows.fetch_add(t.batch_rows as u64, Relaxed);
                self.total[bucket(t.queue_us + t.pre_us + t.infer_us + t.post_us)].fetch_add(1, Relaxed);
            }
            Err(e) => self.fail(e.kind()),
        }
    }

    /// Counts a request that failed before it ran.
    pub fn fail(&self, code: ErrorCode) {
        if let Some(i) = ErrorCode::ALL.iter().position(|&c| c == code) {
            self.failed[i].fetch_add(1, Relaxed);
        }
    }

    pub fn snapshot(&self, executions: u64, queued: usize, pending: usize) -> RunStatsSnapshot {
        let ok = self.ok.load(Relaxed);
        let mean = |a: &AtomicU64| if ok == 0 { 0.0 } else { a.load(Relaxed) as f64 / ok as f64 };
        let counts: Vec<u64> = self.total.iter().map(|c| c.load(Relaxed)).collect();
        let n: u64 = counts.iter().sum();
        let pct = |q: f64| -> Option<f64> {
            if n == 0 {
                return None;
            }
            let rank = ((q * n as f64).ceil() as u64).max(1);
            let mut seen = 0;
            counts.iter().position(|&c| {
                seen += c;
                seen >= rank
            })
            .map(upper)
        };
        RunStatsSnapshot {
            success: ok,
            failures: ErrorCode::ALL.iter().zip(&self.failed).filter_map(|(c, n)| Some((c.as_str(), n.load(Relaxed))).filter(|(_, n)| *n > 0)).collect(),
            executions,
            mean_queue_us: mean(&self.queue_us),
            mean_pre_us: mean(&self.pre_us),
            mean_infer_us: mean(&self.infer_us),
            mean_post_us: mean(&self.post_us),
            mean_batch_rows: mean(&self.batch_rows),
            p50_us: pct(0.5),
            p90_us: pct(0.9),
            p99_us: pct(0.99),
            queued,
            pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::timing::Timing;

    fn ok(queue: u64, infer: u64) -> Result<RunOutput> {
        Ok(RunOutput { tensors: vec![], micros: 0, timing: Timing { queue_us: queue, infer_us: infer, batch_rows: 4, ..Timing::default() } })
    }

    #[test]
    fn counts_means_failures_and_percentiles() {
        let s = RunStats::default();
        for i in 0..100 {
            s.record(&ok(10, 90 + i % 2));
        }
        s.record(&ok(0, 10_000));
        s.record(&Err(Error::Timeout("t".into())));
        s.record(&Err(Error::Timeout("t".into())));
        s.fail(ErrorCode::Overloaded);
        let snap = s.snapshot(7, 1, 2);
        assert_eq!(snap.success, 101);
        assert_eq!(snap.failures.get("ERR_TIMEOUT"), Some(&2));
        assert_eq!(snap.failures.get("ERR_OVERLOADED"), Some(&1));
        assert_eq!(snap.failures.len(), 2);
        assert!((snap.mean_batch_rows - 4.0).abs() < 1e-12);
        // 100 or 101 µs: the bucket above (within 19 %); the slow one sets p99's tail only past rank 100.
        let p50 = snap.p50_us.unwrap();
        assert!((100.0..=120.0).contains(&p50), "{p50}");
        assert!(snap.p99_us.unwrap() <= 120.0);
        assert_eq!((snap.executions, snap.queued, snap.pending), (7, 1, 2));
        assert_eq!(RunStats::default().snapshot(0, 0, 0).p50_us, None);
    }
}
