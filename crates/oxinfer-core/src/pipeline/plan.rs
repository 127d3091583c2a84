//! A spec checked against its model, and the execution of a batch through it.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use rayon::prelude::*;

use super::columns::{Batch, Col};
use super::post;
use super::spec::{FieldType, Missing, Post, Spec, Stage, Strategy};
use super::stages::{self, Frame, PARALLEL_ROWS};
use crate::backend::{Backend, Dim, ModelInfo, RunControl, ValueKind};
use crate::error::{Error, Result};
use crate::timing::Timing;
use super::outcome::{tensor, Outcome, StageTimings};
use crate::tensor::{AlignedBytes, DType, InputTensor, OutputTensor};

#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Fail the whole batch on the first bad row (else bad rows get errors beside good results).
    pub fail_fast: bool,
    /// Return a `timings` column (ns per stage).
    pub timings: bool,
}

/// Where a feature's value comes from after the stages ran.
#[derive(Clone, Debug)]
enum Source {
    Num(String),
    Elem(String, usize),
}

struct Planned {
    input: String,
    dtype: DType,
    sources: Vec<Source>,
    /// The field each feature derives from (for error messages).
    origins: Vec<String>,
    missing: Missing,
    /// A stage-made tensor passed through as is (rows of good records kept).
    tensor: Option<String>,
}

/// A compiled pipeline. Cheap to share; runs need a backend slot.
pub struct Pipeline {
    spec: Spec,
    assemblies: Vec<Planned>,
    output: usize,
    output_dtype: DType,
    k: Option<usize>,
    /// The first stage that still needs `fit`, if any.
    unfitted: Option<String>,
    /// Per stage: its label for errors, and its prepared lookups.
    stage_labels: Vec<String>,
    prepared: Vec<stages::Prepared>,
    /// Every column name a run produces, with its frame slot.
    slots: stages::Slots,
    /// Whether runs may be merged (see `mergeable`).
    mergeable: bool,
}

/// What a name can resolve to while the stages are simulated.
#[derive(Clone, Debug, PartialEq)]
enum Kind {
    Num,
    Cat,
    Arr(usize),
    List,
    Text,
    Image,
    /// A tensor made by a stage: element type and rank.
    Tensor(DType, usize),
}

fn spec_err(stage: &str, msg: impl Into<String>) -> Error {
    Error::invalid_spec(stage, msg)
}

impl Pipeline {
    /// Checks `spec` against the model and plans its execution.
    pub fn compile(spec: Spec, model: &ModelInfo) -> Result<Self> {
        Self::compile_in(spec, model, None)
    }

