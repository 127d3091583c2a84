//! Image batches: decoded and transformed in parallel off the JS thread.

use napi::bindgen_prelude::*;
use napi::sys;
use oxinfer_core::image::{process_batch, Color, Filter, ImageInput, ImageOptions, Layout, Processed, Resize};
use oxinfer_core::tensor::BorrowedBytes;
use oxinfer_core::{DType, Error as CoreError, Result as CoreResult};

use crate::errors::IntoNapi;
use crate::js::{self, Env as RawEnv, Val};
use crate::text::Raw;

#[napi(object)]
pub struct NativeImageOptions {
    /// 'none' | 'exact' | 'shorter'
    pub resize: String,
    pub width: u32,
    pub height: u32,
    pub shorter: u32,
    /// 'bilinear' | 'nearest'
    pub filter: String,
    pub crop_width: Option<u32>,
    pub crop_height: Option<u32>,
    /// 'rgb' | 'gray'
    pub color: String,
    pub mean: Option<Vec<f64>>,
    pub std: Option<Vec<f64>>,
    pub scale: f64,
    /// 'chw' | 'hwc'
    pub layout: String,
    pub uint8: bool,
    pub max_pixels: f64,
}

fn options(o: &NativeImageOptions) -> CoreResult<ImageOptions> {
    let bad = |m: String| CoreError::InvalidArgument(m);
    Ok(ImageOptions {
        resize: match o.resize.as_str() {
            "none" => Resize::None,
            "exact" => Resize::Exact(o.width as usize, o.height as usize),
            "shorter" => Resize::Shorter(o.shorter as usize),
            r => return Err(bad(format!("unknown resize '{r}'"))),
        },
        filter: match o.filter.as_str() {
            "bilinear" => Filter::Bilinear,
            "nearest" => Filter::Nearest,
            f => return Err(bad(format!("filter must be 'bilinear' or 'nearest', got '{f}'"))),
        },
        crop: o.crop_width.zip(o.crop_height).map(|(w, h)| (w as usize, h as usize)),
        color: match o.color.as_str() {
            "rgb" => Color::Rgb,
            "gray" => Color::Gray,
            c => return Err(bad(format!("color must be 'rgb' or 'gray', got '{c}'"))),
        },
        normalize: match (&o.mean, &o.std) {
            (Some(m), Some(s)) => Some((m.iter().map(|&x| x as f32).collect(), s.iter().map(|&x| x as f32).collect())),
            (None, None) => None,
            _ => return Err(bad("normalize needs both mean and std".into())),
        },
        scale: o.scale as f32,
        layout: match o.layout.as_str() {
            "chw" => Layout::Chw,
            "hwc" => Layout::Hwc,
            l => return Err(bad(format!("layout must be 'chw' or 'hwc', got '{l}'"))),
        },
        uint8: o.uint8,
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
}

impl Task for ImageTask {
    type Output = Processed;
    type JsValue = Raw;

    fn compute(&mut self) -> Result<Self::Output> {
        let (i, o, f) = (&self.inputs, &self.options, &self.field);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| process_batch(i, o, f))).unwrap_or_else(|p| Err(CoreError::from_panic(p))).js()
    }

    fn resolve(&mut self, env: Env, p: Self::Output) -> Result<Self::JsValue> {
        to_js(env.raw(), &p).js().map(Raw)
    }
}

/// `[n, channels, height, width, data]`.
fn to_js(env: sys::napi_env, p: &Processed) -> CoreResult<Val> {
    let arr = js::new_array(env, 5)?;
    for (i, x) in [p.n, p.channels, p.height, p.width].iter().enumerate() {
        js::set(env, arr, i as u32, js::new_number(env, *x as f64)?)?;
    }
    let data = if p.floats.is_empty() && !p.bytes.is_empty() {
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
pub fn process_images(env: Env, images: Unknown, options: NativeImageOptions, field: String) -> Result<AsyncTask<ImageTask>> {
    let o = options_of(&options)?;
    let inputs = inputs(env.raw(), images.value().value, &field).js()?;
    Ok(AsyncTask::new(ImageTask { inputs, options: o, field }))
}

fn options_of(o: &NativeImageOptions) -> Result<ImageOptions> {
    options(o).js()
}
