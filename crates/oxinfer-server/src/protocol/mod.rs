//! The KServe v2 inference protocol's payloads (JSON and the binary tensor
//! data extension), decoded into and encoded from core tensors.

mod binary;
mod data;
mod datatype;
mod float64;
mod nonfinite;
mod request;
mod response;

pub use datatype::{datatype_name, parse_datatype};
pub use request::{decode_infer, InferRequest, Limits, RequestedOutput};
pub use response::{encode_error, encode_infer, Encoded};

#[cfg(test)]
mod request_tests;
#[cfg(test)]
mod tests;
