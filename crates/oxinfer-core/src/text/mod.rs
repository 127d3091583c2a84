//! Tokenisation with Hugging Face `tokenizers` from a `tokenizer.json`:
//! single texts and pairs, truncation, padding, masks, type ids and offsets,
//! with a batch encoded in parallel.

pub use tokenizers::TruncationStrategy;
use tokenizers::{PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationDirection, TruncationParams};

use crate::error::{Error, Result};

/// How offsets are counted: UTF-16 code units (JS string indices), Unicode
/// code points, or UTF-8 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OffsetUnit {
    #[default]
    Utf16,
    Chars,
    Bytes,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Padding {
    #[default]
    None,
    Longest,
    MaxLength,
}

#[derive(Clone, Debug)]
pub struct EncodeOptions {
    pub add_special_tokens: bool,
    /// Truncate to this many tokens (special tokens included).
    pub max_length: Option<usize>,
    pub truncation: TruncationStrategy,
    pub stride: usize,
    pub padding: Padding,
    pub pad_to_multiple_of: Option<usize>,
    pub offsets: Option<OffsetUnit>,
    pub type_ids: bool,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            add_special_tokens: true,
            max_length: None,
            truncation: TruncationStrategy::LongestFirst,
            stride: 0,
            padding: Padding::None,
            pad_to_multiple_of: None,
            offsets: None,
            type_ids: false,
        }
    }
}

/// A batch of encodings as flat columns. When padded, every row has
/// `seq_len` tokens; otherwise row `i` spans `starts[i]..starts[i + 1]`.
#[derive(Debug, Default)]
pub struct Encoded {
    pub rows: usize,
    /// Tokens per row when padded, 0 when ragged.
    pub seq_len: usize,
    pub ids: Vec<i32>,
    pub attention_mask: Vec<u8>,
    pub type_ids: Vec<u8>,
    /// Two per token: start and end.
    pub offsets: Vec<u32>,
    /// Row starts into the token arrays (rows + 1 entries).
    pub starts: Vec<u32>,
}

/// How many truncation/padding configurations a tokenizer keeps ready.
const CACHED_CONFIGURATIONS: usize = 8;

pub struct TextTokenizer {
    inner: Tokenizer,
    /// Tokenizers configured for recently used truncation/padding settings
    /// (most recent last): cloning a large vocabulary per call costs milliseconds.
    configured: std::sync::Mutex<Vec<(String, std::sync::Arc<Tokenizer>)>>,
}

