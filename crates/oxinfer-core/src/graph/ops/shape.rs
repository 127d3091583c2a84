//! Ops that move elements without computing on them: concat, gather, slice
//! and reshape. They copy runs of elements, so they work for every element
//! type, strings included, and have static shape rules for build-time checks.

use crate::backend::Dim;
use crate::error::{Error, Result};
use crate::graph::types::{fixed, Ty};
use crate::tensor::{AlignedBytes, DType, InputData, InputTensor, OutputData, OutputTensor};

use super::num::{axis as norm_axis, sizes};

/// An output being filled by runs of elements copied from inputs.
struct Sink {
    dtype: DType,
    bytes: AlignedBytes,
    at: usize,
    strings: Vec<String>,
}

impl Sink {
    fn new(dtype: DType, elements: usize) -> Sink {
        let bytes = AlignedBytes::zeroed(if dtype == DType::String { 0 } else { elements * dtype.size() });
        Sink { dtype, bytes, at: 0, strings: Vec::with_capacity(if dtype == DType::String { elements } else { 0 }) }
    }

    /// Appends elements `start..start + count` of `t`.
    fn copy(&mut self, t: &InputTensor, start: usize, count: usize) {
        if let InputData::Strings(s) = &t.data {
            self.strings.extend_from_slice(&s[start..start + count]);
        } else {
            let size = self.dtype.size();
            let src = &t.bytes()[start * size..(start + count) * size];
            self.bytes.as_mut_slice()[self.at..self.at + src.len()].copy_from_slice(src);
            self.at += src.len();
        }
    }

    fn finish(self, name: &str, dims: Vec<i64>) -> OutputTensor {
        let data = if self.dtype == DType::String { OutputData::Strings(self.strings) } else { OutputData::Buffer(Box::new(self.bytes)) };
        OutputTensor { name: name.to_string(), dtype: self.dtype, dims, data }
    }
}

fn bad(t: &InputTensor, message: String) -> Error {
    Error::invalid_input(&t.name, message)
}

fn product(d: &[usize]) -> usize {
    d.iter().product()
}

/// Concatenates `inputs` along `axis`.
pub(crate) fn concat(inputs: &[InputTensor], axis: i64) -> Result<OutputTensor> {
    let first = &inputs[0];
    let rank = first.dims.len();
    let ax = norm_axis("concat", axis, rank).map_err(|m| bad(first, m))?;
    for t in &inputs[1..] {
        if t.dtype != first.dtype {
            return Err(bad(t, format!("concat: '{}' is {} but '{}' is {}", first.name, first.dtype.name(), t.name, t.dtype.name())));
        }
        let same = t.dims.len() == rank && t.dims.iter().zip(&first.dims).enumerate().all(|(i, (a, b))| i == ax || a == b);
        if !same {
            return Err(bad(t, format!("concat along axis {ax}: dims {:?} of '{}' do not fit dims {:?} of '{}'", t.dims, t.name, first.dims, first.name)));
        }
    }
    let mut dims = first.dims.clone();
    dims[ax] = inputs.iter().map(|t| t.dims[ax]).sum();
    let outer = product(&sizes(&first.dims[..ax]));
    let chunks: Vec<usize> = inputs.iter().map(|t| product(&sizes(&t.dims[ax..]))).collect();
    let mut sink = Sink::new(first.dtype, outer * chunks.iter().sum::<usize>());
    for o in 0..outer {
        for (t, &c) in inputs.iter().zip(&chunks) {
            sink.copy(t, o * c, c);
        }
    }
    Ok(sink.finish("y", dims))
}

