//! The OCR steps as graph ops, so a detection -> orientation -> recognition
//! chain runs natively between its model hops: image decoding, the
//! detector's input, text boxes from its map, crops, rotation of flagged
//! crops, and CTC decoding. The math is `crate::vision`'s; this adapts
//! tensors to it and states the ops' types for build-time edge checks.

use std::borrow::Cow;

use crate::backend::Dim;
use crate::error::{Error, Result};
use crate::graph::spec::OpSpec;
use crate::graph::types::Ty;
use crate::tensor::{AlignedBytes, DType, InputTensor, OutputData, OutputTensor};
use crate::vision::{self, BoxOptions, TextBox};

fn any() -> Dim {
    Dim::Dynamic
}

/// The output types of a vision op, checking its inputs' types.
pub(crate) fn infer(spec: &OpSpec, inputs: &[Ty]) -> std::result::Result<Vec<Ty>, String> {
    let want = |i: usize, d: DType, what: &str| -> std::result::Result<(), String> {
        match inputs.get(i).and_then(|t| t.dtype()) {
            Some(x) if x == d => Ok(()),
            Some(x) => Err(format!("{what} must be {} tensors, got {}", d.name(), x.name())),
            None => Err(format!("{what} is missing")),
        }
    };
    let t = |d: DType, dims: Vec<Dim>| Ty::tensor(d, Some(dims));
    Ok(match spec {
        OpSpec::Image { .. } => {
            want(0, DType::Uint8, "image: the encoded image")?;
            let o = image_options(spec).map_err(|e| e.to_string())?;
            let dims = match crate::image::fixed_size(&o) {
                Some((c, h, w)) => match o.layout {
                    crate::image::ChannelOrder::Chw => vec![Dim::Fixed(1), Dim::Fixed(c as i64), Dim::Fixed(h as i64), Dim::Fixed(w as i64)],
                    crate::image::ChannelOrder::Hwc => vec![Dim::Fixed(1), Dim::Fixed(h as i64), Dim::Fixed(w as i64), Dim::Fixed(c as i64)],
                },
                None => vec![Dim::Fixed(1), any(), any(), any()],
            };
            vec![t(if o.uint8 { DType::Uint8 } else { DType::Float32 }, dims)]
        }
        OpSpec::DecodeImage { .. } => {
            want(0, DType::Uint8, "decode_image: the encoded image")?;
            vec![t(DType::Uint8, vec![any(), any(), Dim::Fixed(3)])]
        }
        OpSpec::DetInput { .. } => {
            want(0, DType::Uint8, "det_input: the RGB image")?;
            vec![t(DType::Float32, vec![Dim::Fixed(1), Dim::Fixed(3), any(), any()]), t(DType::Float32, vec![Dim::Fixed(2)])]
        }
        OpSpec::TextBoxes { .. } => {
            want(0, DType::Float32, "text_boxes: the probability map")?;
            want(1, DType::Float32, "text_boxes: the scale")?;
            vec![t(DType::Float32, vec![any(), Dim::Fixed(5)])]
        }
        OpSpec::CropText { height, .. } => {
            want(0, DType::Uint8, "crop_text: the RGB image")?;
            want(1, DType::Float32, "crop_text: the boxes")?;
            vec![t(DType::Float32, vec![any(), Dim::Fixed(3), Dim::Fixed(*height as i64), any()]), t(DType::Int64, vec![any()])]
        }
        OpSpec::RotateFlagged { .. } => {
            want(0, DType::Float32, "rotate_flagged: the crops")?;
            want(1, DType::Int64, "rotate_flagged: the widths")?;
            want(2, DType::Float32, "rotate_flagged: the classifier's probabilities")?;
            vec![inputs[0].clone(), t(DType::Uint8, vec![any()])]
        }
        OpSpec::CtcDecode { .. } => {
            want(0, DType::Float32, "ctc_decode: the recogniser's output")?;
            vec![t(DType::String, vec![any()]), t(DType::Float32, vec![any()])]
        }
        _ => return Err("not a vision op".into()),
    })
}

/// The op's inputs, in order.
pub(crate) fn arity(spec: &OpSpec) -> Option<usize> {
    Some(match spec {
        OpSpec::DecodeImage { .. } | OpSpec::DetInput { .. } | OpSpec::CtcDecode { .. } | OpSpec::Image { .. } => 1,
        OpSpec::TextBoxes { .. } | OpSpec::CropText { .. } => 2,
        OpSpec::RotateFlagged { .. } => 3,
        _ => return None,
    })
}

/// The op's output names.
pub(crate) fn outputs(spec: &OpSpec) -> Option<&'static [&'static str]> {
    Some(match spec {
        OpSpec::DetInput { .. } => &["x", "scale"],
        OpSpec::TextBoxes { .. } => &["boxes"],
        OpSpec::CropText { .. } => &["x", "widths"],
        OpSpec::RotateFlagged { .. } => &["y", "rotated"],
        OpSpec::CtcDecode { .. } => &["text", "confidence"],
        OpSpec::DecodeImage { .. } | OpSpec::Image { .. } => &["y"],
        _ => return None,
    })
}

