//! The one place where core errors become JS errors. The TS layer turns the
//! encoded form into `OxinferError` instances, so one class serves ESM and CJS.

use oxinfer_core::Error;

/// Separator between code, input name and message; never in a message.
pub const SEP: char = '\u{1f}';

/// `CODE<SEP>input<SEP>message`, parsed by `index.ts`.
pub fn encode(e: &Error) -> String {
    format!("{}{SEP}{}{SEP}{}", e.code(), e.input().unwrap_or(""), e)
}

pub fn to_napi(e: Error) -> napi::Error {
    napi::Error::new(napi::Status::GenericFailure, encode(&e))
}

pub trait IntoNapi<T> {
    fn js(self) -> napi::Result<T>;
}

impl<T> IntoNapi<T> for Result<T, Error> {
    fn js(self) -> napi::Result<T> {
        self.map_err(to_napi)
    }
}
