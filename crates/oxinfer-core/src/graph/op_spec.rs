//! The ops a graph's `op` nodes name, as the spec writes them (serde): the
//! tensor ops, the OCR steps and tokenization, with their defaults, and the
//! files some of them read once at build (a vocabulary, a tokenizer).

use serde::Deserialize;

use crate::tensor::DType;

/// Tensor ops. Inputs are taken in order (an array's order, or an object's
/// keys sorted by name); single-output ops name their output `y`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "lowercase", rename_all_fields = "camelCase", deny_unknown_fields)]
pub enum OpSpec {
    /// Concatenates all inputs along `axis`.
    Concat { axis: i64 },
    /// Python-style `start:end:step` along `axis` (negative indices count from the end).
    Slice {
        axis: i64,
        start: i64,
        end: i64,
        #[serde(default = "one")]
        step: i64,
    },
    /// numpy `take` along `axis`, with `indices` given here or as a second input.
    Gather {
        axis: i64,
        #[serde(default)]
        indices: Option<Vec<i64>>,
    },
    /// Index of the largest element along `axis` (int64); the first wins ties.
    Argmax {
        axis: i64,
        #[serde(default)]
        keepdims: bool,
    },
    /// The `k` largest along `axis` (default the last), largest first:
    /// outputs `values` and `indices` (int64).
    #[serde(alias = "top_k")]
    Topk {
        k: usize,
        #[serde(default = "minus_one")]
        axis: i64,
    },
    /// Elementwise first + second (numpy broadcasting), or input + `scalar`.
    Add {
        #[serde(default)]
        scalar: Option<f64>,
    },
    /// Elementwise first − second, or input − `scalar`.
    Sub {
        #[serde(default)]
        scalar: Option<f64>,
    },
    /// Elementwise first × second, or input × `scalar`.
    Mul {
        #[serde(default)]
        scalar: Option<f64>,
    },
    /// Elementwise first ÷ second, or input ÷ `scalar`. Integer division
    /// truncates toward zero; division by zero is an input error.
    Div {
        #[serde(default)]
        scalar: Option<f64>,
    },
    /// Elementwise maximum (NaN propagates).
    Max {
        #[serde(default)]
        scalar: Option<f64>,
    },
    /// Elementwise minimum (NaN propagates).
    Min {
        #[serde(default)]
        scalar: Option<f64>,
    },
    /// 1 / (1 + e^-x), float tensors.
    Sigmoid {},
    /// Softmax along `axis` (default the last), float tensors.
    Softmax {
        #[serde(default = "minus_one")]
        axis: i64,
    },
    /// Converts the elements to `to` (float to integer truncates, saturating).
    Cast {
        #[serde(deserialize_with = "dtype")]
        to: DType,
    },
    /// New dims for the same elements: -1 is inferred, 0 copies the input's dim.
    Reshape { shape: Vec<i64> },
    /// An encoded PNG or JPEG (uint8 bytes) to RGB pixels, uint8 [H, W, 3].
    #[serde(rename = "decode_image")]
    DecodeImage {
        #[serde(default = "max_pixels")]
        max_pixels: usize,
    },
    /// RGB pixels [H, W, 3] to a text detector's input: `x` float32
    /// [1, 3, H', W'] (sides multiples of 32, the longer at most `maxSide`;
    /// BGR, ImageNet-normalised, as PaddleOCR feeds it) and `scale` float32
    /// [2] (original over resized width and height).
    #[serde(rename = "det_input")]
    DetInput {
        #[serde(default = "max_side")]
        max_side: usize,
    },
    /// A text detector's probability map [1, 1, H', W'] and `scale` to
    /// `boxes` float32 [N, 5] (x0, y0, x1, y1, score in original pixels,
    /// reading order).
    #[serde(rename = "text_boxes")]
    TextBoxes {
        #[serde(default)]
        thresh: Option<f32>,
        #[serde(default)]
        box_thresh: Option<f32>,
        #[serde(default)]
        unclip_ratio: Option<f32>,
        #[serde(default)]
        min_size: Option<usize>,
        #[serde(default)]
        max_boxes: Option<usize>,
    },
    /// RGB pixels and `boxes` to one batch of crops: `x` float32
    /// [N, 3, height, W] (aspect kept, right-padded to the widest crop within
    /// `minWidth..=maxWidth`; normalised as (v/255 − 0.5)/0.5) and `widths`
    /// int64 [N] (each crop's own width).
    #[serde(rename = "crop_text")]
    CropText {
        #[serde(default = "crop_height")]
        height: usize,
        min_width: usize,
        max_width: usize,
    },
    /// Crops `x` and their `widths`, and an orientation classifier's
    /// probabilities [N, 2]: `y`, with the crops whose "rotated 180°"
    /// probability is above `threshold` turned upright, and `rotated` uint8 [N].
    #[serde(rename = "rotate_flagged")]
    RotateFlagged {
        #[serde(default = "rotate_threshold")]
        threshold: f32,
    },
    /// Greedy CTC decoding of a recogniser's output [N, T, C] with the
    /// characters of `vocabulary` (a PaddleOCR keys file, relative to the
    /// spec's folder): `text` string [N] and `confidence` float32 [N].
    /// An encoded PNG or JPEG (uint8 bytes [n]) to a model's image input
    /// `y` [1, C, H, W] (or [1, H, W, C] with `layout: "hwc"`), with the
    /// pipeline image stage's options and defaults: `resize` ({width,
    /// height} or {shorter}), `filter`, `centerCrop`, `color`, `normalize`
    /// ({mean, std}), `layout`.
    Image {
        #[serde(default)]
        resize: Option<crate::pipeline::spec::ImageResize>,
        #[serde(default)]
        filter: Option<crate::image::Filter>,
        #[serde(default)]
        center_crop: Option<crate::pipeline::spec::Size>,
        #[serde(default)]
        color: Option<crate::image::Color>,
        #[serde(default)]
        normalize: Option<crate::pipeline::spec::Normalize>,
        #[serde(default)]
        layout: Option<crate::image::ChannelOrder>,
    },
    /// Text (a string tensor [N], and optionally a second one of pair
    /// texts) to `input_ids` and `attention_mask` int64 [N, L] with a
    /// Hugging Face `tokenizer.json` (relative to the spec's folder):
    /// truncated to `maxLength`, padded to the longest row (`padding:
    /// "longest"`, the default) or to `maxLength`.
    Tokenize {
        tokenizer: String,
        max_length: usize,
        #[serde(default)]
        padding: TokenizePadding,
        #[serde(default = "yes")]
        add_special_tokens: bool,
        /// The tokenizer, read once when the graph is built.
        #[serde(skip)]
        loaded: LoadedTokenizer,
    },
    /// Entity features from an open feature store (`store`) by key: a
    /// string or integer tensor [N] of keys to `y` float32 [N, F], the
    /// view's `features` (numbers, integers and booleans) in order, in one
    /// round trip. Models reading the same view share the node, so the
    /// lookup runs once per request. `missing`/`stale`/`onError` as the
    /// pipeline stage's, but a row that would fail fails the request.
    Lookup {
        #[serde(default = "default_store")]
        store: String,
        view: String,
        features: Vec<String>,
        #[serde(default)]
        missing: crate::pipeline::spec::LookupPolicy,
        #[serde(default = "stale_use")]
        stale: crate::pipeline::spec::LookupPolicy,
        #[serde(default)]
        on_error: crate::pipeline::spec::FailurePolicy,
        /// The store, found by name when the graph is built.
        #[serde(skip)]
        loaded: LoadedStore,
    },
    #[serde(rename = "ctc_decode")]
    CtcDecode {
        vocabulary: String,
        /// The file's characters, read once when the graph is built.
        #[serde(skip)]
        loaded: Loaded,
    },
}

