//! Tokenizers: loading a `tokenizer.json` and encoding batches off the JS
//! thread (tokenizers itself spreads a batch over rayon's threads).

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::sys;
use oxinfer_core::text::{EncodeOptions, Encoded, TextTokenizer};
use oxinfer_core::{DType, Error as CoreError};

use crate::errors::IntoNapi;
use crate::js;
use crate::options::{IdType, Offsets, TextPadding, Truncation};

/// A raw JS value built on the JS thread, handed back from a task.
pub struct Raw(pub sys::napi_value);

impl TypeName for Raw {
    fn type_name() -> &'static str {
        "unknown"
    }
    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

impl ToNapiValue for Raw {
    unsafe fn to_napi_value(_env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        Ok(val.0)
    }
}

#[napi(object)]
pub struct NativeEncodeOptions {
    pub add_special_tokens: bool,
    pub max_length: Option<u32>,
    pub truncation: Truncation,
    pub stride: u32,
    pub padding: TextPadding,
    pub pad_to_multiple_of: Option<u32>,
    /// Null: no offsets.
    pub offsets: Option<Offsets>,
    pub type_ids: bool,
    pub ids: IdType,
}

/// The longest sequence a batch may be truncated or padded to: past it a
/// padded batch would not fit in memory (2^31 tokens aborted the process).
pub const MAX_TOKENS: u32 = 1 << 20;

fn options(o: &NativeEncodeOptions) -> std::result::Result<(EncodeOptions, bool), CoreError> {
    for (name, v) in [("maxLength", o.max_length), ("padToMultipleOf", o.pad_to_multiple_of)] {
        if v.is_some_and(|v| v > MAX_TOKENS) {
            return Err(CoreError::InvalidArgument(format!("{name} must be at most {MAX_TOKENS} tokens")));
        }
    }
    let truncation = o.truncation.into();
    let padding = o.padding.into();
    let offsets = o.offsets.map(Into::into);
    let wide = matches!(o.ids, IdType::Int64);
    Ok((
        EncodeOptions {
            add_special_tokens: o.add_special_tokens,
            max_length: o.max_length.map(|m| m as usize),
            truncation,
            stride: o.stride as usize,
            padding,
            pad_to_multiple_of: o.pad_to_multiple_of.map(|m| m as usize),
            offsets,
            type_ids: o.type_ids,
        },
        wide,
    ))
}

pub struct LoadTask {
    source: Option<Either<String, Uint8Array>>,
}

impl Task for LoadTask {
    type Output = TextTokenizer;
    type JsValue = NativeTokenizer;

    fn compute(&mut self) -> Result<Self::Output> {
        let src = self.source.take().ok_or_else(|| crate::errors::to_napi(oxinfer_core::Error::Backend("load ran twice".into())))?;
        match src {
            Either::A(path) => TextTokenizer::from_file(std::path::Path::new(&path)).js(),
            Either::B(bytes) => TextTokenizer::from_bytes(&bytes).js(),
        }
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(NativeTokenizer { inner: Arc::new(output) })
    }
}

/// Loads a tokenizer.json (a path or its bytes) off the JS thread.
#[napi(catch_unwind, ts_return_type = "Promise<NativeTokenizer>")]
pub fn load_tokenizer(source: Either<String, Uint8Array>) -> AsyncTask<LoadTask> {
    AsyncTask::new(LoadTask { source: Some(source) })
}

#[napi]
pub struct NativeTokenizer {
    inner: Arc<TextTokenizer>,
}

pub struct EncodeTask {
    tokenizer: Arc<TextTokenizer>,
    texts: Vec<String>,
    pairs: Option<Vec<String>>,
    options: EncodeOptions,
    wide: bool,
}

impl Task for EncodeTask {
    type Output = Encoded;
    type JsValue = Raw;

