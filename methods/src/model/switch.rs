//! The environment switches that turn one of the model core's fast paths off for A/B
//! measurements (`OAE_MATVEC`, `OAE_QUANT_TILES`, `OAE_CPU_FUSED`, `OAE_CUDA_FUSED`): on
//! unless the variable is `0`; any value but `0` or `1` is warned about and leaves it on.

/// Whether the path `var` switches is on (read on every call: callers keep the answer).
pub(super) fn on(var: &str) -> bool {
    parse(var, std::env::var(var).ok().as_deref())
}

fn parse(var: &str, value: Option<&str>) -> bool {
    match value {
        Some("0") => false,
        None | Some("1") => true,
        Some(other) => {
            eprintln!("warning: {var}={other:?} is neither 0 nor 1; the path it switches stays on");
            true
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_zero_turns_a_path_off() {
        assert!(!super::parse("X", Some("0")));
        assert!(super::parse("X", Some("1")));
        assert!(super::parse("X", None));
        assert!(
            super::parse("X", Some("off")),
            "an unknown value is warned about and leaves it on"
        );
    }
}
