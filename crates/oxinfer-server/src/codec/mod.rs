//! The KServe v2 inference protocol's payloads: JSON tensors and Triton's
//! binary tensor data extension, decoded into core input tensors and encoded
//! from core output tensors. Nothing here knows the transport.

mod datatype;
mod decode;
mod encode;

pub use datatype::{datatype_name, parse_datatype};
pub use decode::{decode_infer, InferRequest, Limits, RequestedOutput};
pub use encode::{encode_error, encode_infer, Encoded};
