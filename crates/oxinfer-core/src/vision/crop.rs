//! Text boxes cut out of the page into one padded batch for the orientation
//! classifier or the recogniser (PaddleOCR's `resize_norm_img`), and the 180°
//! rotation of the crops the classifier flags.

use rayon::prelude::*;

use super::{check_rgb, write_chw};
use crate::error::{Error, Result};
use crate::image::resample;

/// `(x / 255 - 0.5) / 0.5`: the classifier's and recogniser's normalisation.
const HALF: [f32; 3] = [0.5; 3];

/// A box's pixel rectangle on a `w`×`h` page: rounded and clamped, half-open.
fn pixel_rect(b: &super::TextBox, h: usize, w: usize) -> (usize, usize, usize, usize) {
    let px = |v: f32, max: usize| (v.round().max(0.0) as usize).min(max);
    (px(b.x0, w), px(b.y0, h), px(b.x1, w), px(b.y1, h))
}

/// Crops each box from an interleaved RGB `u8` page of `h`×`w` and resizes it
/// to `out_h` rows, keeping its aspect ratio: `ceil(out_h * width / height)`
/// columns, at most `max_w` (a wider crop is squeezed). The crops go into one
/// `[n, 3, out_h, W]` batch, left-aligned and right-padded with zeros, where
/// `W` is the widest crop's width but at least `min_w`; values are
/// `(x / 255 - 0.5) / 0.5` in BGR order. Returns the batch, its dims and each
/// crop's width within it (what `rotate_180` needs).
///
/// PaddleOCR's values: the orientation classifier takes `out_h` 48 and
/// `max_w` = `min_w` = 192; the recogniser `out_h` 48, no real cap on the
/// width (PP-OCRv4's is dynamic) and `min_w` 320.
///
/// Fails with `ERR_INVALID_INPUT` when `rgb` is not `h * w * 3` bytes or a
/// box has no pixels on the page, and `ERR_INVALID_ARGUMENT` when `out_h` or
/// `max_w` is 0.
pub fn crop_batch(rgb: &[u8], h: usize, w: usize, boxes: &[super::TextBox], out_h: usize, max_w: usize, min_w: usize) -> Result<(Vec<f32>, [usize; 4], Vec<usize>)> {
    check_rgb(rgb, h, w)?;
    if out_h == 0 || max_w == 0 {
        return Err(Error::InvalidArgument(format!("crops need a positive height and maximum width, got {out_h} and {max_w}")));
    }
    let mut rects = Vec::with_capacity(boxes.len());
    let mut widths = Vec::with_capacity(boxes.len());
    for (i, b) in boxes.iter().enumerate() {
        let r = pixel_rect(b, h, w);
        let (cw, ch) = (r.2.saturating_sub(r.0), r.3.saturating_sub(r.1));
        if cw == 0 || ch == 0 {
            return Err(Error::invalid_input("boxes", format!("box {i} ({}, {})-({}, {}) has no pixels on the {w}×{h} page", b.x0, b.y0, b.x1, b.y1)));
        }
        rects.push(r);
        widths.push(((out_h as f64 * cw as f64 / ch as f64).ceil() as usize).clamp(1, max_w));
    }
    let width = widths.iter().copied().max().unwrap_or(0).max(min_w).max(1);
    let per = 3 * out_h * width;
    let mut batch = vec![0f32; boxes.len() * per];
    batch.par_chunks_mut(per).zip(rects.par_iter().zip(widths.par_iter())).for_each(|(dst, (&(x0, y0, x1, y1), &cw))| {
        let mut crop = Vec::with_capacity((x1 - x0) * (y1 - y0) * 3);
        for y in y0..y1 {
            crop.extend_from_slice(&rgb[(y * w + x0) * 3..(y * w + x1) * 3]);
        }
        let resized = resample::bilinear(&crop, x1 - x0, y1 - y0, 3, cw, out_h);
        write_chw(&resized, cw, dst, width, out_h * width, HALF, HALF);
    });
    Ok((batch, [boxes.len(), 3, out_h, width], widths))
}

