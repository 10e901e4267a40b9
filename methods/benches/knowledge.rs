//! The knowledge methods' building blocks, on this machine:
//!
//! 1. MiniLM embedding throughput (chunks/s; compute threads from RAYON_NUM_THREADS);
//! 2. dense index build time and memory for 10k and 100k 384-d vectors (exact and HNSW),
//!    HNSW recall@10 against exact search, and query latency p50/p99 of each;
//! 3. BM25 and exact-dense query latency over SQuAD's 2,067 paragraphs;
//! 4. CAG: preload time, cache bytes, restore time and the first query's prefill against
//!    the knowledge size (SmolLM2 when cached, else the embedded synthetic model).
//!
//! `cargo bench -p oae-methods --bench knowledge` (OAE_KNOWLEDGE_QUICK=1: 10k vectors only;
//! OAE_KNOWLEDGE_ONLY=embedding|retrievers|indexes|cag: one part).
//! Parts whose model or dataset is not cached are skipped with a message.

use std::time::Instant;

use oae_core::config::ConfigTable;
use oae_harness::{BuildContext, DeviceSpec};
use oae_methods::generate::Generator;
use oae_methods::model::{KvCache, catalog};
use oae_methods::rag::bm25::Bm25;
use oae_methods::rag::dense::{self, DenseIndex, HnswParams, Vectors};
use oae_methods::scorers::minilm::{MODEL, MiniLm};

fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((p / 100.0) * (v.len() as f64 - 1.0)).round() as usize;
    v[i.min(v.len() - 1)]
}

fn latencies(n: usize, mut f: impl FnMut(usize)) -> (f64, f64) {
    let mut v: Vec<f64> = (0..n)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    (percentile(&mut v, 50.0), percentile(&mut v, 99.0))
}

fn squad_paragraphs() -> Option<(Vec<String>, Vec<String>)> {
    let root = oae_quality::datasets::cache_dir();
    let e = oae_quality::datasets::entry("squad")?;
    if !e.present(&root) {
        return None;
    }
    let docs = oae_quality::kb::load(&e.kb_path(&root)).ok()?;
    let items = oae_quality::task::load(&e.tasks_path(&root)).ok()?;
    let texts = docs.into_iter().map(|d| format!("{}\n{}", d.title, d.text)).collect();
    let questions = items
        .into_iter()
        .filter_map(|i| i.question)
        .step_by(50)
        .take(200)
        .collect();
    Some((texts, questions))
}

fn embedding(minilm: &Option<MiniLm>, paragraphs: &Option<(Vec<String>, Vec<String>)>) {
    println!("\n## MiniLM embedding throughput");
    let (Some(m), Some((texts, _))) = (minilm, paragraphs) else {
        println!("SKIPPED: needs {MODEL} (`oae models fetch {MODEL}`) and squad (`oae datasets fetch squad`)");
        return;
    };
    let batch: Vec<&str> = texts.iter().take(256).map(String::as_str).collect();
    m.embed(&batch[..32]).unwrap();
    let t = Instant::now();
    m.embed(&batch).unwrap();
    let s = t.elapsed().as_secs_f64();
    println!(
        "{} SQuAD paragraphs in {s:.2} s = {:.1} chunks/s (threads: RAYON_NUM_THREADS={})",
        batch.len(),
        batch.len() as f64 / s,
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into())
    );
}

fn indexes(quick: bool) {
    println!("\n## Dense index build, memory and query latency (384-d unit vectors, seeded, clustered)");
    println!("| vectors | index | build s | resident MB | recall@10 | query p50 ms | query p99 ms |");
    println!("|---:|---|---:|---:|---:|---:|---:|");
    let sizes: &[usize] = if quick { &[10_000] } else { &[10_000, 100_000] };
    for &n in sizes {
        let rows = dense::seeded_unit_vectors(n + 200, 384, (n / 150).max(8), 0.12, 7);
        let (data, queries) = rows.split_at(n);
        let before = resident_bytes();
        let t = Instant::now();
        let v = Vectors::new(data);
        let exact_s = t.elapsed().as_secs_f64();
        let exact_mb = (resident_bytes().saturating_sub(before)) as f64 / 1e6;
        let exact = DenseIndex::exact(v.clone());
        let (p50, p99) = latencies(queries.len(), |i| {
            std::hint::black_box(exact.search(&queries[i], 10));
        });
        println!(
            "| {n} | exact | {exact_s:.3} | {exact_mb:.0} (vectors {:.0}) | 1 | {p50:.2} | {p99:.2} |",
            v.bytes() as f64 / 1e6
        );
        let before = resident_bytes();
        let t = Instant::now();
        let h = DenseIndex::hnsw(&v, HnswParams::default());
        let hnsw_s = t.elapsed().as_secs_f64();
        let hnsw_mb = (resident_bytes().saturating_sub(before)) as f64 / 1e6;
        let recall = dense::recall_at_k(&v, &h, queries, 10);
        let (p50, p99) = latencies(queries.len(), |i| {
            std::hint::black_box(h.search(&queries[i], 10));
        });
        println!(
            "| {n} | hnsw (ef_construction 200, ef 128, M 32) | {hnsw_s:.1} | {hnsw_mb:.0} | {recall:.4} | {p50:.3} | {p99:.3} |"
        );
    }
}

