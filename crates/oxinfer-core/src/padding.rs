//! Block copies for variable-length batching: requests of different lengths
//! are placed into one padded tensor, and each caller's outputs are cropped
//! back to its own length.

use crate::tensor::DType;

/// Copies all of `src` (dims `sd`) into `dst` (dims `dd`, same rank, each dim
/// at least as large), at offset `at` along `axis` and 0 elsewhere. `unit` is
/// the number of `T`s per element (bytes per element for raw data, 1 for strings).
pub fn place<T: Clone>(dst: &mut [T], dd: &[usize], src: &[T], sd: &[usize], axis: usize, at: usize, unit: usize) {
    let rank = sd.len();
    if rank == 0 || sd.contains(&0) {
        return;
    }
    let run = sd[rank - 1] * unit;
    let strides = strides(dd, unit);
    let mut idx = vec![0usize; rank.saturating_sub(1)];
    let mut from = 0;
    loop {
        let mut to = if axis == rank - 1 { at * unit } else { 0 };
        for (k, &i) in idx.iter().enumerate() {
            to += (i + if k == axis { at } else { 0 }) * strides[k];
        }
        dst[to..to + run].clone_from_slice(&src[from..from + run]);
        from += run;
        if !advance(&mut idx, &sd[..rank - 1]) {
            break;
        }
    }
}

/// The leading `len` entries of `src` (dims `sd`) along `axis`, and their dims.
pub fn crop<T: Clone>(src: &[T], sd: &[usize], axis: usize, len: usize, unit: usize) -> Vec<T> {
    let rank = sd.len();
    let mut od = sd.to_vec();
    od[axis] = len.min(sd[axis]);
    let total: usize = od.iter().product::<usize>() * unit;
    let mut out = Vec::with_capacity(total);
    if total == 0 {
        return out;
    }
    let run = od[rank - 1] * unit;
    let strides = strides(sd, unit);
    let mut idx = vec![0usize; rank - 1];
    loop {
        let from: usize = idx.iter().zip(&strides).map(|(i, s)| i * s).sum();
        out.extend_from_slice(&src[from..from + run]);
        if !advance(&mut idx, &od[..rank - 1]) {
            break;
        }
    }
    out
}

/// Row-major strides in `T`s of every axis but the last.
fn strides(dims: &[usize], unit: usize) -> Vec<usize> {
    let rank = dims.len();
    let mut s = vec![0; rank.saturating_sub(1)];
    let mut acc = dims.last().copied().unwrap_or(1) * unit;
    for k in (0..rank.saturating_sub(1)).rev() {
        s[k] = acc;
        acc *= dims[k];
    }
    s
}

/// Next multi-index in row-major order; false after the last.
fn advance(idx: &mut [usize], dims: &[usize]) -> bool {
    for k in (0..idx.len()).rev() {
        idx[k] += 1;
        if idx[k] < dims[k] {
            return true;
        }
        idx[k] = 0;
    }
    false
}

/// `value` as one element of `dtype`, in native byte order.
pub fn scalar_bytes(dtype: DType, value: f64) -> Vec<u8> {
    match dtype {
        DType::Float32 => (value as f32).to_ne_bytes().to_vec(),
        DType::Float64 => value.to_ne_bytes().to_vec(),
        DType::Float16 => half::f16::from_f64(value).to_bits().to_ne_bytes().to_vec(),
        DType::BFloat16 => half::bf16::from_f64(value).to_bits().to_ne_bytes().to_vec(),
        DType::Int8 => (value as i8).to_ne_bytes().to_vec(),
        DType::Uint8 => (value as u8).to_ne_bytes().to_vec(),
        DType::Bool => vec![(value != 0.0) as u8],
        DType::Int16 => (value as i16).to_ne_bytes().to_vec(),
        DType::Uint16 => (value as u16).to_ne_bytes().to_vec(),
        DType::Int32 => (value as i32).to_ne_bytes().to_vec(),
        DType::Uint32 => (value as u32).to_ne_bytes().to_vec(),
        DType::Int64 => (value as i64).to_ne_bytes().to_vec(),
        DType::Uint64 => (value as u64).to_ne_bytes().to_vec(),
        DType::String => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_and_crops_along_inner_axes() {
        // Two [1, L] rows of lengths 2 and 3 padded into [2, 3] with -1.
        let mut dst = vec![-1i32; 6];
        place(&mut dst, &[2, 3], &[1, 2], &[1, 2], 0, 0, 1);
        place(&mut dst, &[2, 3], &[3, 4, 5], &[1, 3], 0, 1, 1);
        assert_eq!(dst, vec![1, 2, -1, 3, 4, 5]);
        // A [2, 3, 2] block cropped to length 2 on axis 1.
        let src: Vec<i32> = (0..12).collect();
        assert_eq!(crop(&src, &[2, 3, 2], 1, 2, 1), vec![0, 1, 2, 3, 6, 7, 8, 9]);
        // Offsets along the last axis, with 2 bytes per element.
        let mut bytes = vec![0u8; 8];
        place(&mut bytes, &[1, 4], &[1, 1, 2, 2], &[1, 2], 1, 2, 2);
        assert_eq!(bytes, vec![0, 0, 0, 0, 1, 1, 2, 2]);
    }

    #[test]
    fn pad_values_take_the_element_type() {
        assert_eq!(scalar_bytes(DType::Int64, 3.0), 3i64.to_ne_bytes().to_vec());
        assert_eq!(scalar_bytes(DType::Float16, 1.0), half::f16::ONE.to_bits().to_ne_bytes().to_vec());
        assert_eq!(scalar_bytes(DType::Bool, 2.0), vec![1]);
    }
}
