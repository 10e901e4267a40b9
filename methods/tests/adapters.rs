//! moe and speculative against dense: the invariants that make the comparison fair.

use std::collections::BTreeMap;

use candle_core::{DType, Device};
use oae_core::rng::seeded;
use oae_harness::Method;
use oae_methods::model::{KvCache, Logits, ModelSpec, SyntheticSpec, all_rows};
use oae_methods::moe::{RouterInit, Upcycle};
use oae_methods::speculative::verify;
use oae_workloads::Request;

mod common;
use common::{build, ready, request};

fn generate(m: &mut dyn Method, r: &Request) -> (Vec<u32>, BTreeMap<String, f64>) {
    let (t, _, c) = common::serve(m, r);
    (t, c)
}

const MODEL: &str = "model = { kind = \"synthetic\", max_seq = 256 }\n";

#[test]
fn upcycled_moe_with_identical_experts_equals_dense() {
    let dense = ModelSpec::Synthetic(SyntheticSpec {
        max_seq: 128,
        ..SyntheticSpec::default()
    })
    .load(&Device::Cpu)
    .unwrap();
    let moe = Upcycle {
        experts: 4,
        top_k: 2,
        noise: 0.0,
        router: RouterInit::Random,
        seed: 3,
    }
    .apply(&dense.decoder)
    .unwrap();
    // The same arithmetic to f32 rounding: with keys and values kept in f32 (in f16 a last-bit
    // difference can round a cached element the other way).
    let moe = moe.with_kv_dtype(DType::F32).unwrap();
    let dense_decoder = dense
        .decoder
        .to_dtype(DType::F32)
        .unwrap()
        .with_kv_dtype(DType::F32)
        .unwrap();
    assert_eq!(moe.config().params() - dense.decoder.config().params(), {
        let c = dense.decoder.config();
        c.layers * (3 * 3 * c.hidden * c.ffn + c.hidden * 4)
    });
    let tokens = dense
        .tokenizer
        .encode("Identical experts, mixed with weights summing to one.")
        .unwrap();
    let mut c1 = KvCache::new(4);
    let mut c2 = KvCache::new(4);
    let a = all_rows(&dense_decoder.forward(&tokens, &mut c1, Logits::All).unwrap()).unwrap();
    let b = all_rows(&moe.forward(&tokens, &mut c2, Logits::All).unwrap()).unwrap();
    for (x, y) in a.iter().zip(&b) {
        let d = x.iter().zip(y).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
        assert!(d < 1e-4, "logits differ by {d}");
    }
    // Through the adapters too: same greedy tokens, and routing counters add up.
    let mut d = ready("dense", &format!("ignore_eos = true\n{MODEL}"));
    let mut m = ready(
        "moe",
        &format!("ignore_eos = true\n{MODEL}upcycle = {{ experts = 4, top_k = 2, noise = 0.0 }}\n"),
    );
    let r = request(1, "Upcycling check.", 20);
    let (td, _) = generate(d.as_mut(), &r);
    let (tm, counters) = generate(m.as_mut(), &r);
    assert_eq!(td, tm);
    let routed: f64 = (0..4).map(|i| counters[&format!("expert_{i}_tokens")]).sum();
    // Prompt (BOS + 16 bytes) and 19 decode steps, 4 layers, 2 experts per token.
    assert_eq!(routed, ((17 + 19) * 4 * 2) as f64);
    assert!(counters["router_ms"] > 0.0);
    assert!(counters["load_cv"] >= 0.0);
}

