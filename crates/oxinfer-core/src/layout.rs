//! The batch layout of a model: which axis of each input and output is the
//! batch axis, which inputs are shared or padded, and whether two requests
//! may share a batch. Checked once against the model when a session is made.

use std::collections::{HashMap, HashSet};

use crate::backend::{Dim, ModelInfo};
use crate::error::{Error, Result};
use crate::tensor::{InputData, InputTensor};
use crate::validate;

/// Which axis of each input and output is the batch axis (default 0), which
/// inputs are shared (equal across a batch and passed once), and which are
/// variable-length (padded).
#[derive(Clone, Debug, Default)]
pub struct Layout {
    pub input_axes: HashMap<String, usize>,
    pub output_axes: HashMap<String, usize>,
    pub shared: HashSet<String>,
    /// Variable-length inputs: the axis padded to the batch's longest
    /// request, and the pad value (strings pad with "").
    pub pad: HashMap<String, (usize, f64)>,
    /// Outputs cropped back to each caller's length along this axis.
    pub output_pad: HashMap<String, usize>,
    /// Largest share of padding a merged batch may hold, from 0 to 1.
    pub max_pad_waste: f64,
}

impl Layout {
    pub(crate) fn input_axis(&self, name: &str) -> usize {
        self.input_axes.get(name).copied().unwrap_or(0)
    }

    pub(crate) fn output_axis(&self, name: &str) -> usize {
        self.output_axes.get(name).copied().unwrap_or(0)
    }

    /// Rows along the batch axes, if every batched input has one and they agree.
    pub fn rows(&self, inputs: &[InputTensor]) -> Option<usize> {
        let mut n = None;
        for t in inputs.iter().filter(|t| !self.shared.contains(&t.name)) {
            let d = *t.dims.get(self.input_axis(&t.name))? as usize;
            match n {
                None => n = Some(d),
                Some(m) if m != d => return None,
                _ => {}
            }
        }
        n.filter(|&r| r > 0)
    }

    /// A request's length: the longest of its padded inputs along their pad
    /// axes (0 when no input is padded).
    pub fn length(&self, inputs: &[InputTensor]) -> usize {
        inputs
            .iter()
            .filter_map(|t| self.pad.get(&t.name).and_then(|(axis, _)| t.dims.get(*axis)).map(|&d| d as usize))
            .max()
            .unwrap_or(0)
    }

    /// Whether requests of these (rows, length) would stay within the padding
    /// waste cap once padded to the longest.
    pub fn waste_ok(&self, parts: impl Iterator<Item = (usize, usize)> + Clone) -> bool {
        if self.pad.is_empty() {
            return true;
        }
        let longest = parts.clone().map(|(_, l)| l).max().unwrap_or(0);
        let (rows, used) = parts.fold((0usize, 0usize), |(r, u), (n, l)| (r + n, u + n * l));
        let padded = rows * longest;
        padded == 0 || (padded - used) as f64 <= self.max_pad_waste * padded as f64
    }

    /// Same inputs in the same order and types, the same dims off the batch
    /// axis (and off the pad axis of padded inputs), and equal shared inputs.
    pub fn compatible(&self, a: &[InputTensor], b: &[InputTensor]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                if x.name != y.name || x.dtype != y.dtype || x.dims.len() != y.dims.len() {
                    return false;
                }
                if self.shared.contains(&x.name) {
                    return x.dims == y.dims && x.bytes() == y.bytes() && strings(x) == strings(y);
                }
                let axis = self.input_axis(&x.name);
                let pad = self.pad.get(&x.name).map(|(a, _)| *a);
                x.dims.iter().zip(&y.dims).enumerate().all(|(i, (p, q))| i == axis || Some(i) == pad || p == q)
            })
    }
}

pub(crate) fn strings(t: &InputTensor) -> Option<&[String]> {
    match &t.data {
        InputData::Strings(s) => Some(s),
        _ => None,
    }
}


impl Layout {
    /// Checks the layout against `info`: names that exist, and a dynamic dim
    /// on every batched input's batch axis and every padded axis, as merging
    /// requests along them needs.
    pub fn check(&self, info: &ModelInfo) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        for name in self.input_axes.keys().chain(self.shared.iter()) {
            if !info.inputs.iter().any(|i| &i.name == name) {
                return bad(format!("batching names an unknown input '{name}'"));
            }
        }
        for name in self.output_axes.keys().chain(self.output_pad.keys()) {
            if !info.outputs.iter().any(|o| &o.name == name) {
                return bad(format!("batching names an unknown output '{name}'"));
            }
        }
        for (name, &(pad_axis, _)) in &self.pad {
            let Some(i) = info.inputs.iter().find(|i| &i.name == name) else {
                return bad(format!("batching names an unknown input '{name}'"));
            };
            let axis = self.input_axis(name);
            if self.shared.contains(name) {
                return bad(format!("batching: input '{name}' cannot be both shared and padded"));
            }
            if pad_axis == axis {
                return bad(format!("batching: input '{name}' pads axis {pad_axis}, which is its batch axis"));
            }
            if !matches!(i.dims.get(pad_axis), Some(Dim::Symbolic(_) | Dim::Dynamic)) {
                return bad(format!("batching: input '{name}' pads axis {pad_axis}, but that dim is not dynamic (dims {})", validate::show_dims(&i.dims)));
            }
        }
        for (name, &pad_axis) in &self.output_pad {
            if self.output_axis(name) == pad_axis {
                return bad(format!("batching: output '{name}' crops axis {pad_axis}, which is its batch axis"));
            }
        }
        if !self.output_pad.is_empty() && self.pad.is_empty() {
            return bad("batching: outputs crop to the request's length, but no input is padded".into());
        }
        for i in info.inputs.iter().filter(|i| !self.shared.contains(&i.name)) {
            let axis = self.input_axis(&i.name);
            if !matches!(i.dims.get(axis), Some(Dim::Symbolic(_) | Dim::Dynamic)) {
                return bad(format!(
                    "batching needs a dynamic batch dim on every input, but input '{}' has dims {} (batch axis {axis}); declare its axis, or mark it shared",
                    i.name,
                    validate::show_dims(&i.dims)
                ));
            }
        }
        Ok(())
    }
}