impl TextTokenizer {
    pub fn from_bytes(json: &[u8]) -> Result<Self> {
        let inner = Tokenizer::from_bytes(json).map_err(|e| Error::ModelLoad(format!("cannot read the tokenizer: {e}")))?;
        Ok(TextTokenizer { inner, configured: std::sync::Mutex::new(Vec::new()) })
    }

    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::file("the tokenizer", path, e))?;
        Self::from_bytes(&bytes)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The pad token from the tokenizer's own padding settings, or a common one.
    fn pad(&self) -> Option<(u32, String)> {
        if let Some(p) = self.inner.get_padding() {
            return Some((p.pad_id, p.pad_token.clone()));
        }
        ["<pad>", "[PAD]", "<|endoftext|>", "</s>", "<|pad|>"].iter().find_map(|t| self.inner.token_to_id(t).map(|id| (id, t.to_string())))
    }

    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner.decode(ids, skip_special_tokens).map_err(|e| Error::InvalidInput { message: format!("cannot decode: {e}"), input: None, row: None, field: None })
    }

    /// Encodes texts (and optional second texts of pairs), in parallel.
    pub fn encode_batch(&self, texts: &[String], pairs: Option<&[String]>, opts: &EncodeOptions) -> Result<Encoded> {
        if let Some(p) = pairs {
            if p.len() != texts.len() {
                return Err(Error::InvalidArgument(format!("{} texts but {} pair texts", texts.len(), p.len())));
            }
        }
        let key = format!("{:?}|{:?}|{}|{:?}|{:?}", opts.max_length, opts.truncation, opts.stride, opts.padding, opts.pad_to_multiple_of);
        let cached = {
            let c = self.configured.lock().unwrap_or_else(|e| e.into_inner());
            c.iter().find(|(k, _)| *k == key).map(|(_, t)| std::sync::Arc::clone(t))
        };
        let tk = match cached {
            Some(t) => t,
            None => {
                let t = std::sync::Arc::new(self.configure(opts)?);
                let mut c = self.configured.lock().unwrap_or_else(|e| e.into_inner());
                if c.len() >= CACHED_CONFIGURATIONS {
                    c.remove(0);
                }
                c.push((key, std::sync::Arc::clone(&t)));
                t
            }
        };
        let inputs: Vec<tokenizers::EncodeInput> = match pairs {
            Some(p) => texts.iter().zip(p).map(|(a, b)| (a.as_str(), b.as_str()).into()).collect(),
            None => texts.iter().map(|a| a.as_str().into()).collect(),
        };
        // The `tokenizers` crate asserts (panics) where a pair's stride does
        // not fit its share of maxLength, which depends on the token counts:
        // that is a bad argument, reported as such and without a backtrace.
        quiet_tokenizer_panics();
        let encodings = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| tk.encode_batch(inputs, opts.add_special_tokens)))
            .map_err(|p| match Error::from_panic(p) {
                Error::Backend(m) if m.contains("stride") => Error::InvalidArgument(format!(
                    "stride {} does not fit maxLength {:?} for these pairs: each truncated sequence must keep more than stride tokens ({})",
                    opts.stride,
                    opts.max_length,
                    m.trim_start_matches("internal panic caught: ")
                )),
                e => e,
            })?
            .map_err(|e| Error::InvalidInput { message: format!("tokenisation failed: {e}"), input: None, row: None, field: None })?;
        self.collect(encodings, texts, pairs, opts)
    }

    /// A copy of the tokenizer with `opts`' truncation and padding.
    fn configure(&self, opts: &EncodeOptions) -> Result<Tokenizer> {
        let mut tk = self.inner.clone();
        let trunc = opts.max_length.map(|max_length| TruncationParams {
            max_length,
            strategy: opts.truncation,
            stride: opts.stride,
            direction: TruncationDirection::Right,
        });
        tk.with_truncation(trunc).map_err(|e| Error::InvalidArgument(format!("truncation: {e}")))?;
        let padding = match opts.padding {
            Padding::None => None,
            p => {
                let (pad_id, pad_token) =
                    self.pad().ok_or_else(|| Error::InvalidArgument("padding needs a pad token, and this tokenizer has none".into()))?;
                let strategy = match p {
                    Padding::MaxLength => PaddingStrategy::Fixed(
                        opts.max_length.ok_or_else(|| Error::InvalidArgument("padding to 'max_length' needs maxLength".into()))?,
                    ),
                    _ => PaddingStrategy::BatchLongest,
                };
                Some(PaddingParams {
                    strategy,
                    direction: self.inner.get_padding().map(|p| p.direction).unwrap_or(PaddingDirection::Right),
                    pad_to_multiple_of: opts.pad_to_multiple_of,
                    pad_id,
                    pad_type_id: 0,
                    pad_token,
                })
            }
        };
        tk.with_padding(padding);
        Ok(tk)
    }

    fn collect(&self, encodings: Vec<tokenizers::Encoding>, texts: &[String], pairs: Option<&[String]>, opts: &EncodeOptions) -> Result<Encoded> {
        let mut out = Encoded { rows: encodings.len(), ..Default::default() };
        if opts.padding != Padding::None {
            out.seq_len = encodings.first().map(|e| e.len()).unwrap_or(0);
        }
        let total: usize = encodings.iter().map(|e| e.len()).sum();
        out.ids.reserve(total);
        out.attention_mask.reserve(total);
        out.starts.push(0);
        for (row, e) in encodings.iter().enumerate() {
            out.ids.extend(e.get_ids().iter().map(|&i| i as i32));
            out.attention_mask.extend(e.get_attention_mask().iter().map(|&m| m as u8));
            if opts.type_ids {
                out.type_ids.extend(e.get_type_ids().iter().map(|&t| t as u8));
            }
            if let Some(unit) = opts.offsets {
                let seq_ids = e.get_sequence_ids();
                let first = unit_map(&texts[row], unit);
                let second = pairs.map(|p| unit_map(&p[row], unit));
                for (k, &(s, t)) in e.get_offsets().iter().enumerate() {
                    // Offsets are byte offsets into the sequence each token came from.
                    let map = match seq_ids.get(k).copied().flatten() {
                        Some(1) => second.as_deref().unwrap_or(&[0]),
                        Some(_) => &first[..],
                        None => &[0][..],
                    };
                    out.offsets.push(map[s.min(map.len() - 1)]);
                    out.offsets.push(map[t.min(map.len() - 1)]);
                }
            }
            out.starts.push(out.ids.len() as u32);
        }
        Ok(out)
    }
}

/// For every UTF-8 byte offset of `text` (0..=len), the offset in `unit`
/// (a byte inside a character maps to that character's start).
fn unit_map(text: &str, unit: OffsetUnit) -> Vec<u32> {
    let mut map = Vec::with_capacity(text.len() + 1);
    let mut at = 0u32;
    for c in text.chars() {
        for _ in 0..c.len_utf8() {
            map.push(match unit {
                OffsetUnit::Bytes => map.len() as u32,
                _ => at,
            });
        }
        at += match unit {
            OffsetUnit::Utf16 => c.len_utf16() as u32,
            _ => 1,
        };
    }
    map.push(match unit {
        OffsetUnit::Bytes => text.len() as u32,
        _ => at,
    });
    map
}

/// Keeps panics raised inside the `tokenizers` crate (caught and reported as
/// errors) off stderr; every other panic still goes to the previous hook.
fn quiet_tokenizer_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let inside = info.location().is_some_and(|l| l.file().contains("tokenizers-"));
            if !inside {
                previous(info)
            }
        }));
    });
}