/// `t`'s elements as `T`, borrowed when its bytes are aligned for `T` (they
/// are when they come from a model or an op), copied otherwise.
fn view<'a, T: Copy + Default>(t: &'a InputTensor, d: DType, op: &str) -> Result<Cow<'a, [T]>> {
    if t.dtype != d {
        return Err(Error::invalid_input(&t.name, format!("{op}: expected {} tensors, got {}", d.name(), t.dtype.name())));
    }
    let b = t.bytes();
    let n = b.len() / std::mem::size_of::<T>();
    if (b.as_ptr() as usize) % std::mem::align_of::<T>() == 0 {
        // SAFETY: aligned, in bounds, and plain numbers of the checked type.
        return Ok(Cow::Borrowed(unsafe { std::slice::from_raw_parts(b.as_ptr() as *const T, n) }));
    }
    let mut v = vec![T::default(); n];
    // SAFETY: `v` holds exactly n elements of plain numbers.
    unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), v.as_mut_ptr() as *mut u8, n * std::mem::size_of::<T>()) };
    Ok(Cow::Owned(v))
}

fn out<T: Copy>(name: &str, dtype: DType, dims: Vec<i64>, v: &[T]) -> OutputTensor {
    // SAFETY: plain numbers viewed as bytes.
    let bytes = unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) };
    OutputTensor { name: name.to_string(), dtype, dims, data: OutputData::Buffer(Box::new(AlignedBytes::from_slice(bytes))) }
}

/// An RGB image tensor's height and width.
fn hw(t: &InputTensor, op: &str) -> Result<(usize, usize)> {
    match t.dims.as_slice() {
        [h, w, 3] if *h > 0 && *w > 0 => Ok((*h as usize, *w as usize)),
        d => Err(Error::invalid_input(&t.name, format!("{op}: the image must be uint8 [H, W, 3] (as decode_image gives it), got dims {d:?}"))),
    }
}

fn boxes_of(t: &InputTensor) -> Result<Vec<TextBox>> {
    let v = view::<f32>(t, DType::Float32, "crop_text")?;
    if t.dims.len() != 2 || t.dims[1] != 5 {
        return Err(Error::invalid_input(&t.name, format!("crop_text: boxes must be float32 [N, 5], got dims {:?}", t.dims)));
    }
    Ok(v.chunks_exact(5).map(|b| TextBox { x0: b[0], y0: b[1], x1: b[2], y1: b[3], score: b[4] }).collect())
}

/// The `image` op's options, as the pipeline image stage checks them.
fn image_options(spec: &OpSpec) -> Result<crate::image::ImageOptions> {
    let OpSpec::Image { resize, filter, center_crop, color, normalize, layout } = spec else { return Err(Error::Unsupported("not an image op".into())) };
    let stage = crate::pipeline::spec::Stage::Image { name: None, field: "image".into(), resize: resize.clone(), filter: *filter, center_crop: center_crop.clone(), color: *color, normalize: normalize.clone(), layout: *layout };
    crate::pipeline::stages::image_options(&stage, "image")
}

