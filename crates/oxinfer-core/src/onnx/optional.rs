//! A run through ONNX Runtime's C API, for requests that fetch an optional
//! output. ort wraps every value a run returns and reads its type, which an
//! empty optional does not have (ort 2.0.0-rc.15 panics), so this path asks
//! `HasValue` first: an empty optional comes back as None, any other value as
//! the DynValue ort would have made.

use std::ffi::{CString, c_char};
use std::ptr::{self, NonNull};

use ort::AsPointer;
use ort::session::{Session, SessionInputValue};
use ort::sys::{OrtRunOptions, OrtValue};
use ort::value::DynValue;

/// Runs `session` on `inputs`, fetching `outputs` (name, whether optional).
pub(super) fn run(
    session: &mut Session,
    inputs: &[(std::borrow::Cow<'_, str>, SessionInputValue<'_>)],
    outputs: &[(&str, bool)],
    run_options: *const OrtRunOptions,
) -> ort::Result<Vec<Option<DynValue>>> {
    let api = ort::api();
    let cstr = |s: &str| CString::new(s).map_err(|_| ort::Error::new(format!("the name '{s}' holds a NUL byte")));
    let in_names = inputs.iter().map(|(n, _)| cstr(n)).collect::<ort::Result<Vec<_>>>()?;
    let out_names = outputs.iter().map(|(n, _)| cstr(n)).collect::<ort::Result<Vec<_>>>()?;
    let in_name_ptrs: Vec<*const c_char> = in_names.iter().map(|s| s.as_ptr()).collect();
    let out_name_ptrs: Vec<*const c_char> = out_names.iter().map(|s| s.as_ptr()).collect();
    let in_ptrs: Vec<*const OrtValue> = inputs.iter().map(|(_, v)| (**v).ptr()).collect();
    let mut out_ptrs: Vec<*mut OrtValue> = vec![ptr::null_mut(); outputs.len()];
    // SAFETY: the names, inputs and output slots live across the call and
    // their lengths are the ones passed; the session is held exclusively, as
    // ort's own run requires.
    let status = unsafe {
        (api.Run)(
            session.ptr_mut(),
            run_options,
            in_name_ptrs.as_ptr(),
            in_ptrs.as_ptr(),
            in_ptrs.len(),
            out_name_ptrs.as_ptr(),
            out_name_ptrs.len(),
            out_ptrs.as_mut_ptr(),
        )
    };
    // SAFETY: a status returned by the API, owned from here.
    unsafe { ort::Error::result_from_status(status) }?;
    // Every slot is owned from here: wrapped (and so released by ort) or released below.
    let mut owned = Owned(out_ptrs);
    let mut values = Vec::with_capacity(outputs.len());
    for (i, &(_, optional)) in outputs.iter().enumerate() {
        let Some(p) = NonNull::new(std::mem::replace(&mut owned.0[i], ptr::null_mut())) else {
            return Err(ort::Error::new(format!("the engine returned no value for output '{}'", outputs[i].0)));
        };
        if optional {
            let mut has = 0;
            // SAFETY: `p` is a live value from the run above.
            if let Err(e) = unsafe { ort::Error::result_from_status((api.HasValue)(p.as_ptr(), &mut has)) } {
                unsafe { (api.ReleaseValue)(p.as_ptr()) };
                return Err(e);
            }
            if has == 0 {
                unsafe { (api.ReleaseValue)(p.as_ptr()) };
                values.push(None);
                continue;
            }
        }
        // SAFETY: a value the run returned, with a value in it; the session's
        // allocator is the one its tensors come from. The DynValue releases it.
        values.push(Some(unsafe { DynValue::from_ptr(p, Some(session.allocator())) }));
    }
    Ok(values)
}

/// Output values not yet handed to a DynValue, released if the loop stops early.
struct Owned(Vec<*mut OrtValue>);

impl Drop for Owned {
    fn drop(&mut self) {
        for &p in self.0.iter().filter(|p| !p.is_null()) {
            // SAFETY: values returned by Run that nothing else owns.
            unsafe { (ort::api().ReleaseValue)(p) };
        }
    }
}