    /// Compiles with files (tokenizers) resolved relative to `base`.
    pub fn compile_in(spec: Spec, model: &ModelInfo, base: Option<&std::path::Path>) -> Result<Self> {
        if spec.version != 1 {
            return Err(spec_err("version", format!("unsupported spec version {}; this oxinfer reads version 1", spec.version)));
        }
        let mut kinds: HashMap<String, Kind> = HashMap::new();
        let mut origin: HashMap<String, String> = HashMap::new();
        for (i, f) in spec.fields.iter().enumerate() {
            let label = format!("fields[{i}] ('{}')", f.name);
            let kind = match f.kind {
                FieldType::Number | FieldType::Integer | FieldType::Boolean => Kind::Num,
                FieldType::Category => Kind::Cat,
                FieldType::Array => Kind::Arr(f.size.filter(|s| *s > 0).ok_or_else(|| spec_err(&label, "an array field needs a positive size"))?),
                FieldType::List => Kind::List,
                FieldType::Text => Kind::Text,
                FieldType::Image => Kind::Image,
            };
            if f.size.is_some() && f.kind != FieldType::Array {
                return Err(spec_err(&label, "only array fields take a size"));
            }
            if f.name.contains('=') || f.name.contains('[') {
                return Err(spec_err(&label, "field names may not contain '=' or '['"));
            }
            if kinds.insert(f.name.clone(), kind).is_some() {
                return Err(spec_err(&label, format!("field '{}' is declared twice", f.name)));
            }
            origin.insert(f.name.clone(), f.name.clone());
        }
        // Simulate the stages to learn which names exist, and of what kind.
        let mut unfitted = None;
        let mut open_one_hot: HashSet<String> = HashSet::new();
        for (i, stage) in spec.preprocess.iter().enumerate() {
            let label = stage.label(i);
            if unfitted.is_none() {
                if let Some(what) = stages::unfitted(stage) {
                    unfitted = Some(format!("{label} has no {what}; fit the pipeline first"));
                }
            }
            let field_kind = |f: &str| kinds.get(f).cloned().ok_or_else(|| spec_err(&label, format!("unknown field '{f}'")));
            match stage {
                Stage::Impute { fields, strategy, value, values, .. } => {
                    for f in fields {
                        let k = field_kind(f)?;
                        if k == Kind::Cat && matches!(strategy, Strategy::Mean | Strategy::Median) {
                            return Err(spec_err(&label, format!("category field '{f}' can only be imputed with most_frequent or constant")));
                        }
                        let wrong_fill = |v: &super::spec::Scalar| match v {
                            super::spec::Scalar::Number(_) => k == Kind::Cat,
                            super::spec::Scalar::Text(_) => k != Kind::Cat,
                        };
                        if value.as_ref().is_some_and(wrong_fill) {
                            return Err(spec_err(&label, format!("the fill value does not suit field '{f}'")));
                        }
                        if let Some(vs) = values {
                            match vs.get(f) {
                                Some(v) if wrong_fill(v) => return Err(spec_err(&label, format!("the fill value of '{f}' does not suit its type"))),
                                None => return Err(spec_err(&label, format!("values has no entry for field '{f}'"))),
                                _ => {}
                            }
                        }
                    }
                    if *strategy == Strategy::Constant && value.is_none() {
                        return Err(spec_err(&label, "the constant strategy needs a value"));
                    }
                }
                Stage::Clip { fields, min, max, .. } => {
                    for f in fields {
                        if field_kind(f)? == Kind::Cat {
                            return Err(spec_err(&label, format!("'{f}' is a category field")));
                        }
                    }
                    if let (Some(a), Some(b)) = (min, max) {
                        if a > b {
                            return Err(spec_err(&label, "min is greater than max"));
                        }
                    }
                }
                Stage::StandardScale { fields, mean, scale, .. } => numeric_params(&label, fields, &kinds, &[mean, scale])?,
                Stage::MinmaxScale { fields, data_min, data_max, range, .. } => {
                    numeric_params(&label, fields, &kinds, &[data_min, data_max])?;
                    if range[0] >= range[1] {
                        return Err(spec_err(&label, "range must be increasing"));
                    }
                }
                Stage::RobustScale { fields, center, scale, quantile_range, .. } => {
                    numeric_params(&label, fields, &kinds, &[center, scale])?;
                    if !(0.0 <= quantile_range[0] && quantile_range[0] < quantile_range[1] && quantile_range[1] <= 100.0) {
                        return Err(spec_err(&label, "quantile_range must be increasing within [0, 100]"));
                    }
                }
                Stage::OneHot { field, categories, .. } => {
                    if field_kind(field)? != Kind::Cat {
                        return Err(spec_err(&label, format!("'{field}' is not a category field")));
                    }
                    match categories {
                        Some(cats) => {
                            for c in cats {
                                let name = format!("{field}={c}");
                                kinds.insert(name.clone(), Kind::Num);
                                origin.insert(name, field.clone());
                            }
                        }
                        None => {
                            open_one_hot.insert(field.clone());
                        }
                    }
                }
                Stage::Ordinal { field, .. } => {
                    if field_kind(field)? != Kind::Cat {
                        return Err(spec_err(&label, format!("'{field}' is not a category field")));
                    }
                    kinds.insert(field.clone(), Kind::Num);
                }
                Stage::Log { fields, offset, .. } => {
                    for f in fields {
                        if !matches!(field_kind(f)?, Kind::Num | Kind::Arr(_)) {
                            return Err(spec_err(&label, format!("'{f}' is not numeric")));
                        }
                    }
                    if !offset.is_finite() {
                        return Err(spec_err(&label, "offset must be finite"));
                    }
                }
                Stage::Bucketize { field, edges, output, .. } => {
                    if field_kind(field)? != Kind::Num {
                        return Err(spec_err(&label, format!("'{field}' is not a numeric field")));
                    }
                    if edges.is_empty() || edges.windows(2).any(|w| !(w[0] < w[1])) || edges.iter().any(|e| !e.is_finite()) {
                        return Err(spec_err(&label, "edges must be finite and strictly increasing"));
                    }
                    if *output == super::spec::BucketOutput::OneHot {
                        for i in 0..=edges.len() {
                            let n = format!("{field}=b{i}");
                            kinds.insert(n.clone(), Kind::Num);
                            origin.insert(n, field.clone());
                        }
                    }
                }
                Stage::Hash { field, buckets, .. } => {
                    if field_kind(field)? != Kind::Cat {
                        return Err(spec_err(&label, format!("'{field}' is not a category field")));
                    }
                    if *buckets == 0 || *buckets > 1 << 20 {
                        return Err(spec_err(&label, "buckets must be from 1 to 1048576"));
                    }
                    for i in 0..*buckets {
                        let n = format!("{field}#{i}");
                        kinds.insert(n.clone(), Kind::Num);
                        origin.insert(n, field.clone());
                    }
                }
                Stage::Interaction { fields, .. } => {
                    if fields.len() < 2 {
                        return Err(spec_err(&label, "an interaction needs at least two fields"));
                    }
                    for f in fields {
                        if field_kind(f)? != Kind::Num {
                            return Err(spec_err(&label, format!("'{f}' is not a numeric field")));
                        }
                    }
                    for (i, a) in fields.iter().enumerate() {
                        for b in &fields[i + 1..] {
                            let n = format!("{a}*{b}");
                            kinds.insert(n.clone(), Kind::Num);
                            origin.insert(n, a.clone());
                        }
                    }
                }
                Stage::Aggregate { field, functions, .. } => {
                    if field_kind(field)? != Kind::List {
                        return Err(spec_err(&label, format!("'{field}' is not a list field")));
                    }
                    if functions.is_empty() {
                        return Err(spec_err(&label, "name at least one function"));
                    }
                    for f in functions {
                        let n = format!("{field}.{}", f.name());
                        kinds.insert(n.clone(), Kind::Num);
                        origin.insert(n, field.clone());
                    }
                }
                Stage::Tokenize { field, pair_field, max_length, .. } => {
                    for f in std::iter::once(field).chain(pair_field.as_ref()) {
                        if field_kind(f)? != Kind::Text {
                            return Err(spec_err(&label, format!("'{f}' is not a text field")));
                        }
                    }
                    if *max_length == 0 {
                        return Err(spec_err(&label, "max_length must be at least 1"));
                    }
                    for n in ["input_ids", "attention_mask", "token_type_ids"] {
                        let name = format!("{field}.{n}");
                        kinds.insert(name.clone(), Kind::Tensor(DType::Int64, 2));
                        origin.insert(name, field.clone());
                    }
                }
                Stage::Image { field, .. } => {
                    if field_kind(field)? != Kind::Image {
                        return Err(spec_err(&label, format!("'{field}' is not an image field")));
                    }
                    stages::image_options(stage, &label)?;
                    let name = format!("{field}.pixels");
                    kinds.insert(name.clone(), Kind::Tensor(DType::Float32, 4));
                    origin.insert(name, field.clone());
                }
                Stage::Pca { fields, components, prefix, mean, matrix, .. } => {
                    for f in fields {
                        if field_kind(f)? != Kind::Num {
                            return Err(spec_err(&label, format!("'{f}' is not a numeric field")));
                        }
                    }
                    if *components == 0 || *components > fields.len() {
                        return Err(spec_err(&label, format!("components must be from 1 to {} (the number of fields)", fields.len())));
                    }
                    if let Some(m) = mean {
                        if m.len() != fields.len() {
                            return Err(spec_err(&label, "mean needs one value per field"));
                        }
                    }
                    if let Some(w) = matrix {
                        if w.len() != *components || w.iter().any(|r| r.len() != fields.len()) {
                            return Err(spec_err(&label, format!("matrix must be {components} rows of {} values", fields.len())));
                        }
                    }
                    for i in 0..*components {
                        let n = format!("{prefix}{i}");
                        kinds.insert(n.clone(), Kind::Num);
                        origin.insert(n, fields[0].clone());
                    }
                }
            }
        }
        // Feature assembly against the model's inputs.
        let mut assemblies = Vec::new();
        for (i, a) in spec.features.iter().enumerate() {
            let label = format!("features[{i}] ('{}')", a.input);
            let Some(decl) = model.inputs.iter().find(|d| d.name == a.input) else {
                let names: Vec<&str> = model.inputs.iter().map(|d| d.name.as_str()).collect();
                return Err(spec_err(&label, format!("the model has no input '{}' (inputs: {})", a.input, names.join(", "))));
            };
            if spec.features[..i].iter().any(|b| b.input == a.input) {
                return Err(spec_err(&label, format!("input '{}' is assembled twice", a.input)));
            }
            if let Some(t) = &a.tensor {
                if !a.names.is_empty() {
                    return Err(spec_err(&label, "give either names or tensor, not both"));
                }
                let Some(Kind::Tensor(dt, rank)) = kinds.get(t).cloned() else {
                    return Err(spec_err(&label, format!("no stage makes a tensor '{t}'")));
                };
                match decl.kind {
                    ValueKind::Tensor(d) if d == dt => {}
                    ref other => return Err(spec_err(&label, format!("'{t}' is {} but input '{}' is {}", dt.name(), a.input, other.type_name()))),
                }
                if decl.dims.len() != rank {
                    return Err(spec_err(&label, format!("'{t}' has rank {rank} but input '{}' has rank {}", a.input, decl.dims.len())));
                }
                let o = origin.get(t).cloned().unwrap_or_else(|| t.clone());
                assemblies.push(Planned { input: a.input.clone(), dtype: dt, sources: vec![], origins: vec![o], missing: a.missing, tensor: Some(t.clone()) });
                continue;
            }
            if a.names.is_empty() {
                return Err(spec_err(&label, "give the feature names, or a tensor"));
            }
            let dtype = match decl.kind {
                ValueKind::Tensor(d @ (DType::Float32 | DType::Float64)) => d,
                ref other => return Err(spec_err(&label, format!("input '{}' is {}, but features assemble into float32 or float64 tensors", a.input, other.type_name()))),
            };
            let mut sources = Vec::new();
            let mut origins = Vec::new();
            let mut deferred = false;
            for n in &a.names {
                if let Some(k) = kinds.get(n) {
                    match k {
                        Kind::Num => sources.push(Source::Num(n.clone())),
                        Kind::Arr(size) => (0..*size).for_each(|j| sources.push(Source::Elem(n.clone(), j))),
                        Kind::Cat => return Err(spec_err(&label, format!("'{n}' is a category; encode it with one_hot, ordinal or hash first"))),
                        Kind::List => return Err(spec_err(&label, format!("'{n}' is a list; aggregate it first"))),
                        Kind::Text | Kind::Image => return Err(spec_err(&label, format!("'{n}' needs its tokenize or image stage, whose tensor is assembled with 'tensor'"))),
                        Kind::Tensor(..) => return Err(spec_err(&label, format!("'{n}' is a tensor; assemble it with {{ \"input\", \"tensor\" }}"))),
                    }
                    let o = origin.get(n).cloned().unwrap_or_else(|| n.clone());
                    while origins.len() < sources.len() {
                        origins.push(o.clone());
                    }
                    continue;
                }
                if let Some((base, idx)) = n.strip_suffix(']').and_then(|s| s.split_once('[')) {
                    if let (Some(Kind::Arr(size)), Ok(j)) = (kinds.get(base), idx.parse::<usize>()) {
                        if j < *size {
                            sources.push(Source::Elem(base.to_string(), j));
                            origins.push(base.to_string());
                            continue;
                        }
                        return Err(spec_err(&label, format!("'{n}' is out of range: '{base}' has {size} elements")));
                    }
                }
                if let Some((base, _)) = n.split_once('=') {
                    if open_one_hot.contains(base) {
                        // Resolved once the one_hot stage is fitted.
                        deferred = true;
                        sources.push(Source::Num(n.clone()));
                        origins.push(base.to_string());
                        continue;
                    }
                }
                return Err(spec_err(&label, format!("unknown feature '{n}'")));
            }
            if decl.dims.len() != 2 {
                return Err(spec_err(&label, format!("input '{}' has rank {}, but features assemble into [batch, features] tensors", a.input, decl.dims.len())));
            }
            if let Dim::Fixed(n) = decl.dims[0] {
                if n != 1 {
                    return Err(spec_err(&label, format!("input '{}' has a fixed batch size of {n}; pipelines need a dynamic batch dim", a.input)));
                }
            }
            if let (Dim::Fixed(n), false) = (&decl.dims[1], deferred) {
                if *n as usize != sources.len() {
                    return Err(spec_err(&label, format!("{} features do not fit input '{}', which takes {n}", sources.len(), a.input)));
                }
            }
            assemblies.push(Planned { input: a.input.clone(), dtype, sources, origins, missing: a.missing, tensor: None });
        }
        for d in &model.inputs {
            if !spec.features.iter().any(|a| a.input == d.name) {
                return Err(spec_err("features", format!("no features assemble the model input '{}'", d.name)));
            }
        }
        // The scores output.
        let label = "output";
        let Some(output) = model.outputs.iter().position(|o| o.name == spec.output.tensor) else {
            let names: Vec<&str> = model.outputs.iter().map(|d| d.name.as_str()).collect();
            return Err(spec_err(label, format!("the model has no output '{}' (outputs: {})", spec.output.tensor, names.join(", "))));
        };
        let decl = &model.outputs[output];
        let output_dtype = match decl.kind {
            ValueKind::Tensor(d @ (DType::Float32 | DType::Float64)) => d,
            ref other => return Err(spec_err(label, format!("output '{}' is {}; scores must be float32 or float64", decl.name, other.type_name()))),
        };
        let k = match decl.dims.as_slice() {
            [_] => Some(1),
            [_, Dim::Fixed(k)] => Some(*k as usize),
            [_, _] => None,
            _ => return Err(spec_err(label, format!("output '{}' must be [batch] or [batch, k]", decl.name))),
        };
        if let (Some(k), Some(labels)) = (k, &spec.output.labels) {
            if labels.len() != k {
                return Err(spec_err(label, format!("{} labels for {k} scores", labels.len())));
            }
        }
        for (i, p) in spec.output.postprocess.iter().enumerate() {
            let l = p.label(i);
            match p {
                Post::TopK { k: 0, .. } => return Err(spec_err(&l, "k must be at least 1")),
                Post::Bucket { edges, names, .. } => {
                    if names.len() != edges.len() + 1 {
                        return Err(spec_err(&l, format!("{} edges need {} names", edges.len(), edges.len() + 1)));
                    }
                    if edges.windows(2).any(|w| w[0] >= w[1]) {
                        return Err(spec_err(&l, "edges must be increasing"));
                    }
                }
                Post::InverseScale { scale, .. } if *scale == 0.0 => return Err(spec_err(&l, "scale must not be 0")),
                Post::Platt { a, b, .. } if !(a.is_finite() && b.is_finite()) => return Err(spec_err(&l, "a and b must be finite")),
                _ => {}
            }
        }
        let stage_labels = spec.preprocess.iter().enumerate().map(|(i, s)| s.label(i)).collect();
        let prepared = spec.preprocess.iter().enumerate().map(|(i, st)| stages::Prepared::load(st, &st.label(i), base)).collect::<Result<Vec<_>>>()?;
        let mut slots = stages::Slots::new();
        for name in spec.fields.iter().map(|f| f.name.clone()).chain(kinds.keys().cloned()) {
            let n = slots.len();
            slots.entry(name).or_insert(n);
        }
        // An image stage without a fixed output size makes every image of a
        // batch match the first one, so merged requests would reject each
        // other's rows: such pipelines run each request alone.
        let mergeable = spec.preprocess.iter().all(|s| match s {
            Stage::Image { resize, center_crop, .. } => center_crop.is_some() || resize.as_ref().is_some_and(|r| r.width.is_some() && r.height.is_some()),
            _ => true,
        });
        Ok(Pipeline { spec, assemblies, output, output_dtype, k, unfitted, stage_labels, prepared, slots, mergeable })
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// Whether the dynamic batcher may merge runs of this pipeline: each
    /// run's rows then come out as they would alone (up to float rounding).
    pub fn mergeable(&self) -> bool {
        self.mergeable
    }

    /// Why the pipeline cannot run yet, if it needs `fit`.
    pub fn unfitted(&self) -> Option<&str> {
        self.unfitted.as_deref()
    }

    /// Reads the batch into a frame, checking required fields.
    fn frame(&self, batch: &Batch) -> Result<Frame<'_>> {
        let mut frame = Frame::new(batch.rows, &self.slots);
        for (row, e) in &batch.rejected {
            if *row < batch.rows {
                frame.reject(*row, e.clone());
            }
        }
        for f in &self.spec.fields {
            let col = batch.column(f)?;
            if f.required {
                for row in 0..batch.rows {
                    let missing = match &col {
                        Col::Num(v) => v[row].is_nan(),
                        Col::Cat { codes, .. } => codes[row] < 0,
                        Col::Arr { data, size } => data[row * size..(row + 1) * size].iter().any(|x| x.is_nan()),
                        Col::Text(t) => t[row].is_none(),
                        Col::Images(i) => i[row].is_none(),
                        Col::List { .. } | Col::Tensor(_) => false,
                    };
                    if missing {
                        frame.reject(row, Error::bad_record(row, &f.name, format!("field '{}' is required but missing", f.name)));
                    }
                }
            }
            frame.insert(&f.name, col);
        }
        Ok(frame)
    }

