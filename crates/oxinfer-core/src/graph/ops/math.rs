//! Ops that compute on elements: elementwise arithmetic with numpy
//! broadcasting, sigmoid, softmax, cast, argmax and top-k, in f32, f64, i32
//! and i64, with their static type rules.

use crate::backend::Dim;
use crate::error::{Error, Result};
use crate::graph::types::{fixed, Ty};
use crate::tensor::{DType, InputTensor, OutputTensor};

use super::num::{arithmetic, axis as norm_axis, output, sizes, values, with_elem, Bin, Elem};

fn bad(t: &InputTensor, message: String) -> Error {
    Error::invalid_input(&t.name, message)
}

/// numpy's broadcast of two shapes, or None when they do not broadcast.
pub(crate) fn broadcast(a: &[i64], b: &[i64]) -> Option<Vec<i64>> {
    let rank = a.len().max(b.len());
    let get = |d: &[i64], i: usize| if i + d.len() >= rank { d[i + d.len() - rank] } else { 1 };
    (0..rank)
        .map(|i| match (get(a, i), get(b, i)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

/// For each element of a tensor of dims `out`, the flat index of the element
/// of `dims` (broadcast to `out`) that it reads.
fn broadcast_index(out: &[usize], dims: &[usize]) -> Vec<usize> {
    let rank = out.len();
    let pad = rank - dims.len();
    // Strides of `dims` aligned to `out`, 0 where the dim is broadcast.
    let mut strides = vec![0usize; rank];
    let mut s = 1;
    for i in (0..dims.len()).rev() {
        strides[i + pad] = if dims[i] == 1 { 0 } else { s };
        s *= dims[i];
    }
    let total: usize = out.iter().product();
    let mut index = Vec::with_capacity(total);
    let mut pos = vec![0usize; rank];
    let mut flat = 0usize;
    for _ in 0..total {
        index.push(flat);
        for i in (0..rank).rev() {
            pos[i] += 1;
            flat += strides[i];
            if pos[i] < out[i] {
                break;
            }
            flat -= strides[i] * pos[i];
            pos[i] = 0;
        }
    }
    index
}

fn bin_name(op: Bin) -> &'static str {
    match op {
        Bin::Add => "add",
        Bin::Sub => "sub",
        Bin::Mul => "mul",
        Bin::Div => "div",
        Bin::Max => "max",
        Bin::Min => "min",
    }
}

fn apply<T: Elem>(op: Bin, a: T, b: T, t: &InputTensor) -> Result<T> {
    T::bin(op, a, b).ok_or_else(|| bad(t, format!("{}: integer division by zero", bin_name(op))))
}

/// `a op b` elementwise, broadcasting as numpy does.
pub(crate) fn binary(op: Bin, a: &InputTensor, b: &InputTensor) -> Result<OutputTensor> {
    if a.dtype != b.dtype {
        return Err(bad(b, format!("{}: '{}' is {} but '{}' is {}; cast one first", bin_name(op), a.name, a.dtype.name(), b.name, b.dtype.name())));
    }
    let dims = broadcast(&a.dims, &b.dims).ok_or_else(|| bad(b, format!("{}: dims {:?} and {:?} do not broadcast", bin_name(op), a.dims, b.dims)))?;
    with_elem!(a.dtype, bin_name(op), T => {
        let (x, y) = (values::<T>(a), values::<T>(b));
        let v: Vec<T> = if a.dims == b.dims {
            x.iter().zip(&y).map(|(&p, &q)| apply(op, p, q, b)).collect::<Result<_>>()?
        } else {
            let out = sizes(&dims);
            let (ia, ib) = (broadcast_index(&out, &sizes(&a.dims)), broadcast_index(&out, &sizes(&b.dims)));
            ia.iter().zip(&ib).map(|(&i, &j)| apply(op, x[i], y[j], b)).collect::<Result<_>>()?
        };
        Ok(output("y", dims, v))
    })
}

/// `a op scalar` elementwise, the scalar converted to `a`'s type.
pub(crate) fn scalar(op: Bin, a: &InputTensor, s: f64) -> Result<OutputTensor> {
    with_elem!(a.dtype, bin_name(op), T => {
        let k = T::from_f64(s);
        let v = values::<T>(a).into_iter().map(|x| apply(op, x, k, a)).collect::<Result<Vec<T>>>()?;
        Ok(output("y", a.dims.clone(), v))
    })
}

fn float_only(op: &str, t: &InputTensor) -> Result<()> {
    match t.dtype {
        DType::Float32 | DType::Float64 => Ok(()),
        d => Err(Error::Unsupported(format!("graph op '{op}' needs a float32 or float64 tensor, got {}", d.name()))),
    }
}

pub(crate) fn sigmoid(t: &InputTensor) -> Result<OutputTensor> {
    float_only("sigmoid", t)?;
    with_elem!(t.dtype, "sigmoid", T => {
        let v: Vec<T> = values::<T>(t).into_iter().map(|x| T::from_f64(1.0 / (1.0 + (-x.to_f64()).exp()))).collect();
        Ok(output("y", t.dims.clone(), v))
    })
}

/// (outer, n, inner): the loop bounds of a reduction along `ax`.
fn around(dims: &[i64], ax: usize) -> (usize, usize, usize) {
    let d = sizes(dims);
    (d[..ax].iter().product(), d[ax], d[ax + 1..].iter().product())
}

pub(crate) fn softmax(t: &InputTensor, axis: i64) -> Result<OutputTensor> {
    float_only("softmax", t)?;
    let ax = norm_axis("softmax", axis, t.dims.len()).map_err(|m| bad(t, m))?;
    let (outer, n, inner) = around(&t.dims, ax);
    with_elem!(t.dtype, "softmax", T => {
        let x = values::<T>(t);
        let mut v = vec![T::default(); x.len()];
        for o in 0..outer {
            for i in 0..inner {
                let at = |k: usize| (o * n + k) * inner + i;
                // Shifted by the max for stability, summed in f64.
                let m = (0..n).map(|k| x[at(k)].to_f64()).fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = (0..n).map(|k| (x[at(k)].to_f64() - m).exp()).sum();
                for k in 0..n {
                    v[at(k)] = T::from_f64((x[at(k)].to_f64() - m).exp() / sum);
                }
            }
        }
        Ok(output("y", t.dims.clone(), v))
    })
}

fn convert<S: Elem, D: Elem>(v: Vec<S>) -> Vec<D> {
    // Integers go through i64 (exact); floats through f64 (float to integer
    // truncates and saturates, as Rust's `as` does).
    if S::FLOAT {
        v.into_iter().map(|x| D::from_f64(x.to_f64())).collect()
    } else {
        v.into_iter().map(|x| D::from_i64(x.to_i64())).collect()
    }
}

pub(crate) fn cast(t: &InputTensor, to: DType) -> Result<OutputTensor> {
    with_elem!(t.dtype, "cast", S => {
        let v = values::<S>(t);
        with_elem!(to, "cast", D => Ok(output("y", t.dims.clone(), convert::<S, D>(v))))
    })
}

pub(crate) fn argmax(t: &InputTensor, axis: i64, keepdims: bool) -> Result<OutputTensor> {
    let ax = norm_axis("argmax", axis, t.dims.len()).map_err(|m| bad(t, m))?;
    let (outer, n, inner) = around(&t.dims, ax);
    if n == 0 {
        return Err(bad(t, format!("argmax: axis {ax} is empty")));
    }
    with_elem!(t.dtype, "argmax", T => {
        let x = values::<T>(t);
        let mut v = Vec::with_capacity(outer * inner);
        for o in 0..outer {
            for i in 0..inner {
                let at = |k: usize| (o * n + k) * inner + i;
                let mut best = 0;
                for k in 1..n {
                    if x[at(k)] > x[at(best)] {
                        best = k;
                    }
                }
                v.push(best as i64);
            }
        }
        let mut dims = t.dims.clone();
        if keepdims {
            dims[ax] = 1;
        } else {
            dims.remove(ax);
        }
        Ok(output("y", dims, v))
    })
}

/// The `k` largest along `axis`, largest first (ties: the lower index
/// first; NaN sorts last): `values` and int64 `indices`.
pub(crate) fn topk(t: &InputTensor, k: usize, axis: i64) -> Result<Vec<OutputTensor>> {
    let ax = norm_axis("topk", axis, t.dims.len()).map_err(|m| bad(t, m))?;
    let (outer, n, inner) = around(&t.dims, ax);
    if k > n {
        return Err(bad(t, format!("topk: k = {k} but axis {ax} has only {n} elements")));
    }
    with_elem!(t.dtype, "topk", T => {
        let x = values::<T>(t);
        let mut dims = t.dims.clone();
        dims[ax] = k as i64;
        let mut vals = vec![T::default(); outer * k * inner];
        let mut idx = vec![0i64; outer * k * inner];
        let mut order: Vec<usize> = Vec::with_capacity(n);
        for o in 0..outer {
            for i in 0..inner {
                let at = |j: usize| (o * n + j) * inner + i;
                order.clear();
                order.extend(0..n);
                order.sort_by(|&p, &q| descending(x[at(p)], x[at(q)]));
                for (r, &j) in order[..k].iter().enumerate() {
                    let dst = (o * k + r) * inner + i;
                    vals[dst] = x[at(j)];
                    idx[dst] = j as i64;
                }
            }
        }
        Ok(vec![output("values", dims.clone(), vals), output("indices", dims, idx)])
    })
}

/// Larger first, NaN last; stable sorts keep equal elements in index order.
pub(crate) fn descending<T: PartialOrd + Copy>(a: T, b: T) -> std::cmp::Ordering {
    #[allow(clippy::eq_op)]
    let (na, nb) = (a != a, b != b);
    match (na, nb) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => b.partial_cmp(&a).unwrap_or(std::cmp::Ordering::Equal),
    }
}

// Static type rules.

fn tensor_dtype(op: &str, t: &Ty) -> std::result::Result<DType, String> {
    t.dtype().ok_or_else(|| format!("{op} needs a tensor, got a {} value", t.kind.type_name()))
}

fn arithmetic_dtype(op: &str, t: &Ty) -> std::result::Result<DType, String> {
    let d = tensor_dtype(op, t)?;
    if !arithmetic(d) {
        return Err(format!("{op} computes in float32, float64, int32 or int64, not {}", d.name()));
    }
    Ok(d)
}

pub(crate) fn binary_ty(op: &str, a: &Ty, b: &Ty) -> std::result::Result<Ty, String> {
    let (x, y) = (arithmetic_dtype(op, a)?, arithmetic_dtype(op, b)?);
    if x != y {
        return Err(format!("{op}: inputs differ in type ({} vs {}); cast one first", x.name(), y.name()));
    }
    let (Some(p), Some(q)) = (&a.dims, &b.dims) else { return Ok(Ty::tensor(x, None)) };
    let rank = p.len().max(q.len());
    let get = |d: &[Dim], i: usize| if i + d.len() >= rank { d[i + d.len() - rank].clone() } else { Dim::Fixed(1) };
    let mut dims = Vec::with_capacity(rank);
    for i in 0..rank {
        let (m, n) = (get(p, i), get(q, i));
        dims.push(match (fixed(&m), fixed(&n)) {
            (Some(u), Some(v)) if u == v || v == 1 => m,
            (Some(1), Some(_)) => n,
            (Some(u), Some(v)) => return Err(format!("{op}: dims {u} and {v} do not broadcast (axis {i} of the result)")),
            (Some(1), None) => n,
            (Some(_), None) => m,
            (None, _) => {
                if fixed(&n).is_some_and(|v| v != 1) {
                    n
                } else {
                    m
                }
            }
        });
    }
    Ok(Ty::tensor(x, Some(dims)))
}

pub(crate) fn float_ty(op: &str, t: &Ty, axis: Option<i64>) -> std::result::Result<Ty, String> {
    let d = tensor_dtype(op, t)?;
    if !matches!(d, DType::Float32 | DType::Float64) {
        return Err(format!("{op} needs a float32 or float64 tensor, got {}", d.name()));
    }
    if let (Some(a), Some(r)) = (axis, t.rank()) {
        norm_axis(op, a, r)?;
    }
    Ok(t.clone())
}

pub(crate) fn cast_ty(t: &Ty, to: DType) -> std::result::Result<Ty, String> {
    arithmetic_dtype("cast", t)?;
    if !arithmetic(to) {
        return Err(format!("cast converts to float32, float64, int32 or int64, not {}", to.name()));
    }
    Ok(Ty::tensor(to, t.dims.clone()))
}

pub(crate) fn argmax_ty(t: &Ty, axis: i64, keepdims: bool) -> std::result::Result<Ty, String> {
    arithmetic_dtype("argmax", t)?;
    let dims = match &t.dims {
        Some(d) => {
            let ax = norm_axis("argmax", axis, d.len())?;
            let mut d = d.clone();
            if keepdims {
                d[ax] = Dim::Fixed(1);
            } else {
                d.remove(ax);
            }
            Some(d)
        }
        None => None,
    };
    Ok(Ty::tensor(DType::Int64, dims))
}

pub(crate) fn topk_ty(t: &Ty, k: usize, axis: i64) -> std::result::Result<[Ty; 2], String> {
    let d = arithmetic_dtype("topk", t)?;
    let dims = match &t.dims {
        Some(dims) => {
            let ax = norm_axis("topk", axis, dims.len())?;
            if let Some(n) = fixed(&dims[ax]).filter(|&n| (k as i64) > n) {
                return Err(format!("topk: k = {k} but axis {ax} has only {n} elements"));
            }
            let mut dims = dims.clone();
            dims[ax] = Dim::Fixed(k as i64);
            Some(dims)
        }
        None => None,
    };
    Ok([Ty::tensor(d, dims.clone()), Ty::tensor(DType::Int64, dims)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t<T: Copy>(dtype: DType, dims: &[i64], v: &[T]) -> InputTensor {
        InputTensor::from_values("x", dtype, dims, v).unwrap()
    }

    #[test]
    fn elementwise_broadcasts_in_every_type() {
        let a = t(DType::Float32, &[2, 3], &[1f32, 2., 3., 4., 5., 6.]);
        let b = t(DType::Float32, &[3], &[10f32, 20., 30.]);
        assert_eq!(binary(Bin::Add, &a, &b).unwrap().to_vec::<f32>().unwrap(), vec![11., 22., 33., 14., 25., 36.]);
        let col = t(DType::Float32, &[2, 1], &[1f32, 2.]);
        let y = binary(Bin::Mul, &col, &b).unwrap();
        assert_eq!((y.dims.clone(), y.to_vec::<f32>().unwrap()), (vec![2, 3], vec![10., 20., 30., 20., 40., 60.]));
        let a = t(DType::Float64, &[2], &[1f64, 5.]);
        let b = t(DType::Float64, &[2], &[3f64, 2.]);
        assert_eq!(binary(Bin::Max, &a, &b).unwrap().to_vec::<f64>().unwrap(), vec![3., 5.]);
        assert_eq!(binary(Bin::Min, &a, &b).unwrap().to_vec::<f64>().unwrap(), vec![1., 2.]);
        assert_eq!(binary(Bin::Sub, &a, &b).unwrap().to_vec::<f64>().unwrap(), vec![-2., 3.]);
        let a = t(DType::Int32, &[3], &[7i32, -7, 9]);
        let b = t(DType::Int32, &[1], &[2i32]);
        assert_eq!(binary(Bin::Div, &a, &b).unwrap().to_vec::<i32>().unwrap(), vec![3, -3, 4]);
        let z = t(DType::Int32, &[1], &[0i32]);
        assert!(binary(Bin::Div, &a, &z).unwrap_err().to_string().contains("division by zero"));
        let a = t(DType::Int64, &[2], &[1i64, 2]);
        assert_eq!(scalar(Bin::Add, &a, 10.0).unwrap().to_vec::<i64>().unwrap(), vec![11, 12]);
        assert_eq!(binary(Bin::Add, &a, &t(DType::Int64, &[3], &[1i64, 2, 3])).unwrap_err().code(), "ERR_INVALID_INPUT");
        let u = t(DType::Uint8, &[1], &[1u8]);
        assert_eq!(scalar(Bin::Add, &u, 1.0).unwrap_err().code(), "ERR_UNSUPPORTED");
    }

    #[test]
    fn sigmoid_softmax_cast() {
        let x = t(DType::Float32, &[2, 2], &[0f32, 0., 1., 3.]);
        assert_eq!(sigmoid(&x).unwrap().to_vec::<f32>().unwrap()[0], 0.5);
        let s = softmax(&x, 1).unwrap().to_vec::<f32>().unwrap();
        assert_eq!(&s[..2], &[0.5, 0.5]);
        assert!((s[2] + s[3] - 1.0).abs() < 1e-6 && s[3] > s[2]);
        let s = softmax(&x, 0).unwrap().to_vec::<f32>().unwrap();
        assert!((s[0] + s[2] - 1.0).abs() < 1e-6);
        let i = t(DType::Int64, &[2], &[1i64, 2]);
        assert_eq!(sigmoid(&i).unwrap_err().code(), "ERR_UNSUPPORTED");
        let c = cast(&t(DType::Float64, &[3], &[1.9f64, -1.9, 1e30]), DType::Int32).unwrap();
        assert_eq!(c.to_vec::<i32>().unwrap(), vec![1, -1, i32::MAX]);
        let c = cast(&i, DType::Float32).unwrap();
        assert_eq!((c.dtype, c.to_vec::<f32>().unwrap()), (DType::Float32, vec![1., 2.]));
    }

    #[test]
    fn argmax_and_topk() {
        let x = t(DType::Float32, &[2, 3], &[1f32, 5., 5., 9., 2., 3.]);
        let a = argmax(&x, 1, false).unwrap();
        assert_eq!((a.dims.clone(), a.to_vec::<i64>().unwrap()), (vec![2], vec![1, 0]));
        let a = argmax(&x, 0, true).unwrap();
        assert_eq!((a.dims.clone(), a.to_vec::<i64>().unwrap()), (vec![1, 3], vec![1, 0, 0]));
        let k = topk(&x, 2, -1).unwrap();
        assert_eq!(k[0].to_vec::<f32>().unwrap(), vec![5., 5., 9., 3.]);
        assert_eq!(k[1].to_vec::<i64>().unwrap(), vec![1, 2, 0, 2]);
        assert_eq!(k[1].dims, vec![2, 2]);
        let k = topk(&t(DType::Int32, &[3, 1], &[2i32, 7, 4]), 1, 0).unwrap();
        assert_eq!((k[0].to_vec::<i32>().unwrap(), k[1].to_vec::<i64>().unwrap()), (vec![7], vec![1]));
        assert!(topk(&x, 4, 1).is_err());
    }

    #[test]
    fn static_types() {
        let f = |d: &[i64]| Ty::from_shape(DType::Float32, Some(d));
        assert_eq!(binary_ty("add", &f(&[-1, 3]), &f(&[3])).unwrap(), f(&[-1, 3]));
        assert_eq!(binary_ty("add", &f(&[4, 1]), &f(&[1, 3])).unwrap(), f(&[4, 3]));
        assert!(binary_ty("add", &f(&[4]), &f(&[3])).is_err());
        assert!(binary_ty("add", &f(&[4]), &Ty::from_shape(DType::Int64, Some(&[4]))).is_err());
        assert_eq!(argmax_ty(&f(&[-1, 2]), 1, false).unwrap(), Ty::from_shape(DType::Int64, Some(&[-1])));
        assert!(float_ty("sigmoid", &Ty::from_shape(DType::Int64, None), None).is_err());
        assert_eq!(topk_ty(&f(&[-1, 5]), 2, -1).unwrap()[1], Ty::from_shape(DType::Int64, Some(&[-1, 2])));
        assert!(topk_ty(&f(&[-1, 1]), 2, -1).is_err());
    }
}
