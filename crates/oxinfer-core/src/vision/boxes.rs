//! Text boxes from a text detector's probability map (PaddleOCR's DB
//! post-processing): binarise, find connected regions, score and filter
//! them, grow each by the "unclip" offset, map them back onto the page and
//! sort them in reading order.
//!
//! Boxes are axis-aligned. PaddleOCR fits a rotated minimum-area rectangle to
//! each region's contour; for horizontal text (rendered pages, scans that
//! were deskewed) the two agree, and an axis-aligned crop needs no
//! perspective warp. Skewed or vertical text is not handled.

use crate::error::{Error, Result};

/// A text region on the page, in page pixels: `x0..x1` × `y0..y1` (integral
/// values, clamped to the page), with the detector's mean probability over
/// the region before it was grown.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TextBox {
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
    pub score: f32,
}

impl TextBox {
    pub fn width(&self) -> f32 {
        self.x1 - self.x0
    }

    pub fn height(&self) -> f32 {
        self.y1 - self.y0
    }
}

/// How `text_boxes` reads a probability map. `Default` is PaddleOCR's:
/// `thresh` 0.3, `box_thresh` 0.6, `min_size` 3 and `max_boxes` 1000
/// (`max_candidates`) in every version, and `unclip_ratio` 2.0, the default
/// of PaddleOCR 3's OCR pipeline (PaddleX's `OCR.yaml`). PaddleOCR 2's
/// `tools/infer` used 1.5, which leaves boxes at the glyphs' ink edge: on
/// rendered lines the PP-OCRv4 recogniser then drops spaces between words
/// ("HelloOCR 2026" for "Hello OCR 2026").
#[derive(Clone, Debug, PartialEq)]
pub struct BoxOptions {
    /// A pixel is text when its probability is above this.
    pub thresh: f32,
    /// A region is kept when its box's mean probability is at least this.
    pub box_thresh: f32,
    /// How much each box grows: by `area * unclip_ratio / perimeter` on every
    /// side (the detector is trained to predict shrunk regions).
    pub unclip_ratio: f32,
    /// Regions whose shorter side is under this many map pixels (under
    /// `min_size + 2` once grown) are dropped as specks.
    pub min_size: usize,
    /// At most this many regions are considered, the first found scanning
    /// the map row by row.
    pub max_boxes: usize,
}

impl Default for BoxOptions {
    fn default() -> Self {
        BoxOptions { thresh: 0.3, box_thresh: 0.6, unclip_ratio: 2.0, min_size: 3, max_boxes: 1000 }
    }
}

/// Boxes whose tops are closer than this (page pixels) count as one row when
/// sorting, as in PaddleOCR's `sorted_boxes`.
pub const ROW_TOLERANCE: f32 = 10.0;

/// Boxes this narrow or this short (page pixels) or less are dropped, as
/// PaddleOCR's `filter_tag_det_res` does.
const MIN_PAGE_SIDE: f32 = 3.0;

/// A connected region's extent in map pixels, inclusive.
struct Region {
    x0: usize,
    y0: usize,
    x1: usize,
    y1: usize,
}