/// Rotates by 180°, in place, the crops of `rows` in a `[n, c, h, w]` batch
/// made by `crop_batch`: only each crop's own `widths[row]` columns, so its
/// padding stays on the right (as if the crop had been rotated before it was
/// batched). Rotating twice restores the batch.
///
/// Fails with `ERR_INVALID_INPUT` when the batch, the widths or a row does
/// not fit `dims`.
pub fn rotate_180(batch: &mut [f32], dims: [usize; 4], rows: &[usize], widths: &[usize]) -> Result<()> {
    let [n, c, h, w] = dims;
    if n * c * h * w != batch.len() || widths.len() != n {
        return Err(Error::invalid_input("crops", format!("{} values and {} widths do not make a {dims:?} batch", batch.len(), widths.len())));
    }
    for &row in rows {
        let vw = *widths.get(row).ok_or_else(|| Error::invalid_input("crops", format!("row {row} is outside a batch of {n}")))?;
        if vw > w {
            return Err(Error::invalid_input("crops", format!("row {row} is {vw} wide in a batch {w} wide")));
        }
        let len = h * vw;
        for plane in batch[row * c * h * w..(row + 1) * c * h * w].chunks_exact_mut(h * w) {
            // Swap each pixel with its mirror through the centre: half the pixels.
            for i in 0..len / 2 {
                let j = len - 1 - i;
                plane.swap((i / vw) * w + i % vw, (j / vw) * w + j % vw);
            }
        }
    }
    Ok(())
}

