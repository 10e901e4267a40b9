//! Noisy inputs, reproducibly: character typos at a rate, changed casing, extra whitespace
//! and an irrelevant distractor sentence — the robustness probes of a `perturbs` workload.
//!
//! The noise of an item depends only on the seed and the item's id, so a nominal and a
//! perturbed workload over the same task ask the same questions, and a re-run asks the same
//! noisy ones.

use oae_core::rng::{SeededRng, open01, seeded};
use serde::{Deserialize, Serialize};

/// How to change a casing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Casing {
    /// Unchanged.
    #[default]
    Keep,
    /// All lower case.
    Lower,
    /// All upper case.
    Upper,
    /// Each word lower or upper case at random.
    Random,
}

/// A perturbation of the question text (`noise = { typos = 0.03, case = "lower", ... }`).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Noise {
    /// Probability that a letter suffers a typo (swap with its neighbour, drop, double or a
    /// keyboard neighbour), 0–0.5.
    #[serde(default)]
    pub typos: f64,
    /// Casing change.
    #[serde(default)]
    pub case: Casing,
    /// Probability of an extra space after each word, 0–1.
    #[serde(default)]
    pub whitespace: f64,
    /// Append one irrelevant sentence.
    #[serde(default)]
    pub distractor: bool,
}

/// Sentences unrelated to any task, written for oae.
const DISTRACTORS: &[&str] = &[
    "The library on the corner closes early on public holidays.",
    "My neighbour has been learning to play the cello since spring.",
    "Most bicycles sold last year had aluminium frames.",
    "The bus to the airport runs every twenty minutes after six.",
    "A new bakery opened next to the post office last week.",
    "Our team meeting moved from Tuesday to Thursday morning.",
    "Tomatoes grow best in warm weather with plenty of sun.",
    "The museum's winter exhibition features early photographs.",
];

/// Keyboard neighbours (QWERTY) for substitution typos.
fn neighbour(c: char, rng: &mut SeededRng) -> char {
    const ROWS: [&str; 3] = ["qwertyuiop", "asdfghjkl", "zxcvbnm"];
    let lower = c.to_ascii_lowercase();
    for row in ROWS {
        if let Some(i) = row.find(lower) {
            let b = row.as_bytes();
            let pick = if i == 0 {
                b[1]
            } else if i + 1 == b.len() || open01(rng) < 0.5 {
                b[i - 1]
            } else {
                b[i + 1]
            };
            let n = pick as char;
            return if c.is_ascii_uppercase() {
                n.to_ascii_uppercase()
            } else {
                n
            };
        }
    }
    c
}

impl Noise {
    /// Checks the rates: the (field, message) of the first bad one.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !(self.typos.is_finite() && (0.0..=0.5).contains(&self.typos)) {
            return Err((
                "typos",
                format!("must be a rate from 0 to 0.5 per letter, got {}", self.typos),
            ));
        }
        if !(self.whitespace.is_finite() && (0.0..=1.0).contains(&self.whitespace)) {
            return Err((
                "whitespace",
                format!("must be a rate from 0 to 1 per word, got {}", self.whitespace),
            ));
        }
        Ok(())
    }

    /// Whether this changes anything.
    pub fn is_none(&self) -> bool {
        *self == Noise::default()
    }

    /// The perturbed `text` of item `item_id` under `seed`.
    pub fn apply(&self, text: &str, seed: u64, item_id: &str) -> String {
        if self.is_none() {
            return text.to_string();
        }
        let mut rng = seeded(seed, &["perturb", item_id]);
        let mut out = String::with_capacity(text.len() + 64);
        for (wi, word) in text.split(' ').enumerate() {
            if wi > 0 {
                out.push(' ');
                if open01(&mut rng) < self.whitespace {
                    out.push(' ');
                }
            }
            let upper = match self.case {
                Casing::Random => Some(open01(&mut rng) < 0.5),
                Casing::Upper => Some(true),
                Casing::Lower => Some(false),
                Casing::Keep => None,
            };
            let chars: Vec<char> = word.chars().collect();
            let mut i = 0;
            while i < chars.len() {
                let c = chars[i];
                let c = match upper {
                    Some(true) => c.to_uppercase().next().unwrap_or(c),
                    Some(false) => c.to_lowercase().next().unwrap_or(c),
                    None => c,
                };
                if c.is_ascii_alphabetic() && self.typos > 0.0 && open01(&mut rng) < self.typos {
                    match (open01(&mut rng) * 4.0) as u32 {
                        0 if i + 1 < chars.len() => {
                            // Swap with the next character.
                            out.push(chars[i + 1]);
                            out.push(c);
                            i += 2;
                            continue;
                        }
                        1 => {} // dropped
                        2 => {
                            out.push(c);
                            out.push(c);
                        }
                        _ => out.push(neighbour(c, &mut rng)),
                    }
                } else {
                    out.push(c);
                }
                i += 1;
            }
        }
        if self.distractor {
            let d = DISTRACTORS[((open01(&mut rng) * DISTRACTORS.len() as f64) as usize).min(DISTRACTORS.len() - 1)];
            out.push(' ');
            out.push_str(d);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: &str = "Which river flows through the city of Paris in France?";

    #[test]
    fn seeded_and_per_item() {
        let n = Noise {
            typos: 0.1,
            case: Casing::Random,
            whitespace: 0.3,
            distractor: true,
        };
        assert_eq!(n.apply(Q, 7, "q1"), n.apply(Q, 7, "q1"));
        assert_ne!(n.apply(Q, 7, "q1"), n.apply(Q, 8, "q1"));
        assert_ne!(n.apply(Q, 7, "q1"), n.apply(Q, 7, "q2"));
        assert_ne!(n.apply(Q, 7, "q1"), Q);
        assert_eq!(Noise::default().apply(Q, 7, "q1"), Q);
    }

    #[test]
    fn each_kind_does_what_it_says() {
        let lower = Noise {
            case: Casing::Lower,
            ..Noise::default()
        };
        assert_eq!(lower.apply(Q, 1, "a"), Q.to_lowercase());
        let d = Noise {
            distractor: true,
            ..Noise::default()
        };
        let out = d.apply(Q, 1, "a");
        assert!(out.starts_with(Q) && out.len() > Q.len() + 20);
        let ws = Noise {
            whitespace: 1.0,
            ..Noise::default()
        };
        assert_eq!(ws.apply("a b c", 1, "a"), "a  b  c");
        // Typos at 10 % change roughly 10 % of letters (edit distance), not all, not none.
        let t = Noise {
            typos: 0.1,
            ..Noise::default()
        };
        let long = Q.repeat(20);
        let out = t.apply(&long, 3, "x");
        let changed = long.chars().zip(out.chars()).filter(|(a, b)| a != b).count();
        assert!(out != long && changed > 0);
        assert!(
            Noise {
                typos: 0.9,
                ..Noise::default()
            }
            .check()
            .is_err()
        );
    }
}
