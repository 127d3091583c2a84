//! The server's one error type: every failure a request can meet, with the
//! HTTP status it is answered with. Core errors keep their code.

use oxinfer_core::{Error as CoreError, ErrorCode};

pub type Result<T, E = ServerError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A request the protocol cannot accept: malformed JSON, lying lengths,
    /// shape and data that disagree, unknown datatypes (400).
    #[error("{0}")]
    BadRequest(String),
    /// An unknown model, version or route (404).
    #[error("{0}")]
    NotFound(String),
    /// A request that contradicts what the server already holds: a second
    /// outcome for one prediction (409).
    #[error("{0}")]
    Conflict(String),
    /// A body over the configured limit (413).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Missing or wrong bearer token (401).
    #[error("{0}")]
    Unauthorized(String),
    /// A model that exists but is not ready, or a full queue (503, with
    /// `Retry-After` seconds when known).
    #[error("{message}")]
    Unavailable { message: String, retry_after: Option<u32> },
    /// A repository operation that failed (load of a broken model): 400 as Triton answers.
    #[error("{0}")]
    Repository(String),
    /// An error from the engine, answered by its code.
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl ServerError {
    pub fn bad(message: impl Into<String>) -> Self {
        ServerError::BadRequest(message.into())
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            ServerError::BadRequest(_) | ServerError::Repository(_) => 400,
            ServerError::NotFound(_) => 404,
            ServerError::Conflict(_) => 409,
            ServerError::PayloadTooLarge(_) => 413,
            ServerError::Unauthorized(_) => 401,
            ServerError::Unavailable { .. } => 503,
            ServerError::Core(e) => match e.kind() {
                ErrorCode::InvalidArgument | ErrorCode::InvalidInput | ErrorCode::InvalidSpec | ErrorCode::Unsupported => 400,
                ErrorCode::Overloaded | ErrorCode::Disposed | ErrorCode::Unavailable => 503,
                ErrorCode::Timeout => 504,
                ErrorCode::Aborted => 499,
                ErrorCode::File | ErrorCode::ModelLoad | ErrorCode::Backend => 500,
            },
        }
    }

    /// The code carried in the error body next to the message.
    pub fn code(&self) -> &'static str {
        match self {
            ServerError::BadRequest(_) => "ERR_INVALID_INPUT",
            ServerError::NotFound(_) => "ERR_NOT_FOUND",
            ServerError::Conflict(_) => "ERR_CONFLICT",
            ServerError::PayloadTooLarge(_) => "ERR_TOO_LARGE",
            ServerError::Unauthorized(_) => "ERR_UNAUTHORIZED",
            ServerError::Unavailable { .. } => "ERR_UNAVAILABLE",
            ServerError::Repository(_) => "ERR_MODEL_LOAD",
            ServerError::Core(e) => e.code(),
        }
    }
}