    /// Runs a batch through every stage on `slot` of `backend`, recording its
    /// phases in `timing`. Returns named result columns (see the binding's
    /// `columns` for how they reach JS).
    pub fn run(&self, batch: &Batch, opts: RunOptions, backend: &dyn Backend, slot: usize, ctl: &RunControl, timing: &mut Timing) -> Result<Vec<OutputTensor>> {
        Ok(self.evaluate(batch, opts.fail_fast, backend, slot, ctl, timing)?.finish(opts.timings))
    }

    /// Runs a batch through every stage, keeping bad rows apart from the
    /// results (`fail_fast`: stop at the first bad row, before the model).
    pub fn evaluate(&self, batch: &Batch, fail_fast: bool, backend: &dyn Backend, slot: usize, ctl: &RunControl, timing: &mut Timing) -> Result<Outcome> {
        if let Some(why) = &self.unfitted {
            return Err(Error::InvalidSpec { message: why.clone(), stage: None });
        }
        let mut t = StageTimings::default();
        let clock = Instant::now();
        let mut frame = self.frame(batch)?;
        for (i, stage) in self.spec.preprocess.iter().enumerate() {
            stages::apply(stage, &self.stage_labels[i], &self.prepared[i], &mut frame)?;
        }
        t.preprocess = clock.elapsed().as_nanos() as u64;

        let clock = Instant::now();
        let rows = frame.rows;
        // A feature still missing here is a row error unless the assembly passes NaN.
        for a in &self.assemblies {
            if a.missing == Missing::Nan || a.tensor.is_some() {
                continue;
            }
            for (src, origin) in a.sources.iter().zip(&a.origins) {
                let (name, at) = match src {
                    Source::Num(n) => (n, None),
                    Source::Elem(n, j) => (n, Some(*j)),
                };
                let col = frame.get(name).ok_or_else(|| Error::Backend(format!("feature '{name}' vanished")))?;
                let bad: Vec<usize> = (0..rows)
                    .filter(|&r| match (col, at) {
                        (Col::Num(v), _) => v[r].is_nan(),
                        (Col::Arr { data, size }, Some(j)) => data[r * size + j].is_nan(),
                        _ => false,
                    })
                    .collect();
                for r in bad {
                    frame.reject(r, Error::bad_record(r, origin, format!("field '{origin}' is missing, and no stage imputes it")));
                }
            }
        }
        if fail_fast {
            if let Some(e) = frame.row_errors.iter().flatten().next() {
                return Err(e.clone());
            }
        }
        let good: Vec<usize> = (0..rows).filter(|&r| frame.row_errors[r].is_none()).collect();
        let inputs = self.assemble(&frame, &good)?;
        t.assemble = clock.elapsed().as_nanos() as u64;

        let clock = Instant::now();
        let (mut scores, k) = if good.is_empty() {
            (Vec::new(), self.k.unwrap_or(1))
        } else {
            let out = backend.run(slot, &inputs, &[self.output], ctl)?;
            drop(inputs);
            let o = &out[0];
            let k = if o.dims.len() == 2 { o.dims[1] as usize } else { 1 };
            let scores: Vec<f64> = match o.dtype {
                DType::Float32 => o.to_vec::<f32>().unwrap_or_default().into_iter().map(f64::from).collect(),
                _ => o.to_vec::<f64>().unwrap_or_default(),
            };
            if scores.len() != good.len() * k {
                return Err(Error::Backend(format!("the model returned {} scores for {} rows", scores.len(), good.len())));
            }
            (scores, k)
        };
        if let Some(labels) = &self.spec.output.labels {
            if labels.len() != k {
                return Err(Error::InvalidSpec { message: format!("{} labels for {k} scores", labels.len()), stage: Some("output".into()) });
            }
        }
        t.inference = clock.elapsed().as_nanos() as u64;

        let clock = Instant::now();
        let d = post::run(&self.spec.output.postprocess, &mut scores, good.len(), k);
        let columns = self.results(&frame, &good, &scores, k, d);
        t.postprocess = clock.elapsed().as_nanos() as u64;
        timing.pre_us = (t.preprocess + t.assemble) / 1000;
        timing.infer_us = t.inference / 1000;
        timing.post_us = t.postprocess / 1000;
        timing.batch_rows = rows as u32;
        timing.batch_requests = 1;
        let errors = frame.row_errors.iter().enumerate().filter_map(|(r, e)| e.clone().map(|e| (r, e))).collect();
        Ok(Outcome { rows, columns, errors, stages: t })
    }

