//! Greedy CTC decoding of a text recogniser's output into strings, with
//! PaddleOCR's character list (`ppocr_keys_v1.txt` and the like).

use crate::error::{Error, Result};

/// A recogniser's classes: index 0 is the CTC blank, then one token per line
/// of a PaddleOCR keys file, then a space (PaddleOCR's `use_space_char`).
#[derive(Clone, Debug)]
pub struct Vocabulary {
    tokens: Vec<String>,
}

impl Vocabulary {
    /// The classes of a PaddleOCR keys file's text: the blank, one token per
    /// line (line ends stripped; a final newline makes no empty token) and a
    /// trailing space. `ppocr_keys_v1.txt` (6,623 lines) gives 6,625 classes.
    pub fn from_keys(text: &str) -> Self {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut tokens = Vec::with_capacity(text.len() / 3 + 2);
        tokens.push(String::new());
        tokens.extend(text.lines().map(str::to_string));
        tokens.push(" ".to_string());
        Vocabulary { tokens }
    }

    /// How many classes, the blank included.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The text of class `i`; `None` for the blank and past the end.
    pub fn token(&self, i: usize) -> Option<&str> {
        if i == 0 {
            return None;
        }
        self.tokens.get(i).map(String::as_str)
    }
}

/// Argmax, max, and whether the step looks like a probability distribution.
fn step_max(step: &[f32]) -> (usize, f32, bool) {
    let (mut best, mut max, mut sum, mut min) = (0, f32::NEG_INFINITY, 0f32, f32::INFINITY);
    for (i, &v) in step.iter().enumerate() {
        if v > max {
            (best, max) = (i, v);
        }
        sum += v;
        min = min.min(v);
    }
    (best, max, min >= 0.0 && (sum - 1.0).abs() < 1e-3)
}