/// Upcycling a quantized model keeps its experts quantized alike (a dense baseline in Q8_0
/// against f32 experts would charge MoE for the format, not the structure); identical
/// experts still give the dense logits.
#[test]
fn upcycled_experts_of_a_quantized_model_stay_quantized() {
    use oae_methods::model::WeightFormat;
    let base = ModelSpec::Synthetic(SyntheticSpec {
        max_seq: 128,
        weights: WeightFormat::Q8_0,
        ..SyntheticSpec::default()
    })
    .load(&Device::Cpu)
    .unwrap();
    let c = *base.decoder.config();
    let dense = base.decoder.weight_types();
    let tokens = base.tokenizer.encode("Quantized experts.").unwrap();
    let mut cache = KvCache::new(c.layers);
    let want = all_rows(&base.decoder.forward(&tokens, &mut cache, Logits::All).unwrap()).unwrap();
    for noise in [0.0, 0.05] {
        let moe = Upcycle {
            experts: 4,
            top_k: 2,
            noise,
            router: RouterInit::Random,
            seed: 3,
        }
        .apply(&base.decoder)
        .unwrap();
        let types = moe.weight_types();
        // f32: the norms as before plus one router per layer; every expert matrix in q8_0.
        assert_eq!(types["f32"], dense["f32"] + c.layers * c.hidden * 4 * 4, "{types:?}");
        assert_eq!(types.len(), 2, "{types:?}");
        assert!(
            types["q8_0"] > dense["q8_0"] + 2 * c.layers * 3 * c.hidden * c.ffn,
            "{types:?}"
        );
        let mut cache = KvCache::new(c.layers);
        let got = all_rows(&moe.forward(&tokens, &mut cache, Logits::All).unwrap()).unwrap();
        let d = got
            .iter()
            .flatten()
            .zip(want.iter().flatten())
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        if noise == 0.0 {
            assert!(d < 1e-4, "identical experts moved the logits by {d}");
        } else {
            assert!(d > 1e-3, "noisy experts left the logits unchanged");
        }
    }
}

#[test]
fn noisy_experts_change_the_output_and_synthetic_moe_runs() {
    let mut m = ready(
        "moe",
        "ignore_eos = true\nmodel = { kind = \"synthetic\", max_seq = 256, experts = 8, top_k = 2, ffn = 96 }\n",
    );
    let (t, c) = generate(m.as_mut(), &request(2, "Eight experts.", 10));
    assert_eq!(t.len(), 10);
    assert!(c.contains_key("expert_7_tokens"));
    let facts = m.facts();
    assert_eq!(facts["moe_source"], "synthetic");
    // Perturbed experts are no longer the dense FFN.
    let mut d = ready("dense", &format!("ignore_eos = true\n{MODEL}"));
    let mut noisy = ready(
        "moe",
        &format!("ignore_eos = true\n{MODEL}upcycle = {{ experts = 4, top_k = 2, noise = 0.5 }}\n"),
    );
    let r = request(5, "Noise check.", 24);
    assert_ne!(generate(d.as_mut(), &r).0, generate(noisy.as_mut(), &r).0);
    assert!(facts["weight_bytes"].as_u64().unwrap() > 4 * facts["active_params"].as_u64().unwrap());
}

/// On f32 weights and on q8_0 blocks (whose kernels give every row the same arithmetic
/// whether it is verified in a batch or decoded alone), with the KV cache in f16 (the CPU's
/// default) and in f32.
#[test]
fn greedy_speculative_equals_greedy_dense_token_for_token() {
    for (weights, kv) in [("f32", "f16"), ("q8_0", "f32")] {
        let model = format!(
            "kv_cache = \"{kv}\"\nmodel = {{ kind = \"synthetic\", max_seq = 256, weights = \"{weights}\" }}\n"
        );
        let mut dense = ready("dense", &format!("ignore_eos = true\n{model}"));
        assert_eq!(dense.facts()["weights"]["format"], weights);
        assert_eq!(dense.facts()["kv_cache_dtype"], kv);
        for (draft, extra) in [
            ("draft = { layers = 2 }".to_string(), ""),
            ("draft = { layers = 1 }".to_string(), "adaptive = true\ngamma_max = 6\n"),
            (
                format!(
                    "draft = {{ model = {{ kind = \"synthetic\", seed = 9, layers = 1, max_seq = 256, weights = \"{weights}\" }} }}"
                ),
                "gamma = 3\n",
            ),
        ] {
            let mut spec = ready("speculative", &format!("ignore_eos = true\n{model}{draft}\n{extra}"));
            for (i, prompt) in [
                "A short prompt.",
                "Another, longer prompt about speculative decoding 123.",
            ]
            .iter()
            .enumerate()
            {
                let r = request(i as u64, prompt, 40);
                let (want, _) = generate(dense.as_mut(), &r);
                let (got, c) = generate(spec.as_mut(), &r);
                assert_eq!(got, want, "{weights}: {draft} {extra}");
                assert!(c["verify_steps"] >= 1.0);
                assert!(c["accepted"] <= c["drafted"]);
                let rate = c["accepted"] / c["drafted"];
                assert!((c["acceptance_rate"] - rate).abs() < 1e-12);
                assert!((c["mean_acceptance_length"] - (1.0 + c["accepted"] / c["verify_steps"])).abs() < 1e-12);
                assert!(c["accepted_pos_1"] <= c["drafted_pos_1"]);
            }
        }
    }
}