/// The rows an orientation classifier's `[n, 2]` output (PaddleOCR's labels
/// `0` and `180`, as probabilities) says are upside down: label 180 with a
/// probability above `thresh` (PaddleOCR's `cls_thresh`, 0.9).
///
/// Fails with `ERR_INVALID_INPUT` when `probs` does not hold `n * 2` values.
pub fn rotated_rows(probs: &[f32], n: usize, thresh: f32) -> Result<Vec<usize>> {
    if n.checked_mul(2) != Some(probs.len()) {
        return Err(Error::invalid_input("orientation", format!("{} values do not make {n} rows of 2 classes", probs.len())));
    }
    Ok(probs.chunks_exact(2).enumerate().filter(|(_, p)| p[1] > p[0] && p[1] > thresh).map(|(i, _)| i).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::TextBox;

    fn tb(x0: f32, y0: f32, x1: f32, y1: f32) -> TextBox {
        TextBox { x0, y0, x1, y1, score: 1.0 }
    }

    /// A `h`×`w` page whose pixel (x, y) is (x, y, 7).
    fn page(h: usize, w: usize) -> Vec<u8> {
        (0..h).flat_map(|y| (0..w).flat_map(move |x| [x as u8, y as u8, 7])).collect()
    }

    #[test]
    fn crops_keep_their_aspect_ratio_and_are_right_padded() {
        let rgb = page(100, 200);
        // 96×48 -> 96×48; 50×48 -> ceil(50) = 50; 30×24 -> 60×48.
        let boxes = [tb(0.0, 0.0, 96.0, 48.0), tb(10.0, 50.0, 60.0, 98.0), tb(100.0, 10.0, 130.0, 34.0)];
        let (x, dims, widths) = crop_batch(&rgb, 100, 200, &boxes, 48, 320, 0).unwrap();
        assert_eq!(widths, vec![96, 50, 60]);
        assert_eq!(dims, [3, 3, 48, 96]);
        assert_eq!(x.len(), 3 * 3 * 48 * 96);
        let at = |n: usize, c: usize, y: usize, xx: usize| x[((n * 3 + c) * 48 + y) * 96 + xx];
        let norm = |v: u8| (v as f32 / 255.0 - 0.5) / 0.5;
        // Unresized crop 0: channel 0 is blue (7), 1 green (y), 2 red (x).
        assert_eq!(at(0, 0, 5, 9), norm(7));
        assert_eq!(at(0, 1, 5, 9), norm(5));
        assert_eq!(at(0, 2, 5, 9), norm(9));
        // Crop 1 starts at the page's (10, 50); zeros past its 50 columns.
        assert_eq!(at(1, 2, 0, 0), norm(10));
        assert_eq!(at(1, 1, 0, 0), norm(50));
        assert!((50..96).all(|xx| (0..3).all(|c| at(1, c, 20, xx) == 0.0)));
        assert!(at(1, 2, 20, 49) != 0.0);
        // Crop 2 was upscaled 2×: blue stays 7 everywhere.
        assert!((0..60).all(|xx| at(2, 0, 30, xx) == norm(7)));
        assert!(at(2, 0, 30, 60) == 0.0);
    }

    #[test]
    fn widths_are_capped_and_the_batch_is_at_least_min_w() {
        let rgb = page(100, 200);
        // 190×20 at height 48 would be 456 wide: capped at 192.
        let (_, dims, widths) = crop_batch(&rgb, 100, 200, &[tb(5.0, 5.0, 195.0, 25.0), tb(0.0, 0.0, 24.0, 48.0)], 48, 192, 192).unwrap();
        assert_eq!(widths, vec![192, 24]);
        assert_eq!(dims, [2, 3, 48, 192]);
        let (_, dims, _) = crop_batch(&rgb, 100, 200, &[tb(0.0, 0.0, 24.0, 48.0)], 48, 2000, 320).unwrap();
        assert_eq!(dims, [1, 3, 48, 320]);
        // Boxes past the page are clamped to it; a box off the page is an error.
        let (_, _, widths) = crop_batch(&rgb, 100, 200, &[tb(-10.0, -10.0, 48.0, 48.0)], 48, 2000, 0).unwrap();
        assert_eq!(widths, vec![48]);
        let e = crop_batch(&rgb, 100, 200, &[tb(250.0, 0.0, 300.0, 48.0)], 48, 2000, 0).unwrap_err();
        assert_eq!(e.code(), "ERR_INVALID_INPUT");
        let (x, dims, widths) = crop_batch(&rgb, 100, 200, &[], 48, 192, 192).unwrap();
        assert!(x.is_empty() && widths.is_empty());
        assert_eq!(dims, [0, 3, 48, 192]);
    }

    #[test]
    fn rotate_180_turns_the_valid_region_and_is_an_involution() {
        let dims = [2, 3, 4, 6];
        let original: Vec<f32> = (0..2 * 3 * 4 * 6).map(|v| v as f32 + 1.0).collect();
        let mut x = original.clone();
        // Row 1 is 5 wide; its sixth column is padding and must not move.
        rotate_180(&mut x, dims, &[1], &[6, 5]).unwrap();
        assert_eq!(x[..72], original[..72]);
        let at = |v: &[f32], c: usize, y: usize, xx: usize| v[72 + (c * 4 + y) * 6 + xx];
        for c in 0..3 {
            for y in 0..4 {
                for xx in 0..5 {
                    assert_eq!(at(&x, c, y, xx), at(&original, c, 3 - y, 4 - xx));
                }
                assert_eq!(at(&x, c, y, 5), at(&original, c, y, 5));
            }
        }
        rotate_180(&mut x, dims, &[1], &[6, 5]).unwrap();
        assert_eq!(x, original);
        rotate_180(&mut x, dims, &[0, 1], &[6, 5]).unwrap();
        rotate_180(&mut x, dims, &[0, 1], &[6, 5]).unwrap();
        assert_eq!(x, original);
        assert!(rotate_180(&mut x, dims, &[2], &[6, 5]).is_err());
        assert!(rotate_180(&mut x, dims, &[0], &[7, 5]).is_err());
        assert!(rotate_180(&mut x[1..], dims, &[0], &[6, 5]).is_err());
    }

    #[test]
    fn rotated_rows_needs_label_180_above_the_threshold() {
        let p = [0.99, 0.01, 0.05, 0.95, 0.15, 0.85];
        assert_eq!(rotated_rows(&p, 3, 0.9).unwrap(), vec![1]);
        assert_eq!(rotated_rows(&p, 3, 0.8).unwrap(), vec![1, 2]);
        assert!(rotated_rows(&p, 2, 0.9).is_err());
    }
}
