//! Image pre-processing for vision models: decoding PNG and JPEG, resizing
//! (Pillow-compatible bilinear and nearest), centre cropping, RGB/grayscale
//! conversion, normalisation and HWC to CHW, for a batch in parallel.

pub mod resample;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::tensor::BorrowedBytes;

/// An interleaved uint8 image.
#[derive(Clone, Debug)]
pub struct Raster {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub data: Vec<u8>,
}

pub enum ImageInput {
    /// PNG or JPEG bytes.
    Encoded(BorrowedBytes),
    /// Interleaved uint8 pixels with 1 (gray), 3 (RGB) or 4 (RGBA) channels.
    Raw { data: BorrowedBytes, width: usize, height: usize, channels: usize },
}

impl std::fmt::Debug for ImageInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageInput::Encoded(b) => write!(f, "Encoded({} bytes)", b.as_slice().len()),
            ImageInput::Raw { width, height, channels, .. } => write!(f, "Raw({width}x{height}x{channels})"),
        }
    }
}

impl ImageInput {
    /// Another handle to the same borrowed bytes.
    pub fn shallow(&self) -> ImageInput {
        match self {
            ImageInput::Encoded(b) => ImageInput::Encoded(*b),
            ImageInput::Raw { data, width, height, channels } => ImageInput::Raw { data: *data, width: *width, height: *height, channels: *channels },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Filter {
    #[default]
    Bilinear,
    Nearest,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resize {
    None,
    /// To exactly this width and height.
    Exact(usize, usize),
    /// The shorter side to this length, keeping the aspect ratio (torchvision).
    Shorter(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    #[default]
    Rgb,
    Gray,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    #[default]
    Chw,
    Hwc,
}

#[derive(Clone, Debug)]
pub struct ImageOptions {
    pub resize: Resize,
    pub filter: Filter,
    pub crop: Option<(usize, usize)>,
    pub color: Color,
    /// Per-channel mean and std applied after `scale`; None leaves values scaled only.
    pub normalize: Option<(Vec<f32>, Vec<f32>)>,
    pub scale: f32,
    pub layout: ChannelOrder,
    /// Return uint8 pixels instead of floats (no scaling or normalisation).
    pub uint8: bool,
    /// Refuse images with more pixels than this.
    pub max_pixels: usize,
}

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions {
            resize: Resize::None,
            filter: Filter::Bilinear,
            crop: None,
            color: Color::Rgb,
            normalize: None,
            scale: 1.0 / 255.0,
            layout: ChannelOrder::Chw,
            uint8: false,
            max_pixels: 100_000_000,
        }
    }
}

/// A processed batch: `n` images of `channels` × `height` × `width`.
pub struct Processed {
    pub n: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub layout: ChannelOrder,
    pub floats: Vec<f32>,
    pub bytes: Vec<u8>,
}

/// Decodes PNG or JPEG bytes to RGB the way Pillow's `convert('RGB')` does:
/// alpha dropped, gray replicated, palettes looked up, 16-bit gray clamped.
pub fn decode(bytes: &[u8], max_pixels: usize) -> std::result::Result<Raster, String> {
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| e.to_string())?;
    let (w, h) = reader.into_dimensions().map_err(|e| format!("cannot read the image: {e}"))?;
    if (w as usize) * (h as usize) > max_pixels {
        return Err(format!("the image is {w}×{h}, more than maxPixels ({max_pixels})"));
    }
    let img = image::load_from_memory(bytes).map_err(|e| format!("cannot decode the image: {e}"))?;
    let (width, height) = (img.width() as usize, img.height() as usize);
    let data = match img {
        image::DynamicImage::ImageLuma16(b) => b.into_raw().into_iter().flat_map(|v| [v.min(255) as u8; 3]).collect(),
        image::DynamicImage::ImageLumaA16(b) => b.into_raw().chunks_exact(2).flat_map(|v| [v[0].min(255) as u8; 3]).collect(),
        other => other.to_rgb8().into_raw(),
    };
    Ok(Raster { width, height, channels: 3, data })
}

/// Pillow's `convert('L')`: ITU-R 601-2 luma in 16-bit fixed point.
pub fn to_gray(r: &Raster) -> Raster {
    let data = r.data.chunks_exact(r.channels).map(|p| ((p[0] as u32 * 19595 + p[1] as u32 * 38470 + p[2] as u32 * 7471 + 0x8000) >> 16) as u8).collect();
    Raster { width: r.width, height: r.height, channels: 1, data }
}

/// torchvision's centre-crop offset: round half to even.
fn crop_offset(size: usize, crop: usize) -> usize {
    let x = (size as f64 - crop as f64) / 2.0;
    let r = x.round();
    let r = if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 { r - 1.0 } else { r };
    r.max(0.0) as usize
}

/// Decodes and transforms one image (the per-row step of `process_batch`).
pub fn process_one(input: &ImageInput, o: &ImageOptions) -> std::result::Result<Raster, String> {
    let mut img = match input {
        ImageInput::Encoded(b) => decode(b.as_slice(), o.max_pixels)?,
        ImageInput::Raw { data, width, height, channels } => {
            let d = data.as_slice();
            if !matches!(channels, 1 | 3 | 4) {
                return Err(format!("raw pixels need 1, 3 or 4 channels, got {channels}"));
            }
            if width * height > o.max_pixels {
                return Err(format!("the image is {width}×{height}, more than maxPixels ({})", o.max_pixels));
            }
            if d.len() != width * height * channels {
                return Err(format!("{} bytes do not make a {width}×{height} image of {channels} channels", d.len()));
            }
            let data = match channels {
                1 => d.iter().flat_map(|&v| [v; 3]).collect(),
                3 => d.to_vec(),
                _ => d.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect(),
            };
            Raster { width: *width, height: *height, channels: 3, data }
        }
    };
    if img.width == 0 || img.height == 0 {
        return Err("the image is empty".into());
    }
    let target = match o.resize {
        Resize::None => None,
        Resize::Exact(w, h) => Some((w, h)),
        Resize::Shorter(s) => Some(if img.width <= img.height {
            (s, (s as f64 * img.height as f64 / img.width as f64) as usize)
        } else {
            ((s as f64 * img.width as f64 / img.height as f64) as usize, s)
        }),
    };
    if let Some((w, h)) = target {
        // maxPixels bounds what a resize makes too, not only what is decoded.
        if w.checked_mul(h).is_none_or(|n| n > o.max_pixels) {
            return Err(format!("resizing to {w}×{h} makes more than maxPixels ({})", o.max_pixels));
        }
        if (w, h) != (img.width, img.height) {
            let f = match o.filter {
                Filter::Bilinear => resample::bilinear,
                Filter::Nearest => resample::nearest,
            };
            img = Raster { width: w, height: h, channels: img.channels, data: f(&img.data, img.width, img.height, img.channels, w, h) };
        }
    }
    if let Some((cw, ch)) = o.crop {
        if cw > img.width || ch > img.height {
            return Err(format!("cannot crop {cw}×{ch} from a {}×{} image", img.width, img.height));
        }
        let (left, top) = (crop_offset(img.width, cw), crop_offset(img.height, ch));
        let c = img.channels;
        let mut data = Vec::with_capacity(cw * ch * c);
        for y in top..top + ch {
            data.extend_from_slice(&img.data[(y * img.width + left) * c..(y * img.width + left + cw) * c]);
        }
        img = Raster { width: cw, height: ch, channels: c, data };
    }
    if o.color == Color::Gray {
        img = to_gray(&img);
    }
    Ok(img)
}

/// The output size every image will have, when the options fix it.
pub fn fixed_size(o: &ImageOptions) -> Option<(usize, usize, usize)> {
    let c = if o.color == Color::Gray { 1 } else { 3 };
    match (o.crop, o.resize) {
        (Some((w, h)), _) | (None, Resize::Exact(w, h)) => Some((w, h, c)),
        _ => None,
    }
}

/// Where a batch's pixels go: into memory the caller already owns (so a big
/// batch is not copied again on the JS thread), or into new vectors.
pub enum Target<'a> {
    Floats(&'a mut [f32]),
    Bytes(&'a mut [u8]),
}

/// Like `process_batch`, writing into `target`, whose length must match the
/// fixed output size. Returns the dims (n, c, h, w).
pub fn process_batch_into(inputs: &[ImageInput], o: &ImageOptions, field: &str, target: Target<'_>) -> Result<(usize, usize, usize, usize)> {
    let (w, h, c) = fixed_size(o).ok_or_else(|| Error::InvalidArgument("writing into a given buffer needs a fixed output size".into()))?;
    let per = w * h * c;
    let n = inputs.len();
    let len = match &target {
        Target::Floats(f) => f.len(),
        Target::Bytes(b) => b.len(),
    };
    if len != n * per {
        return Err(Error::InvalidArgument(format!("the output holds {len} values, expected {}", n * per)));
    }
    let check = |row: usize, r: std::result::Result<Raster, String>| -> Result<Raster> {
        let r = r.map_err(|m| Error::bad_record(row, field, format!("row {row}: {m}")))?;
        if (r.width, r.height) != (w, h) {
            return Err(Error::bad_record(row, field, format!("row {row}: the image came out {}×{}, expected {w}×{h}", r.width, r.height)));
        }
        Ok(r)
    };
    let errors: Vec<Error> = match target {
        Target::Floats(dst) => dst
            .par_chunks_mut(per.max(1))
            .zip(inputs.par_iter())
            .enumerate()
            .filter_map(|(row, (d, i))| match check(row, process_one(i, o)) {
                Ok(r) => {
                    write_floats(&r, o, d);
                    None
                }
                Err(e) => Some(e),
            })
            .collect(),
        Target::Bytes(dst) => dst
            .par_chunks_mut(per.max(1))
            .zip(inputs.par_iter())
            .enumerate()
            .filter_map(|(row, (d, i))| match check(row, process_one(i, o)) {
                Ok(r) => {
                    write_bytes(&r, o, d);
                    None
                }
                Err(e) => Some(e),
            })
            .collect(),
    };
    // Report the first bad row, as `process_batch` does.
    if let Some(e) = errors.into_iter().min_by_key(|e| e.row().unwrap_or(usize::MAX)) {
        return Err(e);
    }
    Ok((n, c, h, w))
}

/// Processes a batch in parallel. Every image must come out the same size
/// (resize or crop to a fixed size); a bad image is an input error naming its row.
pub fn process_batch(inputs: &[ImageInput], o: &ImageOptions, field: &str) -> Result<Processed> {
    if let Some((mean, std)) = &o.normalize {
        let c = if o.color == Color::Gray { 1 } else { 3 };
        if mean.len() != c || std.len() != c || std.iter().any(|s| *s == 0.0) {
            return Err(Error::InvalidArgument(format!("normalize needs {c} means and {c} non-zero stds")));
        }
    }
    let rasters: Vec<std::result::Result<Raster, String>> = inputs.par_iter().map(|i| process_one(i, o)).collect();
    let mut out: Vec<Raster> = Vec::with_capacity(rasters.len());
    for (row, r) in rasters.into_iter().enumerate() {
        let r = r.map_err(|m| Error::bad_record(row, field, format!("row {row}: {m}")))?;
        if let Some(first) = out.first() {
            if (r.width, r.height) != (first.width, first.height) {
                return Err(Error::bad_record(
                    row,
                    field,
                    format!("row {row}: the image is {}×{} but row 0 is {}×{}; resize or crop to a fixed size to batch them", r.width, r.height, first.width, first.height),
                ));
            }
        }
        out.push(r);
    }
    let (n, (w, h, c)) = (out.len(), out.first().map(|r| (r.width, r.height, r.channels)).unwrap_or((0, 0, if o.color == Color::Gray { 1 } else { 3 })));
    let mut p = Processed { n, channels: c, height: h, width: w, layout: o.layout, floats: Vec::new(), bytes: Vec::new() };
    let per = w * h * c;
    if o.uint8 {
        p.bytes = vec![0u8; n * per];
        p.bytes.par_chunks_mut(per.max(1)).zip(&out).for_each(|(dst, r)| write_bytes(r, o, dst));
    } else {
        p.floats = vec![0f32; n * per];
        p.floats.par_chunks_mut(per.max(1)).zip(&out).for_each(|(dst, r)| write_floats(r, o, dst));
    }
    Ok(p)
}

/// Writes one processed raster as uint8 pixels in `layout` into `dst`.
pub fn write_bytes(r: &Raster, o: &ImageOptions, dst: &mut [u8]) {
    let (c, plane) = (r.channels, r.width * r.height);
    match o.layout {
        ChannelOrder::Hwc => dst.copy_from_slice(&r.data),
        ChannelOrder::Chw => {
            for (i, px) in r.data.chunks_exact(c).enumerate() {
                for (ch, &v) in px.iter().enumerate() {
                    dst[ch * plane + i] = v;
                }
            }
        }
    }
}

/// Writes one processed raster as floats (scaled, normalised, in `layout`) into `dst`.
pub fn write_floats(r: &Raster, o: &ImageOptions, dst: &mut [f32]) {
    let c = r.channels;
    let plane = r.width * r.height;
    let (mean, std) = o.normalize.clone().unwrap_or((vec![0.0; c], vec![1.0; c]));
    for (i, px) in r.data.chunks_exact(c).enumerate() {
        for (ch, &v) in px.iter().enumerate() {
            // Same float32 operation order as numpy's (x / 255 - mean) / std.
            let x = (v as f32 * o.scale - mean[ch]) / std[ch];
            match o.layout {
                ChannelOrder::Chw => dst[ch * plane + i] = x,
                ChannelOrder::Hwc => dst[i * c + ch] = x,
            }
        }
    }
}