/// Quantized weights compute with f32 activations: another dtype is refused at setup with
/// the way out, and the facts say which blocks and kernels ran.
#[test]
fn quantized_weights_name_their_blocks_and_refuse_other_dtypes() {
    let d = ready(
        "dense",
        "model = { kind = \"synthetic\", max_seq = 64, weights = \"q8_0\" }\n",
    );
    let f = d.facts();
    let w = &f["weights"];
    assert!(w["bytes_by_type"]["q8_0"].as_u64().unwrap() > 0, "{w}");
    assert!(w["kernels"].as_str().is_some_and(|k| !k.is_empty()));
    assert!(f["weight_bytes"].as_u64().unwrap() < 2 * f["params"].as_u64().unwrap());
    let mut m = build(
        "dense",
        "dtype = \"bf16\"\nmodel = { kind = \"synthetic\", max_seq = 64, weights = \"q8_0\" }\n",
    )
    .unwrap();
    let e = m.prepare().unwrap_err().to_string();
    assert!(e.contains("f32") && e.contains("weights"), "{e}");
}

/// The KV cache is f16 on the CPU unless asked for in f32; a type the CPU's f32 path or the
/// dtype does not hold is refused when the suite is read, naming the key and the way out.
#[test]
fn the_kv_cache_is_f16_on_the_cpu_unless_asked_otherwise() {
    let m = "model = { kind = \"synthetic\", max_seq = 64 }\n";
    assert_eq!(ready("dense", m).facts()["kv_cache_dtype"], "f16");
    assert_eq!(
        ready("dense", &format!("kv_cache = \"f32\"\n{m}")).facts()["kv_cache_dtype"],
        "f32"
    );
    let f = ready("dense", &format!("dtype = \"bf16\"\n{m}")).facts();
    assert_eq!((&f["dtype"], &f["kv_cache_dtype"]), (&"bf16".into(), &"bf16".into()));
    // The error names the file, the key's line and the way out.
    for (bad, line) in [
        ("kv_cache = \"bf16\"\n", "m.toml:1"),
        ("dtype = \"bf16\"\nkv_cache = \"f16\"\n", "m.toml:2"),
    ] {
        let e = build("dense", &format!("{bad}{m}")).err().expect(bad).to_string();
        assert!(e.contains("kv_cache") && e.contains("f32"), "{e}");
        assert!(e.contains(line), "{e}");
    }
}

#[test]
fn a_faithful_draft_is_always_accepted() {
    // Residual scale 0: every block is the identity, so the 1-layer draft is the target.
    let cfg = "ignore_eos = true\nmodel = { kind = \"synthetic\", max_seq = 256, residual_scale = 0.0 }\ndraft = { layers = 1 }\ngamma = 4\n";
    let mut spec = ready("speculative", cfg);
    let (t, c) = generate(spec.as_mut(), &request(0, "Agreement.", 21));
    assert_eq!(t.len(), 21);
    assert_eq!(c["acceptance_rate"], 1.0);
    // 1 token from prefill, then blocks of 4 accepted + 1 bonus.
    assert_eq!(c["verify_steps"], 4.0);
    assert_eq!(c["mean_acceptance_length"], 5.0);
}

/// Pearson chi-square statistic of counts against expected probabilities.
fn chi_square(counts: &[u64], p: &[f64]) -> f64 {
    let n: u64 = counts.iter().sum();
    counts
        .iter()
        .zip(p)
        .filter(|&(_, &q)| q > 0.0)
        .map(|(&c, &q)| {
            let e = q * n as f64;
            (c as f64 - e).powi(2) / e
        })
        .sum()
}

