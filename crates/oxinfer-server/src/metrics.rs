//! Prometheus metrics, named after Triton's with an `oxinfer_` prefix:
//! request outcomes, per-phase duration histograms, batch sizes, and the
//! queue depth and in-flight gauges an autoscaler reads. Gauges and the
//! execution counter are read from the schedulers when scraped.

use std::sync::atomic::Ordering::Relaxed;

use std::sync::Mutex;

use prometheus::proto::{MetricFamily, MetricType};
use prometheus::{Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};
use serde_json::{json, Map, Value};

use crate::external::Externals;
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
    /// Graph switch nodes: the variant a request gets now, each variant's
    /// requests and p95 engine time (read from the graphs when scraped).
    switch_current: IntGaugeVec,
    switch_changes: IntGaugeVec,
    switch_chosen: IntGaugeVec,
    switch_p95: IntGaugeVec,
    /// Pipelines with a monitor: each feature's drift statistics and alarm
    /// over its current window (computed when scraped).
    drift_stat: GaugeVec,
    drift_alarm: IntGaugeVec,
    /// Online quality from feedback (accuracy, precision, recall, auc, mae, rmse).
    quality: GaugeVec,
    /// Open feature stores: each view's reads (by outcome), mean latency and writes.
    store_keys: GaugeVec,
    store_reads: GaugeVec,
    store_latency: GaugeVec,
    /// Each graph node's time per request (wall, and queue wait).
    node_us: HistogramVec,
    node_queue_us: HistogramVec,
    /// A pipeline's business metrics (`monitor.metrics`), total and over the window.
    business: GaugeVec,
    /// A `feedback` switch's trial: mean loss and outcomes per arm, and its status.
    trial_loss: GaugeVec,
    trial_samples: IntGaugeVec,
    trial_status: IntGaugeVec,
    pub http_in_flight: IntGauge,
    /// One scrape at a time: a scrape resets and refills the gauges.
    scrape: Mutex<()>,
    /// Every family's name, help and type, in registration order, so that
    /// families with no samples yet are still listed for a merging registry.
    described: Vec<(String, String, &'static str)>,
}

const MV: &[&str] = &["model", "version"];

