use std::path::{Path, PathBuf};

use oae_core::rundir::RunStatus;
use oae_scorecards::synthetic::{SynthCell, SynthRun, manifest, scoring};
use serde_json::Value;
use sha2::Digest;

use super::*;

/// A synthetic run of two methods on one workload into `dir`, of the suite hash `suite_sha`
/// (its definition) on the CPU `cpu` (its hardware class).
fn run(dir: &Path, suite_sha: &str, cpu: &str, status: RunStatus, measured: bool) -> PathBuf {
    let mut cells = Vec::new();
    for (label, id, dyn_j) in [("dense", "dense", 5.0), ("speculative", "speculative", 3.0)] {
        let mut c = SynthCell::new(label, id, "sporadic", 60);
        c.dyn_j = dyn_j;
        c.energy_measured = measured;
        cells.push(c);
    }
    let mut r = SynthRun::new(cells, 1.0);
    r.status = status;
    r.scoring = Some(scoring(
        Some("dense"),
        &[
            ("dense", manifest("dense", "it-generalist", "0")),
            ("speculative", manifest("speculative", "ml-engineer", "[1, 4]")),
        ],
        &[],
    ));
    r.suite_sha256 = suite_sha.into();
    r.cpu_model = cpu.into();
    r.write(dir).unwrap();
    dir.to_path_buf()
}

fn opts(allow_mixed: bool) -> SiteOptions {
    SiteOptions {
        title: "test board".into(),
        inputs: ScoringInputs::default(),
        allow_mixed,
    }
}

fn files(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                // Compared by content digest (a failure prints names, not megabytes).
                let digest = sha2::Sha256::digest(&bytes)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>();
                out.push((p.strip_prefix(dir).unwrap().to_path_buf(), digest));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_site_is_byte_identical_from_the_same_inputs_and_ranks_only_within_a_definition() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let a = run(&t.join("a"), "aaaa", "AMD EPYC 9654", RunStatus::Complete, true);
    let b = run(&t.join("b"), "aaaa", "Intel Xeon 8480", RunStatus::Complete, false);
    let c = run(&t.join("c"), "cccc", "AMD EPYC 9654", RunStatus::Complete, true);
    let p = run(&t.join("p"), "aaaa", "Intel Xeon 8480", RunStatus::Aborted, true);
    let dirs = vec![a.clone(), b.clone(), c.clone(), p.clone()];

    // Two definitions are refused unless allowed, naming the directories.
    let e = build(&dirs, &t.join("site"), &opts(false)).unwrap_err().to_string();
    assert!(
        e.contains("2 different benchmark definitions")
            && e.contains("--allow-mixed")
            && e.contains(&*c.to_string_lossy()),
        "{e}"
    );
    assert!(!t.join("site").exists(), "nothing written");

    let built = build(&dirs, &t.join("site"), &opts(true)).unwrap();
    assert_eq!((built.runs, built.rows, built.definitions), (4, 8, 2));
    let first = files(&t.join("site"));
    // Given in another order, rebuilt over the old site: the same bytes.
    let again = vec![p, c, b, a];
    build(&again, &t.join("site"), &opts(true)).unwrap();
    assert_eq!(files(&t.join("site")), first, "byte-identical");
    assert!(first.iter().any(|(n, _)| n.starts_with("runs")));

    let doc: Value = serde_json::from_slice(&std::fs::read(t.join("site/leaderboard.json")).unwrap()).unwrap();
    let rows = doc["rows"].as_array().unwrap();
    // Ranks: 1..n within each (definition, workload), none for the partial run's rows.
    let mut by_def: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    for r in rows {
        let def = r["definition"].as_str().unwrap().to_string();
        if r["flag_partial_run"] == true {
            assert!(r["rank"].is_null(), "{r}");
            continue;
        }
        by_def.entry(def).or_default().push(r["rank"].as_f64().unwrap());
    }
    for (def, mut ranks) in by_def {
        ranks.sort_by(f64::total_cmp);
        let n = ranks.len();
        assert_eq!(ranks, (1..=n).map(|k| k as f64).collect::<Vec<_>>(), "{def}");
    }
    // Flags and provenance on the rows.
    let estimated: Vec<bool> = rows
        .iter()
        .filter(|r| r["source_dir"].as_str().unwrap().ends_with('b'))
        .map(|r| r["flag_estimated_energy"].as_bool().unwrap())
        .collect();
    assert_eq!(estimated, [true, true]);
    let hw: std::collections::BTreeSet<&str> = rows.iter().map(|r| r["hardware"].as_str().unwrap()).collect();
    assert_eq!(hw.len(), 2, "{hw:?}");
    let html = String::from_utf8(std::fs::read(t.join("site/index.html")).unwrap()).unwrap();
    assert_eq!(
        html.matches("<table class=\"board sortable\"").count(),
        2,
        "a table per definition"
    );
    for fetch in [" src=", "<link", "@import", "url(", "fetch(", "XMLHttpRequest"] {
        assert!(!html.contains(fetch), "the page fetches something: `{fetch}`");
    }
}

