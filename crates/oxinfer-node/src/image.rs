//! Image batches: decoded and transformed in parallel off the JS thread.

use napi::bindgen_prelude::*;
use napi::sys;
use oxinfer_core::image::{process_batch, process_batch_into, ImageInput, ImageOptions, Processed, Resize, Target};
use oxinfer_core::tensor::BorrowedBytes;
use oxinfer_core::{DType, Error as CoreError, Result as CoreResult};

use crate::errors::IntoNapi;
use crate::js::{self, Env as RawEnv, Val};
use crate::options::{ImageColor, ImageFilter, ImageLayout, ImageOutput, ImageResize};
use crate::text::Raw;

#[napi(object)]
pub struct NativeImageOptions {
    pub resize: ImageResize,
    pub width: u32,
    pub height: u32,
    pub shorter: u32,
    pub filter: ImageFilter,
    pub crop_width: Option<u32>,
    pub crop_height: Option<u32>,
    pub color: ImageColor,
    pub mean: Option<Vec<f64>>,
    pub std: Option<Vec<f64>>,
    pub scale: f64,
    pub layout: ImageLayout,
    pub output: ImageOutput,
    pub max_pixels: f64,
}

fn options(o: &NativeImageOptions) -> CoreResult<ImageOptions> {
    let bad = |m: String| CoreError::InvalidArgument(m);
    Ok(ImageOptions {
        resize: match o.resize {
            ImageResize::None => Resize::None,
            ImageResize::Exact => Resize::Exact(o.width as usize, o.height as usize),
            ImageResize::Shorter => Resize::Shorter(o.shorter as usize),
        },
        filter: o.filter.into(),
        crop: o.crop_width.zip(o.crop_height).map(|(w, h)| (w as usize, h as usize)),
        color: o.color.into(),
        normalize: match (&o.mean, &o.std) {
            (Some(m), Some(s)) => Some((m.iter().map(|&x| x as f32).collect(), s.iter().map(|&x| x as f32).collect())),
            (None, None) => None,
            _ => return Err(bad("normalize needs both mean and std".into())),
        },
        scale: o.scale as f32,
        layout: o.layout.into(),
        uint8: o.output == ImageOutput::Uint8,
        max_pixels: o.max_pixels as usize,
    })
}

/// Reads `[Uint8Array | [data, width, height, channels]]` without copying pixels.
fn inputs(env: RawEnv, v: Val, field: &str) -> CoreResult<Vec<ImageInput>> {
    let n = js::array_len(env, v)?;
    (0..n).map(|i| input(env, js::element(env, v, i)?, i, field)).collect()
}

/// One image: encoded bytes, or `[pixels, width, height, channels]`.
pub fn input(env: RawEnv, item: Val, i: u32, field: &str) -> CoreResult<ImageInput> {
    let mut out = Vec::with_capacity(1);
    {
        let bad = |m: &str| CoreError::bad_record(i as usize, field, format!("row {i}: {m}"));
        if let Some(view) = js::typed_array(env, item)? {
            if view.kind != js::UINT8 {
                return Err(bad("encoded images must be Uint8Array (or Buffer) bytes"));
            }
            // SAFETY: JS keeps the batch referenced until the task settles.
            out.push(ImageInput::Encoded(unsafe { BorrowedBytes::new(view.data, view.len) }));
        } else if js::is_array(env, item)? && js::array_len(env, item)? == 4 {
            let data = js::typed_array(env, js::element(env, item, 0)?)?.filter(|t| t.kind == js::UINT8 || t.kind == js::UINT8_CLAMPED).ok_or_else(|| bad("raw pixels must be a Uint8Array"))?;
            let num = |k| -> CoreResult<usize> {
                js::number(env, js::element(env, item, k)?)?.filter(|x| x.fract() == 0.0 && *x >= 0.0).map(|x| x as usize).ok_or_else(|| bad("width, height and channels must be non-negative integers"))
            };
            // SAFETY: as above.
            out.push(ImageInput::Raw { data: unsafe { BorrowedBytes::new(data.data, data.len) }, width: num(1)?, height: num(2)?, channels: num(3)? });
        } else {
            return Err(bad("expected encoded image bytes or raw pixels"));
        }
    }
    Ok(out.pop().expect("one input"))
}

