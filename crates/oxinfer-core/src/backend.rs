//! The engine abstraction. A backend owns a loaded model and a fixed number of
//! execution slots; the scheduler decides which slot runs what.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::error::Result;
use crate::tensor::{DType, InputTensor, OutputTensor};

/// One dimension of a declared input or output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dim {
    Fixed(i64),
    Symbolic(String),
    /// Dynamic and unnamed.
    Dynamic,
}

/// What flows through an input or output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueKind {
    Tensor(DType),
    /// A tensor whose element type oxinfer does not expose (bfloat16, float8, ...).
    OtherTensor(String),
    Sequence,
    Map,
    Optional,
}

impl ValueKind {
    pub fn type_name(&self) -> String {
        match self {
            ValueKind::Tensor(d) => d.name().to_string(),
            ValueKind::OtherTensor(n) => n.clone(),
            ValueKind::Sequence => "sequence".into(),
            ValueKind::Map => "map".into(),
            ValueKind::Optional => "optional".into(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ValueInfo {
    pub name: String,
    pub kind: ValueKind,
    pub dims: Vec<Dim>,
}

#[derive(Clone, Debug, Default)]
pub struct ModelMetadata {
    pub producer: String,
    pub version: i64,
    pub description: String,
    pub domain: String,
    pub graph_name: String,
    pub custom: Vec<(String, String)>,
}

#[derive(Clone, Debug, Default)]
pub struct ModelInfo {
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
    pub metadata: ModelMetadata,
}

/// Cancellation shared between a caller and the slot running its request.
#[derive(Default)]
pub struct RunControl {
    aborted: AtomicBool,
    terminator: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
}

impl std::fmt::Debug for RunControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunControl").field("aborted", &self.is_aborted()).finish()
    }
}

impl RunControl {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }

    /// Marks the run aborted and asks the engine to stop if it is running.
    pub fn abort(&self) {
        self.aborted.store(true, Ordering::Release);
        if let Some(t) = self.terminator.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            t();
        }
    }

    /// Installs the engine's stop hook for the duration of a run. Returns
    /// false when the run was aborted before it started.
    pub fn arm(&self, stop: Box<dyn Fn() + Send + Sync>) -> bool {
        let mut slot = self.terminator.lock().unwrap_or_else(|e| e.into_inner());
        *slot = Some(stop);
        // Checked under the lock so an abort racing with `arm` is never lost.
        !self.is_aborted()
    }

    pub fn disarm(&self) {
        *self.terminator.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Where a model's bytes come from.
pub enum ModelSource {
    Path(std::path::PathBuf),
    Bytes(Vec<u8>),
}

/// An engine with a loaded model.
pub trait Backend: Send + Sync {
    fn info(&self) -> &ModelInfo;

    /// How many runs may execute at once (one per slot).
    fn slots(&self) -> usize;

    /// Runs one validated request on `slot`, returning the outputs whose
    /// indices are listed in `outputs`, in that order.
    fn run(&self, slot: usize, inputs: &[InputTensor], outputs: &[usize], ctl: &RunControl) -> Result<Vec<OutputTensor>>;
}
