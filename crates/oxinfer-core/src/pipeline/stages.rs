//! Pre-processing stages: fitting their parameters and applying them to a
//! batch of columns. Each stage works column by column, in place.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use rayon::prelude::*;

use super::columns::Col;
use super::spec::{Scalar, Stage, Strategy, Unknown};
use super::stats;
use crate::error::{Error, Result};

/// Batches at least this large spread a stage's columns over rayon's threads.
pub const PARALLEL_ROWS: usize = 8192;

/// Column names to slots, fixed when a pipeline is compiled so that runs look
/// columns up without allocating.
pub type Slots = HashMap<String, usize>;

/// The named columns of a batch while stages run.
pub struct Frame<'a> {
    pub rows: usize,
    slots: Cow<'a, Slots>,
    cols: Vec<Option<Col>>,
    /// The first error of each bad row (rows with an error are skipped downstream).
    pub row_errors: Vec<Option<Error>>,
}

impl<'a> Frame<'a> {
    /// A frame over the compiled slots (names outside them still work, slower).
    pub fn new(rows: usize, slots: &'a Slots) -> Self {
        Frame { rows, cols: (0..slots.len()).map(|_| None).collect(), slots: Cow::Borrowed(slots), row_errors: (0..rows).map(|_| None).collect() }
    }

