//! The values of a running graph: the caller's input tensors and the
//! tensors nodes produce, shared between the nodes that consume them and
//! handed to them without copying numeric data.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::graph::ops::f64s;
use crate::graph::spec::{Cmp, Reduce};
use crate::tensor::{BorrowedBytes, DType, InputData, InputTensor, OutputBuffer, OutputData, OutputTensor};

/// One value of a graph request.
pub(crate) enum Value {
    /// A graph input, as the caller gave it.
    Input(InputTensor),
    /// A node's output.
    Output(OutputTensor),
}

impl Value {
    pub fn dtype(&self) -> DType {
        match self {
            Value::Input(t) => t.dtype,
            Value::Output(t) => t.dtype,
        }
    }

    pub fn dims(&self) -> &[i64] {
        match self {
            Value::Input(t) => &t.dims,
            Value::Output(t) => &t.dims,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        match self {
            Value::Input(t) => t.bytes(),
            Value::Output(t) => t.bytes(),
        }
    }

    fn strings(&self) -> Option<&[String]> {
        match self {
            Value::Input(InputTensor { data: InputData::Strings(s), .. }) => Some(s),
            Value::Output(t) => t.strings(),
            _ => None,
        }
    }

    /// The value as an input named `name`, borrowing its numeric data (strings
    /// are cloned). The caller must keep `self` alive while the tensor is in
    /// use: exec holds the value's `Arc` until the consumer has completed.
    pub fn feed(&self, name: &str) -> InputTensor {
        let data = match self.strings() {
            Some(s) => InputData::Strings(s.to_vec()),
            None => {
                let b = self.bytes();
                // SAFETY: the bytes belong to this value, which the caller keeps
                // alive and unmodified (values are immutable once produced)
                // until the run reading them has completed.
                InputData::Borrowed(unsafe { BorrowedBytes::new(b.as_ptr(), b.len()) })
            }
        };
        InputTensor { name: name.to_string(), dtype: self.dtype(), dims: self.dims().to_vec(), data }
    }

    /// Whether the predicate `x <cmp> value` holds for any (or all) elements.
    pub fn test(&self, cmp: Cmp, value: f64, reduce: Reduce) -> Result<bool> {
        let xs = f64s(self.dtype(), self.bytes()).ok_or_else(|| Error::InvalidInput {
            message: "a 'when' predicate needs a numeric tensor, got strings".into(),
            input: None,
            row: None,
            field: None,
        })?;
        Ok(match reduce {
            Reduce::Any => xs.iter().any(|&x| cmp.holds(x, value)),
            Reduce::All => xs.iter().all(|&x| cmp.holds(x, value)),
        })
    }
}

/// A value kept alive as an output's buffer (a graph output that other
/// holders still share).
struct Shared(Arc<Value>);

impl OutputBuffer for Shared {
    fn bytes(&self) -> &[u8] {
        self.0.bytes()
    }
}

/// The value as the graph output `name`: moved out when this is the last
/// holder and it is a node's output, otherwise shared (strings are cloned).
pub(crate) fn into_output(v: Arc<Value>, name: &str) -> OutputTensor {
    match Arc::try_unwrap(v) {
        Ok(Value::Output(mut t)) => {
            t.name = name.to_string();
            t
        }
        Ok(Value::Input(t)) => {
            // A caller's borrowed input must not outlive the run: copied.
            let mut t = t.to_output();
            t.name = name.to_string();
            t
        }
        Err(shared) => {
            let (dtype, dims) = (shared.dtype(), shared.dims().to_vec());
            let data = match (shared.strings(), &*shared) {
                (Some(s), _) => OutputData::Strings(s.to_vec()),
                (None, Value::Input(t)) => OutputData::Buffer(Box::new(crate::tensor::AlignedBytes::from_slice(t.bytes()))),
                // A sequence or map named by two outputs: each gets its JSON.
                (None, Value::Output(t)) if t.non_tensor().is_some() => OutputData::Value(t.non_tensor().unwrap_or_default().to_string()),
                (None, Value::Output(_)) => OutputData::Buffer(Box::new(Shared(Arc::clone(&shared)))),
            };
            OutputTensor { name: name.to_string(), dtype, dims, data }
        }
    }
}