    fn assemble(&self, frame: &Frame, good: &[usize]) -> Result<Vec<InputTensor>> {
        let n = good.len();
        let mut tensors = Vec::with_capacity(self.assemblies.len());
        for a in &self.assemblies {
            if let Some(t) = &a.tensor {
                let Some(Col::Tensor(full)) = frame.get(t) else {
                    return Err(Error::InvalidSpec { message: format!("no stage made the tensor '{t}'"), stage: Some("features".into()) });
                };
                let rows = full.dims.first().copied().unwrap_or(0) as usize;
                let bytes = full.bytes();
                let per = if rows == 0 { 0 } else { bytes.len() / rows };
                let mut data = Vec::with_capacity(n * per);
                for &r in good {
                    data.extend_from_slice(&bytes[r * per..(r + 1) * per]);
                }
                let mut dims = full.dims.clone();
                dims[0] = n as i64;
                tensors.push(InputTensor {
                    name: a.input.clone(),
                    dtype: full.dtype,
                    dims,
                    data: crate::tensor::InputData::Owned(AlignedBytes::from_slice(&data)),
                });
                continue;
            }
            let width = a.sources.len();
            let mut data = vec![0f64; n * width];
            let cols: Vec<(&Col, Option<usize>)> = a
                .sources
                .iter()
                .map(|s| match s {
                    Source::Num(name) => frame.get(name).map(|c| (c, None)),
                    Source::Elem(name, j) => frame.get(name).map(|c| (c, Some(*j))),
                })
                .collect::<Option<_>>()
                .ok_or_else(|| Error::InvalidSpec { message: "a feature is not produced by any stage".into(), stage: Some("features".into()) })?;
            let fill = |(i, row): (usize, &mut [f64])| {
                let r = good[i];
                for (slot, (col, at)) in row.iter_mut().zip(&cols) {
                    *slot = match (col, at) {
                        (Col::Num(v), _) => v[r],
                        (Col::Arr { data, size }, Some(j)) => data[r * size + j],
                        _ => f64::NAN,
                    };
                }
            };
            if width > 0 {
                if n >= PARALLEL_ROWS {
                    data.par_chunks_mut(width).enumerate().for_each(fill);
                } else {
                    data.chunks_mut(width).enumerate().for_each(fill);
                }
            }
            let dims = [n as i64, width as i64];
            let t = match a.dtype {
                DType::Float64 => InputTensor::from_values(&a.input, DType::Float64, &dims, &data)?,
                _ => {
                    let f: Vec<f32> = data.iter().map(|&x| x as f32).collect();
                    InputTensor::from_values(&a.input, DType::Float32, &dims, &f)?
                }
            };
            tensors.push(t);
        }
        Ok(tensors)
    }

