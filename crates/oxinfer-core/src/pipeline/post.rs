//! Post-processing of the model's scores: transforms, then the decisions
//! (best class, top-k, threshold, confidence bucket) per row.

use super::spec::Post;

/// Per-row decisions, filled for the rows that reached the model.
pub struct Decisions {
    pub k: usize,
    /// Class index of the best score, -1 below the threshold.
    pub label: Option<Vec<i32>>,
    pub score: Option<Vec<f32>>,
    /// Top-k class indices and scores, `top_k` per row.
    pub top: Option<(usize, Vec<i32>, Vec<f32>)>,
    /// 1 where a class scores at least the threshold.
    pub above: Option<Vec<u8>>,
    pub bucket: Option<Vec<i32>>,
}

fn softmax(row: &mut [f64]) {
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for x in row.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    row.iter_mut().for_each(|x| *x /= sum);
}

/// Applies `ops` to `scores` (`rows` × `k`, row-major) in place and decides.
pub fn run(ops: &[Post], scores: &mut [f64], rows: usize, k: usize) -> Decisions {
    let mut d = Decisions { k, label: None, score: None, top: None, above: None, bucket: None };
    let best = |scores: &[f64]| -> (Vec<i32>, Vec<f32>) {
        let mut l = vec![-1; rows];
        let mut s = vec![f32::NAN; rows];
        for r in 0..rows {
            let row = &scores[r * k..(r + 1) * k];
            if let Some((i, v)) = row.iter().enumerate().fold(None, |acc: Option<(usize, f64)>, (i, &v)| match acc {
                Some((_, bv)) if bv >= v || v.is_nan() => acc,
                _ => Some((i, v)),
            }) {
                l[r] = i as i32;
                s[r] = v as f32;
            }
        }
        (l, s)
    };
    for op in ops {
        match op {
            Post::Softmax { .. } => scores.chunks_mut(k.max(1)).for_each(softmax),
            Post::Sigmoid { .. } => scores.iter_mut().for_each(|x| *x = 1.0 / (1.0 + (-*x).exp())),
            Post::InverseScale { mean, scale, .. } => scores.iter_mut().for_each(|x| *x = *x * scale + mean),
            Post::Platt { a, b, .. } => scores.iter_mut().for_each(|x| *x = 1.0 / (1.0 + (a * *x + b).exp())),
            Post::Argmax { .. } => {
                let (l, s) = best(scores);
                d.label = Some(l);
                d.score = Some(s);
            }
            Post::TopK { k: top_k, .. } => {
                let t = (*top_k).min(k);
                let mut idx = vec![-1i32; rows * t];
                let mut val = vec![f32::NAN; rows * t];
                let mut order: Vec<usize> = (0..k).collect();
                for r in 0..rows {
                    let row = &scores[r * k..(r + 1) * k];
                    order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
                    for j in 0..t {
                        idx[r * t + j] = order[j] as i32;
                        val[r * t + j] = row[order[j]] as f32;
                    }
                }
                let (l, s) = best(scores);
                d.label = Some(l);
                d.score = Some(s);
                d.top = Some((t, idx, val));
            }
            Post::Threshold { min, .. } => {
                d.above = Some(scores.iter().map(|&x| (x >= *min) as u8).collect());
                if d.label.is_none() {
                    let (l, s) = best(scores);
                    d.label = Some(l);
                    d.score = Some(s);
                }
                if let (Some(l), Some(s)) = (d.label.as_mut(), d.score.as_ref()) {
                    for r in 0..rows {
                        if !(s[r] as f64 >= *min) {
                            l[r] = -1;
                        }
                    }
                }
            }
            Post::Bucket { edges, .. } => {
                if d.score.is_none() {
                    let (l, s) = best(scores);
                    d.label = Some(l);
                    d.score = Some(s);
                }
                let s = d.score.as_ref().expect("set above");
                d.bucket = Some(s.iter().map(|&x| edges.iter().filter(|&&e| x as f64 >= e).count() as i32).collect());
            }
        }
    }
    d
}

/// Fits Platt's sigmoid p = 1 / (1 + exp(a * s + b)) to scores and 0/1
/// labels, with Platt's target smoothing and the Newton method with
/// backtracking of Lin, Lin and Weng (2007), as LIBSVM and scikit-learn's
/// sigmoid calibration do. Returns (a, b).
pub fn fit_platt(scores: &[f64], labels: &[bool]) -> Option<(f64, f64)> {
    if scores.len() != labels.len() || scores.is_empty() {
        return None;
    }
    let prior1 = labels.iter().filter(|&&l| l).count() as f64;
    let prior0 = labels.len() as f64 - prior1;
    let (hi, lo) = ((prior1 + 1.0) / (prior1 + 2.0), 1.0 / (prior0 + 2.0));
    let t: Vec<f64> = labels.iter().map(|&l| if l { hi } else { lo }).collect();
    let (mut a, mut b) = (0.0, ((prior0 + 1.0) / (prior1 + 1.0)).ln());
    let loss = |a: f64, b: f64| -> f64 {
        scores
            .iter()
            .zip(&t)
            .map(|(&s, &ti)| {
                let f = s * a + b;
                if f >= 0.0 {
                    ti * f + (1.0 + (-f).exp()).ln()
                } else {
                    (ti - 1.0) * f + (1.0 + f.exp()).ln()
                }
            })
            .sum()
    };
    let mut fval = loss(a, b);
    for _ in 0..100 {
        let (mut h11, mut h22, mut h21, mut g1, mut g2) = (1e-12, 1e-12, 0.0, 0.0, 0.0);
        for (&s, &ti) in scores.iter().zip(&t) {
            let f = s * a + b;
            let (p, q) = if f >= 0.0 {
                let e = (-f).exp();
                (e / (1.0 + e), 1.0 / (1.0 + e))
            } else {
                let e = f.exp();
                (1.0 / (1.0 + e), e / (1.0 + e))
            };
            let d2 = p * q;
            h11 += s * s * d2;
            h22 += d2;
            h21 += s * d2;
            let d1 = ti - p;
            g1 += s * d1;
            g2 += d1;
        }
        if g1.abs() < 1e-9 && g2.abs() < 1e-9 {
            break;
        }
        let det = h11 * h22 - h21 * h21;
        let da = -(h22 * g1 - h21 * g2) / det;
        let db = -(-h21 * g1 + h11 * g2) / det;
        let gd = g1 * da + g2 * db;
        let mut step = 1.0;
        while step >= 1e-10 {
            let (na, nb) = (a + step * da, b + step * db);
            let nf = loss(na, nb);
            if nf < fval + 1e-4 * step * gd {
                a = na;
                b = nb;
                fval = nf;
                break;
            }
            step /= 2.0;
        }
        if step < 1e-10 {
            break;
        }
    }
    Some((a, b))
}
