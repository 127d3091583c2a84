//! Compiling a pipeline: the spec checked against its model by simulating
//! the stages (which names exist, with which kinds), the feature assembly
//! planned, and the stages' lookups prepared.

use std::collections::{HashMap, HashSet};

use super::plan::{Pipeline, Planned, Source};
use super::spec::{FieldType, Post, Spec, Stage, Strategy};
use super::stages;
use crate::backend::{Dim, ModelInfo, ValueKind};
use crate::error::{Error, Result};
use crate::tensor::DType;

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

/// The JSON path, within `stage`, of the value that names field `f`
/// (`fields[1]`, or `field`), for errors about that name.
fn path_of_name(stage: &impl serde::Serialize, f: &str) -> Option<String> {
    let v = serde_json::to_value(stage).ok()?;
    v.as_object()?.iter().find_map(|(k, v)| match v {
        serde_json::Value::String(s) if s == f => Some(k.clone()),
        serde_json::Value::Array(items) => items.iter().position(|x| x.as_str() == Some(f)).map(|j| format!("{k}[{j}]")),
        _ => None,
    })
}

impl Pipeline {
    /// Checks `spec` against the model and plans its execution.
    pub fn compile(spec: Spec, model: &ModelInfo) -> Result<Self> {
        Self::compile_in(spec, model, None)
    }

