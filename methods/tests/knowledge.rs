//! The knowledge methods on the embedded synthetic model and a small knowledge base written
//! for oae: CAG's restored cache gives the logits of a fresh prefill, RAG with every chunk in
//! document order builds the full-context prompt, a base over the context makes CAG not
//! applicable with the sizes named, retrieval finds the gold document, the complex pipeline
//! runs its stages, HNSW recall holds on 10k vectors, and each configuration's manifest adds
//! up. Dense retrieval with the real MiniLM runs when the model is cached and skips otherwise.

use std::path::Path;
use std::sync::Arc;

use oae_core::config::ConfigTable;
use oae_harness::{BuildContext, DeviceSpec, Method, MethodError, MethodSpec, Probe};
use oae_methods::cag::Cag;
use oae_methods::generate::Generator;
use oae_methods::knowledge::{self, Prompt};
use oae_methods::model::{KvCache, Logits, last_row};
use oae_methods::rag::Rag;
use oae_methods::rag::dense::{self, DenseIndex, HnswParams, Vectors};
use oae_quality::TaskItem;
use oae_workloads::{KnowledgeBase, Request, TaskRef};

mod common;

/// Four short documents about an invented town, so no model has seen them.
const KB: &str = r#"{"id": "Velmora#0", "title": "Velmora", "text": "Velmora is a river town in the invented province of Castrel. Its old bridge, the Pont Amarel, was built of grey limestone in 1642 by the mason Idris Falk, and it still carries carts to the market square every Thursday morning."}
{"id": "Velmora#1", "title": "Velmora", "text": "The Velmora lantern festival falls on the first new moon of autumn. Households float paper lanterns down the river Sasse, and the lantern that travels farthest wins a jar of quince honey from the guild of beekeepers."}
{"id": "Castrel#0", "title": "Castrel", "text": "Castrel is governed from the hill city of Orvane. Its council of nine meets in the copper-roofed hall and elects a warden for a term of seven years; the present warden is the botanist Mirela Ost."}
{"id": "Castrel#1", "title": "Castrel", "text": "Castrel's main export is saffron, grown on terraces above the Sasse valley. Harvest lasts three weeks in October, and the crocus threads are dried over oak embers in long stone sheds."}
"#;

fn base(dir: &Path, keys: &str) -> Arc<KnowledgeBase> {
    std::fs::write(dir.join("kb.jsonl"), KB).unwrap();
    let label = dir.join("suite.toml").display().to_string();
    let t = ConfigTable::parse(&label, &format!("name = \"town\"\npath = \"kb.jsonl\"\n{keys}")).unwrap();
    Arc::new(KnowledgeBase::from_table(t).unwrap())
}

fn ctx(kb: &Arc<KnowledgeBase>) -> BuildContext {
    BuildContext {
        device: DeviceSpec::Cpu,
        seed: 3,
        label: "k".into(),
        instance: 0,
        knowledge: vec![kb.clone()].into(),
    }
}

fn table(toml: &str) -> ConfigTable {
    ConfigTable::parse("m.toml", toml).unwrap()
}

fn rag(kb: &Arc<KnowledgeBase>, toml: &str) -> Rag {
    let mut r = Rag::new(&table(&format!("knowledge = \"town\"\n{toml}")), &ctx(kb)).unwrap();
    r.prepare().unwrap();
    r
}

fn request(question: &str, doc: Option<&str>) -> Request {
    Request {
        id: 1,
        prompt: question.into(),
        max_new_tokens: 6,
        target_input_tokens: 0,
        source_failed: false,
        task: doc.map(|d| TaskRef {
            item: Arc::new(TaskItem {
                id: "q".into(),
                question: Some(question.into()),
                prompt: None,
                context: None,
                doc_ids: vec![d.into()],
                references: vec!["x".into()],
                answer_type: Default::default(),
                choices: Vec::new(),
                group: None,
                tests: None,
            }),
            scorers: Arc::from(vec!["f1".to_string()]),
            reasoning: None,
        }),
    }
}

const Q: &str = "Who built the old bridge of Velmora?";