pub struct ImageTask {
    inputs: Vec<ImageInput>,
    options: ImageOptions,
    field: String,
    /// A JS-owned output (Float32Array or Uint8Array) to write into, when the size is fixed.
    out: Option<(*mut u8, usize)>,
}

// SAFETY: `out` points into a typed array that JS keeps referenced until the task settles.
unsafe impl Send for ImageTask {}

impl Task for ImageTask {
    type Output = Processed;
    type JsValue = Raw;

    fn compute(&mut self) -> Result<Self::Output> {
        let (i, o, f, out) = (&self.inputs, &self.options, &self.field, self.out);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match out {
            Some((ptr, len)) => {
                // SAFETY: see `out`; nothing else touches the array meanwhile.
                let target = if o.uint8 {
                    Target::Bytes(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
                } else {
                    Target::Floats(unsafe { std::slice::from_raw_parts_mut(ptr as *mut f32, len / 4) })
                };
                let (n, channels, height, width) = process_batch_into(i, o, f, target)?;
                Ok(Processed { n, channels, height, width, layout: o.layout, floats: vec![], bytes: vec![] })
            }
            None => process_batch(i, o, f),
        }))
        .unwrap_or_else(|p| Err(CoreError::from_panic(p)))
        .js()
    }

    fn resolve(&mut self, env: Env, p: Self::Output) -> Result<Self::JsValue> {
        to_js(env.raw(), &p, self.out.is_some()).js().map(Raw)
    }
}

/// `[n, channels, height, width, data]` (data null when written into the caller's array).
fn to_js(env: sys::napi_env, p: &Processed, written: bool) -> CoreResult<Val> {
    let arr = js::new_array(env, 5)?;
    for (i, x) in [p.n, p.channels, p.height, p.width].iter().enumerate() {
        js::set(env, arr, i as u32, js::new_number(env, *x as f64)?)?;
    }
    let data = if written {
        js::null(env)?
    } else if p.floats.is_empty() && !p.bytes.is_empty() {
        js::new_typed_array(env, DType::Uint8, &p.bytes)?
    } else {
        // SAFETY: f32s viewed as bytes.
        let b = unsafe { std::slice::from_raw_parts(p.floats.as_ptr() as *const u8, p.floats.len() * 4) };
        js::new_typed_array(env, DType::Float32, b)?
    };
    js::set(env, arr, 4, data)?;
    Ok(arr)
}

/// Decodes and transforms a batch of images off the JS thread.
#[napi(catch_unwind, ts_return_type = "Promise<unknown[]>")]
pub fn process_images(env: Env, images: Unknown, options: NativeImageOptions, field: String, out: Option<Unknown>) -> Result<AsyncTask<ImageTask>> {
    let o = options_of(&options)?;
    let inputs = inputs(env.raw(), images.value().value, &field).js()?;
    let out = match out {
        Some(u) => {
            let bad = |m: &str| crate::errors::to_napi(CoreError::InvalidArgument(m.into()));
            let view = js::typed_array(env.raw(), u.value().value).js()?.ok_or_else(|| bad("out must be a typed array"))?;
            let (kind, size) = if o.uint8 { (js::UINT8, 1) } else { (js::FLOAT32, 4) };
            if view.kind != kind {
                return Err(bad(if o.uint8 { "out must be a Uint8Array for uint8 output" } else { "out must be a Float32Array for float32 output" }));
            }
            Some((view.data as *mut u8, view.len * size))
        }
        None => None,
    };
    Ok(AsyncTask::new(ImageTask { inputs, options: o, field, out }))
}

fn options_of(o: &NativeImageOptions) -> Result<ImageOptions> {
    options(o).js()
}
