//! From a TorchScript signature and declarations to the model's inputs and
//! outputs. TorchScript records argument names and the return structure but
//! not element types or shapes; those come from declarations: the load
//! options' `inputs`/`outputs`, else an `oxinfer.json` extra file saved in
//! the archive (`torch.jit.save(m, f, _extra_files={"oxinfer.json": ...})`).
//! Undeclared inputs are float32 of any shape. Inputs are forward's argument
//! names, or Triton's `INPUT__0`, `INPUT__1`, ... when declared that way.
//!
//! Outputs are named, by the return type:
//! - `Tensor`: the declared name, else `output`;
//! - a named tuple: its field names;
//! - `Tuple[...]` / `List[Tensor]`: the declared names in order, else `output__0`, `output__1`, ...
//!   (Triton's convention; a list needs declarations, its length being unknown);
//! - `Dict[str, Tensor]`: the declared names, read as keys (needed).

use std::io::Read;

use oxinfer_core::backend::{Dim, ModelInfo, ModelMetadata, ValueInfo, ValueKind};
use oxinfer_core::plugin::Declared;
use oxinfer_core::{DType, ModelSource};
use serde::Deserialize;

use crate::error::TorchError;
use crate::schema::{type_args, Signature};

/// How forward's result maps onto the named outputs.
#[derive(Clone, Debug, PartialEq)]
pub enum Layout {
    Single,
    /// A tuple or list: output `i` is element `i`.
    Positional,
    /// A dict: output `i` is the entry keyed by its name.
    Keyed,
}

pub struct Declarations {
    pub inputs: Option<Vec<Declared>>,
    pub outputs: Option<Vec<Declared>>,
}

#[derive(Deserialize)]
struct ExtraFile {
    #[serde(default)]
    inputs: Option<Vec<Declared>>,
    #[serde(default)]
    outputs: Option<Vec<Declared>>,
}

/// The declarations saved in the archive, if any.
pub fn from_archive(source: &ModelSource) -> Result<Declarations, TorchError> {
    let none = Declarations { inputs: None, outputs: None };
    let reader: Box<dyn ReadSeek + '_> = match source {
        ModelSource::Path(p) => match std::fs::File::open(p) {
            Ok(f) => Box::new(f),
            Err(_) => return Ok(none),
        },
        ModelSource::Bytes(b) => Box::new(std::io::Cursor::new(&b[..])),
    };
    // Not a zip: libtorch's own load will say what is wrong with it.
    let Ok(mut zip) = zip::ZipArchive::new(reader) else { return Ok(none) };
    let Some(name) = zip.file_names().find(|n| n.ends_with("/extra/oxinfer.json")).map(str::to_string) else { return Ok(none) };
    let mut text = String::new();
    zip.by_name(&name)
        .map_err(|e| TorchError::Load(format!("cannot read the archive's {name}: {e}")))?
        .read_to_string(&mut text)
        .map_err(|e| TorchError::Load(format!("cannot read the archive's {name}: {e}")))?;
    let f: ExtraFile = serde_json::from_str(&text).map_err(|e| TorchError::Declaration(format!("the archive's oxinfer.json is malformed: {e}")))?;
    Ok(Declarations { inputs: f.inputs, outputs: f.outputs })
}

trait ReadSeek: Read + std::io::Seek {}
impl<T: Read + std::io::Seek> ReadSeek for T {}

fn dtype(d: &Declared, what: &str) -> Result<DType, TorchError> {
    match &d.dtype {
        None => Ok(DType::Float32),
        Some(t) => match DType::from_name(t) {
            Some(DType::String) | None => Err(TorchError::Declaration(format!(
                "{what} '{}' is declared with type '{t}'; the torch backend takes float32, float64, float16, bfloat16, int8, uint8, int16, int32, int64 or bool",
                d.name
            ))),
            Some(d) => Ok(d),
        },
    }
}

fn dims(d: Option<&Declared>) -> Vec<Dim> {
    d.and_then(|d| d.dims.as_ref()).map_or_else(Vec::new, |v| v.iter().map(|&n| if n < 0 { Dim::Dynamic } else { Dim::Fixed(n) }).collect())
}

