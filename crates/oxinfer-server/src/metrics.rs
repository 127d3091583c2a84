//! Prometheus metrics, named after Triton's with an `oxinfer_` prefix:
//! request outcomes, per-phase duration histograms, batch sizes, and the
//! queue depth and in-flight gauges an autoscaler reads. Gauges and the
//! execution counter are read from the schedulers when scraped.

use std::sync::atomic::Ordering::Relaxed;

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::model::Version;
use crate::repository::Repository;

pub struct Metrics {
    pub registry: Registry,
    success: IntCounterVec,
    failure: IntCounterVec,
    count: IntCounterVec,
    exec: IntCounterVec,
    request_us: HistogramVec,
    queue_us: HistogramVec,
    input_us: HistogramVec,
    infer_us: HistogramVec,
    output_us: HistogramVec,
    batch: HistogramVec,
    pending: IntGaugeVec,
    queued: IntGaugeVec,
    ready: IntGaugeVec,
    pub http_in_flight: IntGauge,
}

const MV: &[&str] = &["model", "version"];

fn us_buckets() -> Vec<f64> {
    vec![10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0, 25_000.0, 50_000.0, 100_000.0, 250_000.0, 1_000_000.0]
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("metric definition");
            registry.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let hist = |name: &str, help: &str, buckets: Vec<f64>| {
            let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), MV).expect("metric definition");
            registry.register(Box::new(h.clone())).expect("unique metric");
            h
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGaugeVec::new(Opts::new(name, help), MV).expect("metric definition");
            registry.register(Box::new(g.clone())).expect("unique metric");
            g
        };
        let http_in_flight = IntGauge::new("oxinfer_http_requests_in_flight", "HTTP requests being served").expect("metric definition");
        registry.register(Box::new(http_in_flight.clone())).expect("unique metric");
        Metrics {
            success: counter("oxinfer_inference_request_success", "Successful inference requests", MV),
            failure: counter("oxinfer_inference_request_failure", "Failed inference requests, by error code", &["model", "version", "reason"]),
            count: counter("oxinfer_inference_count", "Rows inferred (a request of n rows counts n)", MV),
            exec: counter("oxinfer_inference_exec_count", "Model executions (a merged batch counts once; in-process runs included)", MV),
            request_us: hist("oxinfer_inference_request_duration_us", "Whole request, decoding to encoding, in microseconds", us_buckets()),
            queue_us: hist("oxinfer_inference_queue_duration_us", "Time queued before the batch started, in microseconds", us_buckets()),
            input_us: hist("oxinfer_inference_compute_input_duration_us", "Batch merging or pipeline pre-processing, in microseconds", us_buckets()),
            infer_us: hist("oxinfer_inference_compute_infer_duration_us", "The engine's run, in microseconds", us_buckets()),
            output_us: hist("oxinfer_inference_compute_output_duration_us", "Batch splitting or pipeline post-processing, in microseconds", us_buckets()),
            batch: hist("oxinfer_inference_batch_size", "Rows in the batch each request ran in", vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0]),
            pending: gauge("oxinfer_inference_pending_request_count", "Requests queued or executing (in-process ones included)"),
            queued: gauge("oxinfer_inference_queue_size", "Requests waiting in the queue"),
            ready: gauge("oxinfer_model_ready", "1 when the model version is loaded and serving"),
            http_in_flight,
            registry,
        }
    }

    /// Records one finished request.
    pub fn observe(&self, v: &Version, ok: Result<&oxinfer_core::Timing, &'static str>, rows: u64, took_us: f64) {
        let ver = v.version.to_string();
        let labels = [v.model.as_str(), ver.as_str()];
        match ok {
            Ok(t) => {
                self.success.with_label_values(&labels).inc();
                self.count.with_label_values(&labels).inc_by(rows);
                self.queue_us.with_label_values(&labels).observe(t.queue_us as f64);
                self.input_us.with_label_values(&labels).observe(t.pre_us as f64);
                self.infer_us.with_label_values(&labels).observe(t.infer_us as f64);
                self.output_us.with_label_values(&labels).observe(t.post_us as f64);
                self.batch.with_label_values(&labels).observe(t.batch_rows.max(1) as f64);
            }
            Err(code) => self.failure.with_label_values(&[labels[0], labels[1], code]).inc(),
        }
        self.request_us.with_label_values(&labels).observe(took_us);
    }

    /// The text exposition, with the gauges read now.
    pub fn render(&self, repo: &Repository) -> String {
        self.ready.reset();
        self.pending.reset();
        self.queued.reset();
        for v in repo.all() {
            let ver = v.version.to_string();
            let labels = [v.model.as_str(), ver.as_str()];
            self.ready.with_label_values(&labels).set(1);
            self.pending.with_label_values(&labels).set(v.scheduler.pending() as i64);
            self.queued.with_label_values(&labels).set(v.scheduler.queued() as i64);
            let now = v.scheduler.executions();
            let seen = v.stats.exec_seen.swap(now, Relaxed);
            self.exec.with_label_values(&labels).inc_by(now.saturating_sub(seen));
        }
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
