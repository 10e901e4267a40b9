//! GGUF and Hugging Face loaders on files written here from the synthetic model (no
//! downloads): a round trip must reproduce the logits, and broken files must fail with an
//! error naming the file and what is wrong.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};
use oae_methods::model::{
    Decoder, KvCache, LoadedModel, Logits, ModelSpec, SyntheticSpec, all_rows, load_gguf, load_hf, save_hf,
};

fn synthetic() -> LoadedModel {
    ModelSpec::Synthetic(SyntheticSpec {
        max_seq: 128,
        ..SyntheticSpec::default()
    })
    .load(&Device::Cpu)
    .unwrap()
}

fn logits(d: &Decoder, tokens: &[u32]) -> Vec<Vec<f32>> {
    let mut c = KvCache::new(d.config().layers);
    all_rows(&d.forward(tokens, &mut c, Logits::All).unwrap()).unwrap()
}

fn assert_close(a: &[Vec<f32>], b: &[Vec<f32>]) {
    for (x, y) in a.iter().zip(b) {
        let d = x.iter().zip(y).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
        assert!(d < 1e-4, "logits differ by {d}");
    }
}

/// A byte-level BPE tokenizer (256 byte symbols, no merges) plus `<s>`, `</s>`.
fn byte_vocab() -> Vec<String> {
    let mut chars: Vec<char> = tokenizers::pre_tokenizers::byte_level::ByteLevel::alphabet()
        .into_iter()
        .collect();
    chars.sort();
    let mut v: Vec<String> = chars.into_iter().map(String::from).collect();
    v.push("<s>".into());
    v.push("</s>".into());
    v
}

fn write_tokenizer_json(dir: &Path) {
    use tokenizers::models::bpe::BPE;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    let vocab: tokenizers::models::bpe::Vocab = byte_vocab()
        .into_iter()
        .enumerate()
        .map(|(i, t)| (t, i as u32))
        .collect();
    let bpe = BPE::builder().vocab_and_merges(vocab, vec![]).build().unwrap();
    let mut t = tokenizers::Tokenizer::new(bpe);
    t.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    t.with_decoder(Some(ByteLevel::default()));
    t.add_special_tokens(vec![tokenizers::AddedToken::from("</s>", true)])
        .unwrap();
    t.save(dir.join("tokenizer.json"), false).unwrap();
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"eos_token": "</s>", "chat_template": "{{ '<|im_start|>' }}"}"#,
    )
    .unwrap();
}

#[test]
fn hf_directory_round_trip_reproduces_the_logits() {
    let m = synthetic();
    let dir = tempfile::tempdir().unwrap();
    save_hf(&m.decoder, dir.path()).unwrap();
    write_tokenizer_json(dir.path());
    let loaded = load_hf(dir.path(), Some(128), &Device::Cpu).unwrap();
    let tokens = [1u32, 50, 60, 70, 80, 90, 100];
    assert_close(&logits(&m.decoder, &tokens), &logits(&loaded.decoder, &tokens));
    assert_eq!(
        loaded
            .tokenizer
            .decode(&loaded.tokenizer.encode("round trip 42").unwrap()),
        "round trip 42"
    );
    assert_eq!(loaded.tokenizer.eos(), Some(257));
    assert_eq!(loaded.chat.as_ref().map(|c| c.name()), Some("chatml"));
}

