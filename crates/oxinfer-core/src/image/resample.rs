//! Resizing compatible with Pillow: `BILINEAR` is Pillow's separable
//! convolution (antialiased when downscaling, 22-bit fixed point, horizontal
//! pass first with a uint8 intermediate) and `NEAREST` its affine sampler with
//! a running double sum. Matching Pillow bit for bit means models trained on
//! Pillow-preprocessed data see the same pixels.

const PRECISION_BITS: u32 = 22;

fn triangle(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// Per output index: the first source index and fixed-point weights.
struct Coeffs {
    bounds: Vec<(usize, usize)>,
    ksize: usize,
    weights: Vec<i32>,
}

fn coeffs(in_size: usize, out_size: usize) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 1.0 * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // `as i64` truncates toward zero, like C's (int) cast.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize - xmin;
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(xmax) {
            let w = triangle((x as f64 + xmin as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        for (x, kx) in k.iter().enumerate().take(xmax) {
            let w = if ww != 0.0 { kx / ww } else { *kx };
            let f = w * (1u64 << PRECISION_BITS) as f64;
            weights[xx * ksize + x] = if w < 0.0 { (f - 0.5) as i32 } else { (f + 0.5) as i32 };
        }
        bounds.push((xmin, xmax));
    }
    Coeffs { bounds, ksize, weights }
}

fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Bilinear (Pillow) resize of an interleaved uint8 image with `c` channels.
pub fn bilinear(src: &[u8], w: usize, h: usize, c: usize, ow: usize, oh: usize) -> Vec<u8> {
    let round = 1i32 << (PRECISION_BITS - 1);
    let horiz = if ow != w {
        let k = coeffs(w, ow);
        let mut out = vec![0u8; ow * h * c];
        for y in 0..h {
            let row = &src[y * w * c..(y + 1) * w * c];
            for x in 0..ow {
                let (xmin, n) = k.bounds[x];
                let kk = &k.weights[x * k.ksize..x * k.ksize + n];
                for ch in 0..c {
                    let mut ss = round;
                    for (i, &wgt) in kk.iter().enumerate() {
                        ss += row[(xmin + i) * c + ch] as i32 * wgt;
                    }
                    out[(y * ow + x) * c + ch] = clip8(ss);
                }
            }
        }
        out
    } else {
        src.to_vec()
    };
    if oh == h {
        return horiz;
    }
    let k = coeffs(h, oh);
    let mut out = vec![0u8; ow * oh * c];
    for y in 0..oh {
        let (ymin, n) = k.bounds[y];
        let kk = &k.weights[y * k.ksize..y * k.ksize + n];
        for x in 0..ow {
            for ch in 0..c {
                let mut ss = round;
                for (i, &wgt) in kk.iter().enumerate() {
                    ss += horiz[((ymin + i) * ow + x) * c + ch] as i32 * wgt;
                }
                out[(y * ow + x) * c + ch] = clip8(ss);
            }
        }
    }
    out
}

/// Source indices of Pillow's NEAREST: a running double sum from half a step.
fn nearest_index(in_size: usize, out_size: usize) -> Vec<usize> {
    let step = in_size as f64 / out_size as f64;
    let mut pos = step * 0.5;
    let mut out = Vec::with_capacity(out_size);
    for _ in 0..out_size {
        out.push((pos as usize).min(in_size - 1));
        pos += step;
    }
    out
}

pub fn nearest(src: &[u8], w: usize, h: usize, c: usize, ow: usize, oh: usize) -> Vec<u8> {
    let xs = nearest_index(w, ow);
    let ys = nearest_index(h, oh);
    let mut out = vec![0u8; ow * oh * c];
    for (y, &sy) in ys.iter().enumerate() {
        for (x, &sx) in xs.iter().enumerate() {
            let s = (sy * w + sx) * c;
            out[(y * ow + x) * c..(y * ow + x) * c + c].copy_from_slice(&src[s..s + c]);
        }
    }
    out
}