#[test]
fn cag_after_restore_gives_the_logits_of_a_fresh_prefill() {
    let dir = tempfile::tempdir().unwrap();
    // 96-token chunks with 16 shared: the byte-level prompt is ≈ 1,000 tokens, so the
    // preload runs in two blocks and the documents in several chunks.
    let kb = base(dir.path(), "chunk_tokens = 96\nchunk_overlap = 16");
    let mut cag = Cag::new(&table("knowledge = \"town\""), &ctx(&kb)).unwrap();
    cag.prepare().unwrap();
    let restored = cag.restored_logits(Q).unwrap();
    // Twice: the snapshot is not disturbed by a query.
    assert_eq!(cag.restored_logits(Q).unwrap(), restored);

    // A fresh prefill of knowledge + question, in one forward pass.
    let (g, _) = Generator::from_config(&table(""), &ctx(&kb)).unwrap();
    let m = g.load().unwrap();
    let chunks = knowledge::chunk(&kb, &m).unwrap();
    assert!(chunks.len() > kb.documents.len(), "long documents are split");
    let all: Vec<_> = chunks.iter().collect();
    let ids = Prompt::build(&g, &m, &all, Q).unwrap().ids();
    assert!(ids.len() > oae_methods::generate::prefill_block(m.decoder.config().heads, ids.len()));
    let mut cache = KvCache::new(m.decoder.config().layers);
    let fresh = last_row(&m.decoder.forward(&ids, &mut cache, Logits::Last).unwrap()).unwrap();
    let worst = restored
        .iter()
        .zip(&fresh)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-4, "largest logit difference {worst}");
}

#[test]
fn rag_with_every_chunk_in_document_order_builds_the_full_context_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let kb = base(dir.path(), "chunk_tokens = 96\nchunk_overlap = 16");
    let full = rag(&kb, "retriever = \"all\"");
    let n = full.chunks().len();
    let every = rag(&kb, &format!("retriever = \"bm25\"\nk = {n}\norder = \"document\""));
    let req = request(Q, None);
    let a = full.prompt(&req, &mut Probe::default()).unwrap();
    let b = every.prompt(&req, &mut Probe::default()).unwrap();
    assert_eq!(a, b);
    // And CAG caches exactly that head.
    let ranked = rag(&kb, &format!("retriever = \"bm25\"\nk = {n}"));
    assert_ne!(
        ranked.prompt(&req, &mut Probe::default()).unwrap(),
        a,
        "rank order differs"
    );
    let closed = rag(&kb, "retriever = \"none\"");
    let c = closed.prompt(&req, &mut Probe::default()).unwrap();
    assert_eq!(c.tail, a.tail, "every configuration asks the question the same way");
    assert!(
        c.head.len() < 60 && a.head.len() > 900,
        "closed book carries no passages"
    );
}

#[test]
fn a_knowledge_base_over_the_context_is_not_applicable_with_the_sizes_named() {
    let dir = tempfile::tempdir().unwrap();
    let kb = base(dir.path(), "");
    for (id, extra) in [("cag", ""), ("rag", "retriever = \"all\"\n")] {
        let spec = oae_methods::registry().into_iter().find(|s| s.id() == id).unwrap();
        let t = table(&format!(
            "knowledge = \"town\"\n{extra}model = {{ kind = \"synthetic\", max_seq = 300 }}"
        ));
        let mut m = spec.build(&t, &ctx(&kb)).unwrap();
        match m.prepare() {
            Err(MethodError::NotApplicable(msg)) => {
                assert!(
                    msg.contains("`town`") && msg.contains("4 documents") && msg.contains("context is 300 tokens"),
                    "{msg}"
                );
                assert!(msg.contains("smaller knowledge base"), "says how to fix it: {msg}");
            }
            Err(e) => panic!("{id}: wrong error {e}"),
            Ok(()) => panic!("{id}: a 300-token context cannot hold the base"),
        }
    }
    // Retrieval still fits: three passages of 96 tokens.
    let mut r = Rag::new(
        &table("knowledge = \"town\"\nk = 2\nmodel = { kind = \"synthetic\", max_seq = 600 }"),
        &ctx(&base(dir.path(), "chunk_tokens = 96\nchunk_overlap = 16")),
    )
    .unwrap();
    r.prepare().unwrap();
}