/// numpy `take(t, indices, axis)`: dims[..axis] + index dims + dims[axis+1..].
pub(crate) fn take(t: &InputTensor, axis: i64, indices: &[i64], index_dims: &[i64], op: &str) -> Result<OutputTensor> {
    let ax = norm_axis(op, axis, t.dims.len()).map_err(|m| bad(t, m))?;
    let d = sizes(&t.dims);
    let n = d[ax] as i64;
    let outer = product(&d[..ax]);
    let inner = product(&d[ax + 1..]);
    let mut resolved = Vec::with_capacity(indices.len());
    for &i in indices {
        let j = if i < 0 { i + n } else { i };
        if j < 0 || j >= n {
            return Err(bad(t, format!("{op}: index {i} is out of range for axis {ax} of size {n}")));
        }
        resolved.push(j as usize);
    }
    let mut sink = Sink::new(t.dtype, outer * resolved.len() * inner);
    for o in 0..outer {
        for &j in &resolved {
            sink.copy(t, (o * n as usize + j) * inner, inner);
        }
    }
    let mut dims = t.dims[..ax].to_vec();
    dims.extend_from_slice(index_dims);
    dims.extend_from_slice(&t.dims[ax + 1..]);
    Ok(sink.finish("y", dims))
}

/// The indices Python's `start:end:step` selects from `n` elements.
pub(crate) fn slice_indices(n: i64, start: i64, end: i64, step: i64) -> Vec<i64> {
    let norm = |x: i64| if x < 0 { x.saturating_add(n) } else { x };
    let mut out = Vec::new();
    if step > 0 {
        let (mut i, e) = (norm(start).clamp(0, n), norm(end).clamp(0, n));
        while i < e {
            out.push(i);
            i += step;
        }
    } else if step < 0 {
        let (mut i, e) = (norm(start).clamp(-1, n - 1), norm(end).clamp(-1, n - 1));
        while i > e {
            out.push(i);
            i += step;
        }
    }
    out
}

/// Python-style slicing along `axis`.
pub(crate) fn slice(t: &InputTensor, axis: i64, start: i64, end: i64, step: i64) -> Result<OutputTensor> {
    let ax = norm_axis("slice", axis, t.dims.len()).map_err(|m| bad(t, m))?;
    let idx = slice_indices(t.dims[ax], start, end, step);
    take(t, axis, &idx, &[idx.len() as i64], "slice")
}

/// The dims `shape` asks for, given the input's dims: -1 inferred, 0 copied.
fn reshaped(from: &[i64], shape: &[i64]) -> std::result::Result<Vec<i64>, String> {
    let total: i64 = from.iter().product();
    let mut dims = Vec::with_capacity(shape.len());
    let mut infer = None;
    for (i, &s) in shape.iter().enumerate() {
        match s {
            -1 if infer.is_some() => return Err("reshape: at most one dim may be -1".into()),
            -1 => {
                infer = Some(i);
                dims.push(1);
            }
            0 => dims.push(*from.get(i).ok_or_else(|| format!("reshape: dim {i} is 0 (copy), but the input has rank {}", from.len()))?),
            s if s > 0 => dims.push(s),
            s => return Err(format!("reshape: dim {s} is invalid")),
        }
    }
    let known: i64 = dims.iter().product();
    if let Some(i) = infer {
        if known == 0 || total % known != 0 {
            return Err(format!("reshape: cannot infer the -1 dim of {shape:?} for {total} elements (dims {from:?})"));
        }
        dims[i] = total / known;
    } else if known != total {
        return Err(format!("reshape: shape {shape:?} holds {known} elements, but the input has {total} (dims {from:?})"));
    }
    Ok(dims)
}

pub(crate) fn reshape(t: &InputTensor, shape: &[i64]) -> Result<OutputTensor> {
    let dims = reshaped(&t.dims, shape).map_err(|m| bad(t, m))?;
    let data = match &t.data {
        InputData::Strings(s) => OutputData::Strings(s.clone()),
        _ => OutputData::Buffer(Box::new(AlignedBytes::from_slice(t.bytes()))),
    };
    Ok(OutputTensor { name: "y".into(), dtype: t.dtype, dims, data })
}

// Static shape rules: the output type for known input types (dims None when
// they cannot be told before running).