#[test]
fn broken_hf_directories_name_the_file_and_the_problem() {
    let m = synthetic();
    let err = |dir: &Path| load_hf(dir, Some(128), &Device::Cpu).err().unwrap().to_string();

    // Unsupported architecture: names config.json and the field.
    let d = tempfile::tempdir().unwrap();
    save_hf(&m.decoder, d.path()).unwrap();
    write_tokenizer_json(d.path());
    let cfg = std::fs::read_to_string(d.path().join("config.json")).unwrap();
    std::fs::write(d.path().join("config.json"), cfg.replace("\"llama\"", "\"gpt_neox\"")).unwrap();
    let e = err(d.path());
    assert!(
        e.contains("config.json") && e.contains("model_type") && e.contains("gpt_neox"),
        "{e}"
    );

    // A missing config field: file, line and field.
    std::fs::write(
        d.path().join("config.json"),
        cfg.replace("\"hidden_size\"", "\"hidden_sise\""),
    )
    .unwrap();
    let e = err(d.path());
    assert!(e.contains("config.json:") && e.contains("hidden_size"), "{e}");
    std::fs::write(d.path().join("config.json"), &cfg).unwrap();

    // Truncated safetensors: names the shard.
    let st = d.path().join("model.safetensors");
    let bytes = std::fs::read(&st).unwrap();
    std::fs::write(&st, &bytes[..bytes.len() / 2]).unwrap();
    let e = err(d.path());
    assert!(
        e.contains("model.safetensors") && e.contains("truncated or corrupt"),
        "{e}"
    );

    // A missing tensor: names it.
    let mut tensors: HashMap<String, Tensor> = m.decoder.hf_tensors().unwrap().into_iter().collect();
    tensors.remove("model.layers.2.mlp.up_proj.weight");
    candle_core::safetensors::save(&tensors, &st).unwrap();
    let e = err(d.path());
    assert!(
        e.contains("model.layers.2.mlp.up_proj.weight") && e.contains("missing"),
        "{e}"
    );

    // A tensor of the wrong shape: names it and both shapes.
    let mut tensors: HashMap<String, Tensor> = m.decoder.hf_tensors().unwrap().into_iter().collect();
    tensors.insert(
        "model.norm.weight".into(),
        Tensor::ones(7, candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&tensors, &st).unwrap();
    let e = err(d.path());
    assert!(e.contains("model.norm.weight") && e.contains("[7]"), "{e}");
}

/// llama.cpp's conversion-time Q/K row permutation (for GGML's interleaved RoPE).
fn permute(w: &Tensor, heads: usize) -> Tensor {
    let (out, inp) = w.dims2().unwrap();
    w.reshape((heads, 2, out / heads / 2, inp))
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .contiguous()
        .unwrap()
        .reshape((out, inp))
        .unwrap()
}

/// Writes the synthetic model as a llama.cpp-style GGUF file (F32 tensors).
fn write_gguf(m: &LoadedModel, path: &Path) {
    write_gguf_as(m, path, GgmlDType::F32)
}

/// Writes the synthetic model as a GGUF file with its matrices in `matrices` blocks (norms
/// stay F32, as llama.cpp's `quantize` leaves them).
fn write_gguf_as(m: &LoadedModel, path: &Path, matrices: GgmlDType) {
    let c = *m.decoder.config();
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    for (name, t) in m.decoder.hf_tensors().unwrap() {
        let gguf = match name.as_str() {
            "model.embed_tokens.weight" => "token_embd.weight".to_string(),
            "model.norm.weight" => "output_norm.weight".to_string(),
            "lm_head.weight" => "output.weight".to_string(),
            n => {
                let rest = n.strip_prefix("model.layers.").unwrap();
                let (i, part) = rest.split_once('.').unwrap();
                let g = match part {
                    "input_layernorm.weight" => "attn_norm.weight",
                    "post_attention_layernorm.weight" => "ffn_norm.weight",
                    "self_attn.q_proj.weight" => "attn_q.weight",
                    "self_attn.k_proj.weight" => "attn_k.weight",
                    "self_attn.v_proj.weight" => "attn_v.weight",
                    "self_attn.o_proj.weight" => "attn_output.weight",
                    "mlp.gate_proj.weight" => "ffn_gate.weight",
                    "mlp.up_proj.weight" => "ffn_up.weight",
                    "mlp.down_proj.weight" => "ffn_down.weight",
                    other => panic!("{other}"),
                };
                format!("blk.{i}.{g}")
            }
        };
        let t = if gguf.ends_with("attn_q.weight") {
            permute(&t, c.heads)
        } else if gguf.ends_with("attn_k.weight") {
            permute(&t, c.kv_heads)
        } else {
            t
        };
        let ty = if t.rank() == 2 { matrices } else { GgmlDType::F32 };
        tensors.push((gguf, QTensor::quantize(&t, ty).unwrap()));
    }
    use gguf_file::Value;
    let tokens: Vec<Value> = byte_vocab().into_iter().map(Value::String).collect();
    let meta: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("llama".into())),
        ("general.name", Value::String("synthetic-gguf".into())),
        ("llama.embedding_length", Value::U32(c.hidden as u32)),
        ("llama.block_count", Value::U32(c.layers as u32)),
        ("llama.attention.head_count", Value::U32(c.heads as u32)),
        ("llama.attention.head_count_kv", Value::U32(c.kv_heads as u32)),
        ("llama.feed_forward_length", Value::U32(c.ffn as u32)),
        ("llama.context_length", Value::U32(c.max_seq as u32)),
        ("llama.rope.freq_base", Value::F32(c.rope_theta as f32)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(c.rms_eps as f32)),
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.tokens", Value::Array(tokens)),
        ("tokenizer.ggml.merges", Value::Array(vec![])),
        ("tokenizer.ggml.eos_token_id", Value::U32(257)),
    ];
    let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (*k, v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut f = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut f, &meta_refs, &tensor_refs).unwrap();
}

