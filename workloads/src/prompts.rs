//! The bundled prompt set and prompt synthesis to a target length.
//!
//! Prompts are short, varied, everyday requests written for oae (`data/prompts.txt`). A
//! request of length N is built by chaining randomly chosen prompts and cutting the text at
//! exactly N bytes, so a byte-level tokenizer sees N tokens (plus its begin marker).

use std::sync::OnceLock;

use crate::rng::{SeededRng, open01};

const BUNDLED: &str = include_str!("../data/prompts.txt");

/// The bundled prompts, comments and blank lines removed.
pub fn bundled() -> &'static [&'static str] {
    static PROMPTS: OnceLock<Vec<&'static str>> = OnceLock::new();
    PROMPTS.get_or_init(|| {
        BUNDLED
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    })
}

/// A prompt of exactly `len` bytes (ASCII) drawn from the bundled set.
pub fn synthesize(rng: &mut SeededRng, len: usize) -> String {
    let set = bundled();
    let pick = |rng: &mut SeededRng| set[((open01(rng) * set.len() as f64) as usize).min(set.len() - 1)];
    let mut out = String::with_capacity(len + 128);
    while out.len() < len {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(pick(rng));
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::seeded;

    #[test]
    fn bundled_set_is_ascii_and_nonempty() {
        assert!(bundled().len() >= 30);
        assert!(bundled().iter().all(|p| p.is_ascii()));
    }

    #[test]
    fn exact_length() {
        let mut r = seeded(1, &["p"]);
        for len in [1, 7, 64, 1000] {
            assert_eq!(synthesize(&mut r, len).len(), len);
        }
    }
}