pub(crate) fn concat_ty(inputs: &[Ty], axis: i64) -> std::result::Result<Ty, String> {
    let first = &inputs[0];
    if let Some(t) = inputs.iter().find(|t| t.kind != first.kind) {
        return Err(format!("concat: inputs differ in type ({} vs {})", first.kind.type_name(), t.kind.type_name()));
    }
    let Some(all) = inputs.iter().map(|t| t.dims.clone()).collect::<Option<Vec<Vec<Dim>>>>() else {
        return Ok(Ty { kind: first.kind.clone(), dims: None });
    };
    let rank = all[0].len();
    if let Some(d) = all.iter().find(|d| d.len() != rank) {
        return Err(format!("concat: inputs differ in rank ({} vs {})", rank, d.len()));
    }
    let ax = norm_axis("concat", axis, rank)?;
    let mut dims = Vec::with_capacity(rank);
    for i in 0..rank {
        if i == ax {
            let sum: Option<i64> = all.iter().map(|d| fixed(&d[i])).sum();
            dims.push(sum.map_or(Dim::Dynamic, Dim::Fixed));
            continue;
        }
        let sizes: Vec<i64> = all.iter().filter_map(|d| fixed(&d[i])).collect();
        if sizes.windows(2).any(|w| w[0] != w[1]) {
            return Err(format!("concat along axis {ax}: inputs differ on dim {i} ({sizes:?})"));
        }
        dims.push(sizes.first().map_or_else(|| all[0][i].clone(), |&n| Dim::Fixed(n)));
    }
    Ok(Ty { kind: first.kind.clone(), dims: Some(dims) })
}

/// Gather with `index_dims` (None: unknown) along `axis` of `t`.
pub(crate) fn take_ty(t: &Ty, axis: i64, index_dims: Option<Vec<Dim>>) -> std::result::Result<Ty, String> {
    let (Some(d), Some(idx)) = (&t.dims, index_dims) else { return Ok(Ty { kind: t.kind.clone(), dims: None }) };
    let ax = norm_axis("gather", axis, d.len())?;
    let mut dims = d[..ax].to_vec();
    dims.extend(idx);
    dims.extend_from_slice(&d[ax + 1..]);
    Ok(Ty { kind: t.kind.clone(), dims: Some(dims) })
}

pub(crate) fn slice_ty(t: &Ty, axis: i64, start: i64, end: i64, step: i64) -> std::result::Result<Ty, String> {
    if step == 0 {
        return Err("slice: step must not be 0".into());
    }
    let Some(d) = &t.dims else { return Ok(t.clone()) };
    let ax = norm_axis("slice", axis, d.len())?;
    let mut dims = d.clone();
    dims[ax] = fixed(&d[ax]).map_or(Dim::Dynamic, |n| Dim::Fixed(slice_indices(n, start, end, step).len() as i64));
    Ok(Ty { kind: t.kind.clone(), dims: Some(dims) })
}

