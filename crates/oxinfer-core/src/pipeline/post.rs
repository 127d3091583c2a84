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
