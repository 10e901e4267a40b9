//! The one number format of everything oae prints for people: a few significant digits, in
//! plain notation where that reads well and scientific notation where it does not. Data
//! files (CSV, JSON, Parquet) keep full precision and never go through here.

/// `v` with `digits` significant digits: plain for 0.001 ≤ |v| < 1,000,000, scientific
/// otherwise; `—` for NaN (no value) and `∞` / `-∞` for infinities.
pub fn sig(v: f64, digits: usize) -> String {
    if v.is_nan() {
        return "—".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "∞".into() } else { "-∞".into() };
    }
    let digits = digits.max(1);
    let a = v.abs();
    if a == 0.0 {
        return "0".into();
    }
    if !(1e-3..1e6).contains(&a) {
        return format!("{v:.*e}", digits - 1);
    }
    let magnitude = a.log10().floor() as i32;
    let decimals = (digits as i32 - 1 - magnitude).clamp(0, 8) as usize;
    format!("{v:.decimals$}")
}

/// Three significant digits (see [`sig`]).
pub fn num(v: f64) -> String {
    sig(v, 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_significant_digits_readably() {
        let cases = [
            (0.0, "0"),
            (1234.5, "1234"),
            (123.4, "123"),
            (12.34, "12.3"),
            (1.234, "1.23"),
            (0.1234, "0.123"),
            (0.001234, "0.00123"),
            (0.0001234, "1.23e-4"),
            (1.5e7, "1.50e7"),
            (-2.5, "-2.50"),
            (f64::NAN, "—"),
            (f64::INFINITY, "∞"),
            (f64::NEG_INFINITY, "-∞"),
        ];
        for (v, want) in cases {
            assert_eq!(num(v), want, "{v}");
        }
        assert_eq!(sig(0.5, 4), "0.5000");
        assert_eq!(sig(12.0, 1), "12");
    }
}
