//! Native post-processing between the hops of an OCR chain (PaddleOCR's text
//! detection -> orientation -> recognition): the detector's input, its
//! probability map turned into text boxes, the boxes cropped into one padded
//! batch for the classifier and the recogniser, 180° rotation of the crops the
//! classifier flags, and greedy CTC decoding of the recogniser's output.
//!
//! Every function is pure (no model, no I/O), so a graph can run them on any
//! thread between model nodes. Pixels come in as interleaved RGB `u8` (what
//! `crate::image::decode` gives) and tensors go out as flat NCHW `f32`.
//!
//! Like PaddleOCR (which reads images with OpenCV), the tensors hold the
//! channels in BGR order: the models were trained that way.

pub mod boxes;
pub mod crop;
pub mod ctc;
pub mod detect;

pub use boxes::{text_boxes, BoxOptions, TextBox};
pub use crop::{crop_batch, rotate_180, rotated_rows};
pub use ctc::{ctc_greedy, Vocabulary};
pub use detect::det_input;

use crate::error::{Error, Result};

/// Which RGB channel feeds each tensor channel: PaddleOCR's BGR order.
const CHANNELS: [usize; 3] = [2, 1, 0];

/// Checks that `rgb` holds an `h`×`w` interleaved RGB image.
fn check_rgb(rgb: &[u8], h: usize, w: usize) -> Result<()> {
    if h == 0 || w == 0 {
        return Err(Error::invalid_input("image", format!("the image is empty ({w}×{h})")));
    }
    match h.checked_mul(w).and_then(|n| n.checked_mul(3)) {
        Some(n) if n == rgb.len() => Ok(()),
        _ => Err(Error::invalid_input("image", format!("{} bytes do not make a {w}×{h} RGB image", rgb.len()))),
    }
}

/// Writes an interleaved RGB image (`w` wide) into the first `w` columns of a
/// CHW slot `stride` wide, as `(v / 255 - mean[c]) / std[c]` in BGR order.
fn write_chw(src: &[u8], w: usize, dst: &mut [f32], stride: usize, plane: usize, mean: [f32; 3], std: [f32; 3]) {
    for (y, row) in src.chunks_exact(w * 3).enumerate() {
        for (c, &from) in CHANNELS.iter().enumerate() {
            let out = &mut dst[c * plane + y * stride..c * plane + y * stride + w];
            for (o, px) in out.iter_mut().zip(row.chunks_exact(3)) {
                // The operation order of numpy's (x / 255 - mean) / std.
                *o = (px[from] as f32 / 255.0 - mean[c]) / std[c];
            }
        }
    }
}
