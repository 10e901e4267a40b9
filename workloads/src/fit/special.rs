//! Special functions for likelihoods and distribution functions: log-gamma, digamma,
//! trigamma, the regularized incomplete gamma functions and the normal CDF.
//!
//! Accuracy (checked in the tests against known values): ~1e-13 relative for `ln_gamma`,
//! ~1e-12 for the polygammas at x ≥ 0.1, ~1e-12 absolute for the incomplete gamma.

/// ln Γ(x) for x > 0 (Lanczos approximation, g = 7, n = 9; coefficients as published by
/// Godfrey, used e.g. in Numerical Recipes 3rd ed. §6.1 and many libraries).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
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
        // Reflection: Γ(x) Γ(1 − x) = π / sin(πx).
        let s = (std::f64::consts::PI * x).sin();
        return std::f64::consts::PI.ln() - s.abs().ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// ψ(x) = d/dx ln Γ(x), x > 0: recurrence up to x ≥ 10, then the asymptotic series.
pub fn digamma(mut x: f64) -> f64 {
    let mut acc = 0.0;
    while x < 10.0 {
        acc -= 1.0 / x;
        x += 1.0;
    }
    let f = 1.0 / (x * x);
    acc + x.ln() - 0.5 / x - f * (1.0 / 12.0 - f * (1.0 / 120.0 - f * (1.0 / 252.0 - f * (1.0 / 240.0 - f / 132.0))))
}

/// ψ'(x), x > 0: recurrence up to x ≥ 10, then the asymptotic series.
pub fn trigamma(mut x: f64) -> f64 {
    let mut acc = 0.0;
    while x < 10.0 {
        acc += 1.0 / (x * x);
        x += 1.0;
    }
    let f = 1.0 / (x * x);
    acc + 1.0 / x + f / 2.0 + f / x * (1.0 / 6.0 - f * (1.0 / 30.0 - f * (1.0 / 42.0 - f / 30.0)))
}

/// Regularized lower incomplete gamma P(a, x) and its complement Q(a, x) = 1 − P(a, x),
/// each computed directly where it is accurate (series below a + 1, Lentz continued
/// fraction above), so tails keep their relative precision.
pub fn gamma_pq(a: f64, x: f64) -> (f64, f64) {
    if x <= 0.0 {
        return (0.0, 1.0);
    }
    if x.is_infinite() {
        return (1.0, 0.0);
    }
    let ln_front = a * x.ln() - x - ln_gamma(a);
    if x < a + 1.0 {
        let (mut term, mut sum, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..10_000 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-16 {
                break;
            }
        }
        let p = (sum.ln() + ln_front).exp().min(1.0);
        (p, 1.0 - p)
    } else {
        const TINY: f64 = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / TINY;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..10_000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < TINY {
                d = TINY;
            }
            c = b + an / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        let q = (h.ln() + ln_front).exp().min(1.0);
        (1.0 - q, q)
    }
}

/// Φ(z), the standard normal CDF, through Φ(z) = ½ (1 ± P(½, z²/2)), using Q in the lower
/// tail so small probabilities stay accurate.
pub fn normal_cdf(z: f64) -> f64 {
    if z.is_nan() {
        return f64::NAN;
    }
    let (p, q) = gamma_pq(0.5, z * z / 2.0);
    if z >= 0.0 { 0.5 * (1.0 + p) } else { 0.5 * q }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1e-300)
    }

    #[test]
    fn known_values() {
        assert!(ln_gamma(1.0).abs() < 1e-14 && ln_gamma(2.0).abs() < 1e-14);
        assert!(close(ln_gamma(0.5), std::f64::consts::PI.sqrt().ln(), 1e-13));
        assert!(close(ln_gamma(10.0), 362_880f64.ln(), 1e-13));
        assert!(close(ln_gamma(0.1), 2.252_712_651_734_206, 1e-12));
        // ψ(1) = −γ, ψ'(1) = π²/6.
        assert!(close(digamma(1.0), -0.577_215_664_901_532_9, 1e-12));
        assert!(close(trigamma(1.0), std::f64::consts::PI.powi(2) / 6.0, 1e-12));
        assert!(close(digamma(0.1), -10.423_754_940_411_076, 1e-12));
        // P(1, x) = 1 − e^(−x); P(3, 2) = 0.3233235838169366.
        for x in [0.01, 0.5, 1.0, 3.0, 20.0] {
            assert!(close(gamma_pq(1.0, x).0, 1.0 - (-x).exp(), 1e-12), "{x}");
        }
        assert!(close(gamma_pq(3.0, 2.0).0, 0.323_323_583_816_936_6, 1e-12));
        assert!(close(normal_cdf(1.959_963_984_540_054), 0.975, 1e-12));
        assert!(close(normal_cdf(-5.0), 2.866_515_718_791_939e-7, 1e-9));
        assert_eq!(normal_cdf(0.0), 0.5);
    }
}
