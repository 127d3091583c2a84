//! Engine-neutral tensors. Inputs borrow caller memory (no copy); outputs own
//! theirs, usually the engine's own buffer, so bindings copy at most once.

use crate::error::{Error, Result};

/// Element types, numbered as ONNX's `TensorProto.DataType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DType {
    Float32 = 1,
    Uint8 = 2,
    Int8 = 3,
    Uint16 = 4,
    Int16 = 5,
    Int32 = 6,
    Int64 = 7,
    String = 8,
    Bool = 9,
    Float16 = 10,
    Float64 = 11,
    Uint32 = 12,
    Uint64 = 13,
    /// Raw bfloat16 bits (JS: `Uint16Array`).
    BFloat16 = 16,
}

impl DType {
    pub const ALL: [DType; 14] = [
        DType::Float32,
        DType::Uint8,
        DType::Int8,
        DType::Uint16,
        DType::Int16,
        DType::Int32,
        DType::Int64,
        DType::String,
        DType::Bool,
        DType::Float16,
        DType::Float64,
        DType::Uint32,
        DType::Uint64,
        DType::BFloat16,
    ];

    /// onnxruntime-common's name for the type.
    pub fn name(self) -> &'static str {
        match self {
            DType::Float32 => "float32",
            DType::Uint8 => "uint8",
            DType::Int8 => "int8",
            DType::Uint16 => "uint16",
            DType::Int16 => "int16",
            DType::Int32 => "int32",
            DType::Int64 => "int64",
            DType::String => "string",
            DType::Bool => "bool",
            DType::Float16 => "float16",
            DType::Float64 => "float64",
            DType::Uint32 => "uint32",
            DType::Uint64 => "uint64",
            DType::BFloat16 => "bfloat16",
        }
    }

    pub fn from_name(name: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == name)
    }

    pub fn from_code(code: u8) -> Option<DType> {
        DType::ALL.into_iter().find(|d| *d as u8 == code)
    }

    /// Bytes per element; 0 for strings, which are not laid out flat.
    pub fn size(self) -> usize {
        match self {
            DType::Uint8 | DType::Int8 | DType::Bool => 1,
            DType::Uint16 | DType::Int16 | DType::Float16 | DType::BFloat16 => 2,
            DType::Float32 | DType::Int32 | DType::Uint32 => 4,
            DType::Float64 | DType::Int64 | DType::Uint64 => 8,
            DType::String => 0,
        }
    }
}

/// Number of elements for `dims`, refusing negative dims and overflow.
pub fn element_count(dims: &[i64]) -> Result<usize> {
    dims.iter().try_fold(1usize, |acc, &d| {
        if d < 0 {
            return Err(Error::InvalidArgument(format!("dims must be non-negative integers, got {dims:?}")));
        }
        acc.checked_mul(d as usize)
            .ok_or_else(|| Error::InvalidArgument(format!("dims {dims:?} overflow the addressable size")))
    })
}

/// Bytes borrowed from the caller. The binding guarantees they stay alive and
/// unmoved until the run that reads them settles (the documented contract).
#[derive(Clone, Copy, Debug)]
pub struct BorrowedBytes {
    ptr: *const u8,
    len: usize,
}

// SAFETY: the memory is only read, and its owner keeps it alive until the run
// settles; see the contract above.
unsafe impl Send for BorrowedBytes {}
unsafe impl Sync for BorrowedBytes {}

impl BorrowedBytes {
    /// # Safety
    /// `ptr..ptr+len` must stay valid and unmodified while any run using it is in flight.
    pub unsafe fn new(ptr: *const u8, len: usize) -> Self {
        BorrowedBytes { ptr, len }
    }

    pub fn as_slice(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: see `new`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// A byte buffer aligned for any element type (8 bytes).
#[derive(Clone, Debug, Default)]
pub struct AlignedBytes {
    words: Vec<u64>,
    len: usize,
}

impl AlignedBytes {
    pub fn from_slice(bytes: &[u8]) -> Self {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        // SAFETY: `words` holds at least `bytes.len()` bytes.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), words.as_mut_ptr() as *mut u8, bytes.len()) };
        AlignedBytes { words, len: bytes.len() }
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `words` holds at least `len` initialised bytes.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr() as *const u8, self.len) }
    }