#[test]
fn gguf_round_trip_undoes_the_llama_cpp_permutation() {
    let m = synthetic();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("synthetic.gguf");
    write_gguf(&m, &path);
    let loaded = load_gguf(&path, Some(128), &Device::Cpu).unwrap();
    let tokens = [3u32, 14, 15, 92, 65, 35, 89, 79];
    assert_close(&logits(&m.decoder, &tokens), &logits(&loaded.decoder, &tokens));
    assert_eq!(loaded.stops, vec![257]);
    assert_eq!(
        loaded.tokenizer.decode(&loaded.tokenizer.encode("gguf 2024").unwrap()),
        "gguf 2024"
    );
}

/// Largest |a − b| over the largest |b|, across every position's logits.
fn relative_gap(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    let (mut gap, mut scale) = (0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        for (p, q) in x.iter().zip(y) {
            gap = gap.max((p - q).abs());
            scale = scale.max(q.abs());
        }
    }
    gap / scale
}

/// A GGUF file in each block format loads with its blocks kept (`as-file`): the logits stay
/// within the 8-bit activations' noise of the same blocks dequantized to F32, within the
/// weights' quantization noise of the model that was written (so the quantized Q/K rows were
/// un-permuted right), and a batch gives what one token at a time gives.
#[test]
fn quantized_gguf_files_keep_their_blocks_and_their_logits() {
    use oae_methods::model::WeightFormat;
    let wide = ModelSpec::Synthetic(SyntheticSpec {
        max_seq: 128,
        hidden: 256,
        ffn: 512,
        ..SyntheticSpec::default()
    })
    .load(&Device::Cpu)
    .unwrap();
    let tokens = [3u32, 14, 15, 92, 65, 35, 89, 79];
    let want = logits(&wide.decoder, &tokens);
    for (ty, name, weight_noise) in [
        (GgmlDType::Q8_0, "q8_0", 0.05),
        (GgmlDType::Q4_0, "q4_0", 0.5),
        (GgmlDType::Q4_1, "q4_1", 0.5),
        (GgmlDType::Q4K, "q4_k", 0.5),
        (GgmlDType::Q6K, "q6_k", 0.1),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.gguf");
        write_gguf_as(&wide, &path, ty);
        let file_bytes = std::fs::metadata(&path).unwrap().len() as f64;
        let q = load_gguf(&path, Some(128), &Device::Cpu).unwrap();
        let types = q.decoder.weight_types();
        assert!(types.contains_key(name), "{name}: {types:?}");
        // Resident: the file's bytes (plus the scale arrays' padding).
        let ratio = q.decoder.weight_bytes() as f64 / file_bytes;
        assert!(ratio < 1.1, "{name}: resident weights {ratio:.2}x the file");
        let f = q.decoder.convert_weights(WeightFormat::F32).unwrap();
        assert_eq!(f.weight_types().keys().collect::<Vec<_>>(), ["f32"]);
        let (lq, lf) = (logits(&q.decoder, &tokens), logits(&f, &tokens));
        let kernel = relative_gap(&lq, &lf);
        let weights = relative_gap(&lf, &want);
        eprintln!("{name}: as-file vs f32 {kernel:.4}, f32 vs written model {weights:.4}, resident {ratio:.3}x file");
        assert!(kernel < 0.05, "{name}: 8-bit activations moved the logits by {kernel}");
        assert!(
            weights < weight_noise,
            "{name}: the file's logits differ from the model's by {weights}"
        );
        // One token at a time gives the whole sequence's logits bit for bit: every weight
        // row meets every activation row alike, and attention runs row by row.
        let mut cache = KvCache::new(q.decoder.config().layers);
        let stepwise: Vec<Vec<f32>> = tokens
            .iter()
            .flat_map(|&t| all_rows(&q.decoder.forward(&[t], &mut cache, Logits::All).unwrap()).unwrap())
            .collect();
        assert!(
            stepwise == lq,
            "{name}: stepwise logits differ by {}",
            relative_gap(&stepwise, &lq)
        );
    }
}