fn us_buckets() -> Vec<f64> {
    vec![10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0, 25_000.0, 50_000.0, 100_000.0, 250_000.0, 1_000_000.0]
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let described = std::cell::RefCell::new(Vec::new());
        let add = |c: Box<dyn prometheus::core::Collector>, name: &str, help: &str, kind: &'static str| {
            registry.register(c).expect("unique metric");
            described.borrow_mut().push((name.to_string(), help.to_string(), kind));
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("metric definition");
            add(Box::new(c.clone()), name, help, "counter");
            c
        };
        let hist_with = |name: &str, help: &str, buckets: Vec<f64>, labels: &[&str]| {
            let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels).expect("metric definition");
            add(Box::new(h.clone()), name, help, "histogram");
            h
        };
        let hist = |name: &str, help: &str, buckets: Vec<f64>| hist_with(name, help, buckets, MV);
        let hist_of = |name: &str, help: &str, labels: &[&str]| hist_with(name, help, us_buckets(), labels);
        let gauge_of = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("metric definition");
            add(Box::new(g.clone()), name, help, "gauge");
            g
        };
        let gauge = |name: &str, help: &str| gauge_of(name, help, MV);
        let float_gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = GaugeVec::new(Opts::new(name, help), labels).expect("metric definition");
            add(Box::new(g.clone()), name, help, "gauge");
            g
        };
        const SW: &[&str] = &["model", "version", "node"];
        const SWV: &[&str] = &["model", "version", "node", "variant"];
        let (in_flight, in_flight_help) = ("oxinfer_http_requests_in_flight", "HTTP requests being served");
        let http_in_flight = IntGauge::new(in_flight, in_flight_help).expect("metric definition");
        add(Box::new(http_in_flight.clone()), in_flight, in_flight_help, "gauge");
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
            switch_current: gauge_of("oxinfer_graph_switch_variant", "A graph switch node's current variant (index in its spec)", SW),
            switch_changes: gauge_of("oxinfer_graph_switch_changes", "Changes of a graph switch node's current variant since it loaded", SW),
            switch_chosen: gauge_of("oxinfer_graph_switch_requests", "Requests a graph switch node sent to each variant since it loaded", SWV),
            switch_p95: gauge_of("oxinfer_graph_switch_p95_us", "p95 engine time of each variant over the switch's window, in microseconds", SWV),
            drift_stat: float_gauge(
                "oxinfer_drift_statistic",
                "A monitored feature's drift statistic over its current window (psi, ks, ks_p, missing_p, chi2, chi2_p, js)",
                &["model", "version", "feature", "statistic"],
            ),
            quality: float_gauge("oxinfer_quality", "Online quality over a pipeline's feedback window (accuracy, precision, recall, auc, mae, rmse; feedback: outcomes received)", &["model", "version", "metric"]),
            store_keys: float_gauge("oxinfer_feature_store_keys", "Keys looked up in a feature store view since it opened, by result (hit, miss, stale)", &["store", "view", "result"]),
            store_reads: float_gauge("oxinfer_feature_store_reads", "Batch reads of a feature store view since it opened, by outcome (ok, failed), and rows written (written)", &["store", "view", "outcome"]),
            store_latency: float_gauge("oxinfer_feature_store_read_latency_us", "Mean and largest batch-read latency of a feature store view, in microseconds", &["store", "view", "stat"]),
            node_us: hist_of("oxinfer_graph_node_duration_us", "A graph node's time per request, from its start to its settling (queue wait included), in microseconds", &["model", "version", "node"]),
            node_queue_us: hist_of("oxinfer_graph_node_queue_duration_us", "A graph model node's queue wait per request, in microseconds", &["model", "version", "node"]),
            business: float_gauge("oxinfer_business_metric", "A pipeline's business metric (monitor.metrics): scope total since loading, or window over the last rows", &["model", "version", "metric", "scope"]),
            trial_loss: float_gauge("oxinfer_graph_trial_loss", "Mean loss of each arm of a feedback switch's trial (1 - accuracy, MAE or MSE)", &["model", "version", "node", "arm"]),
            trial_samples: gauge_of("oxinfer_graph_trial_samples", "Outcomes scored for each arm of a feedback switch's trial", &["model", "version", "node", "arm"]),
            trial_status: gauge_of("oxinfer_graph_trial_status", "A feedback switch's trial: 0 running, 1 challenger promoted, 2 challenger retired, 3 undecided", SW),
            drift_alarm: gauge_of("oxinfer_drift_alarm", "1 while a monitored feature drifts (see the pipeline spec's monitor)", &["model", "version", "feature"]),
            http_in_flight,
            scrape: Mutex::new(()),
            described: described.take(),
            registry,
        }
    }

    /// Records one finished request of `model` version `version`.
    pub fn observe(&self, model: &str, version: &str, ok: Result<&oxinfer_core::Timing, &'static str>, rows: u64, took_us: f64) {
        let labels = [model, version];
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

    /// Records the nodes of one graph request: (node, wall µs, queue µs).
    pub fn observe_nodes(&self, model: &str, version: &str, nodes: &[(String, u64, u64)]) {
        for (node, wall, queue) in nodes {
            let l = [model, version, node.as_str()];
            self.node_us.with_label_values(&l).observe(*wall as f64);
            self.node_queue_us.with_label_values(&l).observe(*queue as f64);
        }
    }

    /// Every family, with the gauges read now from the schedulers (and the
    /// JS models, which are always ready).
    fn gather(&self, repo: &Repository, externals: &Externals) -> Vec<MetricFamily> {
        let _one = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        self.ready.reset();
        self.pending.reset();
        self.queued.reset();
        for g in [&self.switch_current, &self.switch_changes, &self.switch_chosen, &self.switch_p95, &self.drift_alarm, &self.trial_samples, &self.trial_status] {
            g.reset();
        }
        self.drift_stat.reset();
        self.trial_loss.reset();
        self.business.reset();
        for g in [&self.store_keys, &self.store_reads, &self.store_latency] {
            g.reset();
        }
        for store in oxinfer_core::store::all() {
            let st = store.stats();
            for v in &st.views {
                let l = |x: &'static str| [st.name.as_str(), v.view.as_str(), x];
                self.store_keys.with_label_values(&l("hit")).set(v.hits as f64);
                self.store_keys.with_label_values(&l("miss")).set(v.misses as f64);
                self.store_keys.with_label_values(&l("stale")).set(v.stale as f64);
                self.store_reads.with_label_values(&l("ok")).set(v.lookups.saturating_sub(v.failures) as f64);
                self.store_reads.with_label_values(&l("failed")).set(v.failures as f64);
                self.store_reads.with_label_values(&l("written")).set(v.writes as f64);
                self.store_latency.with_label_values(&l("mean")).set(v.mean_latency_us);
                self.store_latency.with_label_values(&l("max")).set(v.max_latency_us as f64);
            }
        }
        self.quality.reset();
        for v in repo.all() {
            let ver = v.version.to_string();
            let labels = [v.model.as_str(), ver.as_str()];
            self.ready.with_label_values(&labels).set(1);
            self.pending.with_label_values(&labels).set(v.pending() as i64);
            self.queued.with_label_values(&labels).set(v.queued() as i64);
            let now = v.executions();
            let seen = v.stats.exec_seen.swap(now, Relaxed);
            self.exec.with_label_values(&labels).inc_by(now.saturating_sub(seen));
            if let Some(f) = v.feedback() {
                let q = f.quality();
                let metrics = [("feedback", Some(q.feedback as f64)), ("accuracy", q.accuracy), ("precision", q.precision), ("recall", q.recall), ("auc", q.auc), ("mae", q.mae), ("rmse", q.rmse)];
                for (name, value) in metrics {
                    if let Some(x) = value {
                        self.quality.with_label_values(&[labels[0], labels[1], name]).set(x);
                    }
                }
            }
            if let crate::model::Kind::Pipeline(p) = &v.kind {
                for b in p.business().map(|b| b.values()).unwrap_or_default() {
                    for (scope, x) in [("total", b.total), ("window", b.window)] {
                        if let Some(x) = x {
                            self.business.with_label_values(&[labels[0], labels[1], b.name.as_str(), scope]).set(x);
                        }
                    }
                }
            }
            if let Some(m) = v.monitor() {
                for f in m.report().features {
                    let fl = [labels[0], labels[1], f.name.as_str()];
                    self.drift_alarm.with_label_values(&fl).set(f.drifted as i64);
                    let stats = [("psi", f.psi), ("ks", f.ks), ("ks_p", f.ks_p), ("missing_p", f.missing_p), ("chi2", f.chi2), ("chi2_p", f.chi2_p), ("js", f.js)];
                    for (s, value) in stats {
                        if let Some(x) = value {
                            self.drift_stat.with_label_values(&[labels[0], labels[1], f.name.as_str(), s]).set(x);
                        }
                    }
                }
            }
            if let crate::model::Kind::Graph(g) = &v.kind {
                for sw in g.graph.switch_stats() {
                    let node = [labels[0], labels[1], sw.node.as_str()];
                    self.switch_current.with_label_values(&node).set(sw.current as i64);
                    self.switch_changes.with_label_values(&node).set(sw.switches as i64);
                    for var in &sw.variants {
                        let l = [labels[0], labels[1], sw.node.as_str(), var.name.as_str()];
                        self.switch_chosen.with_label_values(&l).set(var.chosen as i64);
                        if let Some(p) = var.p95_us {
                            self.switch_p95.with_label_values(&l).set(p as i64);
                        }
                    }
                    if let Some(t) = &sw.trial {
                        use oxinfer_core::graph::trial::Status;
                        let status = match t.status {
                            Status::Running => 0,
                            Status::Promoted => 1,
                            Status::Retired => 2,
                            Status::Undecided => 3,
                        };
                        self.trial_status.with_label_values(&node).set(status);
                        for (arm, k) in [("champion", 0), ("challenger", 1)] {
                            let l = [labels[0], labels[1], sw.node.as_str(), arm];
                            self.trial_samples.with_label_values(&l).set(t.samples[k] as i64);
                            if let Some(x) = t.loss[k] {
                                self.trial_loss.with_label_values(&l).set(x);
                            }
                        }
                    }
                }
            }
        }
        for x in externals.all() {
            self.ready.with_label_values(&[x.name.as_str(), "1"]).set(1);
        }
        self.registry.gather()
    }

    /// The text exposition (what `GET /metrics` answers).
    pub fn render(&self, repo: &Repository, externals: &Externals) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.gather(repo, externals), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// The same figures as prom-client's `metric.get()` shapes them
    /// (`[{name, help, type, values: [{labels, value, metricName?}]}]`), so
    /// that a host service's prom-client registry can merge them.
    pub fn families_json(&self, repo: &Repository, externals: &Externals) -> Value {
        let families = self.gather(repo, externals);
        let list = self.described.iter().map(|(name, help, kind)| {
            let values = families.iter().find(|f| f.name() == name).map_or_else(Vec::new, values_json);
            json!({ "name": name, "help": help, "type": kind, "values": values, "aggregator": "sum" })
        });
        Value::Array(list.collect())
    }
}

