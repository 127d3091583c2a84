//! Tensor ops as graph nodes: their arity, output names, static types (for
//! build-time edge checks) and their inline run over input tensors.

mod math;
pub(crate) mod num;
mod shape;
mod store;
mod text;
mod vision;

use crate::backend::Dim;
use crate::error::{Error, Result};
use crate::graph::spec::OpSpec;
use crate::graph::types::Ty;
use crate::tensor::{DType, InputTensor, OutputTensor};

pub(crate) use math::descending;
pub use num::to_f64s;
use num::Bin;
pub(crate) use num::{f64s, numeric};

/// A validated op: a spec whose arity fits its inputs.
#[derive(Clone, Debug)]
pub(crate) struct Op(pub OpSpec);

fn binary(spec: &OpSpec) -> Option<(Bin, Option<f64>)> {
    Some(match *spec {
        OpSpec::Add { scalar } => (Bin::Add, scalar),
        OpSpec::Sub { scalar } => (Bin::Sub, scalar),
        OpSpec::Mul { scalar } => (Bin::Mul, scalar),
        OpSpec::Div { scalar } => (Bin::Div, scalar),
        OpSpec::Max { scalar } => (Bin::Max, scalar),
        OpSpec::Min { scalar } => (Bin::Min, scalar),
        _ => return None,
    })
}