#[test]
fn a_gguf_tokenizer_saved_as_tokenizer_json_encodes_the_same() {
    use oae_methods::model::{HfTokenizer, Tokenizer};
    let m = synthetic();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("synthetic.gguf");
    write_gguf(&m, &path);
    let from_gguf = HfTokenizer::from_gguf_file(&path).unwrap();
    let json = dir.path().join("tokenizer.json");
    from_gguf.save(&json).unwrap();
    let reloaded = HfTokenizer::new(HfTokenizer::from_file(&json).unwrap(), None, "tokenizer.json");
    for text in ["gguf 2024", "Hello, world!", ""] {
        assert_eq!(
            from_gguf.encode(text).unwrap(),
            reloaded.encode(text).unwrap(),
            "{text:?}"
        );
    }
    let err = HfTokenizer::from_gguf_file(&dir.path().join("absent.gguf"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("absent.gguf"), "{err}");
}

#[test]
fn broken_gguf_files_name_the_file_and_the_problem() {
    let m = synthetic();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    write_gguf(&m, &path);
    let bytes = std::fs::read(&path).unwrap();
    let err = |p: &Path| load_gguf(p, Some(128), &Device::Cpu).err().unwrap().to_string();

    let cut = dir.path().join("truncated.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() - 1000]).unwrap();
    let e = err(&cut);
    assert!(
        e.contains("truncated.gguf") && e.contains("truncated or corrupt"),
        "{e}"
    );

    // The same with quantized blocks, which are read straight from the file.
    let q = dir.path().join("q8.gguf");
    write_gguf_as(&m, &q, GgmlDType::Q8_0);
    let qbytes = std::fs::read(&q).unwrap();
    let qcut = dir.path().join("q8-truncated.gguf");
    std::fs::write(&qcut, &qbytes[..qbytes.len() - 1000]).unwrap();
    let e = err(&qcut);
    assert!(
        e.contains("q8-truncated.gguf") && (e.contains("truncated or corrupt") || e.contains("not a readable GGUF")),
        "{e}"
    );

    let header_only = dir.path().join("header.gguf");
    std::fs::write(&header_only, &bytes[..64]).unwrap();
    let e = err(&header_only);
    assert!(e.contains("header.gguf") && e.contains("not a readable GGUF"), "{e}");

    let not_gguf = dir.path().join("text.gguf");
    std::fs::write(&not_gguf, "this is not a model").unwrap();
    assert!(err(&not_gguf).contains("text.gguf"));

    let e = err(&dir.path().join("absent.gguf"));
    assert!(e.contains("absent.gguf") && e.contains("oae models fetch"), "{e}");

    // Another architecture: names the metadata key.
    let other = dir.path().join("other.gguf");
    let text = bytes.clone();
    let needle = b"llama.embedding_length";
    assert!(text.windows(needle.len()).any(|w| w == needle));
    let mut patched = text.clone();
    // Rewrite the architecture value "llama" (first occurrence after its key) as "gptjx".
    let key = b"general.architecture";
    let at = patched.windows(key.len()).position(|w| w == key).unwrap() + key.len();
    let val = patched[at..].windows(5).position(|w| w == b"llama").unwrap() + at;
    patched[val..val + 5].copy_from_slice(b"gptjx");
    std::fs::write(&other, &patched).unwrap();
    let e = err(&other);
    assert!(e.contains("general.architecture") && e.contains("gptjx"), "{e}");
}

#[test]
fn a_tokenizer_larger_than_the_embedding_is_rejected() {
    let m = ModelSpec::Synthetic(SyntheticSpec {
        max_seq: 64,
        vocab: 258,
        ..SyntheticSpec::default()
    })
    .load(&Device::Cpu)
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    save_hf(&m.decoder, dir.path()).unwrap();
    write_tokenizer_json(dir.path());
    let mut t = tokenizers::Tokenizer::from_file(dir.path().join("tokenizer.json")).unwrap();
    t.add_special_tokens(vec![tokenizers::AddedToken::from("<extra>", true)])
        .unwrap();
    t.save(dir.path().join("tokenizer.json"), false).unwrap();
    let e = load_hf(dir.path(), Some(64), &Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("259 tokens") && e.contains("only 258"), "{e}");
}