#[test]
fn rejection_sampling_reproduces_the_target_distribution() {
    // A 5-token vocabulary; target p and a deliberately different draft q at each of
    // two positions. The first emitted token must follow p[0] exactly; with the first
    // draft accepted, the second must follow p[1].
    let p = vec![
        vec![0.40, 0.25, 0.20, 0.10, 0.05],
        vec![0.05, 0.10, 0.50, 0.30, 0.05],
        vec![0.20, 0.20, 0.20, 0.20, 0.20],
    ];
    let q = vec![vec![0.10, 0.10, 0.30, 0.30, 0.20], vec![0.30, 0.30, 0.20, 0.10, 0.10]];
    let mut rng = seeded(7, &["chi-square"]);
    let mut first = [0u64; 5];
    let mut second = [0u64; 5];
    let draws = 40_000;
    for _ in 0..draws {
        let d0 = oae_methods::model::sample_from(&q[0], &mut rng);
        let d1 = oae_methods::model::sample_from(&q[1], &mut rng);
        let v = verify(&[d0, d1], &q, &p, false, &mut rng);
        let tokens: Vec<u32> = [d0, d1][..v.accepted].iter().copied().chain([v.next]).collect();
        first[tokens[0] as usize] += 1;
        if tokens.len() > 1 {
            second[tokens[1] as usize] += 1;
        }
    }
    // 4 degrees of freedom: the 0.1% critical value is 18.47.
    let c1 = chi_square(&first, &p[0]);
    let c2 = chi_square(&second, &p[1]);
    assert!(c1 < 18.47, "first token: chi-square {c1}, counts {first:?}");
    assert!(c2 < 18.47, "second token: chi-square {c2}, counts {second:?}");
    // And the test has power: the draft's own distribution is rejected.
    assert!(chi_square(&first, &q[0]) > 100.0);
}

#[test]
fn sampled_speculative_output_is_distributed_like_dense() {
    // A 3-token nucleus of the synthetic model's next-token distribution, sampled over many
    // request seeds by dense and by speculative: the first three generated tokens'
    // distributions must agree (two-sample chi-square on each position).
    let base = "ignore_eos = true\ntemperature = 1.0\ntop_k = 3\nmodel = { kind = \"synthetic\", max_seq = 128, layers = 2, hidden = 64, heads = 2, kv_heads = 1, ffn = 128, logit_scale = 1.0 }\n";
    let mut dense = ready("dense", base);
    let mut spec = ready("speculative", &format!("{base}draft = {{ layers = 1 }}\ngamma = 2\n"));
    let n = 1500u64;
    let mut counts: [BTreeMap<u32, [u64; 2]>; 3] = Default::default();
    for id in 0..n {
        for (k, m) in [dense.as_mut(), spec.as_mut()].into_iter().enumerate() {
            // Different request ids draw from different streams in both methods.
            let (t, _) = generate(m, &request(id + k as u64 * n, "Sampling check:", 3));
            for (pos, tok) in t.iter().enumerate() {
                counts[pos].entry(*tok).or_default()[k] += 1;
            }
        }
    }
    for (pos, table) in counts.iter().enumerate() {
        // Two-sample chi-square over tokens seen at least 5 times in total.
        let cells: Vec<[u64; 2]> = table.values().copied().filter(|c| c[0] + c[1] >= 5).collect();
        let (na, nb) = (
            cells.iter().map(|c| c[0]).sum::<u64>() as f64,
            cells.iter().map(|c| c[1]).sum::<u64>() as f64,
        );
        let stat: f64 = cells
            .iter()
            .map(|c| {
                let t = (c[0] + c[1]) as f64;
                let (ea, eb) = (t * na / (na + nb), t * nb / (na + nb));
                (c[0] as f64 - ea).powi(2) / ea + (c[1] as f64 - eb).powi(2) / eb
            })
            .sum();
        let df = cells.len().saturating_sub(1).max(1) as f64;
        // Wilson–Hilferty 0.1% critical value of chi-square with df degrees of freedom.
        let z = 3.09;
        let crit = df * (1.0 - 2.0 / (9.0 * df) + z * (2.0 / (9.0 * df)).sqrt()).powi(3);
        assert!(
            stat < crit,
            "position {pos}: chi-square {stat:.1} >= {crit:.1} with {df} df: {table:?}"
        );
    }
}

