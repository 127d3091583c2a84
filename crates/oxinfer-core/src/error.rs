//! The one error type of the core. Each variant maps to a stable `ERR_*` code
//! that the bindings surface unchanged.

/// The stable codes, one per variant of `Error`. Bindings list them from here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidArgument,
    InvalidInput,
    ModelLoad,
    File,
    InvalidSpec,
    Unsupported,
    Aborted,
    Disposed,
    Overloaded,
    Timeout,
    Backend,
    Unavailable,
}

impl ErrorCode {
    /// Every code, in a fixed order.
    pub const ALL: [ErrorCode; 12] = [
        ErrorCode::InvalidArgument,
        ErrorCode::InvalidInput,
        ErrorCode::ModelLoad,
        ErrorCode::File,
        ErrorCode::InvalidSpec,
        ErrorCode::Unsupported,
        ErrorCode::Aborted,
        ErrorCode::Disposed,
        ErrorCode::Overloaded,
        ErrorCode::Timeout,
        ErrorCode::Backend,
        ErrorCode::Unavailable,
    ];

    /// The code as bindings and HTTP bodies spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "ERR_INVALID_ARGUMENT",
            ErrorCode::InvalidInput => "ERR_INVALID_INPUT",
            ErrorCode::ModelLoad => "ERR_MODEL_LOAD",
            ErrorCode::File => "ERR_FILE",
            ErrorCode::InvalidSpec => "ERR_INVALID_SPEC",
            ErrorCode::Unsupported => "ERR_UNSUPPORTED",
            ErrorCode::Aborted => "ERR_ABORTED",
            ErrorCode::Disposed => "ERR_DISPOSED",
            ErrorCode::Overloaded => "ERR_OVERLOADED",
            ErrorCode::Timeout => "ERR_TIMEOUT",
            ErrorCode::Backend => "ERR_BACKEND",
            ErrorCode::Unavailable => "ERR_UNAVAILABLE",
        }
    }
}

/// `message` with a leading "row `old`" (as record errors start) made
/// "row `new`"; any other message as it is.
pub fn renumber_row(message: &str, old: usize, new: usize) -> String {
    match message.strip_prefix(&format!("row {old}")) {
        Some(rest) if !rest.starts_with(|c: char| c.is_ascii_digit()) => format!("row {new}{rest}"),
        _ => message.to_string(),
    }
}

/// The file a spec was read from, and the line and column (1-based) of the
/// value a spec error is about, where it could be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecSource {
    pub path: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

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
    /// A pipeline spec that is malformed or does not fit its model: the stage,
    /// the JSON path of the offending value (`preprocess[2].fields[1]`) and,
    /// for a spec read from a file, the file and the value's line and column.
    #[error("{message}")]
    InvalidSpec { message: String, stage: Option<String>, at: Option<String>, origin: Option<SpecSource> },
    /// The model's bytes could not be parsed (a file that cannot be read is
    /// `File` instead).
    #[error("{0}")]
    ModelLoad(String),
    /// A file (model, spec, tokenizer, job input or output, library) that is
    /// missing, unreadable or unwritable. One code for every such file.
    #[error("{message}")]
    File { message: String, path: String },
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
    /// A service the request needs (a feature store's Redis) is down, or did
    /// not answer within its timeout; retrying later may succeed.
    #[error("{0}")]
    Unavailable(String),
}

impl Error {
    /// An error of the given kind carrying only a message (errors that
    /// crossed a plugin boundary, which carries code and message).
    pub fn with_kind(kind: ErrorCode, message: String) -> Self {
        match kind {
            ErrorCode::InvalidArgument => Error::InvalidArgument(message),
            ErrorCode::InvalidInput => Error::InvalidInput { message, input: None, row: None, field: None },
            ErrorCode::InvalidSpec => Error::InvalidSpec { message, stage: None, at: None, origin: None },
            ErrorCode::ModelLoad => Error::ModelLoad(message),
            ErrorCode::File => Error::File { message, path: String::new() },
            ErrorCode::Unsupported => Error::Unsupported(message),
            ErrorCode::Aborted => Error::Aborted(message),
            ErrorCode::Disposed => Error::Disposed(message),
            ErrorCode::Overloaded => Error::Overloaded(message),
            ErrorCode::Timeout => Error::Timeout(message),
            ErrorCode::Backend => Error::Backend(message),
            ErrorCode::Unavailable => Error::Unavailable(message),
        }
    }