    /// `len` zero bytes, to be filled in place.
    pub fn zeroed(len: usize) -> Self {
        AlignedBytes { words: vec![0u64; len.div_ceil(8)], len }
    }

    /// Drops the bytes past `len` (no reallocation).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `words` holds at least `len` initialised bytes, borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr() as *mut u8, self.len) }
    }
}

/// Flat element data of an input tensor.
#[derive(Clone, Debug)]
pub enum InputData {
    /// Caller memory, read without a copy.
    Borrowed(BorrowedBytes),
    /// Memory owned by the core (tests, normalised bools).
    Owned(AlignedBytes),
    Strings(Vec<String>),
}

/// One named input of a run.
#[derive(Clone, Debug)]
pub struct InputTensor {
    pub name: String,
    pub dtype: DType,
    pub dims: Vec<i64>,
    pub data: InputData,
}

impl InputTensor {
    /// An owned tensor from plain values; used by tests and Rust callers.
    pub fn from_values<T: Copy>(name: &str, dtype: DType, dims: &[i64], values: &[T]) -> Result<Self> {
        if std::mem::size_of::<T>() != dtype.size() {
            return Err(Error::InvalidArgument(format!("element size does not match {}", dtype.name())));
        }
        // SAFETY: plain-old-data reinterpretation of a `Copy` slice as bytes.
        let bytes = unsafe { std::slice::from_raw_parts(values.as_ptr() as *const u8, std::mem::size_of_val(values)) };
        let t = InputTensor { name: name.into(), dtype, dims: dims.to_vec(), data: InputData::Owned(AlignedBytes::from_slice(bytes)) };
        t.check_layout()?;
        Ok(t)
    }

    pub fn from_strings(name: &str, dims: &[i64], values: Vec<String>) -> Result<Self> {
        let t = InputTensor { name: name.into(), dtype: DType::String, dims: dims.to_vec(), data: InputData::Strings(values) };
        t.check_layout()?;
        Ok(t)
    }

    /// The same tensor holding its own copy of borrowed data, to keep beyond a call.
    /// A copy as an output tensor (results that come back from JS).
    pub fn to_output(&self) -> OutputTensor {
        let data = match &self.data {
            InputData::Strings(s) => OutputData::Strings(s.clone()),
            _ => OutputData::Buffer(Box::new(AlignedBytes::from_slice(self.bytes()))),
        };
        OutputTensor { name: self.name.clone(), dtype: self.dtype, dims: self.dims.clone(), data }
    }

    pub fn into_owned(self) -> InputTensor {
        match self.data {
            InputData::Borrowed(b) => InputTensor { data: InputData::Owned(AlignedBytes::from_slice(b.as_slice())), ..self },
            _ => self,
        }
    }

    /// The flat bytes of a numeric tensor (empty for strings).
    pub fn bytes(&self) -> &[u8] {
        match &self.data {
            InputData::Borrowed(b) => b.as_slice(),
            InputData::Owned(b) => b.as_slice(),
            InputData::Strings(_) => &[],
        }
    }

    /// Checks that the data length agrees with dims and type.
    pub fn check_layout(&self) -> Result<()> {
        let n = element_count(&self.dims)?;
        match (&self.data, self.dtype) {
            (InputData::Strings(s), DType::String) if s.len() == n => Ok(()),
            (InputData::Strings(s), DType::String) => Err(Error::InvalidArgument(format!(
                "tensor '{}' has dims {:?} ({} elements) but {} strings",
                self.name, self.dims, n, s.len()
            ))),
            (InputData::Strings(_), t) | (_, t @ DType::String) => Err(Error::InvalidArgument(format!(
                "tensor '{}' of type {} has data of the wrong kind",
                self.name,
                t.name()
            ))),
            (_, t) => {
                let want = n * t.size();
                let have = self.bytes().len();
                if want == have {
                    Ok(())
                } else {
                    Err(Error::InvalidArgument(format!(
                        "tensor '{}' has dims {:?} ({} elements of {}) but {} bytes of data",
                        self.name,
                        self.dims,
                        n,
                        t.name(),
                        have
                    )))
                }
            }
        }
    }
}

