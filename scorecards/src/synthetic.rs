//! Synthetic run directories with known inputs: for tests of scoring, reports and the gate,
//! and for the score + report benchmark (a million records without a million real requests).
//!
//! The files follow the layout `oae run` writes (run.json, summary.json, requests.jsonl) with
//! only the fields scoring reads. Everything is seeded.

use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};

use crate::bootstrap::SplitMix;

/// One (method, workload) cell to synthesise.
#[derive(Debug, Clone)]
pub struct SynthCell {
    /// Method label.
    pub method: String,
    /// Registry id (selects the manifest).
    pub method_id: String,
    /// Workload.
    pub workload: String,
    /// Measured requests.
    pub requests: usize,
    /// Mean service time, s (exponentially distributed around it when `spread` > 0).
    pub service_s: f64,
    /// Relative spread of service time and energy (0: every request identical).
    pub spread: f64,
    /// Dynamic energy per request, J.
    pub dyn_j: f64,
    /// Loaded-idle power, W.
    pub idle_w: f64,
    /// Share of requests that fail.
    pub fail_share: f64,
    /// Weights, bytes.
    pub weight_bytes: f64,
}

impl SynthCell {
    /// A cell with quiet defaults: 0.1 s service, 5 J, 20 W idle, no failures.
    pub fn new(method: &str, method_id: &str, workload: &str, requests: usize) -> Self {
        SynthCell {
            method: method.into(),
            method_id: method_id.into(),
            workload: workload.into(),
            requests,
            service_s: 0.1,
            spread: 0.0,
            dyn_j: 5.0,
            idle_w: 20.0,
            fail_share: 0.0,
            weight_bytes: 1e9,
        }
    }
}

/// A synthetic run.
#[derive(Debug, Clone)]
pub struct SynthRun {
    /// Cells, written interleaved in record order.
    pub cells: Vec<SynthCell>,
    /// Workloads: (name, rate req/s, perturbs, perturbation).
    pub workloads: Vec<(String, f64, Option<String>, Option<String>)>,
    /// `complete` or `aborted`.
    pub status: String,
    /// run.json `scoring` (baseline, gate, manifests), or null.
    pub scoring: Value,
    /// E2E SLO, ms.
    pub slo_e2e_ms: Option<f64>,
    /// Seed of the per-request noise.
    pub seed: u64,
}

impl SynthRun {
    /// A complete run of `cells` on one workload at `rate_qps`.
    pub fn new(cells: Vec<SynthCell>, rate_qps: f64) -> Self {
        let mut workloads: Vec<(String, f64, Option<String>, Option<String>)> = Vec::new();
        for c in &cells {
            if !workloads.iter().any(|w| w.0 == c.workload) {
                workloads.push((c.workload.clone(), rate_qps, None, None));
            }
        }
        SynthRun {
            cells,
            workloads,
            status: "complete".into(),
            scoring: Value::Null,
            slo_e2e_ms: None,
            seed: 1,
        }
    }

    /// Writes run.json, summary.json and requests.jsonl into `dir` (created).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut methods: Vec<Value> = Vec::new();
        for c in &self.cells {
            if !methods.iter().any(|m| m["label"] == c.method.as_str()) {
                methods.push(json!({
                    "label": c.method, "id": c.method_id, "instances": 1,
                    "setup_s": 1.0, "setup_energy_j": 50.0,
                    "facts": { "weight_bytes": c.weight_bytes },
                }));
            }
        }
        let run = json!({
            "oae_version": "synthetic",
            "git_sha": null,
            "status": self.status,
            "abort_reason": if self.status == "complete" { Value::Null } else { json!("synthetic abort") },
            "started_utc": "2026-01-01T00:00:00Z",
            "suite": { "name": "synthetic" },
            "slo": { "ttft_ms": null, "tpot_ms": null, "e2e_ms": self.slo_e2e_ms },
            "run": { "confidence": 0.95, "device": "cpu" },
            "host": { "cpu_model": "synthetic CPU", "logical_cpus": 2 },
            "workloads": self.workloads.iter().map(|(name, rate, perturbs, what)| {
                let mut config = json!({ "kind": "arrival-process" });
                if let Some(p) = perturbs {
                    config["perturbs"] = json!(p);
                    config["perturbation"] = json!(what.clone().unwrap_or_else(|| name.clone()));
                }
                json!({ "name": name, "mean_rate_qps_before_compression": rate, "offered_rate_qps": rate, "config": config })
            }).collect::<Vec<_>>(),
            "methods": methods,
            "scoring": self.scoring,
        });
        std::fs::write(dir.join("run.json"), serde_json::to_vec_pretty(&run)?)?;

