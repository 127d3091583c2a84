//! The one place where core errors become JS errors. The TS layer turns the
//! encoded form into `OxinferError` instances, so one class serves ESM and CJS.

use oxinfer_core::Error;

/// Separator between code, input name and message; never in a message.
pub const SEP: char = '\u{1f}';

/// `CODE<SEP>details<SEP>message`, parsed by `src/errors.ts`; details is a JSON
/// object with `input`, `row`, `field`, `stage`, `path`, `jsonPath`, `line` and
/// `column` where they apply.
pub fn encode(e: &Error) -> String {
    let mut details = serde_json::Map::new();
    if let Some(i) = e.input() {
        details.insert("input".into(), i.into());
    }
    if let Some(r) = e.row() {
        details.insert("row".into(), r.into());
    }
    if let Some(f) = e.field() {
        details.insert("field".into(), f.into());
    }
    if let Some(s) = e.stage() {
        details.insert("stage".into(), s.into());
    }
    if let Some(p) = e.path() {
        details.insert("path".into(), p.into());
    }
    if let Some(a) = e.spec_at() {
        details.insert("jsonPath".into(), a.into());
    }
    if let Some((line, column)) = e.spec_line() {
        details.insert("line".into(), line.into());
        details.insert("column".into(), column.into());
    }
    format!("{}{SEP}{}{SEP}{}", e.code(), serde_json::Value::Object(details), e)
}

pub fn to_napi(e: Error) -> napi::Error {
    napi::Error::new(napi::Status::GenericFailure, encode(&e))
}

/// A server error as the core error a JS caller can switch on: the core's
/// own where it has one, a repository failure as ERR_MODEL_LOAD, a refused
/// setting as ERR_INVALID_ARGUMENT.
pub fn server_to_napi(e: oxinfer_server::ServerError) -> napi::Error {
    use oxinfer_server::ServerError as S;
    to_napi(match e {
        S::Core(c) => c,
        S::Repository(m) => Error::ModelLoad(m),
        S::Unavailable { message, .. } => Error::Overloaded(message),
        other => Error::InvalidArgument(other.to_string()),
    })
}

pub trait IntoNapi<T> {
    fn js(self) -> napi::Result<T>;
}

impl<T> IntoNapi<T> for Result<T, Error> {
    fn js(self) -> napi::Result<T> {
        self.map_err(to_napi)
    }
}

/// Throws an error of `code`, encoded like every other, so tests can check
/// that each code the addon declares decodes to itself. Not part of the
/// public API.
#[napi(catch_unwind)]
pub fn debug_error(code: crate::options::ErrorCode) -> napi::Result<()> {
    use oxinfer_core::ErrorCode as C;
    let m = "deliberate error for testing".to_string();
    Err(to_napi(match oxinfer_core::ErrorCode::from(code) {
        C::InvalidArgument => Error::InvalidArgument(m),
        C::InvalidInput => Error::invalid_input("x", m),
        C::ModelLoad => Error::ModelLoad(m),
        C::File => Error::File { message: m, path: "/nonexistent".into() },
        C::InvalidSpec => Error::invalid_spec("stage", m),
        C::Unsupported => Error::Unsupported(m),
        C::Aborted => Error::Aborted(m),
        C::Disposed => Error::Disposed(m),
        C::Overloaded => Error::Overloaded(m),
        C::Timeout => Error::Timeout(m),
        C::Backend => Error::Backend(m),
        C::Unavailable => Error::Unavailable(m),
    }))
}
