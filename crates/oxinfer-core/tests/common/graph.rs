//! Graph test helpers: real ONNX sessions as node runners.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;

use oxinfer_core::graph::{NodeRunner, SchedulerRunner};
use oxinfer_core::onnx::{ModelSource, OnnxBackend, OnnxOptions};
use oxinfer_core::{Backend, Scheduler, SchedulerOptions};

/// Models by key, as `Graph::build` takes them.
pub type Models = HashMap<String, Arc<dyn NodeRunner>>;

/// A fixture model on one intra-op thread and `pool` engine sessions.
pub fn backend(name: &str, pool: usize) -> Arc<OnnxBackend> {
    let opts = OnnxOptions { intra_op_threads: 1, pool_size: pool, ..OnnxOptions::default() };
    Arc::new(OnnxBackend::load(super::runtime(), ModelSource::Path(super::root().join("__test__/fixtures").join(name)), &opts).unwrap())
}

/// A session of `name`: its backend (to run by hand), scheduler and runner.
pub fn session(name: &str, pool: usize, options: SchedulerOptions) -> (Arc<OnnxBackend>, Arc<Scheduler>, Arc<SchedulerRunner>) {
    let b = backend(name, pool);
    let s = Arc::new(Scheduler::with_options(Arc::clone(&b) as Arc<dyn Backend>, options).unwrap());
    let r = Arc::new(SchedulerRunner::new(Arc::clone(&s), b.info().clone()));
    (b, s, r)
}

/// Scheduler options without batching or priorities.
pub fn plain() -> SchedulerOptions {
    SchedulerOptions { priority_levels: 1, ..Default::default() }
}

pub fn models(list: &[(&str, Arc<dyn NodeRunner>)]) -> Models {
    list.iter().map(|(k, r)| (k.to_string(), Arc::clone(r))).collect()
}