#[test]
fn bad_speculative_and_moe_configs_name_the_key() {
    let err = |id: &str, toml: &str| build(id, toml).err().map(|e| e.to_string()).unwrap_or_default();
    let e = err("speculative", &format!("{MODEL}draft = {{ layers = 2 }}\ngamma = 0\n"));
    assert!(e.contains("gamma") && e.contains("m.toml"), "{e}");
    let e = err("speculative", &format!("{MODEL}draft = {{ layers = 4 }}\n"));
    assert!(e.contains("draft") && e.contains("less than"), "{e}");
    let e = err("speculative", MODEL);
    assert!(e.contains("draft"), "{e}");
    let e = err(
        "speculative",
        &format!("{MODEL}draft = {{ layers = 1, model = {{ kind = \"synthetic\" }} }}\n"),
    );
    assert!(e.contains("exactly one"), "{e}");
    let e = err("moe", MODEL);
    assert!(e.contains("experts"), "{e}");
    let e = err("moe", &format!("{MODEL}upcycle = {{ experts = 2, top_k = 3 }}\n"));
    assert!(e.contains("upcycle.top_k"), "{e}");
    let e = err("dense", &format!("{MODEL}gamma = 3\n"));
    assert!(e.contains("unknown field") && e.contains("gamma"), "{e}");
    let e = err("dense", "model = { kind = \"synthetic\", weights = \"q4\" }\n");
    assert!(e.contains("m.toml") && e.contains("q4") && e.contains("q8_0"), "{e}");
    // A width that is not whole Q8_0 blocks fails at prepare, naming the option and the way out.
    let mut m = build(
        "dense",
        "model = { kind = \"synthetic\", hidden = 72, heads = 2, kv_heads = 1, ffn = 96, weights = \"q8_0\" }\n",
    )
    .unwrap();
    let e = m.prepare().unwrap_err().to_string();
    assert!(
        e.contains("weights = \"q8_0\"") && e.contains("whole Q8_0 blocks") && e.contains("f32"),
        "{e}"
    );

    // Mismatched vocabularies surface at prepare, naming the draft.
    let mut m = build(
        "speculative",
        &format!("{MODEL}draft = {{ model = {{ kind = \"synthetic\", vocab = 600, layers = 1 }} }}\n"),
    )
    .unwrap();
    let e = m.prepare().err().unwrap().to_string();
    assert!(e.contains("vocabulary") && e.contains("draft.model"), "{e}");
}

#[test]
fn depth_and_expert_errors_on_loaded_models_surface_at_prepare() {
    // A 4-layer dense model on disk: its shape is known only once loaded.
    let m = ModelSpec::Synthetic(SyntheticSpec {
        max_seq: 128,
        ..SyntheticSpec::default()
    })
    .load(&Device::Cpu)
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    oae_methods::model::save_hf(&m.decoder, dir.path()).unwrap();
    common::write_min_tokenizer(dir.path());
    let model = format!(
        "model = {{ kind = \"hf\", path = {:?} }}\n",
        dir.path().display().to_string()
    );

    let mut spec = build("speculative", &format!("{model}draft = {{ layers = 4 }}\n")).unwrap();
    let e = spec.prepare().err().unwrap().to_string();
    assert!(e.contains("draft.layers (4)") && e.contains("4 layers"), "{e}");

    let mut moe = build("moe", &model).unwrap();
    let e = moe.prepare().err().unwrap().to_string();
    assert!(e.contains("dense model") && e.contains("upcycle"), "{e}");

    // The same directory serves as a self-speculative target when the depth fits.
    let mut ok = ready(
        "speculative",
        &format!("ignore_eos = true\nchat = \"off\"\n{model}draft = {{ layers = 2 }}\n"),
    );
    let (t, c) = generate(ok.as_mut(), &request(0, "a", 6));
    assert_eq!(t.len(), 6);
    assert!(c["verify_steps"] >= 1.0);
}
