//! The C ABI between oxinfer and a backend plugin: plain `repr(C)` structs and
//! function pointers, so that the two sides need not agree on the layout of
//! Rust trait objects. Model info and load options cross as JSON.

use std::ffi::c_void;

use serde::{Deserialize, Serialize};

use crate::backend::{Dim, ModelInfo, ModelMetadata, ValueInfo, ValueKind};
use crate::error::{Error, Result};
use crate::tensor::DType;

/// Bumped whenever a struct below changes.
pub const ABI_VERSION: u32 = 1;
/// The symbol a plugin exports: `extern "C" fn() -> *const Vtable`.
pub const ENTRY: &[u8] = b"oxinfer_backend_plugin_v1\0";

/// Borrowed UTF-8 text.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Str {
    pub ptr: *const u8,
    pub len: usize,
}

impl Str {
    pub fn of(s: &str) -> Self {
        Str { ptr: s.as_ptr(), len: s.len() }
    }

    /// # Safety
    /// `ptr..ptr+len` must be valid for `'a`.
    pub unsafe fn get<'a>(self) -> &'a str {
        if self.len == 0 {
            return "";
        }
        // Both sides only ever pass Rust strings, but do not trust the bytes.
        std::str::from_utf8(std::slice::from_raw_parts(self.ptr, self.len)).unwrap_or("<invalid utf-8>")
    }
}

/// One input tensor, borrowed for the duration of a `run` call.
#[repr(C)]
pub struct TensorView {
    pub name: Str,
    pub dtype: u8,
    pub dims: *const i64,
    pub ndims: usize,
    pub data: *const u8,
    pub len: usize,
    pub strings: *const Str,
    pub nstrings: usize,
}

/// One output handed to the host. The plugin keeps the memory behind `dims`,
/// `data` and `strings` alive until the host calls `release(owner)`.
#[repr(C)]
pub struct OutputView {
    pub dtype: u8,
    pub dims: *const i64,
    pub ndims: usize,
    pub data: *const u8,
    pub len: usize,
    pub strings: *const Str,
    pub nstrings: usize,
    pub owner: *mut c_void,
}

/// Where a plugin reports back during one call.
#[repr(C)]
pub struct Sink {
    pub ctx: *mut c_void,
    /// An error: an index into `ErrorCode::ALL` and a message.
    pub error: unsafe extern "C" fn(ctx: *mut c_void, code: u32, message: Str),
    /// The model's info as JSON (after `load`).
    pub text: unsafe extern "C" fn(ctx: *mut c_void, text: Str),
    /// One output (after `run`), in the order asked for.
    pub output: unsafe extern "C" fn(ctx: *mut c_void, output: OutputView),
    /// Whether the caller has given up on the run.
    pub aborted: unsafe extern "C" fn(ctx: *mut c_void) -> bool,
}

/// What a plugin exports.
#[repr(C)]
pub struct Vtable {
    pub abi: u32,
    /// The oxinfer-core version the plugin was built against.
    pub core_version: Str,
    /// The backend's name (`torch`) and its engine's version (`libtorch 2.11.0`).
    pub name: Str,
    pub engine: Str,
    /// Loads a model from a path (`bytes` null) or from bytes; options as
    /// `LoadOptions` JSON. Returns null after reporting an error.
    pub load: unsafe extern "C" fn(path: Str, bytes: *const u8, nbytes: usize, options: Str, sink: *const Sink) -> *mut c_void,
    pub slots: unsafe extern "C" fn(model: *mut c_void) -> usize,
    /// Runs validated inputs on `slot`, reporting the outputs whose indices are
    /// listed. False after reporting an error.
    pub run: unsafe extern "C" fn(
        model: *mut c_void,
        slot: usize,
        inputs: *const TensorView,
        ninputs: usize,
        outputs: *const usize,
        noutputs: usize,
        sink: *const Sink,
    ) -> bool,
    pub release: unsafe extern "C" fn(owner: *mut c_void),
    pub free: unsafe extern "C" fn(model: *mut c_void),
}

/// A value declared by the user or stored with the model, for engines whose
/// model files do not record element types or shapes (TorchScript).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Declared {
    pub name: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<String>,
    /// -1 for a dynamic dimension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dims: Option<Vec<i64>>,
}

/// How the host asks a plugin to load a model.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LoadOptions {
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// 0: the engine's default.
    pub intra_op_threads: usize,
    pub inter_op_threads: usize,
    pub pool_size: usize,
    pub auto_threads: bool,
    /// Declarations overriding what the model file records.
    #[serde(default)]
    pub inputs: Option<Vec<Declared>>,
    #[serde(default)]
    pub outputs: Option<Vec<Declared>>,
    /// The engine's library folder, for libraries loaded on demand (CUDA).
    #[serde(default)]
    pub engine_dir: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct InfoJson {
    inputs: Vec<ValueJson>,
    outputs: Vec<ValueJson>,
    producer: String,
    description: String,
    graph_name: String,
    custom: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize)]
struct ValueJson {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    /// Fixed sizes; -1 dynamic; a name for a symbolic dimension.
    dims: Vec<serde_json::Value>,
}

fn value_json(v: &ValueInfo) -> ValueJson {
    let dims = v
        .dims
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => serde_json::Value::from(*n),
            Dim::Dynamic => serde_json::Value::from(-1),
            Dim::Symbolic(s) => serde_json::Value::from(s.clone()),
        })
        .collect();
    ValueJson { name: v.name.clone(), kind: v.kind.type_name(), dims }
}

fn value_info(v: ValueJson) -> ValueInfo {
    let kind = match DType::from_name(&v.kind) {
        Some(d) => ValueKind::Tensor(d),
        None => match v.kind.as_str() {
            "sequence" => ValueKind::Sequence,
            "map" => ValueKind::Map,
            "optional" => ValueKind::Optional,
            other => ValueKind::OtherTensor(other.to_string()),
        },
    };
    let dims = v
        .dims
        .into_iter()
        .map(|d| match d {
            serde_json::Value::String(s) => Dim::Symbolic(s),
            d => match d.as_i64() {
                Some(n) if n >= 0 => Dim::Fixed(n),
                _ => Dim::Dynamic,
            },
        })
        .collect();
    ValueInfo { name: v.name, kind, dims }
}

pub fn info_to_json(info: &ModelInfo) -> String {
    let m = &info.metadata;
    let j = InfoJson {
        inputs: info.inputs.iter().map(value_json).collect(),
        outputs: info.outputs.iter().map(value_json).collect(),
        producer: m.producer.clone(),
        description: m.description.clone(),
        graph_name: m.graph_name.clone(),
        custom: m.custom.clone(),
    };
    serde_json::to_string(&j).unwrap_or_default()
}

pub fn info_from_json(text: &str) -> Result<ModelInfo> {
    let j: InfoJson = serde_json::from_str(text).map_err(|e| Error::Backend(format!("the plugin reported unreadable model info: {e}")))?;
    Ok(ModelInfo {
        inputs: j.inputs.into_iter().map(value_info).collect(),
        outputs: j.outputs.into_iter().map(value_info).collect(),
        metadata: ModelMetadata {
            producer: j.producer,
            description: j.description,
            graph_name: j.graph_name,
            custom: j.custom,
            ..ModelMetadata::default()
        },
    })
}
