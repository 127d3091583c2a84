//! Feature generation helpers: scikit-learn-compatible feature hashing and
//! PCA fitting (a symmetric eigendecomposition of the covariance matrix).

/// MurmurHash3 x86 32-bit, as scikit-learn's `murmurhash3_32` (signed result).
pub fn murmur3_32(data: &[u8], seed: u32) -> i32 {
    const C1: u32 = 0xcc9e2d51;
    const C2: u32 = 0x1b873593;
    let mut h = seed;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe6546b64);
    }
    let mut k = 0u32;
    for (i, &b) in tail.iter().enumerate() {
        k ^= (b as u32) << (8 * i);
    }
    if !tail.is_empty() {
        h ^= k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85ebca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2ae35);
    h ^= h >> 16;
    h as i32
}

/// FeatureHasher's bucket and sign for one string feature.
pub fn hash_feature(value: &str, buckets: usize, alternate_sign: bool) -> (usize, f64) {
    let h = murmur3_32(value.as_bytes(), 0) as i64;
    let index = (h.abs() as usize) % buckets;
    let sign = if alternate_sign && h < 0 { -1.0 } else { 1.0 };
    (index, sign)
}

/// Eigenvalues (descending) and unit eigenvectors of a symmetric matrix
/// (`n` × `n`, row-major), by cyclic Jacobi rotations.
pub fn symmetric_eigen(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<Vec<f64>>) {
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n).flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j))).map(|(i, j)| a[i * n + j] * a[i * n + j]).sum();
        if off < 1e-30 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| a[j * n + j].total_cmp(&a[i * n + i]));
    let values = order.iter().map(|&i| a[i * n + i]).collect();
    let vectors = order.iter().map(|&i| (0..n).map(|k| v[k * n + i]).collect()).collect();
    (values, vectors)
}

/// Fits PCA on complete rows (`rows` × `n`, row-major): the mean, the top
/// `k` components (each with its largest-magnitude entry positive, like
/// scikit-learn's `svd_flip`) and their explained variance (ddof = 1).
pub fn fit_pca(x: &[f64], rows: usize, n: usize, k: usize) -> Option<(Vec<f64>, Vec<Vec<f64>>, Vec<f64>)> {
    if rows < 2 {
        return None;
    }
    let mut mean = vec![0.0; n];
    for r in 0..rows {
        for j in 0..n {
            mean[j] += x[r * n + j];
        }
    }
    mean.iter_mut().for_each(|m| *m /= rows as f64);
    let mut cov = vec![0.0; n * n];
    for r in 0..rows {
        for i in 0..n {
            let di = x[r * n + i] - mean[i];
            for j in i..n {
                cov[i * n + j] += di * (x[r * n + j] - mean[j]);
            }
        }
    }
    for i in 0..n {
        for j in i..n {
            cov[i * n + j] /= (rows - 1) as f64;
            cov[j * n + i] = cov[i * n + j];
        }
    }
    let (values, mut vectors) = symmetric_eigen(cov, n);
    for v in vectors.iter_mut() {
        let big = v.iter().copied().fold(0.0f64, |m, x| if x.abs() > m.abs() { x } else { m });
        if big < 0.0 {
            v.iter_mut().for_each(|x| *x = -*x);
        }
    }
    vectors.truncate(k);
    Some((mean, vectors, values.into_iter().take(k).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur3_matches_reference_vectors() {
        // Published MurmurHash3_x86_32 test vectors (seed 0), as signed ints.
        assert_eq!(murmur3_32(b"", 0), 0);
        assert_eq!(murmur3_32(b"", 1) as u32, 0x514E28B7);
        assert_eq!(murmur3_32(b"hello", 0) as u32, 0x248BFA47);
        assert_eq!(murmur3_32(b"Hello, world!", 0) as u32, 0xC0363E43);
        assert_eq!(murmur3_32(b"The quick brown fox jumps over the lazy dog", 0) as u32, 0x2E4FF723);
    }

    #[test]
    fn eigen_of_a_known_matrix() {
        // [[2, 1], [1, 2]] has eigenvalues 3 and 1.
        let (vals, vecs) = symmetric_eigen(vec![2.0, 1.0, 1.0, 2.0], 2);
        assert!((vals[0] - 3.0).abs() < 1e-12 && (vals[1] - 1.0).abs() < 1e-12);
        let s = std::f64::consts::FRAC_1_SQRT_2;
        assert!((vecs[0][0].abs() - s).abs() < 1e-12 && (vecs[0][1].abs() - s).abs() < 1e-12);
    }
}