/// How a `tokenize` op pads its rows.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TokenizePadding {
    #[default]
    Longest,
    MaxLength,
}

fn yes() -> bool {
    true
}

/// A tokenizer read at build time (equal to any other, as `Loaded`).
#[derive(Clone, Default)]
pub struct LoadedTokenizer(pub Option<std::sync::Arc<crate::text::TextTokenizer>>);

impl std::fmt::Debug for LoadedTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "LoadedTokenizer(loaded)" } else { "LoadedTokenizer(none)" })
    }
}

impl PartialEq for LoadedTokenizer {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// A feature store found at build time (equal to any other, as `Loaded`).
#[derive(Clone, Default)]
pub struct LoadedStore(pub Option<std::sync::Arc<crate::store::FeatureStore>>);

impl std::fmt::Debug for LoadedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "LoadedStore(found)" } else { "LoadedStore(none)" })
    }
}

impl PartialEq for LoadedStore {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

fn default_store() -> String {
    "default".into()
}

fn stale_use() -> crate::pipeline::spec::LookupPolicy {
    crate::pipeline::spec::LookupPolicy::Use
}

/// A vocabulary read at build time (equal to any other: specs compare by what is written).
#[derive(Clone, Debug, Default)]
pub struct Loaded(pub Option<std::sync::Arc<crate::vision::Vocabulary>>);

impl PartialEq for Loaded {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

fn max_pixels() -> usize {
    64 << 20
}

fn max_side() -> usize {
    960
}

fn crop_height() -> usize {
    48
}

fn rotate_threshold() -> f32 {
    0.9
}

fn one() -> i64 {
    1
}

fn minus_one() -> i64 {
    -1
}

/// A dtype by its name (`float32`, `int64`, ...), for serde.
pub(crate) fn dtype<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<DType, D::Error> {
    let name = String::deserialize(d)?;
    DType::from_name(&name).ok_or_else(|| {
        let all: Vec<&str> = DType::ALL.iter().map(|t| t.name()).collect();
        serde::de::Error::custom(format!("unknown type '{name}'; expected one of {}", all.join(", ")))
    })
}
