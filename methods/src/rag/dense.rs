//! Dense retrieval over unit-length embeddings: exact top-k by one matrix-vector product
//! (every chunk scored), or an HNSW graph (Malkov & Yashunin 2018, the `instant-distance`
//! crate) that visits a small part of a large base. Similarity is the dot product (= cosine
//! for unit vectors); HNSW distance is 1 − dot.

use std::sync::Arc;

use instant_distance::{Builder, HnswMap, Point, Search};

use super::bm25::top_k;

/// Row-major unit vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct Vectors {
    dim: usize,
    data: Vec<f32>,
}

impl Vectors {
    /// Stacks `rows` (all of one length).
    pub fn new(rows: &[Vec<f32>]) -> Self {
        let dim = rows.first().map_or(0, Vec::len);
        let mut data = Vec::with_capacity(rows.len() * dim);
        for r in rows {
            assert_eq!(r.len(), dim, "embeddings of one length");
            data.extend_from_slice(r);
        }
        Self { dim, data }
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Dot product of every row with `q` (one matrix-vector product).
    pub fn scores(&self, q: &[f32]) -> Vec<f64> {
        self.data
            .chunks_exact(self.dim.max(1))
            .map(|r| dot(r, q) as f64)
            .collect()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len() * 4
    }
}

/// Dot product in eight independent lanes, so the compiler vectorises it (a single running
/// sum must be added in order and is not).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// HNSW settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HnswParams {
    /// Candidates kept while building (`efConstruction`).
    pub ef_construction: usize,
    /// Candidates kept while searching (`ef`); at least k.
    pub ef_search: usize,
    /// Seed of the level draw.
    pub seed: u64,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self {
            ef_construction: 200,
            ef_search: 128,
            seed: 0,
        }
    }
}

/// A dense index.
pub enum DenseIndex {
    /// Every row scored.
    Exact(Vectors),
    /// An HNSW graph.
    Hnsw {
        /// The graph; values are row numbers.
        map: HnswMap<UnitPoint, u32>,
        /// Settings it was built with.
        params: HnswParams,
        /// Rows indexed.
        rows: usize,
    },
}

/// A point of the HNSW graph: a unit vector.
#[derive(Clone, Debug)]
pub struct UnitPoint(Arc<[f32]>);

impl Point for UnitPoint {
    fn distance(&self, other: &Self) -> f32 {
        1.0 - dot(&self.0, &other.0)
    }
}

impl DenseIndex {
    /// Exact search over `v`.
    pub fn exact(v: Vectors) -> Self {
        Self::Exact(v)
    }

    /// Builds an HNSW graph over `v`.
    pub fn hnsw(v: &Vectors, params: HnswParams) -> Self {
        let points: Vec<UnitPoint> = (0..v.len()).map(|i| UnitPoint(v.row(i).into())).collect();
        let values: Vec<u32> = (0..v.len() as u32).collect();
        let map = Builder::default()
            .ef_construction(params.ef_construction)
            .ef_search(params.ef_search)
            .seed(params.seed)
            .build(points, values);
        Self::Hnsw {
            map,
            params,
            rows: v.len(),
        }
    }

    /// Rows indexed.
    pub fn len(&self) -> usize {
        match self {
            Self::Exact(v) => v.len(),
            Self::Hnsw { rows, .. } => *rows,
        }
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held, roughly: the vectors, plus HNSW's graph (≈ 2·M neighbours of 4 bytes
    /// per point on the ground layer, M = 32 in `instant-distance`).
    pub fn bytes(&self) -> usize {
        match self {
            Self::Exact(v) => v.bytes(),
            Self::Hnsw { map, rows, .. } => {
                let dim = map.iter().next().map_or(0, |(_, p)| p.0.len());
                rows * (dim * 4 + 64 * 4)
            }
        }
    }

    /// `exact` or `hnsw`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Exact(_) => "exact",
            Self::Hnsw { .. } => "hnsw",
        }
    }

    /// The `k` rows most similar to `q` (unit length), best first, with their similarity.
    /// Exact ties go to the lower row.
    pub fn search(&self, q: &[f32], k: usize) -> Vec<(usize, f64)> {
        match self {
            Self::Exact(v) => {
                let s = v.scores(q);
                top_k(&s, k).into_iter().map(|i| (i, s[i])).collect()
            }
            Self::Hnsw { map, .. } => {
                let mut search = Search::default();
                let p = UnitPoint(q.into());
                map.search(&p, &mut search)
                    .take(k)
                    .map(|item| (*item.value as usize, 1.0 - f64::from(item.distance)))
                    .collect()
            }
        }
    }
}

/// Share of the exact top-`k` rows that `index` also returns in its top `k`, over `queries`.
pub fn recall_at_k(exact: &Vectors, index: &DenseIndex, queries: &[Vec<f32>], k: usize) -> f64 {
    let mut hit = 0usize;
    let mut all = 0usize;
    for q in queries {
        let truth = top_k(&exact.scores(q), k);
        let got: Vec<usize> = index.search(q, k).into_iter().map(|(i, _)| i).collect();
        hit += truth.iter().filter(|t| got.contains(t)).count();
        all += truth.len();
    }
    if all == 0 { 1.0 } else { hit as f64 / all as f64 }
}

/// Seeded unit vectors (for tests and benchmarks): `n` rows of `dim`, drawn around
/// `clusters` seeded centres (each coordinate perturbed by `spread` × a standard normal) so
/// they have the structure real embeddings have.
pub fn seeded_unit_vectors(n: usize, dim: usize, clusters: usize, spread: f32, seed: u64) -> Vec<Vec<f32>> {
    use rand::Rng;
    let mut rng = oae_core::rng::seeded(seed, &["unit-vectors"]);
    let mut gauss = move || -> f32 {
        // Box–Muller.
        let u1: f64 = rng.random::<f64>().max(1e-12);
        let u2: f64 = rng.random();
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    };
    let unit = |mut v: Vec<f32>| {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        v.iter_mut().for_each(|x| *x /= n);
        v
    };
    let centres: Vec<Vec<f32>> = (0..clusters.max(1))
        .map(|_| unit((0..dim).map(|_| gauss()).collect()))
        .collect();
    (0..n)
        .map(|i| {
            let c = &centres[i % centres.len()];
            unit(c.iter().map(|x| x + spread * gauss()).collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_search_equals_brute_force() {
        let rows = seeded_unit_vectors(500, 32, 7, 0.08, 1);
        let v = Vectors::new(&rows);
        let idx = DenseIndex::exact(v.clone());
        for q in rows.iter().step_by(37) {
            let got = idx.search(q, 5);
            // Brute force: every pair's cosine, sorted descending, ties by index.
            let mut all: Vec<(usize, f64)> = rows
                .iter()
                .enumerate()
                .map(|(i, r)| (i, r.iter().zip(q).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum()))
                .collect();
            all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let want: Vec<usize> = all[..5].iter().map(|p| p.0).collect();
            assert_eq!(got.iter().map(|p| p.0).collect::<Vec<_>>(), want);
            for ((_, s), (_, w)) in got.iter().zip(&all) {
                assert!((s - w).abs() < 1e-5);
            }
        }
    }
}
