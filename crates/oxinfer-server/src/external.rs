//! Models whose logic lives outside the engine (JS functions registered by
//! the binding): served through the same protocol, decoding and encoding,
//! with each request handed to the model's `call` and answered when it
//! calls back. The slow path: every request crosses to the JS thread.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use oxinfer_core::{InputTensor, OutputTensor, Timing};

use crate::error::{Result, ServerError};
use crate::model::TensorMeta;
use crate::stats::Stats;

/// Called once with a request's outputs or its error.
pub type Reply = Box<dyn FnOnce(Result<Vec<OutputTensor>>) + Send>;

/// A model answered by code outside the engine.
pub trait ExternalModel: Send + Sync {
    /// Handles one request: `wanted` are the output names asked for (empty: all).
    fn call(&self, inputs: Vec<InputTensor>, wanted: Vec<String>, reply: Reply);
}

/// A registered external model, with what its metadata declares.
pub struct External {
    pub name: String,
    pub model: Arc<dyn ExternalModel>,
    pub inputs: Vec<TensorMeta>,
    pub outputs: Vec<TensorMeta>,
    pub stats: Stats,
}

/// The external models of a server, by name.
#[derive(Default)]
pub struct Externals {
    models: RwLock<BTreeMap<String, Arc<External>>>,
}

impl Externals {
    pub fn add(&self, e: External) {
        self.models.write().unwrap_or_else(|p| p.into_inner()).insert(e.name.clone(), Arc::new(e));
    }

    pub fn get(&self, name: &str) -> Option<Arc<External>> {
        self.models.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    pub fn all(&self) -> Vec<Arc<External>> {
        self.models.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }
}

impl External {
    /// Runs one request, checking its inputs against the declared ones by name.
    /// A handler that has not answered within `timeout` fails the request
    /// with ERR_TIMEOUT (504), so that neither the request nor a graceful
    /// close waits on it for ever.
    pub async fn infer(&self, inputs: Vec<InputTensor>, wanted: &[String], timeout: std::time::Duration) -> Result<(Vec<OutputTensor>, Timing)> {
        let started = Instant::now();
        let result = match tokio::time::timeout(timeout, self.run(inputs, wanted)).await {
            Ok(r) => r,
            Err(_) => Err(ServerError::Core(oxinfer_core::Error::Timeout(format!("model '{}' did not answer within {} ms", self.name, timeout.as_millis())))),
        };
        let rows = 1;
        let timed = result.map(|o| (o, Timing { infer_us: started.elapsed().as_micros() as u64, batch_rows: 1, batch_requests: 1, ..Timing::default() }));
        self.stats.record(&timed, rows, started.elapsed());
        timed
    }

    async fn run(&self, inputs: Vec<InputTensor>, wanted: &[String]) -> Result<Vec<OutputTensor>> {
        for t in &inputs {
            if !self.inputs.iter().any(|m| m.name == t.name) && !self.inputs.is_empty() {
                return Err(ServerError::bad(format!("unknown input '{}' of model '{}'; it has {}", t.name, self.name, crate::model::names(&self.inputs))));
            }
        }
        for w in wanted {
            if !self.outputs.iter().any(|m| &m.name == w) && !self.outputs.is_empty() {
                return Err(ServerError::bad(format!("unknown output '{w}' of model '{}'; it has {}", self.name, crate::model::names(&self.outputs))));
            }
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.model.call(inputs, wanted.to_vec(), Box::new(move |r| {
            let _ = tx.send(r);
        }));
        let mut out = rx.await.map_err(|_| ServerError::Core(oxinfer_core::Error::Backend(format!("model '{}' dropped a request without answering it", self.name))))??;
        if !wanted.is_empty() {
            out.retain(|t| wanted.contains(&t.name));
            out.sort_by_key(|t| wanted.iter().position(|w| *w == t.name));
        }
        Ok(out)
    }
}
