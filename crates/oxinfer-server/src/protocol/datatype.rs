//! The protocol's datatype names (`FP32`, `BYTES`, ...) and the core's
//! element types they stand for.

use oxinfer_core::DType;

use crate::error::ServerError;

/// Every datatype the protocol names that the core can hold, in the order
/// the KServe v2 spec lists them (the order error messages give).
const NAMES: [(&str, DType); 14] = [
    ("BOOL", DType::Bool),
    ("UINT8", DType::Uint8),
    ("UINT16", DType::Uint16),
    ("UINT32", DType::Uint32),
    ("UINT64", DType::Uint64),
    ("INT8", DType::Int8),
    ("INT16", DType::Int16),
    ("INT32", DType::Int32),
    ("INT64", DType::Int64),
    ("FP16", DType::Float16),
    ("FP32", DType::Float32),
    ("FP64", DType::Float64),
    ("BF16", DType::BFloat16),
    ("BYTES", DType::String),
];

/// The protocol's name for an element type.
pub fn datatype_name(d: DType) -> &'static str {
    match d {
        DType::Bool => "BOOL",
        DType::Uint8 => "UINT8",
        DType::Uint16 => "UINT16",
        DType::Uint32 => "UINT32",
        DType::Uint64 => "UINT64",
        DType::Int8 => "INT8",
        DType::Int16 => "INT16",
        DType::Int32 => "INT32",
        DType::Int64 => "INT64",
        DType::Float16 => "FP16",
        DType::Float32 => "FP32",
        DType::Float64 => "FP64",
        DType::BFloat16 => "BF16",
        DType::String => "BYTES",
    }
}

/// The element type a protocol datatype names; anything else is a 400 that
/// lists the accepted names.
// The server's one error type, large for its core variant: boxing it is
// error.rs's call, for every function that returns it.
#[allow(clippy::result_large_err)]
pub fn parse_datatype(s: &str) -> Result<DType, ServerError> {
    if let Some(&(_, d)) = NAMES.iter().find(|(n, _)| *n == s) {
        return Ok(d);
    }
    let allowed: Vec<&str> = NAMES.iter().map(|(n, _)| *n).collect();
    Err(ServerError::bad(format!("unknown datatype {}; the accepted datatypes are {}", quote(s), allowed.join(", "))))
}

/// A client's text quoted for an error message, cut short so that a huge
/// value cannot make a huge message.
pub(crate) fn quote(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("\"{}...\"", s[..i].escape_debug()),
        None => format!("\"{}\"", s.escape_debug()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_allowed() {
        for d in DType::ALL {
            assert_eq!(parse_datatype(datatype_name(d)).unwrap(), d);
        }
        let Err(ServerError::BadRequest(m)) = parse_datatype("FP99") else { panic!() };
        assert!(m.contains("\"FP99\"") && m.contains("BOOL, UINT8") && m.contains("BYTES"), "{m}");
        assert_eq!(parse_datatype("BF16").unwrap(), DType::BFloat16);
        // Names are case-sensitive, as in the spec.
        assert!(parse_datatype("fp32").is_err());
        let Err(ServerError::BadRequest(m)) = parse_datatype(&"x".repeat(10_000)) else { panic!() };
        assert!(m.len() < 300, "{}", m.len());
    }
}