    /// Compiles with files (tokenizers) resolved relative to `base`.
    pub fn compile_in(spec: Spec, model: &ModelInfo, base: Option<&std::path::Path>) -> Result<Self> {
        if spec.version != super::spec::VERSION {
            return Err(spec_err("version", format!("unsupported spec version {}; this oxinfer reads version {}", spec.version, super::spec::VERSION)));
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
                    unfitted = Some(spec_err(&label, format!("{label} has no {what}; fit the pipeline first")));
                }
            }
            let field_kind = |f: &str| {
                kinds.get(f).cloned().ok_or_else(|| {
                    let e = spec_err(&label, format!("unknown field '{f}'"));
                    match path_of_name(stage, f) {
                        Some(p) => e.at(&p),
                        None => e,
                    }
                })
            };
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
                                derive(&mut kinds, &mut origin, name, Kind::Num, field);
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
                            derive(&mut kinds, &mut origin, n, Kind::Num, field);
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
                        derive(&mut kinds, &mut origin, n, Kind::Num, field);
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
                            derive(&mut kinds, &mut origin, n, Kind::Num, a);
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
                        derive(&mut kinds, &mut origin, n, Kind::Num, field);
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
                        derive(&mut kinds, &mut origin, name, Kind::Tensor(DType::Int64, 2), field);
                    }
                }
                Stage::Image { field, .. } => {
                    if field_kind(field)? != Kind::Image {
                        return Err(spec_err(&label, format!("'{field}' is not an image field")));
                    }
                    stages::image_options(stage, &label)?;
                    let name = format!("{field}.pixels");
                    derive(&mut kinds, &mut origin, name, Kind::Tensor(DType::Float32, 4), field);
                }
                Stage::Lookup { store, view, key, features, prefix, missing, stale, .. } => {
                    if !matches!(field_kind(key)?, Kind::Cat | Kind::Num) {
                        return Err(spec_err(&label, format!("key '{key}' must be a category or integer field")).at(&format!("preprocess[{i}].key")));
                    }
                    let s = crate::store::find(store).ok_or_else(|| {
                        spec_err(&label, format!("no feature store named '{store}' is open: open it before the pipeline (FeatureStore.create, or serve's featureStores)")).at(&format!("preprocess[{i}].store"))
                    })?;
                    let v = s.view(view).map_err(|e| spec_err(&label, e.to_string()).at(&format!("preprocess[{i}].view")))?;
                    if *missing == super::spec::LookupPolicy::Use {
                        return Err(spec_err(&label, "missing takes default, nan or error ('use' applies to stale values)").at(&format!("preprocess[{i}].missing")));
                    }
                    let _ = stale;
                    let wanted: Vec<&crate::store::FeatureSpec> = if features.is_empty() {
                        v.spec.features.iter().collect()
                    } else {
                        let mut out = Vec::new();
                        for (j, f) in features.iter().enumerate() {
                            let found = v.spec.features.iter().find(|x| &x.name == f).ok_or_else(|| {
                                let names: Vec<&str> = v.spec.features.iter().map(|x| x.name.as_str()).collect();
                                spec_err(&label, format!("view '{view}' has no feature '{f}' (features: {})", names.join(", "))).at(&format!("preprocess[{i}].features[{j}]"))
                            })?;
                            out.push(found);
                        }
                        out
                    };
                    for f in wanted {
                        let n = format!("{prefix}{}", f.name);
                        if kinds.contains_key(&n) {
                            return Err(spec_err(&label, format!("looked-up feature '{n}' would replace a field of that name; give a prefix")).at(&format!("preprocess[{i}].prefix")));
                        }
                        derive(&mut kinds, &mut origin, n, if f.kind.is_category() { Kind::Cat } else { Kind::Num }, key);
                    }
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
                        derive(&mut kinds, &mut origin, n, Kind::Num, &fields[0]);
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
            for (j, n) in a.names.iter().enumerate() {
                if let Some(k) = kinds.get(n) {
                    match k {
                        Kind::Num => sources.push(Source::Num(n.clone())),
                        Kind::Arr(size) => (0..*size).for_each(|j| sources.push(Source::Elem(n.clone(), j))),
                        Kind::Cat => return Err(spec_err(&label, format!("'{n}' is a category; encode it with one_hot, ordinal or hash first")).at(&format!("names[{j}]"))),
                        Kind::List => return Err(spec_err(&label, format!("'{n}' is a list; aggregate it first")).at(&format!("names[{j}]"))),
                        Kind::Text | Kind::Image => return Err(spec_err(&label, format!("'{n}' needs its tokenize or image stage, whose tensor is assembled with 'tensor'")).at(&format!("names[{j}]"))),
                        Kind::Tensor(..) => return Err(spec_err(&label, format!("'{n}' is a tensor; assemble it with {{ \"input\", \"tensor\" }}")).at(&format!("names[{j}]"))),
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
                        return Err(spec_err(&label, format!("'{n}' is out of range: '{base}' has {size} elements")).at(&format!("names[{j}]")));
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
                return Err(spec_err(&label, format!("unknown feature '{n}'")).at(&format!("names[{j}]")));
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
            // A ZipMap (sequence of class → probability maps): read as float32 scores (pipeline/zipmap.rs).
            ValueKind::Sequence => DType::Float32,
            ref other => return Err(spec_err(label, format!("output '{}' is {}; scores must be float32 or float64, or a ZipMap", decl.name, other.type_name()))),
        };
        if decl.kind == ValueKind::Sequence && spec.output.labels.as_ref().is_none_or(Vec::is_empty) {
            return Err(spec_err(label, format!("output '{}' is a ZipMap: give output.labels, the classes in the order the scores should have (by name, or label j for the map's j-th class)", decl.name)));
        }
        let k = match (&decl.kind, decl.dims.as_slice()) {
            (ValueKind::Sequence, _) => spec.output.labels.as_ref().map(Vec::len),
            (_, [_]) => Some(1),
            (_, [_, Dim::Fixed(k)]) => Some(*k as usize),
            (_, [_, _]) => None,
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
        let monitor = match &spec.monitor {
            Some(m) => Some(std::sync::Arc::new(monitor_for(&spec, m)?)),
            None => None,
        };
        let feedback = match spec.monitor.as_ref().and_then(|m| m.feedback.as_ref()) {
            Some(f) => Some(std::sync::Arc::new(feedback_for(&spec, f, k)?)),
            None => None,
        };
        let log = match spec.monitor.as_ref().and_then(|m| m.log.as_ref()) {
            Some(l) => {
                let path = base.map_or_else(|| std::path::PathBuf::from(&l.path), |b| b.join(&l.path));
                Some(std::sync::Arc::new(crate::monitor::log::PredictionLog::open(l.clone(), path)?))
            }
            None => None,
        };
        let business = match spec.monitor.as_ref().filter(|m| !m.metrics.is_empty()) {
            Some(m) => Some(std::sync::Arc::new(business_for(&spec, m)?)),
            None => None,
        };
        let started = crate::timing::unix_ms();
        Ok(Pipeline { spec, assemblies, output, output_dtype, k, unfitted, stage_labels, prepared, slots, mergeable, monitor, feedback, log, business, ids: (started, Default::default()) })
    }
}

/// The feedback store of a spec: its id field must be a category field;
/// classes are the output's labels (or indices), a single score a number.
fn feedback_for(spec: &Spec, f: &crate::monitor::feedback::FeedbackSpec, k: Option<usize>) -> Result<crate::monitor::feedback::Feedback> {
    if !spec.fields.iter().any(|x| x.name == f.id_field && x.kind == FieldType::Category) {
        return Err(Error::invalid_spec("monitor", format!("feedback.idField '{}' must name a category field of the spec (the records' prediction ids)", f.id_field)).at("monitor.feedback.idField"));
    }
    let labels = match (&spec.output.labels, k) {
        (Some(l), _) => l.clone(),
        (None, Some(k)) if k > 1 => (0..k).map(|i| i.to_string()).collect(),
        _ => Vec::new(),
    };
    crate::monitor::feedback::Feedback::new(f.clone(), labels)
}

/// The business metrics of a spec: over its number, integer, boolean and
/// category fields, and `label` and `score`.
fn business_for(spec: &Spec, m: &crate::monitor::MonitorSpec) -> Result<crate::monitor::business::Business> {
    use crate::monitor::business::{Business, FieldKind};
    let kind_of = |name: &str| -> Option<FieldKind> {
        match name {
            "label" => Some(FieldKind::Category),
            "score" => Some(FieldKind::Number),
            _ => spec.fields.iter().find(|f| f.name == name).and_then(|f| match f.kind {
                FieldType::Number | FieldType::Integer | FieldType::Boolean => Some(FieldKind::Number),
                FieldType::Category => Some(FieldKind::Category),
                _ => None,
            }),
        }
    };
    Business::new(&m.metrics, m.window, &kind_of).map_err(|(at, msg)| Error::invalid_spec("monitor", msg).at(&at))
}

/// The monitor of a spec: its reference's features must be the spec's
/// number, integer, boolean or category fields (inputs), or `label` and
/// `score` (outputs: the predicted class and its score).
fn monitor_for(spec: &Spec, m: &crate::monitor::MonitorSpec) -> Result<crate::monitor::Monitor> {
    use crate::monitor::{Distribution, Role};
    let err = |msg: String| Error::invalid_spec("monitor", msg).at("monitor.reference");
    let id_field = m.feedback.as_ref().map(|f| f.id_field.as_str());
    for f in &m.reference.features {
        if Some(f.name.as_str()) == id_field {
            return Err(err(format!("reference feature '{}' is the feedback id field: ids are not a distribution to compare", f.name)));
        }
        let numeric = matches!(f.distribution, Distribution::Number { .. });
        let ok = match f.role {
            Role::Input => spec.fields.iter().any(|x| {
                x.name == f.name
                    && match x.kind {
                        FieldType::Number | FieldType::Integer | FieldType::Boolean => numeric,
                        FieldType::Category => !numeric,
                        _ => false,
                    }
            }),
            Role::Output => (f.name == "label" && !numeric) || (f.name == "score" && numeric),
        };
        if !ok {
            return Err(err(format!(
                "reference feature '{}' ({:?}) is not a {} of this spec (inputs: its number, integer, boolean and category fields; outputs: label, score)",
                f.name,
                f.role,
                if numeric { "number" } else { "category" }
            )));
        }
    }
    crate::monitor::Monitor::new(m.clone())
}

/// Records a name a stage makes: its kind, and the input field it derives
/// from (for error messages).
fn derive(kinds: &mut HashMap<String, Kind>, origin: &mut HashMap<String, String>, name: String, kind: Kind, from: &str) {
    origin.insert(name.clone(), from.to_string());
    kinds.insert(name, kind);
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