    /// The row-aligned result columns (dim 0 is the batch's rows); rows
    /// that failed hold NaN, -1 or 0.
    fn results(&self, frame: &Frame, good: &[usize], scores: &[f64], k: usize, d: post::Decisions) -> Vec<OutputTensor> {
        let rows = frame.rows;
        let mut out = Vec::new();
        // Scores for every row; rows that failed stay NaN.
        let mut full = vec![f64::NAN; rows * k];
        for (i, &r) in good.iter().enumerate() {
            full[r * k..(r + 1) * k].copy_from_slice(&scores[i * k..(i + 1) * k]);
        }
        let dims2 = vec![rows as i64, k as i64];
        match self.output_dtype {
            DType::Float64 => out.push(tensor("scores", DType::Float64, dims2.clone(), full)),
            _ => out.push(tensor("scores", DType::Float32, dims2.clone(), full.iter().map(|&x| x as f32).collect::<Vec<f32>>())),
        }
        let scatter_i32 = |v: &[i32], width: usize, fill: i32| {
            let mut o = vec![fill; rows * width];
            for (i, &r) in good.iter().enumerate() {
                o[r * width..(r + 1) * width].copy_from_slice(&v[i * width..(i + 1) * width]);
            }
            o
        };
        let scatter_f32 = |v: &[f32], width: usize| {
            let mut o = vec![f32::NAN; rows * width];
            for (i, &r) in good.iter().enumerate() {
                o[r * width..(r + 1) * width].copy_from_slice(&v[i * width..(i + 1) * width]);
            }
            o
        };
        if let Some(l) = &d.label {
            out.push(tensor("label", DType::Int32, vec![rows as i64], scatter_i32(l, 1, -1)));
        }
        if let Some(s) = &d.score {
            out.push(tensor("score", DType::Float32, vec![rows as i64], scatter_f32(s, 1)));
        }
        if let Some((tk, idx, val)) = &d.top {
            out.push(tensor("top_index", DType::Int32, vec![rows as i64, *tk as i64], scatter_i32(idx, *tk, -1)));
            out.push(tensor("top_score", DType::Float32, vec![rows as i64, *tk as i64], scatter_f32(val, *tk)));
        }
        if let Some(a) = &d.above {
            let mut o = vec![0u8; rows * k];
            for (i, &r) in good.iter().enumerate() {
                o[r * k..(r + 1) * k].copy_from_slice(&a[i * k..(i + 1) * k]);
            }
            out.push(tensor("above", DType::Uint8, dims2, o));
        }
        if let Some(b) = &d.bucket {
            out.push(tensor("bucket", DType::Int32, vec![rows as i64], scatter_i32(b, 1, -1)));
        }
        out
    }

