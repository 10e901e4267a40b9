//! The adoption cost of one `rag` configuration: the parts it turns on, each with its
//! components, tuning knobs, engineer-weeks and the expertise it needs, summed into the
//! manifest the scorecards charge. Estimates by the oae maintainers (no survey behind them);
//! a site overrides them with `--manifest` like any other.

use super::{IndexKind, RagConfig, Retriever, Stage};

/// One part of a pipeline.
struct Part {
    components: &'static [&'static str],
    knobs: &'static [&'static str],
    deploy: [f64; 2],
    maintain: [f64; 2],
    /// 1 = IT generalist … 4 = ML specialist.
    level: u8,
}

const MODEL: Part = Part {
    components: &["model weights", "one inference process"],
    knobs: &["sampling settings", "prompt layout"],
    deploy: [0.5, 1.0],
    maintain: [0.5, 1.0],
    level: 2,
};
const FULL_CONTEXT: Part = Part {
    components: &["knowledge base assembled into every prompt"],
    knobs: &[],
    deploy: [0.25, 0.5],
    maintain: [0.0, 0.0],
    level: 2,
};
const SPARSE: Part = Part {
    components: &["knowledge-base ingestion (chunking)", "sparse index (BM25)"],
    knobs: &["chunk_tokens / chunk_overlap", "k"],
    deploy: [0.5, 2.0],
    maintain: [0.5, 1.0],
    level: 2,
};
const DENSE: Part = Part {
    components: &[
        "knowledge-base ingestion (chunking)",
        "embedding model (all-MiniLM-L6-v2)",
        "vector index",
    ],
    knobs: &["chunk_tokens / chunk_overlap", "k", "embedding model"],
    deploy: [1.0, 2.5],
    maintain: [0.75, 1.5],
    level: 2,
};
const HYBRID_EXTRA: Part = Part {
    components: &["sparse index (BM25)", "rank fusion"],
    knobs: &["fusion_depth"],
    deploy: [0.5, 1.0],
    maintain: [0.25, 0.5],
    level: 3,
};
const HNSW: Part = Part {
    components: &["approximate index (HNSW) with recall monitoring"],
    knobs: &["ef_search", "ef_construction"],
    deploy: [0.5, 1.0],
    maintain: [0.25, 0.5],
    level: 3,
};
const RERANK: Part = Part {
    components: &["reranker (the generator as relevance judge)"],
    knobs: &["candidates", "judge prompt"],
    deploy: [1.0, 2.0],
    maintain: [0.5, 1.0],
    level: 3,
};
const REWRITE: Part = Part {
    components: &["query rewriter and second retrieval (multi-hop)"],
    knobs: &["rewrite prompt", "rewrite_tokens"],
    deploy: [1.0, 2.0],
    maintain: [0.5, 1.0],
    level: 3,
};

fn level_name(level: u8) -> &'static str {
    match level {
        1 => "it-generalist",
        2 => "software-engineer",
        3 => "ml-engineer",
        _ => "ml-specialist",
    }
}

/// The parts a configuration turns on.
fn parts(cfg: &RagConfig) -> Vec<&'static Part> {
    let mut v = vec![&MODEL];
    match cfg.retriever {
        Retriever::None => {}
        Retriever::All => v.push(&FULL_CONTEXT),
        Retriever::Bm25 => v.push(&SPARSE),
        Retriever::Dense => v.push(&DENSE),
        Retriever::Hybrid => v.extend([&DENSE, &HYBRID_EXTRA]),
    }
    // `auto` turns HNSW on only for bases above `hnsw_above` chunks, unknown until setup:
    // charge it only when asked for by name.
    if cfg.retriever.embeds() && cfg.index == IndexKind::Hnsw {
        v.push(&HNSW);
    }
    if cfg.rerank == Stage::Generator {
        v.push(&RERANK);
    }
    if cfg.rewrite == Stage::Generator {
        v.push(&REWRITE);
    }
    v
}

fn list(items: &[&str]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| serde_json::to_string(s).expect("a string"))
        .collect();
    format!("[{}]", quoted.join(", "))
}

/// The manifest (TOML text, the scorecards' schema) of `cfg`.
pub fn compose(cfg: &RagConfig) -> String {
    let ps = parts(cfg);
    let mut components: Vec<&str> = Vec::new();
    let mut knobs: Vec<&str> = Vec::new();
    for p in &ps {
        for c in p.components {
            if !components.contains(c) {
                components.push(c);
            }
        }
        for k in p.knobs {
            if !knobs.contains(k) {
                knobs.push(k);
            }
        }
    }
    let sum = |f: fn(&Part) -> [f64; 2]| {
        let lo: f64 = ps.iter().map(|p| f(p)[0]).sum();
        let hi: f64 = ps.iter().map(|p| f(p)[1]).sum();
        format!("[{lo}, {hi}]")
    };
    let level = ps.iter().map(|p| p.level).max().unwrap_or(2);
    format!(
        "method = \"rag\"\nexpertise = \"{}\"\ncomponents = {}\ntuning_knobs = {}\nevidence = \"Estimate by the oae maintainers, summed over the parts this configuration turns on (methods/src/rag/manifest.rs): retriever `{}`{}{}{}; no survey behind it. Override per site.\"\n\n[engineer_weeks]\ndeploy = {}\nmaintain_per_year = {}\n",
        level_name(level),
        list(&components),
        list(&knobs),
        cfg.retriever.name(),
        if cfg.retriever.embeds() && cfg.index == IndexKind::Hnsw {
            ", HNSW index"
        } else {
            ""
        },
        if cfg.rerank == Stage::Generator {
            ", generator rerank"
        } else {
            ""
        },
        if cfg.rewrite == Stage::Generator {
            ", follow-up query"
        } else {
            ""
        },
        sum(|p| p.deploy),
        sum(|p| p.maintain),
    )
}
