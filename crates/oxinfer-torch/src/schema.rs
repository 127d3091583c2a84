//! A TorchScript method's signature and inference mode, through the C++ shim
//! (`shim.cpp`), since tch exposes neither.

use std::ffi::{c_char, c_void, CStr, CString};

use serde::Deserialize;
use tch::CModule;

use crate::error::TorchError;

extern "C" {
    fn oxt_method_schema(module: *mut c_void, method: *const c_char, err: *mut *mut c_char) -> *mut c_char;
    fn oxt_free(p: *mut c_char);
    fn oxt_inference_mode_enter() -> *mut c_void;
    fn oxt_inference_mode_exit(guard: *mut c_void);
    fn oxt_torch_version() -> *const c_char;
}

#[derive(Debug, Deserialize)]
pub struct Signature {
    pub args: Vec<Arg>,
    pub returns: Vec<Ret>,
}

#[derive(Debug, Deserialize)]
pub struct Arg {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    /// It has a default value.
    pub optional: bool,
}

#[derive(Debug, Deserialize)]
pub struct Ret {
    #[serde(rename = "type")]
    pub ty: String,
    /// A named tuple's fields.
    #[serde(default)]
    pub fields: Option<Vec<String>>,
}

// tch's CModule is one pointer to the C++ module; the shim needs that pointer.
const _: () = assert!(std::mem::size_of::<CModule>() == std::mem::size_of::<*mut c_void>());

/// The signature of `forward`.
pub fn forward(module: &CModule) -> Result<Signature, TorchError> {
    // SAFETY: CModule holds exactly the module pointer (checked above).
    let raw = unsafe { *(module as *const CModule as *const *mut c_void) };
    let method = CString::new("forward").expect("no NUL");
    let mut err: *mut c_char = std::ptr::null_mut();
    // SAFETY: `raw` is a live module; both returned strings are freed below.
    let json = unsafe { oxt_method_schema(raw, method.as_ptr(), &mut err) };
    let take = |p: *mut c_char| {
        // SAFETY: a NUL-terminated string from the shim, freed once.
        let s = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
        unsafe { oxt_free(p) };
        s
    };
    if json.is_null() {
        let why = if err.is_null() { "unknown reason".to_string() } else { take(err) };
        return Err(TorchError::Load(format!("cannot read the model's forward signature: {why}")));
    }
    let text = take(json);
    serde_json::from_str(&text).map_err(|e| TorchError::Engine(format!("unreadable forward signature {text}: {e}")))
}

/// libtorch's inference mode on this thread while held (no autograd records,
/// no version counters).
pub struct InferenceMode(*mut c_void);

impl InferenceMode {
    pub fn enter() -> Self {
        // SAFETY: paired with the exit in Drop, on the same thread (the guard is !Send).
        InferenceMode(unsafe { oxt_inference_mode_enter() })
    }
}

impl Drop for InferenceMode {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the guard made by `enter`, released once.
            unsafe { oxt_inference_mode_exit(self.0) }
        }
    }
}

/// The libtorch version the plugin was built against ("2.11.0").
pub fn torch_version() -> String {
    // SAFETY: a static string in the shim.
    unsafe { CStr::from_ptr(oxt_torch_version()) }.to_string_lossy().into_owned()
}

/// The type arguments of `Head[A, B[C, D], E]` at the top level, or None when
/// `ty` is not `Head[...]`.
pub fn type_args(ty: &str, head: &str) -> Option<Vec<String>> {
    let inner = ty.strip_prefix(head)?.strip_prefix('[')?.strip_suffix(']')?;
    let (mut depth, mut start, mut out) = (0usize, 0usize, Vec::new());
    for (i, c) in inner.char_indices() {
        match c {
            '[' | '(' => depth += 1,
            ']' | ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(inner[start..i].trim().to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = inner[start..].trim();
    if !last.is_empty() {
        out.push(last.to_string());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::type_args;

    #[test]
    fn type_arguments_split_at_the_top_level() {
        assert_eq!(type_args("Tuple[Tensor, Tensor]", "Tuple").unwrap(), ["Tensor", "Tensor"]);
        assert_eq!(type_args("Tuple[Tensor, Tuple[Tensor, int]]", "Tuple").unwrap(), ["Tensor", "Tuple[Tensor, int]"]);
        assert_eq!(type_args("Dict[str, Tensor]", "Dict").unwrap(), ["str", "Tensor"]);
        assert!(type_args("Tensor", "Tuple").is_none());
    }
}