    /// Learns every stage's parameters from `batch`, in order: each stage is
    /// fitted on the output of the stages before it, as scikit-learn's
    /// Pipeline does. Returns the fitted spec.
    pub fn fit(spec: &Spec, batch: &Batch) -> Result<Spec> {
        let mut fitted = spec.clone();
        // Only the input schema matters for reading the batch.
        let reader = Pipeline {
            spec: spec.clone(),
            assemblies: vec![],
            output: 0,
            output_dtype: DType::Float32,
            k: None,
            unfitted: None,
            stage_labels: vec![],
            prepared: vec![],
            slots: stages::Slots::new(),
            mergeable: false,
        };
        let mut frame = reader.frame(batch)?;
        for (i, stage) in fitted.preprocess.iter_mut().enumerate() {
            let label = stage.label(i);
            stages::fit(stage, &label, &frame)?;
            // Text and image stages learn nothing and feed no later stage.
            if !matches!(stage, Stage::Tokenize { .. } | Stage::Image { .. }) {
                stages::apply(stage, &label, &stages::Prepared::new(stage), &mut frame)?;
            }
        }
        Ok(fitted)
    }
}

fn numeric_params(label: &str, fields: &[String], kinds: &HashMap<String, Kind>, params: &[&Option<super::spec::PerField>]) -> Result<()> {
    for f in fields {
        match kinds.get(f) {
            None => return Err(spec_err(label, format!("unknown field '{f}'"))),
            Some(Kind::Cat) => return Err(spec_err(label, format!("'{f}' is a category field"))),
            _ => {}
        }
        for p in params.iter().copied().flatten() {
            match p.get(f) {
                None => return Err(spec_err(label, format!("no fitted value for field '{f}'"))),
                Some(x) if !x.is_finite() => return Err(spec_err(label, format!("the fitted value for '{f}' is not finite"))),
                _ => {}
            }
        }
    }
    Ok(())
}
