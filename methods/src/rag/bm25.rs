//! Okapi BM25 over chunk texts (Robertson & Zaragoza 2009, with Lucene's non-negative idf):
//!
//! score(q, d) = Σ_{t ∈ q} idf(t) · f(t,d)·(k1+1) / (f(t,d) + k1·(1 − b + b·|d|/avgdl)),
//! idf(t) = ln(1 + (N − n(t) + 0.5) / (n(t) + 0.5)).
//!
//! Terms are lower-cased alphanumeric runs; a query term counts once per occurrence in the
//! query, as in the formula.

use std::collections::HashMap;

/// Term saturation.
pub const K1: f64 = 1.2;
/// Length normalisation.
pub const B: f64 = 0.75;

/// Lower-cased alphanumeric runs of `text`.
pub fn terms(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// An inverted index over documents (chunks).
#[derive(Debug, Clone)]
pub struct Bm25 {
    /// term → (document, term frequency) postings.
    postings: HashMap<String, Vec<(u32, u32)>>,
    lengths: Vec<u32>,
    avgdl: f64,
}

impl Bm25 {
    /// Indexes `docs`.
    pub fn build<'a>(docs: impl IntoIterator<Item = &'a str>) -> Self {
        let mut postings: HashMap<String, Vec<(u32, u32)>> = HashMap::new();
        let mut lengths = Vec::new();
        for (i, text) in docs.into_iter().enumerate() {
            let ts = terms(text);
            lengths.push(ts.len() as u32);
            let mut tf: HashMap<String, u32> = HashMap::new();
            for t in ts {
                *tf.entry(t).or_default() += 1;
            }
            for (t, f) in tf {
                postings.entry(t).or_default().push((i as u32, f));
            }
        }
        let n = lengths.len().max(1) as f64;
        let avgdl = lengths.iter().map(|&l| f64::from(l)).sum::<f64>() / n;
        Self {
            postings,
            lengths,
            avgdl: avgdl.max(1e-9),
        }
    }

    /// Documents indexed.
    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    /// idf of a term.
    pub fn idf(&self, term: &str) -> f64 {
        let n = self.lengths.len() as f64;
        let df = self.postings.get(term).map_or(0, Vec::len) as f64;
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    /// The score of every document for `query`.
    pub fn scores(&self, query: &str) -> Vec<f64> {
        let mut s = vec![0.0; self.lengths.len()];
        for t in terms(query) {
            let Some(post) = self.postings.get(&t) else { continue };
            let idf = self.idf(&t);
            for &(d, f) in post {
                let f = f64::from(f);
                let norm = K1 * (1.0 - B + B * f64::from(self.lengths[d as usize]) / self.avgdl);
                s[d as usize] += idf * f * (K1 + 1.0) / (f + norm);
            }
        }
        s
    }

    /// Bytes of the index, roughly (postings and lengths).
    pub fn bytes(&self) -> usize {
        self.postings
            .iter()
            .map(|(t, p)| t.len() + 24 + p.len() * 8)
            .sum::<usize>()
            + self.lengths.len() * 4
    }
}

/// Indices of the `k` highest `scores`, best first; ties go to the lower index.
pub fn top_k(scores: &[f64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    let cmp = |a: &usize, b: &usize| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b));
    if k < idx.len() {
        idx.select_nth_unstable_by(k, cmp);
        idx.truncate(k);
    }
    idx.sort_by(cmp);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_equal_a_hand_computed_example() {
        // N = 3, avgdl = (4 + 2 + 3) / 3 = 3.
        let idx = Bm25::build(["the cat sat down", "cat cat", "a dog barked"]);
        // "cat": df = 2 → idf = ln(1 + (3 − 2 + 0.5)/(2 + 0.5)) = ln(1.6).
        let idf_cat = 1.6f64.ln();
        assert!((idx.idf("cat") - idf_cat).abs() < 1e-12);
        // doc 0: f = 1, |d| = 4: 1·2.2 / (1 + 1.2·(0.25 + 0.75·4/3)) = 2.2 / 2.5.
        // doc 1: f = 2, |d| = 2: 2·2.2 / (2 + 1.2·(0.25 + 0.75·2/3)) = 4.4 / 2.9.
        let s = idx.scores("Cat?");
        assert!((s[0] - idf_cat * 2.2 / 2.5).abs() < 1e-12, "{s:?}");
        assert!((s[1] - idf_cat * 4.4 / 2.9).abs() < 1e-12, "{s:?}");
        assert_eq!(s[2], 0.0);
        // "dog": df = 1 → idf = ln(1 + 2.5/1.5); doc 2: f = 1, |d| = 3 → 2.2 / 2.2.
        let s = idx.scores("dog");
        assert!((s[2] - (1.0f64 + 2.5 / 1.5).ln()).abs() < 1e-12, "{s:?}");
        // cat dog: doc 2 = ln(8/3) ≈ 0.98 > doc 1 ≈ 0.71 > doc 0 ≈ 0.41.
        assert_eq!(top_k(&idx.scores("cat dog"), 2), [2, 1]);
    }

    #[test]
    fn top_k_breaks_ties_by_index() {
        assert_eq!(top_k(&[1.0, 3.0, 3.0, 0.5], 3), [1, 2, 0]);
        assert_eq!(top_k(&[1.0, 2.0], 5), [1, 0]);
        assert!(top_k(&[], 3).is_empty());
    }
}
