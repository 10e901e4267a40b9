//! The dense and mock methods through the harness's Method socket.

use oae_harness::{Method, Probe};
use oae_workloads::Request;

mod common;
use common::{Collect, build, request};

fn generate(m: &mut dyn Method, r: &Request) -> (Vec<u32>, std::collections::BTreeMap<String, f64>) {
    let (t, phases, _) = common::serve(m, r);
    (t, phases)
}

#[test]
fn dense_greedy_is_deterministic_and_streams_every_token() {
    let cfg = "ignore_eos = true\nmodel = { kind = \"synthetic\", max_seq = 256 }\n";
    let mut a = build("dense", cfg).unwrap();
    let mut b = build("dense", cfg).unwrap();
    a.prepare().unwrap();
    b.prepare().unwrap();
    let r = request(3, "Explain the water cycle.", 24);
    let (ta, phases) = generate(a.as_mut(), &r);
    let (tb, _) = generate(b.as_mut(), &r);
    assert_eq!(ta.len(), 24);
    assert_eq!(ta, tb);
    // Same instance again: no state leaks between requests.
    assert_eq!(generate(a.as_mut(), &r).0, ta);
    assert!(phases.contains_key("prefill") && phases.contains_key("decode"));
}

#[test]
fn dense_sampling_is_seeded_per_request() {
    let cfg = |seed: u64| {
        format!(
            "ignore_eos = true\ntemperature = 1.0\ntop_p = 0.95\nseed = {seed}\nmodel = {{ kind = \"synthetic\", max_seq = 128 }}\n"
        )
    };
    let mut m = build("dense", &cfg(1)).unwrap();
    m.prepare().unwrap();
    let r = request(0, "hello", 16);
    let first = generate(m.as_mut(), &r).0;
    assert_eq!(generate(m.as_mut(), &r).0, first, "same (seed, request) ⇒ same tokens");
    let mut other = build("dense", &cfg(2)).unwrap();
    other.prepare().unwrap();
    assert_ne!(
        generate(other.as_mut(), &r).0,
        first,
        "different seed ⇒ different tokens"
    );
}

#[test]
fn dense_rejects_requests_beyond_context_with_a_fix() {
    let mut m = build("dense", "model = { kind = \"synthetic\", max_seq = 16 }\n").unwrap();
    m.prepare().unwrap();
    let mut probe = Probe::default();
    let e = m
        .serve(&request(0, "0123456789", 10), &mut Collect(vec![]), &mut probe)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("exceeds the model's context") && e.contains("shorten"),
        "{e}"
    );
}

#[test]
fn config_errors_name_the_key() {
    let e = build("dense", "temprature = 0.5\n").err().unwrap().to_string();
    assert!(e.contains("m.toml:1") && e.contains("temprature"), "{e}");
    let e = build("dense", "top_p = 1.5\n").err().unwrap().to_string();
    assert!(e.contains("top_p"), "{e}");
    let e = build("dense", "model = { kind = \"synthetic\", heads = 3 }\n")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("model") && e.contains("multiple"), "{e}");
    let e = build("mock", "prefill_ms = -1\n").err().unwrap().to_string();
    assert!(e.contains("prefill_ms"), "{e}");
}

#[test]
fn mock_fails_by_script() {
    let mut m = build("mock", "fail_every = 3\nfail_ids = [0]\n").unwrap();
    m.prepare().unwrap();
    let mut outcomes = Vec::new();
    for id in 0..6 {
        let mut probe = Probe::default();
        outcomes.push(m.serve(&request(id, "p", 2), &mut Collect(vec![]), &mut probe).is_ok());
    }
    assert_eq!(outcomes, vec![false, true, false, true, true, false]);
    let mut bad = build("mock", "fail_setup = true\n").unwrap();
    assert!(bad.prepare().is_err());
}

#[test]
fn every_method_ships_a_valid_manifest() {
    for spec in oae_methods::registry() {
        let text = spec
            .manifest()
            .unwrap_or_else(|| panic!("{} has no manifest.toml", spec.id()));
        let m = oae_scorecards::Manifest::parse(&format!("methods/src/{}/manifest.toml", spec.id()), text)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.method, spec.id());
    }
}
