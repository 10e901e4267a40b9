//! Elementary functions in plain arithmetic that the compiler vectorizes, for the CPU ops
//! (softmax, SiLU) where libm's `expf` — a call per value — cost as much as the rest of the
//! op. The same operations on every target and register width, so a value does not depend on
//! which build or code path computed it.

/// e^x: Cody–Waite reduction by ln 2 and Cephes' degree-6 polynomial, within 2 ulp of e^x on
/// [−87, 88]; outside, it is e^−87 (≈ 1.6e−38: nothing next to a softmax's largest term, 1,
/// or to SiLU's 1 + e^−x) and e^88 (≈ 1.7e38, where e^x overflows). NaN stays NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = if x < -87.0 { -87.0 } else { x };
    let x = if x > 88.0 { 88.0 } else { x };
    // Round to nearest by adding and removing 1.5 · 2^23 (no libm `round` in the baseline
    // build).
    let n = (x * std::f32::consts::LOG2_E + 12_582_912.0) - 12_582_912.0;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 0.166_666_65) * r
        + 0.5;
    let e = p * r * r + r + 1.0;
    let two_n = f32::from_bits((((n as i32).clamp(-126, 127) + 127) as u32) << 23);
    e * two_n
}

/// Whether this CPU has AVX2, for the ops that compile a copy of their loops for it
/// (checked once).
#[cfg(target_arch = "x86_64")]
pub fn has_avx2() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| std::arch::is_x86_feature_detected!("avx2"))
}

/// x · σ(x) = x / (1 + e^−x).
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Within 2 ulp of e^x over the range a softmax or SiLU meets; NaN kept; the clamps.
    #[test]
    fn exp_is_within_two_ulp() {
        let mut worst = (0f64, 0f32);
        for i in 0..=1_750_000 {
            let x = -87.0 + i as f32 * 1e-4;
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            let ulp = (want as f32).next_up() as f64 - want as f32 as f64;
            let e = (got - want).abs() / ulp;
            if e > worst.0 {
                worst = (e, x);
            }
        }
        assert!(worst.0 <= 2.0, "worst error {} ulp at {}", worst.0, worst.1);
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(f32::NAN).is_nan());
        assert!(exp(-1e30) > 0.0 && exp(-1e30) < 1e-37);
        assert!(exp(f32::NEG_INFINITY) < 1e-37);
        assert!(exp(1e30).is_finite() && exp(1e30) > 1e38);
    }

    #[test]
    fn silu_matches_its_definition() {
        for i in -2000..=2000 {
            let x = i as f32 * 0.05;
            let want = x as f64 / (1.0 + (-x as f64).exp());
            let got = silu(x) as f64;
            // Below x = −87, SiLU is below 1e−35 either way (e^−x is held at e^88).
            assert!((got - want).abs() <= 4e-7 * want.abs() + 1e-35, "{x}: {got} vs {want}");
        }
        assert!(silu(-200.0) <= 0.0 && silu(-200.0) > -1e-35);
        assert_eq!(silu(200.0), 200.0);
        assert!(silu(f32::NAN).is_nan());
    }
}