/// Engine memory that an output keeps alive until the binding copies it out.
pub trait OutputBuffer: Send + Sync {
    fn bytes(&self) -> &[u8];
}

impl OutputBuffer for AlignedBytes {
    fn bytes(&self) -> &[u8] {
        self.as_slice()
    }
}

pub enum OutputData {
    Buffer(Box<dyn OutputBuffer>),
    Strings(Vec<String>),
    /// A value that is not a tensor (an ONNX sequence or map, such as
    /// scikit-learn's ZipMap), as JSON the bindings turn into their own values
    /// (its shape: `onnx/convert.rs`, `non_tensor_json`). Its tensor's dims are
    /// empty: it has no rows to batch, crop or split.
    Value(String),
}

/// One named output of a run.
pub struct OutputTensor {
    pub name: String,
    pub dtype: DType,
    pub dims: Vec<i64>,
    pub data: OutputData,
}

impl OutputTensor {
    pub fn bytes(&self) -> &[u8] {
        match &self.data {
            OutputData::Buffer(b) => b.bytes(),
            OutputData::Strings(_) | OutputData::Value(_) => &[],
        }
    }

    pub fn strings(&self) -> Option<&[String]> {
        match &self.data {
            OutputData::Strings(s) => Some(s),
            OutputData::Buffer(_) | OutputData::Value(_) => None,
        }
    }

    /// A non-tensor output: its JSON (see `OutputData::Value`), no dims.
    pub fn value(name: &str, json: String) -> OutputTensor {
        OutputTensor { name: name.into(), dtype: DType::String, dims: Vec::new(), data: OutputData::Value(json) }
    }

    /// A non-tensor value's JSON (see `OutputData::Value`).
    pub fn non_tensor(&self) -> Option<&str> {
        match &self.data {
            OutputData::Value(json) => Some(json),
            _ => None,
        }
    }

    /// Copies the elements out as `T`; `None` when the size does not match.
    pub fn to_vec<T: Copy + Default>(&self) -> Option<Vec<T>> {
        if std::mem::size_of::<T>() != self.dtype.size() {
            return None;
        }
        let bytes = self.bytes();
        let mut out = vec![T::default(); bytes.len() / self.dtype.size()];
        // SAFETY: `out` has exactly `bytes.len()` bytes of `Copy` elements.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr() as *mut u8, bytes.len()) };
        Some(out)
    }
}

impl std::fmt::Debug for OutputTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputTensor").field("name", &self.name).field("dtype", &self.dtype).field("dims", &self.dims).finish()
    }
}

/// Elements of type `dtype` laid out in `b`, as f64; None for strings.
pub(crate) fn f64s(dtype: DType, b: &[u8]) -> Option<Vec<f64>> {
    fn read<const N: usize>(b: &[u8], f: impl Fn([u8; N]) -> f64) -> Vec<f64> {
        b.chunks_exact(N).map(|c| f(c.try_into().unwrap_or([0; N]))).collect()
    }
    Some(match dtype {
        DType::Float32 => read(b, |c| f32::from_ne_bytes(c) as f64),
        DType::Float64 => read(b, f64::from_ne_bytes),
        DType::Float16 => read(b, |c| half::f16::from_ne_bytes(c).to_f64()),
        DType::BFloat16 => read(b, |c| half::bf16::from_ne_bytes(c).to_f64()),
        DType::Int8 => read(b, |c: [u8; 1]| c[0] as i8 as f64),
        DType::Uint8 => read(b, |c: [u8; 1]| c[0] as f64),
        DType::Bool => read(b, |c: [u8; 1]| if c[0] != 0 { 1.0 } else { 0.0 }),
        DType::Int16 => read(b, |c| i16::from_ne_bytes(c) as f64),
        DType::Uint16 => read(b, |c| u16::from_ne_bytes(c) as f64),
        DType::Int32 => read(b, |c| i32::from_ne_bytes(c) as f64),
        DType::Uint32 => read(b, |c| u32::from_ne_bytes(c) as f64),
        DType::Int64 => read(b, |c| i64::from_ne_bytes(c) as f64),
        DType::Uint64 => read(b, |c| u64::from_ne_bytes(c) as f64),
        DType::String => return None,
    })
}