/// Greedy CTC over a recogniser's `[n, t, c]` output: per step the most
/// likely class, repeats collapsed, blanks (class 0) dropped. Each row gives
/// its text and confidence, the mean probability of the kept steps' classes
/// (0 for an empty text), as PaddleOCR's `CTCLabelDecode` does.
///
/// The output may be probabilities (PaddleOCR's exported recognisers end in a
/// softmax) or raw logits: when any step is not a distribution the scores are
/// taken as logits and the kept steps' probabilities come from a softmax.
///
/// Fails with `ERR_INVALID_INPUT` when `logits` does not hold `n * t * c`
/// values or `c` is not the vocabulary's size.
pub fn ctc_greedy(logits: &[f32], dims: [usize; 3], vocab: &Vocabulary) -> Result<Vec<(String, f32)>> {
    let [n, t, c] = dims;
    // An empty time axis makes any row count consistent with no data: bound it.
    if n > 1 << 24 {
        return Err(Error::invalid_input("logits", format!("{n} lines is more than a recogniser batch can hold")));
    }
    if n.checked_mul(t).and_then(|v| v.checked_mul(c)) != Some(logits.len()) {
        return Err(Error::invalid_input("logits", format!("{} values do not make a {dims:?} recogniser output", logits.len())));
    }
    if c != vocab.len() {
        return Err(Error::invalid_input("logits", format!("the recogniser has {c} classes but the vocabulary {}", vocab.len())));
    }
    if c == 0 {
        return Ok(vec![(String::new(), 0.0); n]);
    }
    let steps: Vec<(usize, f32, bool)> = logits.chunks_exact(c).map(step_max).collect();
    let probabilities = steps.iter().all(|s| s.2);
    let mut out = Vec::with_capacity(n);
    for (row, row_steps) in steps.chunks(t.max(1)).enumerate().take(n) {
        let (mut text, mut total, mut kept) = (String::new(), 0f32, 0usize);
        let mut prev = usize::MAX;
        for (s, &(best, max, _)) in row_steps.iter().enumerate() {
            if best != 0 && best != prev {
                text.push_str(vocab.token(best).unwrap_or_default());
                total += if probabilities {
                    max
                } else {
                    // softmax(x)[best] = 1 / sum(exp(x - max)).
                    let step = &logits[(row * t + s) * c..(row * t + s + 1) * c];
                    1.0 / step.iter().map(|&v| (v - max).exp()).sum::<f32>()
                };
                kept += 1;
            }
            prev = best;
        }
        out.push((text, if kept == 0 { 0.0 } else { total / kept as f32 }));
    }
    // `t` = 0: every row is empty.
    out.resize(n, (String::new(), 0.0));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> Vocabulary {
        // Classes: 0 blank, 1 'a', 2 'b', 3 'c', 4 ' '.
        Vocabulary::from_keys("a\nb\nc\n")
    }

    /// One-hot-ish probability steps: `p` on `class`, the rest spread evenly.
    fn steps(classes: &[(usize, f32)], c: usize) -> Vec<f32> {
        classes
            .iter()
            .flat_map(|&(k, p)| (0..c).map(move |i| if i == k { p } else { (1.0 - p) / (c - 1) as f32 }))
            .collect()
    }

    #[test]
    fn the_vocabulary_has_the_blank_the_keys_and_a_space() {
        let v = vocab();
        assert_eq!(v.len(), 5);
        assert_eq!((v.token(0), v.token(1), v.token(3), v.token(4), v.token(5)), (None, Some("a"), Some("c"), Some(" "), None));
        assert_eq!(Vocabulary::from_keys("a\r\nb").len(), 4);
        assert_eq!(Vocabulary::from_keys("a\r\nb").token(1), Some("a"));
    }

    #[test]
    fn repeats_collapse_and_blanks_separate_and_vanish() {
        // a a _ a b b _ _ c ' '  ->  "aabc "
        let seq = [(1, 0.9), (1, 0.8), (0, 0.9), (1, 0.7), (2, 0.6), (2, 0.9), (0, 0.9), (0, 0.9), (3, 0.5), (4, 0.8)];
        let x = steps(&seq, 5);
        let out = ctc_greedy(&x, [1, seq.len(), 5], &vocab()).unwrap();
        assert_eq!(out[0].0, "aabc ");
        // Kept steps: a(0.9), a(0.7), b(0.6), c(0.5), ' '(0.8).
        assert!((out[0].1 - (0.9 + 0.7 + 0.6 + 0.5 + 0.8) / 5.0).abs() < 1e-6, "{}", out[0].1);
    }

    #[test]
    fn rows_are_decoded_separately_and_an_all_blank_row_is_empty() {
        let x = steps(&[(2, 0.9), (2, 0.9), (0, 0.9), (0, 0.9), (0, 0.9), (0, 0.9)], 5);
        let out = ctc_greedy(&x, [2, 3, 5], &vocab()).unwrap();
        assert_eq!(out, vec![("b".to_string(), 0.9), (String::new(), 0.0)]);
    }

    #[test]
    fn logits_are_softmaxed_for_the_confidence() {
        // Step 0: class 1 by a margin of ln(9) over four classes at 0: p = 9/13.
        let l9 = 9f32.ln();
        let x = [0.0, l9, 0.0, 0.0, 0.0, 5.0, -1.0, -1.0, -1.0, -1.0];
        let out = ctc_greedy(&x, [1, 2, 5], &vocab()).unwrap();
        assert_eq!(out[0].0, "a");
        assert!((out[0].1 - 9.0 / 13.0).abs() < 1e-6, "{}", out[0].1);
    }

    #[test]
    fn shapes_that_do_not_fit_are_input_errors() {
        assert_eq!(ctc_greedy(&[0.0; 9], [1, 2, 5], &vocab()).unwrap_err().code(), "ERR_INVALID_INPUT");
        assert_eq!(ctc_greedy(&[0.0; 12], [1, 2, 6], &vocab()).unwrap_err().code(), "ERR_INVALID_INPUT");
        assert_eq!(ctc_greedy(&[], [3, 0, 5], &vocab()).unwrap(), vec![(String::new(), 0.0); 3]);
    }
}