#[test]
fn bad_inputs_are_refused_naming_the_directory_and_the_way_out() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let a = run(&t.join("a"), "aaaa", "AMD EPYC 9654", RunStatus::Complete, true);
    std::fs::create_dir_all(t.join("empty")).unwrap();
    let e = build(&[a.clone(), t.join("empty")], &t.join("s1"), &opts(false))
        .unwrap_err()
        .to_string();
    assert!(e.contains("empty") && e.contains("not a run directory"), "{e}");
    // The same run twice (here: a copy).
    std::fs::create_dir_all(t.join("copy")).unwrap();
    for f in std::fs::read_dir(&a).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, t.join("copy").join(f.file_name().unwrap())).unwrap();
    }
    let e = build(&[a.clone(), t.join("copy")], &t.join("s2"), &opts(false))
        .unwrap_err()
        .to_string();
    assert!(e.contains("are the same run"), "{e}");
    // A run.json of another schema version.
    let bad = run(&t.join("old"), "aaaa", "AMD EPYC 9654", RunStatus::Complete, true);
    let path = bad.join("run.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["schema_version"] = Value::from(999);
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    let e = build(&[a.clone(), bad], &t.join("s3"), &opts(false))
        .unwrap_err()
        .to_string();
    assert!(e.contains("old") && e.contains("schema"), "{e}");
    // An output directory holding something else is not overwritten.
    std::fs::create_dir_all(t.join("precious")).unwrap();
    std::fs::write(t.join("precious/notes.txt"), "keep").unwrap();
    let e = build(&[a], &t.join("precious"), &opts(false)).unwrap_err().to_string();
    assert!(e.contains("not a site"), "{e}");
    assert!(t.join("precious/notes.txt").exists());
    // No half-built site is left beside the targets.
    let leftovers: Vec<String> = std::fs::read_dir(t)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_site_file_reprices_every_row_under_one_set_of_assumptions() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let dirs = vec![
        run(&t.join("a"), "aaaa", "AMD EPYC 9654", RunStatus::Complete, true),
        run(&t.join("b"), "aaaa", "Intel Xeon 8480", RunStatus::Complete, true),
    ];
    let cost = |site: &Path| -> (Vec<f64>, String) {
        let doc: Value = serde_json::from_slice(&std::fs::read(site.join("leaderboard.json")).unwrap()).unwrap();
        let costs = doc["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["cost_per_1k_good_usd"].as_f64().unwrap())
            .collect();
        (costs, doc["site_source"].as_str().unwrap().to_string())
    };
    build(&dirs, &t.join("default"), &opts(false)).unwrap();
    let file = t.join("site.toml");
    std::fs::write(&file, "energy_usd_per_kwh = 40.0\n").unwrap();
    let mut o = opts(false);
    o.inputs.site = Some(file.clone());
    build(&dirs, &t.join("priced"), &o).unwrap();
    let (base, src0) = cost(&t.join("default"));
    let (priced, src1) = cost(&t.join("priced"));
    assert_eq!(src0, "defaults");
    assert!(src1.contains("site.toml"), "{src1}");
    assert_eq!(base.len(), priced.len());
    assert!(base.iter().zip(&priced).all(|(a, b)| b > a), "{base:?} {priced:?}");
}
