//! What the graph knows statically about a value: its kind (a tensor's
//! element type) and, where known, its dims. Used to check edges at build
//! time; unknown dims match anything.

use crate::backend::{Dim, ValueInfo, ValueKind};
use crate::tensor::DType;
use crate::validate::show_dims;

/// The static type of a value flowing on an edge.
#[derive(Clone, Debug, PartialEq)]
pub struct Ty {
    /// A tensor's element type, or another kind of value.
    pub kind: ValueKind,
    /// None: the rank is unknown.
    pub dims: Option<Vec<Dim>>,
}

impl Ty {
    /// A tensor of `dtype` with `dims` (None: any rank).
    pub fn tensor(dtype: DType, dims: Option<Vec<Dim>>) -> Ty {
        Ty { kind: ValueKind::Tensor(dtype), dims }
    }

    /// A declared model input or output; ONNX Runtime reports rank 0 both for
    /// scalars and for values without shape information, so no dims is unknown.
    pub fn of(v: &ValueInfo) -> Ty {
        Ty { kind: v.kind.clone(), dims: Some(v.dims.clone()).filter(|d| !d.is_empty()) }
    }

    /// From a spec shape (-1: any size).
    pub fn from_shape(dtype: DType, shape: Option<&[i64]>) -> Ty {
        Ty::tensor(dtype, shape.map(|s| s.iter().map(|&d| if d < 0 { Dim::Dynamic } else { Dim::Fixed(d) }).collect()))
    }

    /// The element type, for a tensor.
    pub fn dtype(&self) -> Option<DType> {
        match self.kind {
            ValueKind::Tensor(d) => Some(d),
            _ => None,
        }
    }

    /// The rank, where known.
    pub fn rank(&self) -> Option<usize> {
        self.dims.as_ref().map(Vec::len)
    }

    /// The value as a model would declare it (unknown dims as none).
    pub fn info(&self, name: &str) -> ValueInfo {
        ValueInfo { name: name.to_string(), kind: self.kind.clone(), dims: self.dims.clone().unwrap_or_default() }
    }

    /// How errors show the type: "float32 [batch, 16]".
    pub fn show(&self) -> String {
        match &self.dims {
            Some(d) => format!("{} {}", self.kind.type_name(), show_dims(d)),
            None => format!("{} [any rank]", self.kind.type_name()),
        }
    }
}

/// Why a value of type `from` cannot flow into a slot of type `to`, if it cannot:
/// ("type" or "shape", detail).
pub fn mismatch(from: &Ty, to: &Ty) -> Option<(&'static str, String)> {
    if from.kind != to.kind {
        return Some(("type", format!("{} vs {}", from.kind.type_name(), to.kind.type_name())));
    }
    let (Some(a), Some(b)) = (&from.dims, &to.dims) else { return None };
    if a.len() != b.len() {
        return Some(("shape", format!("rank {} {} vs rank {} {}", a.len(), show_dims(a), b.len(), show_dims(b))));
    }
    for (axis, (x, y)) in a.iter().zip(b).enumerate() {
        if let (Dim::Fixed(p), Dim::Fixed(q)) = (x, y) {
            if p != q {
                return Some(("shape", format!("dim {axis} is {p} vs {q} ({} vs {})", show_dims(a), show_dims(b))));
            }
        }
    }
    None
}

/// A fixed size, if the dim has one.
pub fn fixed(d: &Dim) -> Option<i64> {
    match d {
        Dim::Fixed(n) => Some(*n),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_symbolic_dims_match_anything() {
        let a = Ty::from_shape(DType::Float32, Some(&[-1, 16]));
        let b = Ty::tensor(DType::Float32, Some(vec![Dim::Symbolic("batch".into()), Dim::Fixed(16)]));
        assert_eq!(mismatch(&a, &b), None);
        assert_eq!(mismatch(&a, &Ty::tensor(DType::Float32, None)), None);
        assert_eq!(mismatch(&a, &Ty::from_shape(DType::Float32, Some(&[-1, 8]))).unwrap().0, "shape");
        assert_eq!(mismatch(&a, &Ty::from_shape(DType::Float32, Some(&[16]))).unwrap().0, "shape");
        assert_eq!(mismatch(&a, &Ty::from_shape(DType::Int64, Some(&[-1, 16]))).unwrap().0, "type");
    }
}