impl Op {
    /// The op's name as written in the spec.
    pub fn name(&self) -> &'static str {
        match self.0 {
            OpSpec::Concat { .. } => "concat",
            OpSpec::Slice { .. } => "slice",
            OpSpec::Gather { .. } => "gather",
            OpSpec::Argmax { .. } => "argmax",
            OpSpec::Topk { .. } => "topk",
            OpSpec::Add { .. } => "add",
            OpSpec::Sub { .. } => "sub",
            OpSpec::Mul { .. } => "mul",
            OpSpec::Div { .. } => "div",
            OpSpec::Max { .. } => "max",
            OpSpec::Min { .. } => "min",
            OpSpec::Sigmoid {} => "sigmoid",
            OpSpec::Softmax { .. } => "softmax",
            OpSpec::Cast { .. } => "cast",
            OpSpec::Reshape { .. } => "reshape",
            OpSpec::DecodeImage { .. } => "decode_image",
            OpSpec::DetInput { .. } => "det_input",
            OpSpec::TextBoxes { .. } => "text_boxes",
            OpSpec::CropText { .. } => "crop_text",
            OpSpec::RotateFlagged { .. } => "rotate_flagged",
            OpSpec::CtcDecode { .. } => "ctc_decode",
            OpSpec::Tokenize { .. } => "tokenize",
            OpSpec::Image { .. } => "image",
            OpSpec::Lookup { .. } => "lookup",
        }
    }

    /// The op's output names.
    pub fn outputs(&self) -> &'static [&'static str] {
        if let Some(list) = vision::outputs(&self.0).or_else(|| text::outputs(&self.0)) {
            return list;
        }
        match self.0 {
            OpSpec::Topk { .. } => &["values", "indices"],
            _ => &["y"],
        }
    }

    /// Checks how many inputs the op is given.
    pub fn check_arity(&self, n: usize) -> std::result::Result<(), String> {
        let want: (usize, usize) = match &self.0 {
            spec if text::arity(spec).is_some() => text::arity(spec).unwrap_or((1, 1)),
            OpSpec::Lookup { .. } => (1, 1),
            spec if vision::arity(spec).is_some() => {
                let a = vision::arity(spec).unwrap_or(1);
                (a, a)
            }
            OpSpec::Concat { .. } => (1, usize::MAX),
            OpSpec::Gather { indices: Some(_), .. } => (1, 1),
            OpSpec::Gather { indices: None, .. } => (2, 2),
            spec => match binary(spec) {
                Some((_, Some(_))) => (1, 1),
                Some((_, None)) => (2, 2),
                None => (1, 1),
            },
        };
        if n < want.0 || n > want.1 {
            let expected = match want {
                (1, usize::MAX) => "at least 1 input".to_string(),
                (1, 1) if binary(&self.0).is_some() => "1 input (with 'scalar')".to_string(),
                (2, 2) if binary(&self.0).is_some() => "2 inputs (or 1 with 'scalar')".to_string(),
                (2, 2) => "2 inputs (data, indices), or 1 with 'indices' given".to_string(),
                (1, 2) => "1 input (texts) or 2 (texts, pair texts)".to_string(),
                (a, _) => format!("{a} input{}", if a == 1 { "" } else { "s" }),
            };
            return Err(format!("op '{}' takes {expected}, but {n} {} given", self.name(), if n == 1 { "is" } else { "are" }));
        }
        Ok(())
    }

    /// The types of the outputs for inputs of types `inputs`.
    pub fn infer(&self, inputs: &[Ty]) -> std::result::Result<Vec<Ty>, String> {
        self.check_arity(inputs.len())?;
        let x = &inputs[0];
        if let Some(t) = inputs.iter().find(|t| t.dtype().is_none()) {
            return Err(format!("op '{}' needs tensors, got a {} value", self.name(), t.kind.type_name()));
        }
        let one = |t: Ty| Ok(vec![t]);
        if vision::arity(&self.0).is_some() {
            return vision::infer(&self.0, inputs);
        }
        if text::arity(&self.0).is_some() {
            return text::infer(&self.0, inputs);
        }
        if let OpSpec::Lookup { .. } = &self.0 {
            return store::infer(&self.0, inputs);
        }
        match &self.0 {
            OpSpec::Concat { axis } => one(shape::concat_ty(inputs, *axis)?),
            OpSpec::Slice { axis, start, end, step } => one(shape::slice_ty(x, *axis, *start, *end, *step)?),
            OpSpec::Gather { axis, indices: Some(i) } => one(shape::take_ty(x, *axis, Some(vec![Dim::Fixed(i.len() as i64)]))?),
            OpSpec::Gather { axis, indices: None } => {
                let idx = &inputs[1];
                if !matches!(idx.dtype(), Some(DType::Int64 | DType::Int32)) {
                    return Err(format!("gather: indices must be int64 or int32, got {}", idx.kind.type_name()));
                }
                one(shape::take_ty(x, *axis, idx.dims.clone())?)
            }
            OpSpec::Argmax { axis, keepdims } => one(math::argmax_ty(x, *axis, *keepdims)?),
            OpSpec::Topk { k, axis } => Ok(math::topk_ty(x, *k, *axis)?.to_vec()),
            OpSpec::Sigmoid {} => one(math::float_ty("sigmoid", x, None)?),
            OpSpec::Softmax { axis } => one(math::float_ty("softmax", x, Some(*axis))?),
            OpSpec::Cast { to } => one(math::cast_ty(x, *to)?),
            OpSpec::Reshape { shape } => one(shape::reshape_ty(x, shape)?),
            spec => {
                let (_, scalar) = binary(spec).ok_or("unknown op")?;
                match scalar {
                    Some(_) => one(math::binary_ty(self.name(), x, &Ty::tensor(x.dtype().unwrap_or(DType::Float32), Some(vec![])))?),
                    None => one(math::binary_ty(self.name(), x, &inputs[1])?),
                }
            }
        }
    }

    /// Runs the op on `inputs` (in the node's input order).
    pub fn run(&self, inputs: &[InputTensor]) -> Result<Vec<OutputTensor>> {
        self.check_arity(inputs.len()).map_err(Error::InvalidArgument)?;
        let x = &inputs[0];
        let one = |t: Result<OutputTensor>| t.map(|t| vec![t]);
        if vision::arity(&self.0).is_some() {
            return vision::run(&self.0, inputs);
        }
        if text::arity(&self.0).is_some() {
            return text::run(&self.0, inputs);
        }
        if let OpSpec::Lookup { .. } = &self.0 {
            return store::run(&self.0, inputs);
        }
        match &self.0 {
            OpSpec::Concat { axis } => one(shape::concat(inputs, *axis)),
            OpSpec::Slice { axis, start, end, step } => one(shape::slice(x, *axis, *start, *end, *step)),
            OpSpec::Gather { axis, indices: Some(i) } => one(shape::take(x, *axis, i, &[i.len() as i64], "gather")),
            OpSpec::Gather { axis, indices: None } => {
                let idx = &inputs[1];
                let list: Vec<i64> = match idx.dtype {
                    DType::Int64 => num::values::<i64>(idx),
                    DType::Int32 => num::values::<i32>(idx).into_iter().map(i64::from).collect(),
                    d => return Err(Error::invalid_input(&idx.name, format!("gather: indices must be int64 or int32, got {}", d.name()))),
                };
                one(shape::take(x, *axis, &list, &idx.dims, "gather"))
            }
            OpSpec::Argmax { axis, keepdims } => one(math::argmax(x, *axis, *keepdims)),
            OpSpec::Topk { k, axis } => math::topk(x, *k, *axis),
            OpSpec::Sigmoid {} => one(math::sigmoid(x)),
            OpSpec::Softmax { axis } => one(math::softmax(x, *axis)),
            OpSpec::Cast { to } => one(math::cast(x, *to)),
            OpSpec::Reshape { shape } => one(shape::reshape(x, shape)),
            spec => match binary(spec) {
                Some((op, Some(s))) => one(math::scalar(op, x, s)),
                Some((op, None)) => one(math::binary(op, x, &inputs[1])),
                None => Err(Error::Unsupported(format!("unknown op '{}'", self.name()))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arity_is_checked_with_a_clear_message() {
        let add = Op(OpSpec::Add { scalar: None });
        assert!(add.check_arity(1).unwrap_err().contains("2 inputs"));
        assert!(Op(OpSpec::Add { scalar: Some(1.0) }).check_arity(1).is_ok());
        assert!(Op(OpSpec::Gather { axis: 0, indices: None }).check_arity(1).unwrap_err().contains("indices"));
        assert!(Op(OpSpec::Sigmoid {}).check_arity(2).is_err());
    }

    #[test]
    fn runs_gather_with_an_index_tensor() {
        let x = InputTensor::from_values("x", DType::Float32, &[3], &[1f32, 2., 3.]).unwrap();
        let i = InputTensor::from_values("i", DType::Int32, &[2, 1], &[2i32, 0]).unwrap();
        let y = Op(OpSpec::Gather { axis: 0, indices: None }).run(&[x, i]).unwrap();
        assert_eq!((y[0].dims.clone(), y[0].to_vec::<f32>().unwrap()), (vec![2, 1], vec![3., 1.]));
    }
}