    /// The stable code that bindings expose (`error.code` in JS).
    pub fn code(&self) -> &'static str {
        self.kind().as_str()
    }

    /// Which of the stable codes this error carries.
    pub fn kind(&self) -> ErrorCode {
        match self {
            Error::InvalidArgument(_) => ErrorCode::InvalidArgument,
            Error::InvalidInput { .. } => ErrorCode::InvalidInput,
            Error::InvalidSpec { .. } => ErrorCode::InvalidSpec,
            Error::ModelLoad(_) => ErrorCode::ModelLoad,
            Error::File { .. } => ErrorCode::File,
            Error::Unsupported(_) => ErrorCode::Unsupported,
            Error::Aborted(_) => ErrorCode::Aborted,
            Error::Disposed(_) => ErrorCode::Disposed,
            Error::Overloaded(_) => ErrorCode::Overloaded,
            Error::Timeout(_) => ErrorCode::Timeout,
            Error::Backend(_) => ErrorCode::Backend,
            Error::Unavailable(_) => ErrorCode::Unavailable,
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

    /// The file a `File` error is about, or the file a spec error was read from.
    pub fn path(&self) -> Option<&str> {
        match self {
            Error::File { path, .. } => Some(path),
            Error::InvalidSpec { origin: Some(s), .. } if !s.path.is_empty() => Some(s.path.as_str()),
            _ => None,
        }
    }

    /// The JSON path, within the spec, of the value a spec error is about.
    pub fn spec_at(&self) -> Option<&str> {
        match self {
            Error::InvalidSpec { at, .. } => at.as_deref(),
            _ => None,
        }
    }

    /// Where in its file a spec error's value is (1-based line and column).
    pub fn spec_line(&self) -> Option<(usize, usize)> {
        match self {
            Error::InvalidSpec { origin: Some(s), .. } if !s.path.is_empty() => s.line.map(|l| (l, s.column.unwrap_or(1))),
            _ => None,
        }
    }

    /// A file that could not be opened, read or written: `what` names it for
    /// the user ("the model", "the job's input file").
    pub fn file(what: &str, path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        Error::file_op("open", what, path, e)
    }

    /// A file that failed at `op` ("open", "read", "write").
    pub fn file_op(op: &str, what: &str, path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        let shown = path.display().to_string();
        Error::File { message: format!("cannot {op} {what} '{shown}': {e}"), path: shown }
    }

    pub fn invalid_input(input: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidInput { message: message.into(), input: Some(input.into()), row: None, field: None }
    }

    /// An input error about one record's field.
    pub fn bad_record(row: usize, field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidInput { message: message.into(), input: None, row: Some(row), field: Some(field.into()) }
    }

    /// A spec error about `stage` (a label such as `preprocess[2] (impute)`);
    /// its JSON path is the label's path (`preprocess[2]`) until a caller
    /// narrows it with `at`.
    pub fn invalid_spec(stage: impl Into<String>, message: impl Into<String>) -> Self {
        let stage = stage.into();
        let at = stage.split(' ').next().filter(|p| !p.is_empty()).map(str::to_string);
        Error::InvalidSpec { message: message.into(), stage: Some(stage), at, origin: None }
    }

    /// A spec error about the spec as a whole (no stage, no JSON path).
    pub fn spec(message: impl Into<String>) -> Self {
        Error::InvalidSpec { message: message.into(), stage: None, at: None, origin: None }
    }

    /// The same spec error about the value at `path` within its stage
    /// (`fields[1]` under `preprocess[2]`); other errors as they are.
    pub fn at(mut self, path: &str) -> Self {
        if let Error::InvalidSpec { at, .. } = &mut self {
            *at = Some(match at.take() {
                Some(base) if path.starts_with('[') => format!("{base}{path}"),
                Some(base) => format!("{base}.{path}"),
                None => path.to_string(),
            });
        }
        self
    }

    /// The same error about record `row` instead, for a record moved between
    /// a merged batch and its caller's own batch; a message that starts
    /// "row N" follows the move. Other errors are returned as they are.
    pub fn at_row(&self, row: usize) -> Error {
        match self {
            Error::InvalidInput { message, input, row: Some(old), field } => {
                Error::InvalidInput { message: renumber_row(message, *old, row), input: input.clone(), row: Some(row), field: field.clone() }
            }
            other => other.clone(),
        }
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