pub(crate) fn reshape_ty(t: &Ty, shape: &[i64]) -> std::result::Result<Ty, String> {
    if shape.iter().filter(|&&s| s == -1).count() > 1 || shape.iter().any(|&s| s < -1) {
        return Err(format!("reshape: shape {shape:?} may hold sizes, 0 (copy) and at most one -1"));
    }
    let from: Option<Vec<i64>> = t.dims.as_ref().and_then(|d| d.iter().map(fixed).collect());
    if let Some(from) = from {
        let dims = reshaped(&from, shape)?;
        return Ok(Ty { kind: t.kind.clone(), dims: Some(dims.into_iter().map(Dim::Fixed).collect()) });
    }
    let dims = shape
        .iter()
        .enumerate()
        .map(|(i, &s)| match s {
            0 => t.dims.as_ref().and_then(|d| d.get(i).cloned()).unwrap_or(Dim::Dynamic),
            -1 => Dim::Dynamic,
            s => Dim::Fixed(s),
        })
        .collect();
    Ok(Ty { kind: t.kind.clone(), dims: Some(dims) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32s(name: &str, dims: &[i64], v: &[f32]) -> InputTensor {
        InputTensor::from_values(name, DType::Float32, dims, v).unwrap()
    }

    #[test]
    fn concat_along_each_axis() {
        let a = f32s("a", &[2, 2], &[1., 2., 3., 4.]);
        let b = f32s("b", &[2, 1], &[5., 6.]);
        let y = concat(&[a.clone(), b], 1).unwrap();
        assert_eq!((y.dims.clone(), y.to_vec::<f32>().unwrap()), (vec![2, 3], vec![1., 2., 5., 3., 4., 6.]));
        let c = f32s("c", &[1, 2], &[7., 8.]);
        let y = concat(&[a.clone(), c], 0).unwrap();
        assert_eq!((y.dims.clone(), y.to_vec::<f32>().unwrap()), (vec![3, 2], vec![1., 2., 3., 4., 7., 8.]));
        let i = InputTensor::from_values("i", DType::Int64, &[2, 1], &[1i64, 2]).unwrap();
        assert_eq!(concat(&[a.clone(), i], 1).unwrap_err().code(), "ERR_INVALID_INPUT");
        let s = InputTensor::from_strings("s", &[2], vec!["x".into(), "y".into()]).unwrap();
        let t = InputTensor::from_strings("t", &[1], vec!["z".into()]).unwrap();
        assert_eq!(concat(&[s, t], 0).unwrap().strings().unwrap(), ["x", "y", "z"]);
    }

    #[test]
    fn take_and_slice() {
        let x = f32s("x", &[2, 3], &[0., 1., 2., 10., 11., 12.]);
        let y = take(&x, 1, &[2, 0, -1], &[3], "gather").unwrap();
        assert_eq!((y.dims.clone(), y.to_vec::<f32>().unwrap()), (vec![2, 3], vec![2., 0., 2., 12., 10., 12.]));
        let y = take(&x, 0, &[1], &[], "gather").unwrap();
        assert_eq!((y.dims.clone(), y.to_vec::<f32>().unwrap()), (vec![3], vec![10., 11., 12.]));
        assert!(take(&x, 1, &[3], &[1], "gather").unwrap_err().to_string().contains("out of range"));
        let y = slice(&x, -1, 1, i64::MAX, 1).unwrap();
        assert_eq!(y.to_vec::<f32>().unwrap(), vec![1., 2., 11., 12.]);
        let y = slice(&x, 1, -1, -100, -1).unwrap();
        assert_eq!(y.to_vec::<f32>().unwrap(), vec![2., 1., 0., 12., 11., 10.]);
        assert_eq!(slice_indices(5, 0, 5, 2), vec![0, 2, 4]);
        assert_eq!(slice_indices(5, -2, 100, 1), vec![3, 4]);
        assert_eq!(slice_indices(5, 3, 1, 1), Vec::<i64>::new());
    }

    #[test]
    fn reshape_infers_and_copies_dims() {
        let x = InputTensor::from_values("x", DType::Int64, &[2, 3], &[1i64, 2, 3, 4, 5, 6]).unwrap();
        let y = reshape(&x, &[0, 1, -1]).unwrap();
        assert_eq!((y.dims.clone(), y.to_vec::<i64>().unwrap()), (vec![2, 1, 3], vec![1, 2, 3, 4, 5, 6]));
        assert!(reshape(&x, &[4, -1]).is_err());
        assert!(reshape(&x, &[-1, -1]).is_err());
    }

    #[test]
    fn static_shapes() {
        let t = |d: &[i64]| Ty::from_shape(DType::Float32, Some(d));
        assert_eq!(concat_ty(&[t(&[-1, 2]), t(&[-1, 3])], 1).unwrap(), t(&[-1, 5]));
        assert!(concat_ty(&[t(&[4, 2]), t(&[5, 3])], 1).is_err());
        assert_eq!(slice_ty(&t(&[-1, 16]), 1, 0, 14, 1).unwrap(), t(&[-1, 14]));
        assert_eq!(take_ty(&t(&[-1, 16]), 1, Some(vec![Dim::Fixed(2)])).unwrap(), t(&[-1, 2]));
        assert_eq!(reshape_ty(&t(&[-1, 2]), &[0, 1, 2]).unwrap(), Ty::tensor(DType::Float32, Some(vec![Dim::Dynamic, Dim::Fixed(1), Dim::Fixed(2)])));
        assert_eq!(reshape_ty(&t(&[3, 2]), &[-1]).unwrap(), t(&[6]));
    }
}
