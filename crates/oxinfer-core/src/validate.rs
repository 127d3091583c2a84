//! Checks feeds against a model's declared inputs before any engine sees them,
//! so that misuse gets a precise `ERR_INVALID_INPUT` instead of an engine message.

use crate::backend::{Dim, ModelInfo, ValueKind};
use crate::error::{Error, Result};
use crate::tensor::InputTensor;

/// Validates `inputs` and resolves requested output names to indices
/// (all outputs when `outputs` is `None`).
pub fn check_request(info: &ModelInfo, inputs: &[InputTensor], outputs: Option<&[String]>) -> Result<Vec<usize>> {
    check_inputs(info, inputs)?;
    check_outputs(info, outputs)
}

/// Checks a full set of inputs: each known, well-typed and shaped, none missing.
pub fn check_inputs(info: &ModelInfo, inputs: &[InputTensor]) -> Result<()> {
    check_given(info, inputs)?;
    if let Some(missing) = info.inputs.iter().find(|d| !inputs.iter().any(|t| t.name == d.name)) {
        return Err(Error::invalid_input(
            &missing.name,
            format!("missing input '{}' ({} {})", missing.name, missing.kind.type_name(), show_dims(&missing.dims)),
        ));
    }
    Ok(())
}

/// Checks the inputs given, each against its declaration, without asking for
/// the rest.
pub fn check_given(info: &ModelInfo, inputs: &[InputTensor]) -> Result<()> {
    for (i, t) in inputs.iter().enumerate() {
        if inputs[..i].iter().any(|o| o.name == t.name) {
            return Err(Error::invalid_input(&t.name, format!("input '{}' is given twice", t.name)));
        }
        let Some(decl) = info.inputs.iter().find(|d| d.name == t.name) else {
            return Err(Error::invalid_input(
                &t.name,
                format!("unknown input '{}'; the model's inputs are: {}", t.name, names(&info.inputs)),
            ));
        };
        t.check_layout()?;
        match &decl.kind {
            ValueKind::Tensor(want) if *want == t.dtype => {}
            ValueKind::Tensor(want) => {
                return Err(Error::invalid_input(
                    &t.name,
                    format!("input '{}' expects a {} tensor but got {}", t.name, want.name(), t.dtype.name()),
                ))
            }
            other => {
                return Err(Error::Unsupported(format!(
                    "input '{}' has type '{}', which oxinfer cannot feed yet",
                    t.name,
                    other.type_name()
                )))
            }
        }
        // ORT reports rank 0 both for scalars and for inputs without shape
        // information; leave those to the engine, which knows the difference.
        if decl.dims.is_empty() {
            continue;
        }
        if decl.dims.len() != t.dims.len() {
            return Err(Error::invalid_input(
                &t.name,
                format!(
                    "input '{}' expects rank {} (dims {}) but got rank {} (dims {:?})",
                    t.name,
                    decl.dims.len(),
                    show_dims(&decl.dims),
                    t.dims.len(),
                    t.dims
                ),
            ));
        }
        for (axis, (d, &got)) in decl.dims.iter().zip(&t.dims).enumerate() {
            if let Dim::Fixed(want) = d {
                if *want != got {
                    return Err(Error::invalid_input(
                        &t.name,
                        format!(
                            "input '{}' expects dim {} = {} (dims {}) but got {} (dims {:?})",
                            t.name,
                            axis,
                            want,
                            show_dims(&decl.dims),
                            got,
                            t.dims
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The indices of the outputs named (all when `None`): tensors, or values
/// oxinfer returns as JSON (sequences, maps, optionals).
pub fn check_outputs(info: &ModelInfo, outputs: Option<&[String]>) -> Result<Vec<usize>> {
    let wanted: Vec<usize> = match outputs {
        None => (0..info.outputs.len()).collect(),
        Some(list) => {
            if list.is_empty() {
                return Err(Error::InvalidArgument("options.outputs must name at least one output".into()));
            }
            let mut idx = Vec::with_capacity(list.len());
            for name in list {
                let Some(i) = info.outputs.iter().position(|o| &o.name == name) else {
                    return Err(Error::InvalidInput {
                        message: format!("unknown output '{}'; the model's outputs are: {}", name, names(&info.outputs)),
                        input: None,
                        row: None,
                        field: None,
                    });
                };
                if !idx.contains(&i) {
                    idx.push(i);
                }
            }
            idx
        }
    };
    for &i in &wanted {
        let o = &info.outputs[i];
        // Sequences, maps and optionals come back as values (OutputData::Value); other kinds cannot.
        if !matches!(o.kind, ValueKind::Tensor(_) | ValueKind::Sequence | ValueKind::Map | ValueKind::Optional) {
            let tensors: Vec<&str> =
                info.outputs.iter().filter(|o| matches!(o.kind, ValueKind::Tensor(_))).map(|o| o.name.as_str()).collect();
            return Err(Error::Unsupported(format!(
                "output '{}' is a {} value, which oxinfer does not return yet; pass the `outputs` option to fetch only tensor outputs ({})",
                o.name,
                o.kind.type_name(),
                if tensors.is_empty() { "none".to_string() } else { tensors.join(", ") }
            )));
        }
    }
    Ok(wanted)
}

fn names(list: &[crate::backend::ValueInfo]) -> String {
    list.iter().map(|v| format!("'{}'", v.name)).collect::<Vec<_>>().join(", ")
}

pub fn show_dims(dims: &[Dim]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => n.to_string(),
            Dim::Symbolic(s) => s.clone(),
            Dim::Dynamic => "?".into(),
        })
        .collect();
    format!("[{}]", parts.join(", "))
}