/// A family's samples as prom-client lists them (histograms as `_bucket`, `_sum` and `_count`).
fn values_json(f: &MetricFamily) -> Vec<Value> {
    let name = f.name();
    let mut values = Vec::new();
    let labels_of = |m: &prometheus::proto::Metric| -> Map<String, Value> { m.get_label().iter().map(|l| (l.name().to_string(), Value::from(l.value()))).collect() };
    for m in f.get_metric() {
        let labels = labels_of(m);
        match f.get_field_type() {
            MetricType::COUNTER => values.push(json!({ "labels": labels, "value": m.get_counter().get_value() })),
            MetricType::GAUGE => values.push(json!({ "labels": labels, "value": m.get_gauge().get_value() })),
            MetricType::HISTOGRAM => {
                let h = m.get_histogram();
                let bucket = |le: Value, count: u64| {
                    let mut l = labels.clone();
                    l.insert("le".into(), le);
                    json!({ "metricName": format!("{name}_bucket"), "labels": l, "value": count })
                };
                for b in h.get_bucket() {
                    values.push(bucket(Value::from(b.upper_bound()), b.cumulative_count()));
                }
                values.push(bucket(Value::from("+Inf"), h.get_sample_count()));
                values.push(json!({ "metricName": format!("{name}_sum"), "labels": labels, "value": h.get_sample_sum() }));
                values.push(json!({ "metricName": format!("{name}_count"), "labels": labels, "value": h.get_sample_count() }));
            }
            _ => {}
        }
    }
    values
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