        let file = std::fs::File::create(dir.join("requests.jsonl"))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut summaries = Vec::new();
        // 32 inter-token latencies per record, like a real 33-token answer: records are as
        // long to parse as real ones.
        let itl: Vec<String> = (0..32).map(|i| format!("{:.6}", 0.9 + 0.013 * i as f64)).collect();
        let itl = format!("[{}]", itl.join(","));
        for (k, c) in self.cells.iter().enumerate() {
            let mut rng = SplitMix::new(self.seed, k as u64, 0);
            let mut e2e = Vec::with_capacity(c.requests);
            let mut good = 0usize;
            for i in 0..c.requests {
                // Exponential noise with mean 1 mixed in by `spread`.
                let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                let noise = 1.0 + c.spread * (-(1.0 - u).ln() - 1.0);
                let service = c.service_s * noise.max(0.05);
                let failed = ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < c.fail_share;
                let e2e_ms = service * 1e3 * 1.02;
                let ok = !failed;
                let is_good = ok && self.slo_e2e_ms.is_none_or(|l| e2e_ms <= l);
                good += is_good as usize;
                if ok {
                    e2e.push(e2e_ms);
                }
                let dyn_j = c.dyn_j * noise.max(0.05);
                let active = dyn_j + c.idle_w * service;
                writeln!(
                    out,
                    "{{\"method\":{},\"workload\":{},\"request_id\":{i},\"warmup\":false,\"cooldown\":false,\"outcome\":\"{}\",\"ttft_ms\":{},\"e2e_ms\":{},\"tpot_ms\":{},\"service_ms\":{},\"itl_ms\":{itl},\"energy_dyn_j\":{dyn_j},\"energy_active_j\":{active},\"energy_amortized_j\":{},\"co2e_g\":{},\"energy_estimated\":true,\"counters\":{{\"kv_bytes_peak\":1000.0}}}}",
                    json!(c.method),
                    json!(c.workload),
                    if ok { "ok" } else { "error" },
                    if ok { json!(e2e_ms * 0.2) } else { Value::Null },
                    if ok { json!(e2e_ms) } else { Value::Null },
                    if ok { json!(service * 1e3 / 20.0) } else { Value::Null },
                    service * 1e3,
                    active * 2.0,
                    active * 2.0 * 1.56 * 480.6 / 3.6e6,
                )?;
            }
            e2e.sort_by(f64::total_cmp);
            let p = |q: f64| {
                if e2e.is_empty() {
                    Value::Null
                } else {
                    json!({ "value": e2e[((e2e.len() - 1) as f64 * q) as usize], "ci_lo": null, "ci_hi": null })
                }
            };
            let rate = self.workloads.iter().find(|w| w.0 == c.workload).map_or(1.0, |w| w.1);
            summaries.push(json!({
                "method": c.method, "workload": c.workload,
                "energy": { "idle_w": c.idle_w, "source": "synthetic" },
                "goodput": { "goodput_qps": rate * good as f64 / c.requests.max(1) as f64 },
                "latency": { "e2e_ms": { "p50": p(0.5), "p95": p(0.95), "p99": p(0.99) } },
                "counters": {},
                "validity": { "valid": true, "reasons": [] },
            }));
        }
        out.flush()?;
        let summary = json!({ "status": self.status, "cells": summaries });
        std::fs::write(dir.join("summary.json"), serde_json::to_vec_pretty(&summary)?)
    }
}

/// A manifest TOML for tests: `weeks` to deploy, none to maintain, at `level`.
pub fn manifest(id: &str, level: &str, weeks: &str) -> String {
    format!(
        "method = \"{id}\"\nexpertise = \"{level}\"\ncomponents = []\ntuning_knobs = []\nevidence = \"synthetic\"\n[engineer_weeks]\ndeploy = {weeks}\nmaintain_per_year = 0\n"
    )
}