    fn compute(&mut self) -> Result<Self::Output> {
        let (t, texts, pairs, o) = (&self.tokenizer, &self.texts, self.pairs.as_deref(), &self.options);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t.encode_batch(texts, pairs, o)))
            .unwrap_or_else(|p| Err(CoreError::from_panic(p)))
            .js()
    }

    fn resolve(&mut self, env: Env, e: Self::Output) -> Result<Self::JsValue> {
        encoded_to_js(env.raw(), &e, self.wide).js().map(Raw)
    }
}

/// `[rows, seqLen, ids, attentionMask, typeIds | null, offsets | null, starts]`.
fn encoded_to_js(env: sys::napi_env, e: &Encoded, wide: bool) -> std::result::Result<sys::napi_value, CoreError> {
    let arr = js::new_array(env, 7)?;
    js::set(env, arr, 0, js::new_number(env, e.rows as f64)?)?;
    js::set(env, arr, 1, js::new_number(env, e.seq_len as f64)?)?;
    let ids = if wide {
        let v: Vec<i64> = e.ids.iter().map(|&i| i as i64).collect();
        js::new_typed_array(env, DType::Int64, bytes_of(&v))?
    } else {
        js::new_typed_array(env, DType::Int32, bytes_of(&e.ids))?
    };
    js::set(env, arr, 2, ids)?;
    js::set(env, arr, 3, js::new_typed_array(env, DType::Uint8, &e.attention_mask)?)?;
    let type_ids = if e.type_ids.is_empty() && e.ids.len() > 0 { js::null(env)? } else { js::new_typed_array(env, DType::Uint8, &e.type_ids)? };
    js::set(env, arr, 4, type_ids)?;
    let offsets = if e.offsets.is_empty() && e.ids.len() > 0 { js::null(env)? } else { js::new_typed_array(env, DType::Uint32, bytes_of(&e.offsets))? };
    js::set(env, arr, 5, offsets)?;
    js::set(env, arr, 6, js::new_typed_array(env, DType::Uint32, bytes_of(&e.starts))?)?;
    Ok(arr)
}

fn bytes_of<T: Copy>(v: &[T]) -> &[u8] {
    // SAFETY: plain numbers viewed as bytes.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
}

#[napi]
impl NativeTokenizer {
    /// Encodes a batch off the JS thread.
    #[napi(catch_unwind, ts_return_type = "Promise<unknown[]>")]
    pub fn encode_batch(&self, texts: Vec<String>, pairs: Option<Vec<String>>, options: NativeEncodeOptions) -> Result<AsyncTask<EncodeTask>> {
        let (options, wide) = options_of(&options)?;
        Ok(AsyncTask::new(EncodeTask { tokenizer: Arc::clone(&self.inner), texts, pairs, options, wide }))
    }

    /// Encodes on the calling thread (for small inputs, like a single text).
    #[napi(catch_unwind, ts_return_type = "unknown[]")]
    pub fn encode_sync(&self, env: Env, texts: Vec<String>, pairs: Option<Vec<String>>, options: NativeEncodeOptions) -> Result<Raw> {
        let (options, wide) = options_of(&options)?;
        let e = self.inner.encode_batch(&texts, pairs.as_deref(), &options).js()?;
        encoded_to_js(env.raw(), &e, wide).js().map(Raw)
    }

    #[napi(catch_unwind)]
    pub fn decode(&self, ids: Vec<u32>, skip_special_tokens: bool) -> Result<String> {
        self.inner.decode(&ids, skip_special_tokens).js()
    }

    #[napi(getter)]
    pub fn vocab_size(&self) -> u32 {
        self.inner.vocab_size() as u32
    }

    #[napi]
    pub fn token_to_id(&self, token: String) -> Option<u32> {
        self.inner.token_to_id(&token)
    }

    #[napi]
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }
}

fn options_of(o: &NativeEncodeOptions) -> Result<(EncodeOptions, bool)> {
    options(o).js()
}