    pub fn insert(&mut self, name: &str, col: Col) {
        match self.slots.get(name) {
            Some(&i) => self.cols[i] = Some(col),
            None => {
                let i = self.cols.len();
                self.slots.to_mut().insert(name.to_string(), i);
                self.cols.push(Some(col));
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&Col> {
        self.slots.get(name).and_then(|&i| self.cols[i].as_ref())
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Col> {
        let i = *self.slots.get(name)?;
        self.cols[i].as_mut()
    }

    pub fn reject(&mut self, row: usize, e: Error) {
        if self.row_errors[row].is_none() {
            self.row_errors[row] = Some(e);
        }
    }

    /// Mutable access to several distinct columns at once, with their names.
    fn many_mut<'n>(&mut self, names: &'n [String]) -> Vec<(&'n str, &mut Col)> {
        let mut wanted: Vec<(usize, &'n str)> = names.iter().filter_map(|n| self.slots.get(n).map(|&i| (i, n.as_str()))).collect();
        wanted.sort_unstable_by_key(|(i, _)| *i);
        wanted.dedup_by_key(|(i, _)| *i);
        let mut out = Vec::with_capacity(wanted.len());
        let mut next = wanted.into_iter().peekable();
        for (i, c) in self.cols.iter_mut().enumerate() {
            match next.peek() {
                Some(&(j, n)) if j == i => {
                    next.next();
                    if let Some(c) = c.as_mut() {
                        out.push((n, c));
                    }
                }
                Some(_) => {}
                None => break,
            }
        }
        out
    }
}

/// The numeric values of a column (arrays flattened), for statistics.
fn values(col: &Col) -> &[f64] {
    match col {
        Col::Num(v) => v,
        Col::Arr { data, .. } => data,
        Col::List { values, .. } => values,
        _ => &[],
    }
}

fn values_mut(col: &mut Col) -> &mut [f64] {
    match col {
        Col::Num(v) => v,
        Col::Arr { data, .. } => data,
        Col::List { values, .. } => values,
        _ => &mut [],
    }
}

/// The tokenize stage's encoding options.
pub fn tokenize_options(stage: &Stage) -> crate::text::EncodeOptions {
    let Stage::Tokenize { max_length, padding, add_special_tokens, .. } = stage else {
        return crate::text::EncodeOptions::default();
    };
    crate::text::EncodeOptions {
        add_special_tokens: *add_special_tokens,
        max_length: Some(*max_length),
        padding: match padding {
            super::spec::TextPadding::Longest => crate::text::Padding::Longest,
            super::spec::TextPadding::MaxLength => crate::text::Padding::MaxLength,
        },
        type_ids: true,
        ..Default::default()
    }
}

/// The image stage's options, checked.
pub fn image_options(stage: &Stage, label: &str) -> Result<crate::image::ImageOptions> {
    use crate::image::{Color, ImageOptions, Resize};
    let Stage::Image { resize, filter, center_crop, color, normalize, layout, .. } = stage else {
        return Ok(ImageOptions::default());
    };
    let bad = |m: &str| Error::invalid_spec(label, m.to_string());
    // Filter, color and layout names were checked when the spec was parsed.
    let color = color.unwrap_or_default();
    let channels = if color == Color::Gray { 1 } else { 3 };
    Ok(ImageOptions {
        resize: match resize {
            None => Resize::None,
            Some(r) => match (r.width, r.height, r.shorter) {
                (Some(w), Some(h), None) if w > 0 && h > 0 => Resize::Exact(w, h),
                (None, None, Some(s)) if s > 0 => Resize::Shorter(s),
                _ => return Err(bad("resize must be { width, height } or { shorter }, with positive sizes")),
            },
        },
        filter: filter.unwrap_or_default(),
        crop: center_crop.as_ref().map(|c| (c.width, c.height)),
        color,
        normalize: match normalize {
            None => None,
            Some(n) if n.mean.len() == channels && n.std.len() == channels && n.std.iter().all(|s| *s != 0.0) => {
                Some((n.mean.iter().map(|&x| x as f32).collect(), n.std.iter().map(|&x| x as f32).collect()))
            }
            Some(_) => return Err(bad("normalize needs a mean and a non-zero std per channel")),
        },
        layout: layout.unwrap_or_default(),
        ..ImageOptions::default()
    })
}

fn num<'f>(frame: &'f Frame, f: &str, label: &str) -> Result<&'f [f64]> {
    match frame.get(f) {
        Some(Col::Num(v)) => Ok(v),
        _ => Err(Error::invalid_spec(label, format!("'{f}' is not a numeric column here"))),
    }
}

/// Applies `f(field, values)` to each listed numeric column, in parallel for big batches.
fn each_numeric(frame: &mut Frame, fields: &[String], f: impl Fn(&str, &mut [f64]) + Sync) {
    let big = frame.rows >= PARALLEL_ROWS;
    let mut cols = frame.many_mut(fields);
    if big {
        cols.par_iter_mut().for_each(|(n, c)| f(n, values_mut(c)));
    } else {
        for (n, c) in cols.iter_mut() {
            f(n, values_mut(c));
        }
    }
}

fn per_field<'a>(map: &'a Option<BTreeMap<String, f64>>, field: &str) -> f64 {
    map.as_ref().and_then(|m| m.get(field)).copied().unwrap_or(f64::NAN)
}

/// Per-stage lookups prepared once when a pipeline is compiled, so runs do not
/// rebuild them: the category index and the one-hot feature names.
#[derive(Default)]
pub struct Prepared {
    index: HashMap<String, usize>,
    names: Vec<String>,
    tokenizer: Option<std::sync::Arc<crate::text::TextTokenizer>>,
    image: Option<crate::image::ImageOptions>,
    /// A lookup stage's store, held for the pipeline's life.
    store: Option<std::sync::Arc<crate::store::FeatureStore>>,
}

impl Prepared {
    /// Like `new`, also loading what a stage needs from disk (tokenizers,
    /// relative to `base`) and checking image options.
    pub fn load(stage: &Stage, label: &str, base: Option<&std::path::Path>) -> Result<Self> {
        match stage {
            Stage::Tokenize { field, tokenizer, .. } => {
                let path = match base {
                    Some(b) => b.join(tokenizer),
                    None => std::path::PathBuf::from(tokenizer),
                };
                // A missing file stays `File` (one code for every file); a file that
                // is not a tokenizer is this stage's spec error.
                let t = crate::text::TextTokenizer::from_file(&path).map_err(|e| match e {
                    Error::File { .. } => e,
                    e => Error::invalid_spec(label, e.to_string()).at("tokenizer"),
                })?;
                // Configure it now (off the JS thread), not on the first run.
                t.encode_batch(&[String::new()], None, &tokenize_options(stage)).map_err(|e| Error::invalid_spec(label, e.to_string()))?;
                Ok(Prepared {
                    tokenizer: Some(std::sync::Arc::new(t)),
                    names: ["input_ids", "attention_mask", "token_type_ids"].iter().map(|n| format!("{field}.{n}")).collect(),
                    ..Default::default()
                })
            }
            Stage::Image { field, .. } => Ok(Prepared { image: Some(image_options(stage, label)?), names: vec![format!("{field}.pixels")], ..Default::default() }),
            Stage::Lookup { store, .. } => Ok(Prepared {
                store: Some(crate::store::find(store).ok_or_else(|| Error::invalid_spec(label, format!("no feature store named '{store}' is open")))?),
                ..Default::default()
            }),
            _ => Ok(Self::new(stage)),
        }
    }

