//! Column statistics, computed in f64 the way scikit-learn computes them, so
//! that `fit` learns the same parameters (to ~1e-12 relative).

/// Values that are not missing (NaN).
pub fn present(xs: &[f64]) -> Vec<f64> {
    xs.iter().copied().filter(|x| !x.is_nan()).collect()
}

pub fn mean(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    Some(xs.iter().sum::<f64>() / xs.len() as f64)
}

/// Population variance (ddof = 0), two-pass for accuracy.
pub fn variance(xs: &[f64]) -> Option<f64> {
    let m = mean(xs)?;
    Some(xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / xs.len() as f64)
}

/// numpy's default (linear) percentile, q in [0, 100].
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let pos = (q / 100.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    Some(if lo == hi { sorted[lo] } else { sorted[lo] + (sorted[hi] - sorted[lo]) * frac })
}

pub fn sorted(xs: &[f64]) -> Vec<f64> {
    let mut v = present(xs);
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

pub fn median(xs: &[f64]) -> Option<f64> {
    let s = sorted(xs);
    if s.is_empty() {
        return None;
    }
    let n = s.len();
    Some(if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 })
}

/// The most frequent value; ties go to the smallest (as scikit-learn does).
pub fn mode(xs: &[f64]) -> Option<f64> {
    let s = sorted(xs);
    let mut best: Option<(f64, usize)> = None;
    let mut i = 0;
    while i < s.len() {
        let mut j = i;
        while j < s.len() && s[j] == s[i] {
            j += 1;
        }
        if best.is_none_or(|(_, c)| j - i > c) {
            best = Some((s[i], j - i));
        }
        i = j;
    }
    best.map(|(v, _)| v)
}

/// The most frequent string; ties go to the smallest.
pub fn mode_str<'a>(values: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for v in values {
        *counts.entry(v).or_default() += 1;
    }
    let max = counts.values().copied().max()?;
    counts.into_iter().find(|(_, c)| *c == max).map(|(v, _)| v.to_string())
}

/// scikit-learn's `_handle_zeros_in_scale`: a zero (or tiny) scale becomes 1.
pub fn nonzero_scale(s: f64) -> f64 {
    if s.abs() < 10.0 * f64::EPSILON {
        1.0
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_numpy_linear() {
        let s = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&s, 0.0), Some(1.0));
        assert_eq!(percentile(&s, 100.0), Some(4.0));
        // np.percentile([1,2,3,4], 25) == 1.75
        assert_eq!(percentile(&s, 25.0), Some(1.75));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn median_mode_mean_variance_skip_missing() {
        let xs = [3.0, f64::NAN, 1.0, 2.0, 2.0];
        assert_eq!(median(&xs), Some(2.0));
        assert_eq!(median(&[1.0, 4.0]), Some(2.5));
        assert_eq!(mode(&[3.0, 1.0, 3.0, 1.0, 2.0]), Some(1.0), "ties go to the smallest");
        let p = present(&xs);
        assert_eq!(mean(&p), Some(2.0));
        assert_eq!(variance(&p), Some(0.5));
        assert_eq!(mean(&[]), None);
    }

    #[test]
    fn string_mode_and_zero_scale() {
        assert_eq!(mode_str(["b", "a", "b", "a"].into_iter()), Some("a".into()));
        assert_eq!(mode_str(std::iter::empty()), None);
        assert_eq!(nonzero_scale(0.0), 1.0);
        assert_eq!(nonzero_scale(2.0), 2.0);
    }
}
