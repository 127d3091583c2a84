//! The text detector's input: the page resized so that each side is a
//! multiple of 32 (the detector downsamples by 32) and normalised with the
//! ImageNet mean and std, as PaddleOCR's `DetResizeForTest` (limit type
//! `max`) and `NormalizeImage` do.

use std::borrow::Cow;

use super::{check_rgb, write_chw};
use crate::error::Result;
use crate::image::resample;

/// ImageNet mean and std, applied per tensor channel (so to B, G, R in turn,
/// as PaddleOCR does).
pub const DET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const DET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Python's `round`: halves go to the even neighbour.
fn round_half_even(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - 1.0
    } else {
        r
    }
}

/// The detector's input size for an `h`×`w` page: scaled down so that the
/// longer side is at most `max_side` (never up), then each side rounded to
/// the nearest multiple of 32 (at least 32). Returns `(height, width)`.
pub fn det_size(h: usize, w: usize, max_side: usize) -> (usize, usize) {
    let longer = h.max(w) as f64;
    let ratio = if longer > max_side as f64 { max_side as f64 / longer } else { 1.0 };
    let side = |s: usize| ((round_half_even((s as f64 * ratio).trunc() / 32.0) * 32.0) as usize).max(32);
    (side(h), side(w))
}

/// The detector's input for an interleaved RGB `u8` page of `h`×`w`: a
/// `[1, 3, H, W]` tensor (see `det_size`; bilinear resampling as
/// `crate::image::resample::bilinear`), normalised with `DET_MEAN`/`DET_STD`
/// in BGR order. Also returns `scale_x` and `scale_y`, the page pixels per
/// tensor pixel, which `text_boxes` needs to map boxes back onto the page.
///
/// Fails with `ERR_INVALID_INPUT` when `rgb` is not `h * w * 3` bytes.
pub fn det_input(rgb: &[u8], h: usize, w: usize, max_side: usize) -> Result<(Vec<f32>, [usize; 4], f32, f32)> {
    check_rgb(rgb, h, w)?;
    let (rh, rw) = det_size(h, w, max_side.max(32));
    let resized = if (rh, rw) == (h, w) { Cow::Borrowed(rgb) } else { Cow::Owned(resample::bilinear(rgb, w, h, 3, rw, rh)) };
    let mut out = vec![0f32; 3 * rh * rw];
    write_chw(&resized, rw, &mut out, rw, rh * rw, DET_MEAN, DET_STD);
    Ok((out, [1, 3, rh, rw], w as f32 / rw as f32, h as f32 / rh as f32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_become_multiples_of_32_and_the_longer_side_is_capped() {
        assert_eq!(det_size(96, 480, 960), (96, 480));
        assert_eq!(det_size(200, 640, 960), (192, 640));
        // 2000×1000 -> 960×480, both already multiples of 32.
        assert_eq!(det_size(1000, 2000, 960), (480, 960));
        // Python rounds 1.5 to 2 and 2.5 to 2.
        assert_eq!(det_size(48, 80, 960), (64, 64));
        assert_eq!(det_size(5, 5, 960), (32, 32));
    }

    #[test]
    fn normalises_in_bgr_order_and_reports_the_scale() {
        // A 32×64 page, pure red.
        let rgb: Vec<u8> = std::iter::repeat_n([255u8, 0, 0], 32 * 64).flatten().collect();
        let (x, dims, sx, sy) = det_input(&rgb, 32, 64, 960).unwrap();
        assert_eq!(dims, [1, 3, 32, 64]);
        assert_eq!((sx, sy), (1.0, 1.0));
        let plane = 32 * 64;
        // Channel 0 is blue (0), channel 2 is red (1).
        assert!((x[0] - (0.0 - 0.485) / 0.229).abs() < 1e-6);
        assert!((x[2 * plane] - (1.0 - 0.406) / 0.225).abs() < 1e-6);
        let (_, dims, sx, sy) = det_input(&rgb[..40 * 3 * 20], 20, 40, 960).unwrap();
        assert_eq!(dims, [1, 3, 32, 32]);
        assert_eq!((sx, sy), (40.0 / 32.0, 20.0 / 32.0));
        assert_eq!(det_input(&rgb[1..], 32, 64, 960).unwrap_err().code(), "ERR_INVALID_INPUT");
    }
}