fn retrievers(minilm: &Option<MiniLm>, paragraphs: &Option<(Vec<String>, Vec<String>)>) {
    println!("\n## Query latency over SQuAD's paragraphs (200 SQuAD questions)");
    let Some((texts, questions)) = paragraphs else {
        println!("SKIPPED: needs squad (`oae datasets fetch squad`)");
        return;
    };
    let t = Instant::now();
    let bm = Bm25::build(texts.iter().map(String::as_str));
    let build = t.elapsed().as_secs_f64();
    let (p50, p99) = latencies(questions.len(), |i| {
        std::hint::black_box(oae_methods::rag::bm25::top_k(&bm.scores(&questions[i]), 3));
    });
    println!(
        "BM25 over {} paragraphs: build {build:.3} s, {:.1} MB; top-3 query p50 {p50:.3} ms, p99 {p99:.3} ms",
        bm.len(),
        bm.bytes() as f64 / 1e6
    );
    let Some(m) = minilm else {
        println!("dense: SKIPPED (needs {MODEL})");
        return;
    };
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let t = Instant::now();
    let v = Vectors::new(&m.embed(&refs).unwrap());
    let embed_s = t.elapsed().as_secs_f64();
    let idx = DenseIndex::exact(v);
    let (e50, e99) = latencies(questions.len(), |i| {
        std::hint::black_box(m.embed(&[questions[i].as_str()]).unwrap());
    });
    let qv: Vec<Vec<f32>> = questions
        .iter()
        .map(|q| m.embed(&[q.as_str()]).unwrap().remove(0))
        .collect();
    let (s50, s99) = latencies(qv.len(), |i| {
        std::hint::black_box(idx.search(&qv[i], 3));
    });
    println!(
        "dense (MiniLM, exact) over {} paragraphs: embedding them {embed_s:.1} s ({:.1} chunks/s); query embed p50 {e50:.2} ms, p99 {e99:.2} ms; search p50 {s50:.3} ms, p99 {s99:.3} ms",
        idx.len(),
        idx.len() as f64 / embed_s
    );
}

fn cag(paragraphs: &Option<(Vec<String>, Vec<String>)>) {
    println!("\n## CAG: preload, cache bytes, restore and the first query against knowledge size");
    let smollm = catalog::entry("smollm2-135m-instruct").is_some_and(|e| e.present(&catalog::cache_dir()));
    let model = if smollm {
        "{ kind = \"gguf\", name = \"smollm2-135m-instruct\" }"
    } else {
        println!("(smollm2-135m-instruct not cached: the embedded synthetic model instead)");
        "{ kind = \"synthetic\" }"
    };
    let ctx = BuildContext {
        device: DeviceSpec::Cpu,
        seed: 0,
        label: "bench".into(),
        instance: 0,
        knowledge: Vec::new().into(),
    };
    let (g, _) = Generator::from_config(
        &ConfigTable::parse("bench.toml", &format!("model = {model}")).unwrap(),
        &ctx,
    )
    .unwrap();
    let m = g.load().unwrap();
    let text: String = match paragraphs {
        Some((t, _)) => t.iter().take(80).cloned().collect::<Vec<_>>().join("\n\n"),
        None => "The river town keeps its old stone bridge. ".repeat(800),
    };
    let all = m.tokenizer.encode(&text).unwrap();
    let question = m.tokenizer.encode_more("Question: Who won the game?\nAnswer:").unwrap();
    println!("model: {}", m.name);
    println!(
        "| knowledge tokens | preload s | tokens/s | cache MB | restore µs (p50 of 100) | first query prefill ms (p50 of 5) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for n in [512usize, 1024, 2048, 4096, 7168] {
        if n + question.len() + 8 > m.decoder.config().max_seq || n > all.len() {
            continue;
        }
        let mut cache = KvCache::new(m.decoder.config().layers);
        let t = Instant::now();
        oae_methods::generate::prefill(&m, &all[..n], &mut cache).unwrap();
        let preload = t.elapsed().as_secs_f64();
        let (restore, _) = latencies(100, |_| {
            std::hint::black_box(cache.clone());
        });
        let (first, _) = latencies(5, |_| {
            let mut c = cache.clone();
            oae_methods::generate::prefill(&m, &question, &mut c).unwrap();
        });
        println!(
            "| {n} | {preload:.2} | {:.0} | {:.1} | {:.1} | {first:.1} |",
            n as f64 / preload,
            cache.bytes() as f64 / 1e6,
            restore * 1e3
        );
    }
}

fn main() {
    let quick = std::env::var("OAE_KNOWLEDGE_QUICK").is_ok();
    let root = catalog::cache_dir();
    let minilm = catalog::entry(MODEL)
        .is_some_and(|e| e.present(&root))
        .then(|| MiniLm::from_cache().unwrap());
    // `cargo bench` passes `--bench`; no other argument is read.
    let paragraphs = squad_paragraphs();
    let only = std::env::var("OAE_KNOWLEDGE_ONLY").ok();
    let run = |part: &str| only.as_deref().is_none_or(|o| o == part);
    if run("embedding") {
        embedding(&minilm, &paragraphs);
    }
    if run("retrievers") {
        retrievers(&minilm, &paragraphs);
    }
    if run("indexes") {
        indexes(quick);
    }
    if run("cag") {
        cag(&paragraphs);
    }
}
