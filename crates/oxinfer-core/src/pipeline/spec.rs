//! The pipeline spec, version 1: serde types that mirror
//! `schema/pipeline.schema.json` (a test keeps the two in agreement).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub model: String,
    /// Session options; validated by the JS layer, kept verbatim here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<serde_json::Map<String, serde_json::Value>>,
    pub fields: Vec<Field>,
    #[serde(default)]
    pub preprocess: Vec<Stage>,
    pub features: Vec<Assembly>,
    pub output: Output,
    /// Drift monitoring against a reference profile (`pipeline.profile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<crate::monitor::MonitorSpec>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Number,
    Integer,
    Boolean,
    Category,
    Array,
    /// A variable-length list of numbers per record (for aggregations).
    List,
    /// A string for the tokenize stage.
    Text,
    /// Encoded image bytes (or raw pixels) for the image stage.
    Image,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Field {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FieldType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<usize>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    Mean,
    Median,
    MostFrequent,
    Constant,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Unknown {
    Ignore,
    #[default]
    Error,
}

/// A number or a string: fill values may be either.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Scalar {
    Number(f64),
    Text(String),
}

pub type PerField = BTreeMap<String, f64>;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Stage {
    Impute {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        fields: Vec<String>,
        strategy: Strategy,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<Scalar>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        values: Option<BTreeMap<String, Scalar>>,
    },
    Clip {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        fields: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<f64>,
    },
    StandardScale {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        fields: Vec<String>,
        #[serde(default = "yes", skip_serializing_if = "is_true")]
        with_mean: bool,
        #[serde(default = "yes", skip_serializing_if = "is_true")]
        with_std: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mean: Option<PerField>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scale: Option<PerField>,
    },
    MinmaxScale {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        fields: Vec<String>,
        #[serde(default = "unit_range")]
        range: [f64; 2],
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data_min: Option<PerField>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data_max: Option<PerField>,
    },
    RobustScale {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        fields: Vec<String>,
        #[serde(default = "quartiles")]
        quantile_range: [f64; 2],
        #[serde(default, skip_serializing_if = "Option::is_none")]
        center: Option<PerField>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scale: Option<PerField>,
    },
    OneHot {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        field: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        categories: Option<Vec<String>>,
        #[serde(default)]
        unknown: Unknown,
    },
    Ordinal {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        field: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        categories: Option<Vec<String>>,
        #[serde(default)]
        unknown: Unknown,
        #[serde(default = "minus_one")]
        unknown_value: f64,
    },
    /// ln(x + offset); values at or below -offset become missing.
    Log {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        fields: Vec<String>,
        #[serde(default = "one")]
        offset: f64,
    },
    /// The bucket index of a number: how many edges are <= it.
    Bucketize {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        field: String,
        edges: Vec<f64>,
        /// 'index' replaces the field; 'one_hot' adds features 'field=b<i>'.
        #[serde(default)]
        output: BucketOutput,
    },
    /// Signed feature hashing of a category (scikit-learn's FeatureHasher:
    /// murmurhash3_32, seed 0): features 'field#0' .. 'field#<buckets-1>'.
    Hash {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        field: String,
        buckets: usize,
        #[serde(default = "yes")]
        alternate_sign: bool,
    },
    /// Pairwise products of the fields: features 'a*b'.
    Interaction {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        fields: Vec<String>,
    },
    /// Aggregates of a list field: features 'field.mean', 'field.min', ...
    Aggregate {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        field: String,
        functions: Vec<Aggregation>,
    },
    /// Tokenises a text field (and optionally a second field as pairs) with a
    /// tokenizer.json (relative to the spec): tensors '<field>.input_ids',
    /// '<field>.attention_mask' and '<field>.token_type_ids', int64 [batch, seq].
    Tokenize {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        field: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pair_field: Option<String>,
        tokenizer: String,
        max_length: usize,
        #[serde(default)]
        padding: TextPadding,
        #[serde(default = "yes")]
        add_special_tokens: bool,
    },
    /// Decodes and transforms an image field: tensor '<field>.pixels',
    /// float32 [batch, C, H, W] (or [batch, H, W, C]).
    Image {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        field: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resize: Option<ImageResize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filter: Option<crate::image::Filter>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        center_crop: Option<Size>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        color: Option<crate::image::Color>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        normalize: Option<Normalize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        layout: Option<crate::image::ChannelOrder>,
    },
    /// An entity's features from a feature store, by a key field: features
    /// '<prefix><feature>' (numbers, or categories), one round trip per
    /// batch. See `store`.
    Lookup {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// The open store's name.
        #[serde(default = "default_store")]
        store: String,
        view: String,
        /// The field holding each record's entity key (a category, or an integer).
        key: String,
        /// The view's features to read (default: all of them).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        features: Vec<String>,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        prefix: String,
        /// A key the store does not hold (or a record without one).
        #[serde(default)]
        missing: LookupPolicy,
        /// A value older than the view's TTL.
        #[serde(default = "stale_use")]
        stale: LookupPolicy,
        /// The store failing (Redis down or slow): fail the batch, or give every row the defaults.
        #[serde(default)]
        on_error: FailurePolicy,
    },
    /// Principal component projection of numeric fields: features
    /// '<prefix>0' .. '<prefix><components-1>'.
    Pca {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        fields: Vec<String>,
        components: usize,
        #[serde(default = "pca_prefix")]
        prefix: String,
        /// Fitted: per-field mean, and the components (rows) over the fields.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mean: Option<Vec<f64>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        matrix: Option<Vec<Vec<f64>>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        explained_variance: Option<Vec<f64>>,
    },
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum TextPadding {
    #[default]
    Longest,
    MaxLength,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ImageResize {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shorter: Option<usize>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Size {
    pub width: usize,
    pub height: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Normalize {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum BucketOutput {
    #[default]
    Index,
    OneHot,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    Mean,
    Min,
    Max,
    Sum,
    Count,
    Last,
}

impl Aggregation {
    pub fn name(self) -> &'static str {
        match self {
            Aggregation::Mean => "mean",
            Aggregation::Min => "min",
            Aggregation::Max => "max",
            Aggregation::Sum => "sum",
            Aggregation::Count => "count",
            Aggregation::Last => "last",
        }
    }
}

fn one() -> f64 {
    1.0
}
fn default_store() -> String {
    "default".into()
}
fn stale_use() -> LookupPolicy {
    LookupPolicy::Use
}

/// What a lookup gives a row whose entity is missing (or stale).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum LookupPolicy {
    /// The features' declared defaults (NaN, or a missing category, where none).
    #[default]
    Default,
    /// NaN (and missing categories), for an impute stage after it.
    Nan,
    /// The row fails with ERR_INVALID_INPUT; the batch's other rows go on.
    Error,
    /// The stored values as they are (stale values only).
    Use,
}

/// What a lookup does when the store fails.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// The batch fails with the store's error (ERR_UNAVAILABLE).
    #[default]
    Error,
    /// Every row gets the defaults (counted as failures in the store's stats).
    Default,
}
fn pca_prefix() -> String {
    "pca".into()
}

fn yes() -> bool {
    true
}
fn is_true(b: &bool) -> bool {
    *b
}
fn unit_range() -> [f64; 2] {
    [0.0, 1.0]
}
fn quartiles() -> [f64; 2] {
    [25.0, 75.0]
}
fn minus_one() -> f64 {
    -1.0
}

impl Stage {
    pub fn op(&self) -> &'static str {
        match self {
            Stage::Impute { .. } => "impute",
            Stage::Clip { .. } => "clip",
            Stage::StandardScale { .. } => "standard_scale",
            Stage::MinmaxScale { .. } => "minmax_scale",
            Stage::RobustScale { .. } => "robust_scale",
            Stage::OneHot { .. } => "one_hot",
            Stage::Ordinal { .. } => "ordinal",
            Stage::Log { .. } => "log",
            Stage::Bucketize { .. } => "bucketize",
            Stage::Hash { .. } => "hash",
            Stage::Interaction { .. } => "interaction",
            Stage::Aggregate { .. } => "aggregate",
            Stage::Pca { .. } => "pca",
            Stage::Tokenize { .. } => "tokenize",
            Stage::Image { .. } => "image",
            Stage::Lookup { .. } => "lookup",
        }
    }

    pub fn user_name(&self) -> Option<&str> {
        match self {
            Stage::Impute { name, .. }
            | Stage::Clip { name, .. }
            | Stage::StandardScale { name, .. }
            | Stage::MinmaxScale { name, .. }
            | Stage::RobustScale { name, .. }
            | Stage::OneHot { name, .. }
            | Stage::Ordinal { name, .. }
            | Stage::Log { name, .. }
            | Stage::Bucketize { name, .. }
            | Stage::Hash { name, .. }
            | Stage::Interaction { name, .. }
            | Stage::Aggregate { name, .. }
            | Stage::Pca { name, .. }
            | Stage::Tokenize { name, .. }
            | Stage::Image { name, .. }
            | Stage::Lookup { name, .. } => name.as_deref(),
        }
    }

    /// How errors name this stage: `preprocess[2] (one_hot "island")`.
    pub fn label(&self, index: usize) -> String {
        match self.user_name() {
            Some(n) => format!("preprocess[{index}] ({} \"{n}\")", self.op()),
            None => format!("preprocess[{index}] ({})", self.op()),
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Missing {
    #[default]
    Error,
    Nan,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Assembly {
    pub input: String,
    /// Feature names laid into a [batch, names.length] float tensor...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// ...or a tensor produced by a stage ('text.input_ids', 'photo.pixels').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensor: Option<String>,
    #[serde(default)]
    pub missing: Missing,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Output {
    pub tensor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    #[serde(default)]
    pub postprocess: Vec<Post>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Post {
    Softmax {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    Sigmoid {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    Argmax {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    TopK {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        k: usize,
    },
    Threshold {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        min: f64,
    },
    Bucket {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        edges: Vec<f64>,
        names: Vec<String>,
    },
    InverseScale {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        mean: f64,
        scale: f64,
    },
    /// Platt calibration of scores: p = 1 / (1 + exp(a * s + b)).
    Platt {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        a: f64,
        b: f64,
    },
}

impl Post {
    pub fn op(&self) -> &'static str {
        match self {
            Post::Softmax { .. } => "softmax",
            Post::Sigmoid { .. } => "sigmoid",
            Post::Argmax { .. } => "argmax",
            Post::TopK { .. } => "top_k",
            Post::Threshold { .. } => "threshold",
            Post::Bucket { .. } => "bucket",
            Post::InverseScale { .. } => "inverse_scale",
            Post::Platt { .. } => "platt",
        }
    }

    pub fn label(&self, index: usize) -> String {
        format!("output.postprocess[{index}] ({})", self.op())
    }
}

/// What to do with a record key (or file column) that the spec does not
/// declare as a field: refuse the record (the default, so a misspelt key is
/// not silently dropped) or ignore it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnknownFields {
    #[default]
    Error,
    Ignore,
}

/// The spec versions this build reads.
pub const VERSION: u32 = 1;

/// Parses a spec (JSON text), checking its version first; errors name the
/// stage and the JSON path of the value where reading stopped.
pub fn parse(json: &str) -> crate::Result<Spec> {
    // A syntax error keeps serde's line and column in the text, which is the
    // user's file when the spec came from one (see locate::in_file).
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| crate::Error::InvalidSpec {
        message: format!("the spec is not valid JSON: {e}"),
        stage: None,
        at: None,
        origin: Some(crate::error::SpecSource { path: String::new(), line: Some(e.line()), column: Some(e.column()) }),
    })?;
    let Some(o) = value.as_object() else {
        return Err(crate::Error::spec("the spec must be a JSON object"));
    };
    match o.get("version") {
        Some(v) if v.as_u64() == Some(VERSION as u64) => {}
        Some(v) => return Err(crate::Error::invalid_spec("version", format!("unsupported spec version {v}; this oxinfer reads version {VERSION}"))),
        None => return Err(crate::Error::invalid_spec("version", format!("the spec has no version; this oxinfer reads version {VERSION}"))),
    }
    match o.get("model") {
        Some(serde_json::Value::String(m)) if !m.is_empty() => {}
        _ => return Err(crate::Error::invalid_spec("model", "the spec needs a model path (a non-empty string)")),
    }
    serde_path_to_error::deserialize::<_, Spec>(&value).map_err(|e| {
        let mut at = e.path().to_string();
        let message = e.inner().to_string();
        // Inside a stage (a tagged enum) serde loses the path; an unknown key
        // is still named by its message.
        if let Some(key) = message.strip_prefix("unknown field `").and_then(|r| r.split('`').next()) {
            if !at.ends_with(&format!(".{key}")) && at != key {
                at = if at == "." { key.to_string() } else { format!("{at}.{key}") };
            }
        }
        let stage = stage_of(&value, &at);
        crate::Error::InvalidSpec { message: format!("invalid pipeline spec at {at}: {message}"), stage, at: Some(at).filter(|a| a != "."), origin: None }
    })
}

/// The stage label (`preprocess[2] (impute)`) for a JSON path in `spec`.
fn stage_of(spec: &serde_json::Value, at: &str) -> Option<String> {
    let op = |list: &serde_json::Value, i: &str| -> String {
        let op = i.parse::<usize>().ok().and_then(|i| list.get(i)).and_then(|s| s.get("op")).and_then(|o| o.as_str()).unwrap_or("?");
        op.to_string()
    };
    let index = |rest: &str| rest.strip_prefix('[').and_then(|r| r.split(']').next()).map(str::to_string);
    if let Some(rest) = at.strip_prefix("preprocess") {
        if let Some(i) = index(rest) {
            return Some(format!("preprocess[{i}] ({})", op(&spec["preprocess"], &i)));
        }
    }
    if let Some(rest) = at.strip_prefix("output.postprocess") {
        if let Some(i) = index(rest) {
            return Some(format!("output.postprocess[{i}] ({})", op(&spec["output"]["postprocess"], &i)));
        }
    }
    // `fields[3]`, `features[0]`, `output`: the key with its index, if any.
    let first = at.split('.').next().filter(|f| !f.is_empty() && *f != "?")?;
    Some(first.split_inclusive(']').next().unwrap_or(first).to_string())
}

/// Reads a spec file as text (`File` if it cannot be read).
pub fn read(path: &std::path::Path) -> crate::Result<String> {
    std::fs::read_to_string(path).map_err(|e| crate::Error::file("the pipeline spec", path, e))
}
