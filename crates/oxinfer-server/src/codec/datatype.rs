//! The protocol's datatype names and the core's element types.

use oxinfer_core::DType;

use crate::error::{Result, ServerError};

const NAMES: [(DType, &str); 13] = [
    (DType::Bool, "BOOL"),
    (DType::Uint8, "UINT8"),
    (DType::Uint16, "UINT16"),
    (DType::Uint32, "UINT32"),
    (DType::Uint64, "UINT64"),
    (DType::Int8, "INT8"),
    (DType::Int16, "INT16"),
    (DType::Int32, "INT32"),
    (DType::Int64, "INT64"),
    (DType::Float16, "FP16"),
    (DType::Float32, "FP32"),
    (DType::Float64, "FP64"),
    (DType::String, "BYTES"),
];

/// The protocol's name of an element type (`FP32`, `BYTES`, ...).
pub fn datatype_name(d: DType) -> &'static str {
    NAMES.iter().find(|(t, _)| *t == d).map_or("BYTES", |(_, n)| n)
}

/// The element type a protocol datatype names.
pub fn parse_datatype(s: &str) -> Result<DType> {
    if let Some((t, _)) = NAMES.iter().find(|(_, n)| *n == s) {
        return Ok(*t);
    }
    if s == "BF16" {
        return Err(ServerError::bad("datatype BF16 is not supported (send FP16 or FP32)"));
    }
    Err(ServerError::bad(format!("unknown datatype '{}'; the protocol's are {}", s.escape_debug(), NAMES.iter().map(|(_, n)| *n).collect::<Vec<_>>().join(", "))))
}