fn info(name: &str, dtype: DType, decl: Option<&Declared>) -> ValueInfo {
    ValueInfo { name: name.to_string(), kind: ValueKind::Tensor(dtype), dims: dims(decl) }
}

/// The model's inputs, outputs and output layout.
pub fn model_info(sig: &Signature, decl: &Declarations) -> Result<(ModelInfo, Layout), TorchError> {
    let inputs = inputs(sig, decl.inputs.as_deref())?;
    let (outputs, layout) = outputs(sig, decl.outputs.as_deref())?;
    let metadata = ModelMetadata { producer: "pytorch".into(), graph_name: "forward".into(), ..ModelMetadata::default() };
    Ok((ModelInfo { inputs, outputs, metadata }, layout))
}

fn is_tensor(ty: &str) -> bool {
    ty == "Tensor"
}

/// Triton's PyTorch convention: inputs declared `NAME__<i>` (`INPUT__0`)
/// stand for forward's tensor arguments by position when none of the
/// declared names is an argument's own.
fn positional_names(sig: &Signature, declared: Option<&[Declared]>) -> Option<Vec<String>> {
    let list = declared?;
    let tensors: Vec<&str> = sig.args.iter().filter(|a| is_tensor(&a.ty)).map(|a| a.name.as_str()).collect();
    if list.is_empty() || list.iter().any(|d| tensors.contains(&d.name.as_str())) {
        return None;
    }
    let mut names: Vec<Option<String>> = vec![None; tensors.len()];
    for d in list {
        let i: usize = d.name.rsplit_once("__")?.1.parse().ok()?;
        *names.get_mut(i)? = Some(d.name.clone());
    }
    names.into_iter().collect()
}

fn inputs(sig: &Signature, declared: Option<&[Declared]>) -> Result<Vec<ValueInfo>, TorchError> {
    let mut out = Vec::new();
    let mut skipped: Option<&str> = None;
    let positional = positional_names(sig, declared);
    for a in &sig.args {
        if is_tensor(&a.ty) {
            if let Some(s) = skipped {
                return Err(TorchError::Load(format!(
                    "forward's argument '{}' (Tensor) comes after '{s}', which is not a tensor; oxinfer passes tensors only, in order, so non-tensor arguments must come last and have defaults",
                    a.name
                )));
            }
            let name = positional.as_ref().map_or(a.name.as_str(), |p| p[out.len()].as_str());
            let d = declared.and_then(|l| l.iter().find(|d| d.name == name));
            out.push(info(name, d.map_or(Ok(DType::Float32), |d| dtype(d, "input"))?, d));
        } else if a.optional {
            skipped.get_or_insert(&a.name);
        } else {
            return Err(TorchError::Load(format!(
                "forward's argument '{}' is a {}, without a default; oxinfer feeds tensors only",
                a.name, a.ty
            )));
        }
    }
    if let Some(list) = declared {
        if let Some(d) = list.iter().find(|d| !out.iter().any(|i| i.name == d.name)) {
            let names: Vec<String> = out.iter().map(|i| format!("'{}'", i.name)).collect();
            return Err(TorchError::Declaration(format!("input '{}' is declared, but forward's tensor arguments are {}", d.name, names.join(", "))));
        }
    }
    Ok(out)
}

