//! A sequential test for "is the challenger's mean loss different from the
//! champion's?", safe to evaluate after every outcome: the mixture
//! sequential probability ratio test (mSPRT) of Johari, Koomen, Pekelis and
//! Walsh ("Always valid inference", 2017), with a normal mixing distribution
//! of scale `tau` over the difference and the difference of the two sample
//! means taken as normal with their plug-in variance. Stopping when the
//! ratio reaches 1/α keeps the chance of ever declaring a difference that
//! is not there below α, however often the test is looked at: a fixed-sample
//! test checked after every outcome would not.

/// Sums of one arm's losses.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Arm {
    pub n: u64,
    pub sum: f64,
    pub sum_sq: f64,
}

impl Arm {
    /// Adds one loss.
    pub fn add(&mut self, loss: f64) {
        self.n += 1;
        self.sum += loss;
        self.sum_sq += loss * loss;
    }

    /// The mean loss (None before the first).
    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }

    /// The variance of one loss. For 0/1 losses it is taken from a smoothed
    /// rate, (k + ½)/(n + 1), so that an arm with no errors yet does not
    /// claim zero variance; otherwise the sample variance, floored just
    /// above zero for the same reason.
    pub fn variance(&self, binary: bool) -> f64 {
        if self.n == 0 {
            return f64::INFINITY;
        }
        let n = self.n as f64;
        if binary {
            let p = (self.sum + 0.5) / (n + 1.0);
            return p * (1.0 - p);
        }
        let mean = self.sum / n;
        let var = if self.n > 1 { ((self.sum_sq - n * mean * mean) / (n - 1.0)).max(0.0) } else { 0.0 };
        var.max(1e-12 * (1.0 + mean * mean))
    }
}

/// The test's state after some outcomes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Test {
    /// Challenger's mean loss minus the champion's (negative: challenger better).
    pub delta: f64,
    /// The variance of `delta`.
    pub variance: f64,
    /// ln of the mixture likelihood ratio; a decision at ≥ ln(1/α).
    pub log_ratio: f64,
}

/// The test on the arms' losses so far, with mixing scale `tau` (in loss
/// units: the size of difference the test is most sensitive to).
pub fn test(champion: &Arm, challenger: &Arm, binary: bool, tau: f64) -> Option<Test> {
    let (a, b) = (champion.mean()?, challenger.mean()?);
    // An arm whose losses happen to be (nearly) equal claims no certainty
    // the other arm's spread does not support: each variance is floored at
    // a hundredth of the pooled one.
    let floor = 0.01 * pooled_sd(champion, challenger, binary).powi(2);
    let var = |arm: &Arm| arm.variance(binary).max(floor);
    let v = var(champion) / champion.n as f64 + var(challenger) / challenger.n as f64;
    let t2 = tau * tau;
    if !(v.is_finite() && v > 0.0 && t2 > 0.0) {
        return None;
    }
    let delta = b - a;
    let log_ratio = 0.5 * (v / (v + t2)).ln() + t2 * delta * delta / (2.0 * v * (v + t2));
    Some(Test { delta, variance: v, log_ratio })
}

/// The pooled standard deviation of one loss over both arms.
pub fn pooled_sd(champion: &Arm, challenger: &Arm, binary: bool) -> f64 {
    let mut all = *champion;
    all.n += challenger.n;
    all.sum += challenger.sum;
    all.sum_sq += challenger.sum_sq;
    all.variance(binary).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm(losses: &[f64]) -> Arm {
        let mut a = Arm::default();
        losses.iter().for_each(|&l| a.add(l));
        a
    }

    #[test]
    fn matches_the_closed_form() {
        // Two arms of 4 with known means and variances.
        let a = arm(&[1.0, 2.0, 3.0, 4.0]); // mean 2.5, var 5/3
        let b = arm(&[2.0, 3.0, 4.0, 5.0]); // mean 3.5, var 5/3
        let t = test(&a, &b, false, 1.0).unwrap();
        let v = 2.0 * (5.0 / 3.0) / 4.0;
        let expect = 0.5 * (v / (v + 1.0_f64)).ln() + 1.0 / (2.0 * v * (v + 1.0));
        assert!((t.delta - 1.0).abs() < 1e-12);
        assert!((t.variance - v).abs() < 1e-12);
        assert!((t.log_ratio - expect).abs() < 1e-12, "{} vs {expect}", t.log_ratio);
    }

    #[test]
    fn no_difference_gives_a_negative_log_ratio_and_a_clear_one_grows() {
        let same = test(&arm(&[0.0, 1.0].repeat(200)), &arm(&[0.0, 1.0].repeat(200)), true, 0.1).unwrap();
        assert!(same.log_ratio < 0.0);
        let clear = test(&arm(&[0.0, 1.0].repeat(200)), &arm(&[0.0, 0.0, 0.0, 1.0].repeat(100)), true, 0.1).unwrap();
        assert!(clear.delta < 0.0 && clear.log_ratio > (20.0_f64).ln(), "{clear:?}");
    }

    #[test]
    fn binary_variance_never_reaches_zero() {
        let perfect = arm(&[0.0; 50]);
        assert!(perfect.variance(true) > 0.0);
        assert!(arm(&[3.0; 5]).variance(false) > 0.0);
        assert!(test(&Arm::default(), &perfect, true, 0.1).is_none());
    }
}