    pub fn new(stage: &Stage) -> Self {
        let names = |v: Vec<String>| Prepared { names: v, ..Default::default() };
        match stage {
            Stage::OneHot { field, categories: Some(cats), .. } | Stage::Ordinal { field, categories: Some(cats), .. } => Prepared {
                index: cats.iter().enumerate().map(|(i, c)| (c.clone(), i)).collect(),
                names: cats.iter().map(|c| format!("{field}={c}")).collect(),
                ..Default::default()
            },
            Stage::Bucketize { field, edges, .. } => names((0..=edges.len()).map(|i| format!("{field}=b{i}")).collect()),
            Stage::Hash { field, buckets, .. } => names((0..*buckets).map(|i| format!("{field}#{i}")).collect()),
            Stage::Interaction { fields, .. } => {
                names(fields.iter().enumerate().flat_map(|(i, a)| fields[i + 1..].iter().map(move |b| format!("{a}*{b}"))).collect())
            }
            Stage::Aggregate { field, functions, .. } => names(functions.iter().map(|f| format!("{field}.{}", f.name())).collect()),
            Stage::Pca { prefix, components, .. } => names((0..*components).map(|i| format!("{prefix}{i}")).collect()),
            _ => Prepared::default(),
        }
    }
}

/// Applies one fitted stage to the frame.
pub fn apply(stage: &Stage, label: &str, prepared: &Prepared, frame: &mut Frame) -> Result<()> {
    match stage {
        Stage::Lookup { store, view, key, features, prefix, missing, stale, on_error, .. } => {
            let l = super::lookup::Lookup { store, view, key, features, prefix, missing: *missing, stale: *stale, on_error: *on_error };
            let col = frame.get(key).ok_or_else(|| Error::invalid_spec(label, format!("no field '{key}'")))?;
            let (columns, rejects) = super::lookup::apply(&l, label, prepared.store.as_ref(), col, frame.rows)?;
            for (name, col) in columns {
                frame.insert(&name, col);
            }
            for (r, e) in rejects {
                frame.reject(r, e);
            }
        }
        Stage::Impute { fields, strategy, value, values: fitted, .. } => {
            for f in fields {
                let fill = match strategy {
                    Strategy::Constant => value.clone(),
                    _ => fitted.as_ref().and_then(|m| m.get(f)).cloned(),
                }
                .ok_or_else(|| Error::invalid_spec(label, format!("field '{f}' has no fill value; fit the pipeline first")))?;
                match (frame.get_mut(f), fill) {
                    (Some(Col::Cat { codes, vocab }), Scalar::Text(s)) => {
                        let code = match vocab.iter().position(|v| *v == s) {
                            Some(c) => c as i32,
                            None => {
                                vocab.push(s);
                                vocab.len() as i32 - 1
                            }
                        };
                        codes.iter_mut().filter(|c| **c < 0).for_each(|c| *c = code);
                    }
                    (Some(Col::Cat { .. }), Scalar::Number(_)) => {
                        return Err(Error::invalid_spec(label, format!("category field '{f}' needs a string fill value")))
                    }
                    (Some(col), Scalar::Number(x)) => values_mut(col).iter_mut().filter(|v| v.is_nan()).for_each(|v| *v = x),
                    (Some(_), Scalar::Text(_)) => {
                        return Err(Error::invalid_spec(label, format!("numeric field '{f}' needs a numeric fill value")))
                    }
                    (None, _) => return Err(Error::invalid_spec(label, format!("unknown field '{f}'"))),
                }
            }
        }
        Stage::Clip { fields, min, max, .. } => {
            let (lo, hi) = (min.unwrap_or(f64::NEG_INFINITY), max.unwrap_or(f64::INFINITY));
            each_numeric(frame, fields, |_, v| v.iter_mut().for_each(|x| *x = x.clamp(lo, hi)));
        }
        Stage::StandardScale { fields, with_mean, with_std, mean, scale, .. } => {
            each_numeric(frame, fields, |f, v| {
                let m = if *with_mean { per_field(mean, f) } else { 0.0 };
                let s = if *with_std { per_field(scale, f) } else { 1.0 };
                v.iter_mut().for_each(|x| *x = (*x - m) / s);
            });
        }
        Stage::MinmaxScale { fields, range, data_min, data_max, .. } => {
            each_numeric(frame, fields, |f, v| {
                let (lo, hi) = (per_field(data_min, f), per_field(data_max, f));
                let scale = (range[1] - range[0]) / stats::nonzero_scale(hi - lo);
                let min = range[0] - lo * scale;
                v.iter_mut().for_each(|x| *x = *x * scale + min);
            });
        }
        Stage::RobustScale { fields, center, scale, .. } => {
            each_numeric(frame, fields, |f, v| {
                let (c, s) = (per_field(center, f), per_field(scale, f));
                v.iter_mut().for_each(|x| *x = (*x - c) / s);
            });
        }
        Stage::OneHot { field, categories, unknown, .. } => {
            let cats = categories.as_ref().ok_or_else(|| Error::invalid_spec(label, "no categories; fit the pipeline first"))?;
            let Some(Col::Cat { codes, vocab }) = frame.get(field) else {
                return Err(Error::invalid_spec(label, format!("'{field}' is not a category field")));
            };
            let lookup = vocab_map(vocab, &prepared.index);
            let mut outs = vec![vec![0f64; frame.rows]; cats.len()];
            let mut bad = Vec::new();
            for (row, &c) in codes.iter().enumerate() {
                match (c >= 0).then(|| lookup[c as usize]).flatten() {
                    Some(k) => outs[k][row] = 1.0,
                    None if *unknown == Unknown::Error => bad.push((row, describe(c, vocab))),
                    None => {}
                }
            }
            for (row, what) in bad {
                frame.reject(row, Error::bad_record(row, field, format!("field '{field}': {what} (known: {})", cats.join(", "))));
            }
            for (name, col) in prepared.names.iter().zip(outs) {
                frame.insert(name, Col::Num(col));
            }
        }
        Stage::Ordinal { field, categories, unknown, unknown_value, .. } => {
            let cats = categories.as_ref().ok_or_else(|| Error::invalid_spec(label, "no categories; fit the pipeline first"))?;
            let Some(Col::Cat { codes, vocab }) = frame.get(field) else {
                return Err(Error::invalid_spec(label, format!("'{field}' is not a category field")));
            };
            let lookup = vocab_map(vocab, &prepared.index);
            let mut out = vec![*unknown_value; frame.rows];
            let mut bad = Vec::new();
            for (row, &c) in codes.iter().enumerate() {
                match (c >= 0).then(|| lookup[c as usize]).flatten() {
                    Some(k) => out[row] = k as f64,
                    None if *unknown == Unknown::Error => bad.push((row, describe(c, vocab))),
                    None => {}
                }
            }
            for (row, what) in bad {
                frame.reject(row, Error::bad_record(row, field, format!("field '{field}': {what} (known: {})", cats.join(", "))));
            }
            frame.insert(field, Col::Num(out));
        }
        Stage::Log { fields, offset, .. } => {
            each_numeric(frame, fields, |_, v| {
                v.iter_mut().for_each(|x| *x = if *x + offset > 0.0 { (*x + offset).ln() } else { f64::NAN })
            });
        }
        Stage::Bucketize { field, edges, output, .. } => {
            let idx: Vec<f64> = num(frame, field, label)?.iter().map(|&x| if x.is_nan() { f64::NAN } else { edges.iter().filter(|&&e| e <= x).count() as f64 }).collect();
            match output {
                super::spec::BucketOutput::Index => frame.insert(field, Col::Num(idx)),
                super::spec::BucketOutput::OneHot => {
                    for (b, name) in prepared.names.iter().enumerate() {
                        let col = idx.iter().map(|&i| if i.is_nan() { f64::NAN } else { (i as usize == b) as u8 as f64 }).collect();
                        frame.insert(name, Col::Num(col));
                    }
                }
            }
        }
        Stage::Hash { field, buckets, alternate_sign, .. } => {
            let Some(Col::Cat { codes, vocab }) = frame.get(field) else {
                return Err(Error::invalid_spec(label, format!("'{field}' is not a category field")));
            };
            let slots: Vec<(usize, f64)> = vocab.iter().map(|v| super::features::hash_feature(v, *buckets, *alternate_sign)).collect();
            let mut outs = vec![vec![0f64; frame.rows]; *buckets];
            for (row, &c) in codes.iter().enumerate() {
                if c >= 0 {
                    let (i, sign) = slots[c as usize];
                    outs[i][row] += sign;
                }
            }
            for (name, col) in prepared.names.iter().zip(outs) {
                frame.insert(name, Col::Num(col));
            }
        }
        Stage::Interaction { fields, .. } => {
            let mut k = 0;
            for (i, a) in fields.iter().enumerate() {
                for b in &fields[i + 1..] {
                    let col: Vec<f64> = num(frame, a, label)?.iter().zip(num(frame, b, label)?).map(|(x, y)| x * y).collect();
                    frame.insert(&prepared.names[k], Col::Num(col));
                    k += 1;
                }
            }
        }
        Stage::Aggregate { field, functions, .. } => {
            let Some(Col::List { offsets, values }) = frame.get(field) else {
                return Err(Error::invalid_spec(label, format!("'{field}' is not a list field")));
            };
            let rows = frame.rows;
            let mut outs = vec![vec![f64::NAN; rows]; functions.len()];
            for r in 0..rows {
                let xs = values[offsets[r]..offsets[r + 1]].iter().copied().filter(|x| !x.is_nan());
                let (mut n, mut sum, mut lo, mut hi, mut last) = (0usize, 0.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN);
                for x in xs {
                    n += 1;
                    sum += x;
                    lo = lo.min(x);
                    hi = hi.max(x);
                    last = x;
                }
                for (f, out) in functions.iter().zip(outs.iter_mut()) {
                    out[r] = match f {
                        super::spec::Aggregation::Count => n as f64,
                        super::spec::Aggregation::Sum => sum,
                        _ if n == 0 => f64::NAN,
                        super::spec::Aggregation::Mean => sum / n as f64,
                        super::spec::Aggregation::Min => lo,
                        super::spec::Aggregation::Max => hi,
                        super::spec::Aggregation::Last => last,
                    };
                }
            }
            for (name, col) in prepared.names.iter().zip(outs) {
                frame.insert(name, Col::Num(col));
            }
        }
        Stage::Tokenize { field, pair_field, .. } => {
            let tok = prepared.tokenizer.as_ref().ok_or_else(|| Error::invalid_spec(label, "the tokenizer is not loaded"))?;
            let texts_of = |f: &str| -> Result<Vec<Option<String>>> {
                match frame.get(f) {
                    Some(Col::Text(t)) => Ok(t.clone()),
                    _ => Err(Error::invalid_spec(label, format!("'{f}' is not a text field"))),
                }
            };
            let first = texts_of(field)?;
            let second = pair_field.as_deref().map(texts_of).transpose()?;
            let mut bad = Vec::new();
            let pick = |v: &[Option<String>], f: &str, bad: &mut Vec<(usize, String)>| -> Vec<String> {
                v.iter()
                    .enumerate()
                    .map(|(r, t)| {
                        t.clone().unwrap_or_else(|| {
                            bad.push((r, f.to_string()));
                            String::new()
                        })
                    })
                    .collect()
            };
            let a = pick(&first, field, &mut bad);
            let b = second.as_ref().map(|s| pick(s, pair_field.as_deref().unwrap_or(""), &mut bad));
            for (r, f) in bad {
                frame.reject(r, Error::bad_record(r, &f, format!("row {r}: field '{f}' is missing, and tokenize needs text")));
            }
            let e = tok.encode_batch(&a, b.as_deref(), &tokenize_options(stage))?;
            let rows = frame.rows as i64;
            let dims = [rows, e.seq_len as i64];
            let ids: Vec<i64> = e.ids.iter().map(|&x| x as i64).collect();
            let mask: Vec<i64> = e.attention_mask.iter().map(|&x| x as i64).collect();
            let types: Vec<i64> = e.type_ids.iter().map(|&x| x as i64).collect();
            for (name, v) in prepared.names.iter().zip([ids, mask, types]) {
                let t = crate::tensor::InputTensor::from_values(name, crate::tensor::DType::Int64, &dims, &v)?;
                frame.insert(name, Col::Tensor(t));
            }
        }
        Stage::Image { field, .. } => {
            let o = prepared.image.as_ref().ok_or_else(|| Error::invalid_spec(label, "image options are not prepared"))?;
            let Some(Col::Images(images)) = frame.get(field) else {
                return Err(Error::invalid_spec(label, format!("'{field}' is not an image field")));
            };
            let images = std::sync::Arc::clone(images);
            let done: Vec<std::result::Result<crate::image::Raster, String>> = images
                .par_iter()
                .map(|i| match i {
                    Some(i) => crate::image::process_one(i, o),
                    None => Err("the image is missing".into()),
                })
                .collect();
            let size = done.iter().find_map(|r| r.as_ref().ok().map(|r| (r.width, r.height, r.channels)));
            let (w, h, c) = size.unwrap_or((0, 0, if o.color == crate::image::Color::Gray { 1 } else { 3 }));
            let per = w * h * c;
            let mut data = vec![0f32; frame.rows * per];
            for (r, res) in done.iter().enumerate() {
                match res {
                    Ok(img) if (img.width, img.height) == (w, h) => crate::image::write_floats(img, o, &mut data[r * per..(r + 1) * per]),
                    Ok(img) => frame.reject(r, Error::bad_record(r, field, format!("row {r}: the image came out {}×{}, others {w}×{h}; resize or crop to a fixed size", img.width, img.height))),
                    Err(m) => frame.reject(r, Error::bad_record(r, field, format!("row {r}: {m}"))),
                }
            }
            let dims: Vec<i64> = match o.layout {
                crate::image::ChannelOrder::Chw => vec![frame.rows as i64, c as i64, h as i64, w as i64],
                crate::image::ChannelOrder::Hwc => vec![frame.rows as i64, h as i64, w as i64, c as i64],
            };
            let t = crate::tensor::InputTensor::from_values(&prepared.names[0], crate::tensor::DType::Float32, &dims, &data)?;
            frame.insert(&prepared.names[0], Col::Tensor(t));
        }
        Stage::Pca { fields, mean, matrix, .. } => {
            let (Some(mean), Some(matrix)) = (mean, matrix) else {
                return Err(Error::invalid_spec(label, "not fitted; fit the pipeline first"));
            };
            let cols: Vec<&[f64]> = fields.iter().map(|f| num(frame, f, label)).collect::<Result<_>>()?;
            let rows = frame.rows;
            let mut outs = vec![vec![0f64; rows]; matrix.len()];
            for r in 0..rows {
                for (k, comp) in matrix.iter().enumerate() {
                    let mut acc = 0.0;
                    for (j, c) in cols.iter().enumerate() {
                        acc += (c[r] - mean[j]) * comp[j];
                    }
                    outs[k][r] = acc;
                }
            }
            for (name, col) in prepared.names.iter().zip(outs) {
                frame.insert(name, Col::Num(col));
            }
        }
    }
    Ok(())
}

fn describe(code: i32, vocab: &[String]) -> String {
    if code < 0 {
        "missing value, and the stage refuses unknown categories".into()
    } else {
        format!("unknown category '{}'", vocab[code as usize])
    }
}

/// For each batch-local string, its index in the fitted vocabulary.
fn vocab_map(vocab: &[String], known: &HashMap<String, usize>) -> Vec<Option<usize>> {
    vocab.iter().map(|v| known.get(v.as_str()).copied()).collect()
}

/// Learns a stage's parameters from the frame (before the stage is applied).
pub fn fit(stage: &mut Stage, label: &str, frame: &Frame) -> Result<()> {
    let need = |f: &str| frame.get(f).ok_or_else(|| Error::invalid_spec(label, format!("unknown field '{f}'")));
    let no_data = |f: &str| Error::invalid_spec(label, format!("field '{f}' has no present values to fit on"));
    match stage {
        Stage::Impute { fields, strategy, values: fitted, .. } => {
            if *strategy == Strategy::Constant {
                return Ok(());
            }
            let mut learned = BTreeMap::new();
            for f in fields.iter() {
                let v = match need(f)? {
                    Col::Cat { codes, vocab } => {
                        if *strategy != Strategy::MostFrequent {
                            return Err(Error::invalid_spec(label, format!("category field '{f}' can only be imputed with most_frequent or constant")));
                        }
                        let s = stats::mode_str(codes.iter().filter(|c| **c >= 0).map(|&c| vocab[c as usize].as_str())).ok_or_else(|| no_data(f))?;
                        Scalar::Text(s)
                    }
                    col => {
                        let xs = stats::present(values(col));
                        let x = match strategy {
                            Strategy::Mean => stats::mean(&xs),
                            Strategy::Median => stats::median(&xs),
                            Strategy::MostFrequent => stats::mode(&xs),
                            Strategy::Constant => unreachable!(),
                        };
                        Scalar::Number(x.ok_or_else(|| no_data(f))?)
                    }
                };
                learned.insert(f.clone(), v);
            }
            *fitted = Some(learned);
        }
        Stage::Clip { .. } => {}
        Stage::StandardScale { fields, mean, scale, .. } => {
            let (mut m, mut s) = (BTreeMap::new(), BTreeMap::new());
            for f in fields.iter() {
                let xs = stats::present(values(need(f)?));
                m.insert(f.clone(), stats::mean(&xs).ok_or_else(|| no_data(f))?);
                s.insert(f.clone(), stats::nonzero_scale(stats::variance(&xs).ok_or_else(|| no_data(f))?.sqrt()));
            }
            *mean = Some(m);
            *scale = Some(s);
        }
        Stage::MinmaxScale { fields, data_min, data_max, .. } => {
            let (mut lo, mut hi) = (BTreeMap::new(), BTreeMap::new());
            for f in fields.iter() {
                let s = stats::sorted(values(need(f)?));
                lo.insert(f.clone(), *s.first().ok_or_else(|| no_data(f))?);
                hi.insert(f.clone(), *s.last().ok_or_else(|| no_data(f))?);
            }
            *data_min = Some(lo);
            *data_max = Some(hi);
        }
        Stage::RobustScale { fields, quantile_range, center, scale, .. } => {
            let (mut c, mut s) = (BTreeMap::new(), BTreeMap::new());
            for f in fields.iter() {
                let sorted = stats::sorted(values(need(f)?));
                let med = stats::median(&sorted).ok_or_else(|| no_data(f))?;
                let q = |p| stats::percentile(&sorted, p).ok_or_else(|| no_data(f));
                c.insert(f.clone(), med);
                s.insert(f.clone(), stats::nonzero_scale(q(quantile_range[1])? - q(quantile_range[0])?));
            }
            *center = Some(c);
            *scale = Some(s);
        }
        Stage::OneHot { field, categories, .. } | Stage::Ordinal { field, categories, .. } => {
            let Col::Cat { codes, vocab } = need(field)? else {
                return Err(Error::invalid_spec(label, format!("'{field}' is not a category field")));
            };
            let mut seen: Vec<String> = codes.iter().filter(|c| **c >= 0).map(|&c| vocab[c as usize].clone()).collect();
            seen.sort();
            seen.dedup();
            if seen.is_empty() {
                return Err(no_data(field));
            }
            *categories = Some(seen);
        }
        Stage::Log { .. } | Stage::Bucketize { .. } | Stage::Hash { .. } | Stage::Interaction { .. } | Stage::Aggregate { .. } => {}
        Stage::Tokenize { .. } | Stage::Image { .. } | Stage::Lookup { .. } => {}
        Stage::Pca { fields, components, mean, matrix, explained_variance, .. } => {
            let cols: Vec<&[f64]> = fields.iter().map(|f| num(frame, f, label)).collect::<Result<_>>()?;
            let n = cols.len();
            let mut x = Vec::new();
            let mut rows = 0;
            for r in 0..frame.rows {
                if cols.iter().all(|c| !c[r].is_nan()) {
                    x.extend(cols.iter().map(|c| c[r]));
                    rows += 1;
                }
            }
            let (m, comps, var) = super::features::fit_pca(&x, rows, n, *components)
                .ok_or_else(|| Error::invalid_spec(label, "PCA needs at least two complete rows to fit on"))?;
            *mean = Some(m);
            *matrix = Some(comps);
            *explained_variance = Some(var);
        }
    }
    Ok(())
}

/// The first stage parameter still missing, if the stage needs fitting.
pub fn unfitted(stage: &Stage) -> Option<&'static str> {
    match stage {
        Stage::Impute { strategy: Strategy::Constant, value: None, .. } => Some("value"),
        Stage::Impute { strategy, values: None, .. } if *strategy != Strategy::Constant => Some("values"),
        Stage::StandardScale { mean: None, with_mean: true, .. } => Some("mean"),
        Stage::StandardScale { scale: None, with_std: true, .. } => Some("scale"),
        Stage::MinmaxScale { data_min: None, .. } | Stage::MinmaxScale { data_max: None, .. } => Some("data_min/data_max"),
        Stage::RobustScale { center: None, .. } | Stage::RobustScale { scale: None, .. } => Some("center/scale"),
        Stage::OneHot { categories: None, .. } | Stage::Ordinal { categories: None, .. } => Some("categories"),
        Stage::Pca { mean: None, .. } | Stage::Pca { matrix: None, .. } => Some("mean/matrix"),
        _ => None,
    }
}