fn outputs(sig: &Signature, declared: Option<&[Declared]>) -> Result<(Vec<ValueInfo>, Layout), TorchError> {
    let ret = match sig.returns.as_slice() {
        [r] => r,
        _ => return Err(TorchError::Load(format!("forward returns {} values; oxinfer expects one", sig.returns.len()))),
    };
    let by_name = |name: &str| declared.and_then(|l| l.iter().find(|d| d.name == name));
    let typed = |name: &str| -> Result<ValueInfo, TorchError> {
        let d = by_name(name);
        Ok(info(name, d.map_or(Ok(DType::Float32), |d| dtype(d, "output"))?, d))
    };
    let from_declared = |what: &str| -> Result<Vec<ValueInfo>, TorchError> {
        let list = declared.ok_or_else(|| TorchError::Declaration(format!("forward returns {what}; declare its outputs (names, in order or as keys) in the `outputs` option or the archive's oxinfer.json")))?;
        list.iter().map(|d| Ok(info(&d.name, dtype(d, "output")?, Some(d)))).collect()
    };
    let ty = ret.ty.as_str();
    if is_tensor(ty) {
        let name = declared.and_then(|l| l.first()).map_or("output", |d| d.name.as_str());
        if declared.is_some_and(|l| l.len() > 1) {
            return Err(TorchError::Declaration(format!("{} outputs are declared, but forward returns one tensor", declared.map_or(0, |l| l.len()))));
        }
        return Ok((vec![typed(name)?], Layout::Single));
    }
    if let Some(fields) = &ret.fields {
        let infos = fields.iter().map(|f| typed(f)).collect::<Result<Vec<_>, _>>()?;
        check_known(declared, &infos)?;
        return Ok((infos, Layout::Positional));
    }
    if let Some(items) = type_args(ty, "Tuple") {
        if let Some(bad) = items.iter().find(|t| !is_tensor(t)) {
            return Err(TorchError::Load(format!("forward returns {ty}; oxinfer returns tensors only, not {bad}")));
        }
        let infos = match declared {
            Some(list) if list.len() == items.len() => in_index_order(list).iter().map(|d| Ok(info(&d.name, dtype(d, "output")?, Some(d)))).collect::<Result<Vec<_>, TorchError>>()?,
            Some(list) => {
                return Err(TorchError::Declaration(format!("{} outputs are declared, but forward returns {ty} ({} tensors)", list.len(), items.len())));
            }
            None => (0..items.len()).map(|i| typed(&format!("output__{i}"))).collect::<Result<Vec<_>, _>>()?,
        };
        return Ok((infos, Layout::Positional));
    }
    if type_args(ty, "List").is_some_and(|a| a.len() == 1 && is_tensor(&a[0])) {
        let list = declared.map(in_index_order);
        let infos = match list {
            Some(l) => l.iter().map(|d| Ok(info(&d.name, dtype(d, "output")?, Some(d)))).collect::<Result<Vec<_>, TorchError>>()?,
            None => from_declared(ty)?,
        };
        return Ok((infos, Layout::Positional));
    }
    if type_args(ty, "Dict").is_some_and(|a| a.len() == 2 && a[0] == "str" && is_tensor(&a[1])) {
        return Ok((from_declared(ty)?, Layout::Keyed));
    }
    Err(TorchError::Load(format!("forward returns {ty}; oxinfer takes a tensor, a tuple or list of tensors, or a Dict[str, Tensor]")))
}

/// Declared outputs in the order of their `__<i>` suffixes when every name
/// has one (Triton's `OUTPUT__0`, `OUTPUT__1`, in any order), else as listed.
fn in_index_order(list: &[Declared]) -> Vec<Declared> {
    let index = |d: &Declared| d.name.rsplit_once("__").and_then(|(_, i)| i.parse::<usize>().ok());
    let mut idx: Vec<(usize, Declared)> = Vec::with_capacity(list.len());
    for d in list {
        match index(d) {
            Some(i) => idx.push((i, d.clone())),
            None => return list.to_vec(),
        }
    }
    idx.sort_by_key(|(i, _)| *i);
    if idx.iter().enumerate().any(|(k, (i, _))| k != *i) {
        return list.to_vec();
    }
    idx.into_iter().map(|(_, d)| d).collect()
}

fn check_known(declared: Option<&[Declared]>, infos: &[ValueInfo]) -> Result<(), TorchError> {
    if let Some(d) = declared.and_then(|l| l.iter().find(|d| !infos.iter().any(|i| i.name == d.name))) {
        let names: Vec<String> = infos.iter().map(|i| format!("'{}'", i.name)).collect();
        return Err(TorchError::Declaration(format!("output '{}' is declared, but forward's outputs are {}", d.name, names.join(", "))));
    }
    Ok(())
}