/// The 8-connected regions of the pixels above `thresh`, in the order their
/// first pixel is met scanning row by row, at most `max` of them.
fn regions(prob: &[f32], h: usize, w: usize, thresh: f32, max: usize) -> Vec<Region> {
    let mut seen = vec![false; h * w];
    let mut stack = Vec::new();
    let mut out = Vec::new();
    for start in 0..h * w {
        if out.len() >= max {
            break;
        }
        if seen[start] || prob[start] <= thresh {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let mut r = Region { x0: start % w, y0: start / w, x1: start % w, y1: start / w };
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            r.x0 = r.x0.min(x);
            r.x1 = r.x1.max(x);
            r.y0 = r.y0.min(y);
            r.y1 = r.y1.max(y);
            for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                    let j = ny * w + nx;
                    if !seen[j] && prob[j] > thresh {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        out.push(r);
    }
    out
}

/// The mean probability over a region's box (PaddleOCR's `box_score_fast`:
/// the box, not only the region's own pixels, so sparse regions score low).
fn box_score(prob: &[f32], w: usize, r: &Region) -> f32 {
    let mut sum = 0f64;
    for y in r.y0..=r.y1 {
        sum += prob[y * w + r.x0..=y * w + r.x1].iter().map(|&p| p as f64).sum::<f64>();
    }
    (sum / ((r.x1 - r.x0 + 1) * (r.y1 - r.y0 + 1)) as f64) as f32
}

/// Sorts boxes top to bottom, then left to right within a row: PaddleOCR's
/// `sorted_boxes` (by top, then a pass that swaps neighbours whose tops are
/// within `ROW_TOLERANCE` and that are out of order left to right).
fn reading_order(boxes: &mut [TextBox]) {
    boxes.sort_by(|a, b| a.y0.total_cmp(&b.y0).then(a.x0.total_cmp(&b.x0)));
    for i in 0..boxes.len().saturating_sub(1) {
        for j in (0..=i).rev() {
            if (boxes[j + 1].y0 - boxes[j].y0).abs() < ROW_TOLERANCE && boxes[j + 1].x0 < boxes[j].x0 {
                boxes.swap(j, j + 1);
            } else {
                break;
            }
        }
    }
}

/// The text boxes in a detector's `h`×`w` probability map (`prob`, row-major,
/// e.g. the `[1, 1, h, w]` output of PaddleOCR's detector), in page pixels
/// and reading order. `scale_x` and `scale_y` are page pixels per map pixel
/// (what `det_input` returns); boxes are clamped to the page, whose size is
/// taken as `w * scale_x` by `h * scale_y`.
///
/// Fails with `ERR_INVALID_INPUT` when `prob` does not hold `h * w` values.
pub fn text_boxes(prob: &[f32], h: usize, w: usize, scale_x: f32, scale_y: f32, opts: &BoxOptions) -> Result<Vec<TextBox>> {
    if h.checked_mul(w) != Some(prob.len()) {
        return Err(Error::invalid_input("probability map", format!("{} values do not make a {w}×{h} probability map", prob.len())));
    }
    if !(scale_x > 0.0 && scale_y > 0.0) {
        return Err(Error::InvalidArgument(format!("scales must be positive, got {scale_x} and {scale_y}")));
    }
    let (page_w, page_h) = ((w as f32 * scale_x).round(), (h as f32 * scale_y).round());
    let min_size = opts.min_size as f32;
    let mut out = Vec::new();
    for r in regions(prob, h, w, opts.thresh, opts.max_boxes) {
        // Extents between pixel centres, as a contour through them measures.
        let (bw, bh) = ((r.x1 - r.x0) as f32, (r.y1 - r.y0) as f32);
        if bw.min(bh) < min_size {
            continue;
        }
        let score = box_score(prob, w, &r);
        if score < opts.box_thresh {
            continue;
        }
        let perimeter = 2.0 * (bw + bh);
        let d = if perimeter > 0.0 { bw * bh * opts.unclip_ratio / perimeter } else { 0.0 };
        if bw.min(bh) + 2.0 * d < min_size + 2.0 {
            continue;
        }
        let b = TextBox {
            x0: ((r.x0 as f32 - d) * scale_x).round().clamp(0.0, page_w),
            y0: ((r.y0 as f32 - d) * scale_y).round().clamp(0.0, page_h),
            x1: ((r.x1 as f32 + d) * scale_x).round().clamp(0.0, page_w),
            y1: ((r.y1 as f32 + d) * scale_y).round().clamp(0.0, page_h),
            score,
        };
        if b.width() <= MIN_PAGE_SIDE || b.height() <= MIN_PAGE_SIDE {
            continue;
        }
        out.push(b);
    }
    reading_order(&mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `h`×`w` map with each `(x0, y0, x1, y1, p)` rectangle (inclusive) filled with `p`.
    fn map(h: usize, w: usize, rects: &[(usize, usize, usize, usize, f32)]) -> Vec<f32> {
        let mut m = vec![0f32; h * w];
        for &(x0, y0, x1, y1, p) in rects {
            for y in y0..=y1 {
                m[y * w + x0..=y * w + x1].fill(p);
            }
        }
        m
    }

    #[test]
    fn two_separated_blobs_give_two_boxes_in_reading_order() {
        // The lower blob comes first in the scan only if rows are not sorted:
        // put the right-hand one of a row first too.
        let m = map(60, 100, &[(50, 10, 90, 20, 0.9), (5, 12, 40, 22, 0.9), (5, 40, 60, 50, 0.8)]);
        let b = text_boxes(&m, 60, 100, 1.0, 1.0, &BoxOptions::default()).unwrap();
        assert_eq!(b.len(), 3);
        assert!(b[0].x0 < 10.0 && b[0].y0 < 12.0, "{b:?}");
        assert!(b[1].x0 > 40.0 && b[1].y1 < 30.0, "{b:?}");
        assert!(b[2].y0 > 30.0, "{b:?}");
        assert!((b[0].score - 0.9).abs() < 1e-6 && (b[2].score - 0.8).abs() < 1e-6);
    }

    #[test]
    fn rows_further_apart_than_the_tolerance_stay_top_to_bottom() {
        let m = map(60, 100, &[(50, 5, 90, 15, 0.9), (5, 30, 40, 40, 0.9)]);
        let b = text_boxes(&m, 60, 100, 1.0, 1.0, &BoxOptions::default()).unwrap();
        assert_eq!(b.len(), 2);
        assert!(b[0].x0 > 40.0 && b[1].x0 < 10.0, "{b:?}");
    }

    #[test]
    fn a_blob_below_box_thresh_and_a_speck_are_dropped() {
        // Above `thresh` (0.3), so a region, but its box scores 0.5 < 0.6.
        let faint = map(40, 100, &[(5, 5, 40, 15, 0.5)]);
        assert!(text_boxes(&faint, 40, 100, 1.0, 1.0, &BoxOptions::default()).unwrap().is_empty());
        let lower = BoxOptions { box_thresh: 0.4, ..BoxOptions::default() };
        assert_eq!(text_boxes(&faint, 40, 100, 1.0, 1.0, &lower).unwrap().len(), 1);
        // A strong region that fills little of its box (an L) scores low too.
        let sparse = map(40, 100, &[(60, 5, 61, 30, 0.99), (60, 29, 95, 30, 0.99)]);
        assert!(box_score(&sparse, 100, &Region { x0: 60, y0: 5, x1: 95, y1: 30 }) < 0.6);
        assert!(text_boxes(&sparse, 40, 100, 1.0, 1.0, &BoxOptions::default()).unwrap().is_empty());
        // A 2×2 speck is under min_size (3); the strong blob beside it is kept.
        let speck = map(40, 100, &[(5, 5, 6, 6, 1.0), (20, 5, 60, 15, 0.9)]);
        let b = text_boxes(&speck, 40, 100, 1.0, 1.0, &BoxOptions::default()).unwrap();
        assert_eq!(b.len(), 1);
        assert!(b[0].x0 > 10.0, "{b:?}");
    }

    #[test]
    fn unclip_grows_a_box_by_area_times_ratio_over_perimeter() {
        // Pixel centres 20..=60 × 10..=20: 40 × 10, so d = 400 * ratio / 100.
        let m = map(40, 100, &[(20, 10, 60, 20, 0.9)]);
        let with = |unclip_ratio: f32, scale: f32| {
            let b = text_boxes(&m, 40, 100, scale, scale, &BoxOptions { unclip_ratio, ..BoxOptions::default() }).unwrap();
            (b[0].x0, b[0].y0, b[0].x1, b[0].y1)
        };
        assert_eq!(with(0.0, 1.0), (20.0, 10.0, 60.0, 20.0));
        assert_eq!(with(1.5, 1.0), (14.0, 4.0, 66.0, 26.0));
        assert_eq!(with(2.0, 1.0), (12.0, 2.0, 68.0, 28.0));
        // Onto a page twice as large: (12, 2)-(68, 28) doubled.
        assert_eq!(with(2.0, 2.0), (24.0, 4.0, 136.0, 56.0));
        // Clamped to the page (200×80 here).
        let m = map(40, 100, &[(0, 0, 40, 10, 0.9)]);
        let b = text_boxes(&m, 40, 100, 2.0, 2.0, &BoxOptions::default()).unwrap();
        assert_eq!((b[0].x0, b[0].y0, b[0].x1, b[0].y1), (0.0, 0.0, 96.0, 36.0));
    }

    #[test]
    fn max_boxes_caps_the_regions_considered() {
        let m = map(60, 100, &[(5, 5, 40, 15, 0.9), (5, 30, 40, 40, 0.9)]);
        let opts = BoxOptions { max_boxes: 1, ..BoxOptions::default() };
        assert_eq!(text_boxes(&m, 60, 100, 1.0, 1.0, &opts).unwrap().len(), 1);
    }

    #[test]
    fn a_map_of_the_wrong_size_is_an_input_error() {
        let e = text_boxes(&[0.0; 10], 3, 4, 1.0, 1.0, &BoxOptions::default()).unwrap_err();
        assert_eq!(e.code(), "ERR_INVALID_INPUT");
    }
}
