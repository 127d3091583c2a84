//! The one error type of the core. Each variant maps to a stable `ERR_*` code
//! that the bindings surface unchanged.

/// Result alias used throughout the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A malformed argument, found before any model is involved.
    #[error("{0}")]
    InvalidArgument(String),
    /// Feeds that do not fit the model (wrong type, rank, dim or name), or a
    /// pipeline record that does not fit its spec (`row`, `field`).
    #[error("{message}")]
    InvalidInput { message: String, input: Option<String>, row: Option<usize>, field: Option<String> },
    /// A pipeline spec that is malformed or does not fit its model.
    #[error("{message}")]
    InvalidSpec { message: String, stage: Option<String> },
    /// The model could not be read or parsed.
    #[error("{0}")]
    ModelLoad(String),
    /// Something this build or machine cannot do.
    #[error("{0}")]
    Unsupported(String),
    /// The run was aborted by its caller.
    #[error("{0}")]
    Aborted(String),
    /// The session was disposed.
    #[error("{0}")]
    Disposed(String),
    /// The queue is full: the request was refused at once.
    #[error("{0}")]
    Overloaded(String),
    /// The request waited in the queue past its timeout.
    #[error("{0}")]
    Timeout(String),
    /// A failure inside the engine, including a caught panic.
    #[error("{0}")]
    Backend(String),
}

impl Error {
    /// The stable code that bindings expose (`error.code` in JS).
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidArgument(_) => "ERR_INVALID_ARGUMENT",
            Error::InvalidInput { .. } => "ERR_INVALID_INPUT",
            Error::InvalidSpec { .. } => "ERR_INVALID_SPEC",
            Error::ModelLoad(_) => "ERR_MODEL_LOAD",
            Error::Unsupported(_) => "ERR_UNSUPPORTED",
            Error::Aborted(_) => "ERR_ABORTED",
            Error::Disposed(_) => "ERR_DISPOSED",
            Error::Overloaded(_) => "ERR_OVERLOADED",
            Error::Timeout(_) => "ERR_TIMEOUT",
            Error::Backend(_) => "ERR_BACKEND",
        }
    }

    /// The model input the error is about, where one applies.
    pub fn input(&self) -> Option<&str> {
        match self {
            Error::InvalidInput { input, .. } => input.as_deref(),
            _ => None,
        }
    }

    /// The record row an input error is about (pipelines).
    pub fn row(&self) -> Option<usize> {
        match self {
            Error::InvalidInput { row, .. } => *row,
            _ => None,
        }
    }

    /// The record field an input error is about (pipelines).
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::InvalidInput { field, .. } => field.as_deref(),
            _ => None,
        }
    }

    /// The pipeline stage a spec error is about.
    pub fn stage(&self) -> Option<&str> {
        match self {
            Error::InvalidSpec { stage, .. } => stage.as_deref(),
            _ => None,
        }
    }

    pub fn invalid_input(input: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidInput { message: message.into(), input: Some(input.into()), row: None, field: None }
    }

    /// An input error about one record's field.
    pub fn bad_record(row: usize, field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidInput { message: message.into(), input: None, row: Some(row), field: Some(field.into()) }
    }

    pub fn invalid_spec(stage: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidSpec { message: message.into(), stage: Some(stage.into()) }
    }

    /// Turns a caught panic payload into `ERR_BACKEND`.
    pub fn from_panic(payload: Box<dyn std::any::Any + Send>) -> Self {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Error::Backend(format!("internal panic caught: {what}"))
    }
}