#[test]
fn bm25_finds_the_gold_document_and_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    let kb = base(dir.path(), "");
    let mut r = rag(&kb, "k = 1");
    let mut probe = Probe::default();
    let mut sink = common::Collect(Vec::new());
    let done = r
        .serve(
            &request("Which guild gives quince honey for the lantern?", Some("Velmora#1")),
            &mut sink,
            &mut probe,
        )
        .unwrap();
    assert!(done.input_tokens.is_some_and(|n| n > 100));
    let (phases, counters) = probe.finish();
    assert_eq!(counters["recall_at_k"], 1.0);
    assert_eq!(counters["chunks_retrieved"], 1.0);
    assert!(phases.contains_key("search") && phases.contains_key("prefill") && phases.contains_key("decode"));
    // A question about another document: the gold one is missed, and counted as missed.
    let mut probe = Probe::default();
    r.serve(
        &request("What is the main export of Castrel?", Some("Velmora#0")),
        &mut common::Collect(Vec::new()),
        &mut probe,
    )
    .unwrap();
    assert_eq!(probe.finish().1["recall_at_k"], 0.0);
}

#[test]
fn rerank_and_follow_up_query_run_their_stages() {
    let dir = tempfile::tempdir().unwrap();
    let kb = base(dir.path(), "");
    let mut r = rag(
        &kb,
        "k = 1\nrerank = \"generator\"\ncandidates = 3\nrewrite = \"generator\"\nrewrite_tokens = 4",
    );
    let mut probe = Probe::default();
    r.serve(
        &request(Q, Some("Velmora#0")),
        &mut common::Collect(Vec::new()),
        &mut probe,
    )
    .unwrap();
    let (phases, counters) = probe.finish();
    assert_eq!(counters["candidates_reranked"], 3.0);
    assert!(counters["rewrite_tokens"] <= 4.0);
    assert!((1.0..=2.0).contains(&counters["chunks_retrieved"]), "{counters:?}");
    for p in ["search", "rerank", "rewrite", "prefill", "decode"] {
        assert!(phases.contains_key(p), "phase {p} missing: {phases:?}");
    }
    // Options that refine no search are refused, naming the key.
    let e = Rag::new(
        &table("knowledge = \"town\"\nretriever = \"all\"\nrerank = \"generator\""),
        &ctx(&kb),
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("rerank"), "{e}");
    let e = Rag::new(&table("retriever = \"bm25\""), &ctx(&kb)).err().unwrap();
    assert!(e.to_string().contains("knowledge"), "{e}");
    let e = Rag::new(&table("knowledge = \"nowhere\""), &ctx(&kb)).err().unwrap();
    assert!(e.to_string().contains("town"), "lists the defined bases: {e}");
}

#[test]
fn hnsw_recall_at_10_is_at_least_095_against_exact_search_on_10k_vectors() {
    let rows = dense::seeded_unit_vectors(10_200, 384, 64, 0.12, 11);
    let (data, queries) = rows.split_at(10_000);
    let v = Vectors::new(data);
    let idx = DenseIndex::hnsw(&v, HnswParams::default());
    let recall = dense::recall_at_k(&v, &idx, queries, 10);
    eprintln!("HNSW recall@10 over {} held-out queries: {recall:.4}", queries.len());
    assert!(recall >= 0.95, "recall@10 = {recall}");
}

