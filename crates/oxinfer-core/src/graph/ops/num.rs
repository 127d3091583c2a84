//! Typed element access for the numeric ops: tensors read as `Vec<T>` for
//! the four arithmetic types (f32, f64, i32, i64), written back as outputs,
//! and any numeric tensor read as f64 (predicates, ranking scores).

use crate::error::{Error, Result};
use crate::tensor::{AlignedBytes, DType, InputTensor, OutputData, OutputTensor};

/// An elementwise binary operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bin {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
}

/// An element type the arithmetic ops compute in.
pub(crate) trait Elem: Copy + PartialOrd + Default + Send + Sync + 'static {
    const DTYPE: DType;
    const FLOAT: bool;
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn from_i64(x: i64) -> Self;
    fn to_i64(self) -> i64;
    /// `a op b`; None where the result is undefined (integer division by zero).
    fn bin(op: Bin, a: Self, b: Self) -> Option<Self>;
}

/// `Elem` for one type: the conversions are `as` casts for every type; the
/// arithmetic (`$bin`, a function of op, a, b) differs for floats and integers.
macro_rules! elem {
    ($t:ty, $d:expr, $float:expr, $bin:expr) => {
        impl Elem for $t {
            const DTYPE: DType = $d;
            const FLOAT: bool = $float;
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn from_i64(x: i64) -> Self {
                x as $t
            }
            fn to_i64(self) -> i64 {
                self as i64
            }
            fn bin(op: Bin, a: Self, b: Self) -> Option<Self> {
                $bin(op, a, b)
            }
        }
    };
}

/// Float arithmetic; NaN propagates through max and min, as numpy's maximum/minimum do.
macro_rules! float_bin {
    ($t:ty) => {
        |op: Bin, a: $t, b: $t| -> Option<$t> {
            Some(match op {
                Bin::Add => a + b,
                Bin::Sub => a - b,
                Bin::Mul => a * b,
                Bin::Div => a / b,
                Bin::Max => {
                    if a.is_nan() || a > b {
                        a
                    } else {
                        b
                    }
                }
                Bin::Min => {
                    if a.is_nan() || a < b {
                        a
                    } else {
                        b
                    }
                }
            })
        }
    };
}

/// Integer arithmetic, wrapping as the engines' does; division by zero is undefined.
macro_rules! int_bin {
    ($t:ty) => {
        |op: Bin, a: $t, b: $t| -> Option<$t> {
            Some(match op {
                Bin::Add => a.wrapping_add(b),
                Bin::Sub => a.wrapping_sub(b),
                Bin::Mul => a.wrapping_mul(b),
                Bin::Div if b == 0 => return None,
                Bin::Div => a.wrapping_div(b),
                Bin::Max => a.max(b),
                Bin::Min => a.min(b),
            })
        }
    };
}

elem!(f32, DType::Float32, true, float_bin!(f32));
elem!(f64, DType::Float64, true, float_bin!(f64));
elem!(i32, DType::Int32, false, int_bin!(i32));
elem!(i64, DType::Int64, false, int_bin!(i64));

/// Whether the arithmetic ops compute in `d`.
pub(crate) fn arithmetic(d: DType) -> bool {
    matches!(d, DType::Float32 | DType::Float64 | DType::Int32 | DType::Int64)
}

/// Whether `d` holds numbers (predicates and scores can read it as f64).
pub(crate) fn numeric(d: DType) -> bool {
    !matches!(d, DType::String)
}

/// The elements of `t` as `T` (the caller has checked that `t.dtype` is `T::DTYPE`).
pub(crate) fn values<T: Elem>(t: &InputTensor) -> Vec<T> {
    debug_assert_eq!(t.dtype, T::DTYPE);
    let bytes = t.bytes();
    let n = bytes.len() / std::mem::size_of::<T>();
    let mut out = vec![T::default(); n];
    // SAFETY: `out` holds exactly `n * size_of::<T>()` bytes of plain numbers.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr() as *mut u8, n * std::mem::size_of::<T>()) };
    out
}

/// An output tensor owning `v`'s elements.
pub(crate) fn output<T: Elem>(name: &str, dims: Vec<i64>, v: Vec<T>) -> OutputTensor {
    // SAFETY: plain numbers viewed as bytes.
    let bytes = unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v.as_slice())) };
    OutputTensor { name: name.to_string(), dtype: T::DTYPE, dims, data: OutputData::Buffer(Box::new(AlignedBytes::from_slice(bytes))) }
}

/// The error for an op that does not compute in `d`.
pub(crate) fn unsupported(op: &str, d: DType) -> Error {
    Error::Unsupported(format!("graph op '{op}' does not support {} tensors (float32, float64, int32 and int64 only)", d.name()))
}

/// Runs `$body` with `$T` bound to the element type of `$dtype` (one of the
/// four arithmetic types), or returns ERR_UNSUPPORTED for `$op`.
macro_rules! with_elem {
    ($dtype:expr, $op:expr, $T:ident => $body:expr) => {
        match $dtype {
            $crate::tensor::DType::Float32 => {
                type $T = f32;
                $body
            }
            $crate::tensor::DType::Float64 => {
                type $T = f64;
                $body
            }
            $crate::tensor::DType::Int32 => {
                type $T = i32;
                $body
            }
            $crate::tensor::DType::Int64 => {
                type $T = i64;
                $body
            }
            other => Err($crate::graph::ops::num::unsupported($op, other)),
        }
    };
}
pub(crate) use with_elem;

/// Any numeric tensor's elements as f64 (bool as 0/1); strings are refused.
pub fn to_f64s(t: &InputTensor) -> Result<Vec<f64>> {
    f64s(t.dtype, t.bytes()).ok_or_else(|| Error::invalid_input(&t.name, format!("'{}' is a string tensor; a number was expected", t.name)))
}

pub(crate) use crate::tensor::f64s;

/// Dims as sizes (checked non-negative by the tensor's layout check).
pub(crate) fn sizes(dims: &[i64]) -> Vec<usize> {
    dims.iter().map(|&d| d.max(0) as usize).collect()
}

/// `axis` counted from the end when negative, checked against `rank`.
pub(crate) fn axis(op: &str, axis: i64, rank: usize) -> std::result::Result<usize, String> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    if a < 0 || a >= rank as i64 {
        return Err(format!("{op}: axis {axis} is out of range for rank {rank}"));
    }
    Ok(a as usize)
}
