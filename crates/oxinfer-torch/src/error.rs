//! The torch backend's one error type, and the stable core code each becomes.

use oxinfer_core::Error;

#[derive(Debug, thiserror::Error)]
pub enum TorchError {
    /// The file is not a TorchScript archive libtorch can load.
    #[error("{0}")]
    Load(String),
    /// The model file cannot be read.
    #[error("cannot open the model '{path}': {reason}")]
    File { path: String, reason: String },
    /// Declarations (options or the archive's `oxinfer.json`) that do not fit the model.
    #[error("{0}")]
    Declaration(String),
    /// Inputs the model rejected while running.
    #[error("{0}")]
    Input(String),
    /// What this build or machine cannot do (a GPU that is not there, an element type tch lacks).
    #[error("{0}")]
    Unsupported(String),
    /// A failure inside libtorch.
    #[error("{0}")]
    Engine(String),
}

impl From<TorchError> for Error {
    fn from(e: TorchError) -> Self {
        match e {
            TorchError::Load(m) => Error::ModelLoad(m),
            TorchError::File { ref path, .. } => Error::File { message: e.to_string(), path: path.clone() },
            TorchError::Declaration(m) => Error::InvalidArgument(m),
            TorchError::Input(m) => Error::InvalidInput { message: m, input: None, row: None, field: None },
            TorchError::Unsupported(m) => Error::Unsupported(m),
            TorchError::Engine(m) => Error::Backend(m),
        }
    }
}

/// libtorch's message without the C++ backtrace it appends.
pub fn torch_message(e: &tch::TchError) -> String {
    let full = e.to_string();
    let cut = ["\nException raised from", "\nframe #0", "Exception raised from"]
        .iter()
        .filter_map(|m| full.find(m))
        .min()
        .unwrap_or(full.len());
    let text = full[..cut].trim();
    let text = text.strip_prefix("Internal torch error:").unwrap_or(text).trim();
    // TorchScript interpreter errors quote the failing source first and end
    // with the reason ("RuntimeError: mat1 and mat2 shapes ..."): keep that.
    if text.contains("Traceback of TorchScript") {
        if let Some(last) = text.lines().rev().find(|l| !l.trim().is_empty()) {
            return last.trim().to_string();
        }
    }
    text.lines().filter(|l| !l.trim().is_empty()).take(6).collect::<Vec<_>>().join(" ").trim().to_string()
}