#[test]
fn each_rag_configuration_declares_what_it_adds() {
    let manifest = |toml: &str| {
        let spec = oae_methods::registry().into_iter().find(|s| s.id() == "rag").unwrap();
        let text = spec.manifest_for(&table(toml)).unwrap();
        oae_scorecards::Manifest::parse("composed", &text).unwrap()
    };
    let shipped = oae_scorecards::Manifest::parse("shipped", oae_methods::rag::SPEC.manifest().unwrap()).unwrap();
    let simple = manifest("knowledge = \"town\"");
    assert_eq!(
        (
            &simple.components,
            &simple.tuning_knobs,
            simple.expertise,
            simple.engineer_weeks
        ),
        (
            &shipped.components,
            &shipped.tuning_knobs,
            shipped.expertise,
            shipped.engineer_weeks
        ),
        "the shipped manifest is the default configuration's"
    );
    let complex =
        manifest("knowledge = \"town\"\nretriever = \"dense\"\nrerank = \"generator\"\nrewrite = \"generator\"");
    assert!(complex.weeks_over(3.0).1 > simple.weeks_over(3.0).1 + 2.0);
    assert!(complex.expertise > simple.expertise);
    assert!(complex.components.iter().any(|c| c.contains("reranker")));
    let closed = manifest("retriever = \"none\"");
    assert!(closed.weeks_over(3.0).1 < simple.weeks_over(3.0).1);
}

#[test]
fn dense_retrieval_with_minilm_finds_the_gold_document() {
    if oae_methods::model::catalog::entry("all-minilm-l6-v2")
        .is_none_or(|e| !e.present(&oae_methods::model::catalog::cache_dir()))
    {
        eprintln!("skipped: all-minilm-l6-v2 is not in the model cache (`oae models fetch all-minilm-l6-v2`)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let kb = base(dir.path(), "");
    for retriever in ["dense", "hybrid", "dense\"\nindex = \"hnsw"] {
        let mut r = rag(&kb, &format!("retriever = \"{retriever}\"\nk = 1"));
        let mut probe = Probe::default();
        r.serve(
            &request("Who leads the council of nine in Orvane?", Some("Castrel#0")),
            &mut common::Collect(Vec::new()),
            &mut probe,
        )
        .unwrap();
        let (phases, counters) = probe.finish();
        assert_eq!(counters["recall_at_k"], 1.0, "{retriever}");
        assert!(phases.contains_key("embed"), "{retriever}: {phases:?}");
        let setup = &r.facts()["rag"]["setup"];
        assert_eq!(
            setup["index"],
            if retriever.contains("hnsw") { "hnsw" } else { "exact" }
        );
        if retriever.contains("hnsw") {
            let recall = setup["hnsw_recall"]["recall_at_k"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&recall), "{setup}");
        }
    }
}

#[test]
fn cag_on_smollm2_gives_the_logits_of_a_fresh_prefill() {
    let root = oae_methods::model::catalog::cache_dir();
    if oae_methods::model::catalog::entry("smollm2-135m-instruct").is_none_or(|e| !e.present(&root)) {
        eprintln!(
            "skipped: smollm2-135m-instruct is not in the model cache (`oae models fetch smollm2-135m-instruct`)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let kb = base(dir.path(), "chunk_tokens = 64\nchunk_overlap = 8");
    let model = "model = { kind = \"gguf\", name = \"smollm2-135m-instruct\", max_seq = 1024 }";
    let mut cag = Cag::new(&table(&format!("knowledge = \"town\"\n{model}")), &ctx(&kb)).unwrap();
    cag.prepare().unwrap();
    let restored = cag.restored_logits(Q).unwrap();
    let (g, _) = Generator::from_config(&table(model), &ctx(&kb)).unwrap();
    let m = g.load().unwrap();
    let chunks = knowledge::chunk(&kb, &m).unwrap();
    let all: Vec<_> = chunks.iter().collect();
    let ids = Prompt::build(&g, &m, &all, Q).unwrap().ids();
    let mut cache = KvCache::new(m.decoder.config().layers);
    let fresh = last_row(&m.decoder.forward(&ids, &mut cache, Logits::Last).unwrap()).unwrap();
    let worst = restored
        .iter()
        .zip(&fresh)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let scale = fresh.iter().fold(0.0f32, |a, b| a.max(b.abs()));
    eprintln!(
        "SmolLM2 CAG: {} prompt tokens, largest logit difference {worst:e} (largest |logit| {scale})",
        ids.len()
    );
    assert!(
        worst < 1e-4 * scale.max(1.0),
        "largest logit difference {worst} at |logit| up to {scale}"
    );
}