/// Runs a vision op.
pub(crate) fn run(spec: &OpSpec, inputs: &[InputTensor]) -> Result<Vec<OutputTensor>> {
    match spec {
        OpSpec::Image { .. } => {
            let o = image_options(spec)?;
            let bytes = view::<u8>(&inputs[0], DType::Uint8, "image")?;
            // SAFETY: `bytes` outlives this call, which is the only reader.
            let input = crate::image::ImageInput::Encoded(unsafe { crate::tensor::BorrowedBytes::new(bytes.as_ptr(), bytes.len()) });
            let p = crate::image::process_batch(std::slice::from_ref(&input), &o, &inputs[0].name)?;
            let dims = match p.layout {
                crate::image::ChannelOrder::Chw => vec![1, p.channels as i64, p.height as i64, p.width as i64],
                crate::image::ChannelOrder::Hwc => vec![1, p.height as i64, p.width as i64, p.channels as i64],
            };
            Ok(vec![if o.uint8 { out("y", DType::Uint8, dims, &p.bytes) } else { out("y", DType::Float32, dims, &p.floats) }])
        }
        OpSpec::DecodeImage { max_pixels } => {
            let bytes = view::<u8>(&inputs[0], DType::Uint8, "decode_image")?;
            let r = crate::image::decode(&bytes, *max_pixels).map_err(|m| Error::invalid_input(&inputs[0].name, format!("decode_image: {m}")))?;
            let rgb: Cow<'_, [u8]> = match r.channels {
                3 => Cow::Borrowed(&r.data),
                c => Cow::Owned(r.data.chunks_exact(c).flat_map(|p| if c >= 3 { [p[0], p[1], p[2]] } else { [p[0]; 3] }).collect()),
            };
            Ok(vec![out("y", DType::Uint8, vec![r.height as i64, r.width as i64, 3], &rgb)])
        }
        OpSpec::DetInput { max_side } => {
            let (h, w) = hw(&inputs[0], "det_input")?;
            let rgb = view::<u8>(&inputs[0], DType::Uint8, "det_input")?;
            let (x, dims, sx, sy) = vision::det_input(&rgb, h, w, *max_side)?;
            Ok(vec![out("x", DType::Float32, dims.iter().map(|&d| d as i64).collect(), &x), out("scale", DType::Float32, vec![2], &[sx, sy])])
        }
        OpSpec::TextBoxes { thresh, box_thresh, unclip_ratio, min_size, max_boxes } => {
            let map = &inputs[0];
            let (h, w) = match map.dims.as_slice() {
                [1, 1, h, w] => (*h as usize, *w as usize),
                d => return Err(Error::invalid_input(&map.name, format!("text_boxes: the probability map must be [1, 1, H, W], got dims {d:?}"))),
            };
            let prob = view::<f32>(map, DType::Float32, "text_boxes")?;
            let scale = view::<f32>(&inputs[1], DType::Float32, "text_boxes")?;
            let [sx, sy] = <[f32; 2]>::try_from(&scale[..]).map_err(|_| Error::invalid_input(&inputs[1].name, "text_boxes: scale must be float32 [2]"))?;
            let d = BoxOptions::default();
            let opts = BoxOptions {
                thresh: thresh.unwrap_or(d.thresh),
                box_thresh: box_thresh.unwrap_or(d.box_thresh),
                unclip_ratio: unclip_ratio.unwrap_or(d.unclip_ratio),
                min_size: min_size.unwrap_or(d.min_size),
                max_boxes: max_boxes.unwrap_or(d.max_boxes),
            };
            let boxes = vision::text_boxes(&prob, h, w, sx, sy, &opts)?;
            let flat: Vec<f32> = boxes.iter().flat_map(|b| [b.x0, b.y0, b.x1, b.y1, b.score]).collect();
            Ok(vec![out("boxes", DType::Float32, vec![boxes.len() as i64, 5], &flat)])
        }
        OpSpec::CropText { height, min_width, max_width } => {
            let (h, w) = hw(&inputs[0], "crop_text")?;
            let rgb = view::<u8>(&inputs[0], DType::Uint8, "crop_text")?;
            let boxes = boxes_of(&inputs[1])?;
            let (x, dims, widths) = vision::crop_batch(&rgb, h, w, &boxes, *height, *max_width, *min_width)?;
            let widths: Vec<i64> = widths.iter().map(|&v| v as i64).collect();
            Ok(vec![out("x", DType::Float32, dims.iter().map(|&d| d as i64).collect(), &x), out("widths", DType::Int64, vec![widths.len() as i64], &widths)])
        }
        OpSpec::RotateFlagged { threshold } => {
            let x = &inputs[0];
            let dims: [usize; 4] = match x.dims.as_slice() {
                [n, c, h, w] => [*n as usize, *c as usize, *h as usize, *w as usize],
                d => return Err(Error::invalid_input(&x.name, format!("rotate_flagged: crops must be [N, C, H, W], got dims {d:?}"))),
            };
            let mut batch = view::<f32>(x, DType::Float32, "rotate_flagged")?.into_owned();
            let widths: Vec<usize> = view::<i64>(&inputs[1], DType::Int64, "rotate_flagged")?.iter().map(|&v| v.max(0) as usize).collect();
            let probs = view::<f32>(&inputs[2], DType::Float32, "rotate_flagged")?;
            let rows = vision::rotated_rows(&probs, dims[0], *threshold)?;
            vision::rotate_180(&mut batch, dims, &rows, &widths)?;
            let mut flags = vec![0u8; dims[0]];
            for &r in &rows {
                flags[r] = 1;
            }
            Ok(vec![out("y", DType::Float32, x.dims.clone(), &batch), out("rotated", DType::Uint8, vec![dims[0] as i64], &flags)])
        }
        OpSpec::CtcDecode { loaded, .. } => {
            let vocab = loaded.0.as_ref().ok_or_else(|| Error::Backend("ctc_decode: the vocabulary was not loaded".into()))?;
            let t = &inputs[0];
            let dims: [usize; 3] = match t.dims.as_slice() {
                [n, s, c] => [*n as usize, *s as usize, *c as usize],
                d => return Err(Error::invalid_input(&t.name, format!("ctc_decode: the recogniser's output must be [N, T, C], got dims {d:?}"))),
            };
            let logits = view::<f32>(t, DType::Float32, "ctc_decode")?;
            let lines = vision::ctc_greedy(&logits, dims, vocab)?;
            let conf: Vec<f32> = lines.iter().map(|(_, c)| *c).collect();
            let n = lines.len() as i64;
            let text = OutputTensor { name: "text".into(), dtype: DType::String, dims: vec![n], data: OutputData::Strings(lines.into_iter().map(|(s, _)| s).collect()) };
            Ok(vec![text, out("confidence", DType::Float32, vec![n], &conf)])
        }
        _ => Err(Error::Unsupported("not a vision op".into())),
    }
}
