//! The drift statistics, defined so that a few lines of NumPy/SciPy give the
//! same numbers (scripts/make_drift_fixtures.py keeps them honest):
//! - PSI over the reference's decile bins (plus a bin for missing values),
//!   proportions floored at 1e-4;
//! - the two-sample Kolmogorov–Smirnov statistic D (scipy.stats.ks_2samp),
//!   with the asymptotic p-value of Numerical Recipes' `probks`;
//! - Pearson's chi-square of current category counts against the
//!   reference's proportions smoothed by half a count per category
//!   (scipy.stats.chisquare), p from the chi-square distribution;
//! - the Jensen–Shannon divergence in bits (scipy's jensenshannon(p, q,
//!   base=2) squared), between 0 and 1.

/// Proportions below this count as this in PSI (an empty bin would be infinite).
pub const PSI_FLOOR: f64 = 1e-4;

/// Population stability index of `current` counts against `reference` counts over the same bins.
pub fn psi(reference: &[u64], current: &[u64]) -> f64 {
    let (r, c) = (reference.iter().sum::<u64>() as f64, current.iter().sum::<u64>() as f64);
    if r == 0.0 || c == 0.0 {
        return 0.0;
    }
    reference
        .iter()
        .zip(current)
        .map(|(&e, &a)| {
            let p = (e as f64 / r).max(PSI_FLOOR);
            let q = (a as f64 / c).max(PSI_FLOOR);
            (q - p) * (q / p).ln()
        })
        .sum()
}

/// The bin of `x` among ascending `edges`: how many edges are at or below it
/// (NumPy's `searchsorted(edges, x, side="right")`).
pub fn bin(edges: &[f64], x: f64) -> usize {
    edges.partition_point(|&e| e <= x)
}

/// Quantile `q` of ascending `sorted` values, linearly interpolated (NumPy's default).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The two-sample KS statistic D of two ascending samples, and its asymptotic p-value.
pub fn ks(a: &[f64], b: &[f64]) -> (f64, f64) {
    let (n, m) = (a.len(), b.len());
    if n == 0 || m == 0 {
        return (0.0, 1.0);
    }
    let (mut i, mut j, mut d) = (0usize, 0usize, 0f64);
    while i < n && j < m {
        let x = a[i].min(b[j]);
        while i < n && a[i] <= x {
            i += 1;
        }
        while j < m && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / n as f64 - j as f64 / m as f64).abs());
    }
    let en = ((n * m) as f64 / (n + m) as f64).sqrt();
    (d, kolmogorov_q((en + 0.12 + 0.11 / en) * d))
}

/// Q_KS(λ) = 2 Σ (-1)^(j-1) exp(-2 j² λ²): the Kolmogorov distribution's tail.
fn kolmogorov_q(lambda: f64) -> f64 {
    if lambda < 1e-3 {
        return 1.0;
    }
    let (mut sum, mut sign, mut prev) = (0.0, 2.0, 0.0f64);
    let a2 = -2.0 * lambda * lambda;
    for j in 1..=100 {
        let term = sign * (a2 * (j * j) as f64).exp();
        sum += term;
        if term.abs() <= 1e-10 * prev || term.abs() <= 1e-16 * sum.abs() {
            return sum.clamp(0.0, 1.0);
        }
        sign = -sign;
        prev = term.abs();
    }
    1.0
}

/// Pearson's chi-square of `current` counts against `reference` proportions
/// (each reference count plus half), with its degrees of freedom and p-value.
pub fn chi_square(reference: &[u64], current: &[u64]) -> (f64, usize, f64) {
    let k = reference.len();
    let c = current.iter().sum::<u64>() as f64;
    if k < 2 || c == 0.0 {
        return (0.0, k.saturating_sub(1), 1.0);
    }
    let r = reference.iter().sum::<u64>() as f64 + 0.5 * k as f64;
    let stat: f64 = reference
        .iter()
        .zip(current)
        .map(|(&e, &o)| {
            let expected = (e as f64 + 0.5) / r * c;
            let d = o as f64 - expected;
            d * d / expected
        })
        .sum();
    let dof = k - 1;
    (stat, dof, gamma_q(dof as f64 / 2.0, stat / 2.0))
}

/// The Jensen–Shannon divergence, in bits, of two count vectors' proportions.
pub fn jensen_shannon(reference: &[u64], current: &[u64]) -> f64 {
    let (r, c) = (reference.iter().sum::<u64>() as f64, current.iter().sum::<u64>() as f64);
    if r == 0.0 || c == 0.0 {
        return 0.0;
    }
    let kl = |p: f64, m: f64| if p > 0.0 { p * (p / m).log2() } else { 0.0 };
    let mut js = 0.0;
    for (&e, &a) in reference.iter().zip(current) {
        let (p, q) = (e as f64 / r, a as f64 / c);
        let m = 0.5 * (p + q);
        js += 0.5 * kl(p, m) + 0.5 * kl(q, m);
    }
    js.max(0.0)
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms; ~1e-15 relative).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection.
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// The regularised upper incomplete gamma function Q(a, x): the chi-square
/// distribution's tail is Q(dof / 2, stat / 2).
pub fn gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let ln_pre = -x + a * x.ln() - ln_gamma(a);
    if x < a + 1.0 {
        // Series for P, then Q = 1 - P.
        let (mut sum, mut del, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..1000 {
            ap += 1.0;
            del *= x / ap;
            sum += del;
            if del.abs() < sum.abs() * 1e-16 {
                break;
            }
        }
        (1.0 - sum * ln_pre.exp()).clamp(0.0, 1.0)
    } else {
        // Continued fraction (modified Lentz).
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..1000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < 1e-16 {
                break;
            }
        }
        (ln_pre.exp() * h).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // chi2.sf(3.84145882, 1) = 0.05; chi2.sf(10, 4) = 0.040427681994512805
        assert!((gamma_q(0.5, 3.841_458_820_694_124 / 2.0) - 0.05).abs() < 1e-12);
        assert!((gamma_q(2.0, 5.0) - 0.040_427_681_994_512_805).abs() < 1e-14);
        assert!((ln_gamma(10.0) - 362_880f64.ln()).abs() < 1e-12);
        assert_eq!(bin(&[1.0, 2.0, 3.0], 2.0), 2);
        assert_eq!(bin(&[1.0, 2.0, 3.0], 0.5), 0);
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.5);
        let (d, p) = ks(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]);
        assert_eq!((d, p), (0.0, 1.0));
        assert_eq!(psi(&[10, 10], &[10, 10]), 0.0);
        assert_eq!(jensen_shannon(&[1, 0], &[0, 1]), 1.0);
    }
}
