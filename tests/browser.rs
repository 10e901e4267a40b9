//! Opens leaderboard.html in headless Chromium: the page renders, the table sorts on click,
//! the charts are there and drawn, and nothing lands on the console as an error. Saves a
//! screenshot (target/tmp/oae-browser/leaderboard.png).
//!
//! Needs Debian's `chromium` (or `$OAE_CHROMIUM`); `.ci/run` installs it. Without a browser
//! the test skips with a message, unless `OAE_REQUIRE_BROWSER=1` (set by CI once installed).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use oae_scorecards::synthetic::{SynthCell, SynthRun};
use serde_json::Value;

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("OAE_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// The browser, or `None` after saying the check named `what` is skipped; with
/// `OAE_REQUIRE_BROWSER=1` (CI, once installed) a missing browser fails instead.
fn browser_or_skip(what: &str) -> Option<PathBuf> {
    let bin = chromium();
    if bin.is_none() {
        if std::env::var("OAE_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
            panic!("OAE_REQUIRE_BROWSER=1 but no chromium found (install Debian's `chromium` or set OAE_CHROMIUM)");
        }
        eprintln!("SKIPPED: no chromium on PATH (apt-get install chromium, or set OAE_CHROMIUM); {what} did not run");
    }
    bin
}

/// Runs the browser on `url` with extra flags; returns stdout, killing it after 240 s (it once
/// took over 120 s to start on a loaded CI machine).
fn browse(bin: &Path, profile: &Path, flags: &[String], url: &str) -> (String, String) {
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-extensions",
            "--disable-sync",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
            "--run-all-compositor-stages-before-draw",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(flags)
        .arg(url)
        // Files, not pipes: a full pipe would block the browser while we wait for it.
        .stdout(Stdio::from(
            std::fs::File::create(profile.with_extension("stdout")).unwrap(),
        ))
        .stderr(Stdio::from(
            std::fs::File::create(profile.with_extension("stderr")).unwrap(),
        ))
        .spawn()
        .expect("starting the browser");
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(240) {
            let _ = child.kill();
            panic!("the browser did not finish within 240 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let read = |ext: &str| String::from_utf8_lossy(&std::fs::read(profile.with_extension(ext)).unwrap()).into_owned();
    (read("stdout"), read("stderr"))
}

/// Captures errors and console.error from the very start of the page, and defines how a
/// probe reports its findings (`window.__oaeReport(out)`: as JSON in `<pre id="oae-probe">`).
const PROBE_HEAD: &str = r#"<script>
window.__oaeErrors = [];
window.addEventListener("error", function (e) { window.__oaeErrors.push("error: " + e.message); });
(function () { var orig = console.error; console.error = function () {
  window.__oaeErrors.push("console.error: " + Array.prototype.join.call(arguments, " ")); return orig.apply(console, arguments); }; })();
window.__oaeReport = function (out) {
  out.errors = window.__oaeErrors;
  var pre = document.createElement("pre");
  pre.id = "oae-probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
};
</script>"#;

/// Clicks headings and reports what happened, after the page's own script has run.
const PROBE_TAIL: &str = r#"<script>
(function () {
  var out = { errors: null };
  try {
    var t = document.getElementById("leaderboard");
    var heads = t.tHead.rows[0].cells;
    function col(name) { for (var i = 0; i < heads.length; i++) { if (heads[i].getAttribute("data-col") === name) { return i; } } return -1; }
    function values(i) { return Array.prototype.map.call(t.tBodies[0].rows, function (r) { return r.cells[i].getAttribute("data-v"); }); }
    var cost = col("cost_per_1k_good_usd"), method = col("method");
    out.rows = t.tBodies[0].rows.length;
    out.before = values(method);
    heads[cost].click();
    out.costAsc = values(cost).map(parseFloat);
    out.ariaAsc = heads[cost].getAttribute("aria-sort");
    heads[cost].click();
    out.costDesc = values(cost).map(parseFloat);
    heads[method].click();
    out.methodAsc = values(method);
    var svgs = document.querySelectorAll("figure svg");
    out.charts = svgs.length;
    out.chartShapes = Array.prototype.map.call(svgs, function (s) { return s.querySelectorAll("polyline, path, rect, circle").length; });
    out.chartWidths = Array.prototype.map.call(svgs, function (s) { return Math.round(s.getBoundingClientRect().width); });
    out.title = document.title;
  } catch (e) { out.exception = String(e); }
  window.__oaeReport(out);
})();
</script>"#;

/// Opens `html` in the browser with the error capture first in its head and `probe` (a
/// script that writes its findings as JSON into `<pre id="oae-probe">`) before `</body>`,
/// written as probe.html in `dir`. Returns the findings, after checking that nothing went
/// wrong on the page, and the DOM.
fn probe_page(bin: &Path, profile: &Path, dir: &Path, html: &str, probe: &str) -> (Value, String) {
    let probed =
        html.replacen("<head>", &format!("<head>{PROBE_HEAD}"), 1)
            .replacen("</body>", &format!("{probe}</body>"), 1);
    let probe_file = dir.join("probe.html");
    std::fs::write(&probe_file, probed).unwrap();
    let (dom, stderr) = browse(
        bin,
        profile,
        &["--dump-dom".into(), "--enable-logging=stderr".into(), "--v=0".into()],
        &format!("file://{}", probe_file.display()),
    );
    let start = dom
        .find("<pre id=\"oae-probe\">")
        .unwrap_or_else(|| panic!("no probe output; stderr:\n{stderr}"));
    let end = dom[start..].find("</pre>").unwrap() + start;
    let json = dom[start + "<pre id=\"oae-probe\">".len()..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    let r: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert!(r.get("exception").is_none(), "{r}");
    assert_eq!(r["errors"], serde_json::json!([]), "errors on the page: {r}");
    assert!(!stderr.contains("Uncaught"), "console errors: {stderr}");
    (r, dom)
}

/// A screenshot of `page` for people to look at: target/tmp/oae-browser/`name`.
fn screenshot(bin: &Path, profile: &Path, page: &Path, name: &str) {
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("oae-browser");
    std::fs::create_dir_all(&shots).unwrap();
    let png = shots.join(name);
    let _ = std::fs::remove_file(&png);
    browse(
        bin,
        profile,
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1400,2400".into(),
        ],
        &format!("file://{}", page.display()),
    );
    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", png.display()));
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 20_000,
        "{} bytes",
        bytes.len()
    );
    eprintln!("screenshot: {}", png.display());
}

#[test]
fn leaderboard_renders_sorts_and_draws_in_headless_chromium() {
    let Some(bin) = browser_or_skip("the leaderboard page check") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    // Three methods on two workloads, costs in a known order.
    let mut cells = Vec::new();
    for w in ["sporadic", "busy"] {
        for (label, id, dyn_j, service) in [
            ("dense", "dense", 5.0, 0.1),
            ("moe <b>bold</b>", "moe", 9.0, 0.15),
            ("speculative", "speculative", 4.0, 0.08),
        ] {
            let mut c = SynthCell::new(label, id, w, 150);
            c.dyn_j = dyn_j;
            c.service_s = service;
            c.spread = 0.5;
            cells.push(c);
        }
    }
    let mut run = SynthRun::new(cells, 1.0);
    run.workloads[0].rate_qps = 0.5;
    run.workloads[1].rate_qps = 20.0;
    run.write(&run_dir).unwrap();
    let o = Command::cargo_bin("oae")
        .unwrap()
        .arg("report")
        .arg(&run_dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let html = std::fs::read_to_string(run_dir.join("leaderboard.html")).unwrap();
    // Self-contained: nothing is loaded from anywhere.
    for fetch in [" src=", "<link", "@import", "url(", "fetch(", "XMLHttpRequest"] {
        assert!(!html.contains(fetch), "the page fetches something: `{fetch}`");
    }

    // The probe copy: error capture first in <head>, the click test after the page's script.
    let profile = tmp.path().join("profile");
    let (r, dom) = probe_page(&bin, &profile, tmp.path(), &html, PROBE_TAIL);
    assert_eq!(r["rows"], 6);
    let nums = |k: &str| -> Vec<f64> { r[k].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect() };
    let asc = nums("costAsc");
    let desc = nums("costDesc");
    assert!(
        asc.windows(2).all(|w| w[0] <= w[1]) && asc[0] < asc[5],
        "ascending: {asc:?}"
    );
    assert!(desc.windows(2).all(|w| w[0] >= w[1]), "descending: {desc:?}");
    assert_eq!(r["ariaAsc"], "ascending");
    let methods: Vec<&str> = r["methodAsc"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let mut sorted = methods.clone();
    sorted.sort_by_key(|m| m.to_lowercase());
    assert_eq!(methods, sorted);
    assert_ne!(
        r["before"], r["methodAsc"],
        "the initial order was already sorted; the click test proves nothing"
    );
    // Two cost curves, two CDFs, the energy breakdown and the quality/cost view; all drawn.
    assert_eq!(r["charts"], 6, "{r}");
    assert!(
        r["chartShapes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n.as_u64().unwrap() > 5),
        "{r}"
    );
    assert!(
        r["chartWidths"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n.as_u64().unwrap() >= 300),
        "{r}"
    );
    // The injected markup is text in the title cell, not an element.
    assert!(dom.contains("moe &lt;b&gt;bold&lt;/b&gt;"));

    // A screenshot of the real page for people to look at.
    screenshot(&bin, &profile, &run_dir.join("leaderboard.html"), "leaderboard.png");
}

/// A synthetic run of three methods on one workload into `dir`, of the suite hash `suite_sha`
/// (its benchmark definition) on the CPU `cpu` (its hardware class).
fn site_run(dir: &Path, suite_sha: &str, cpu: &str, partial: bool, measured: bool) -> PathBuf {
    use oae_scorecards::synthetic::{manifest, scoring};
    let mut cells = Vec::new();
    for (label, id, dyn_j) in [
        ("dense", "dense", 5.0),
        ("moe <b>bold</b>", "moe", 9.0),
        ("speculative", "speculative", 3.0),
    ] {
        let mut c = SynthCell::new(label, id, "sporadic", 80);
        c.dyn_j = dyn_j;
        c.energy_measured = measured;
        c.spread = 0.4;
        cells.push(c);
    }
    let mut run = SynthRun::new(cells, 1.0);
    if partial {
        run.status = oae_core::rundir::RunStatus::Aborted;
    }
    run.scoring = Some(scoring(
        Some("dense"),
        &[
            ("dense", manifest("dense", "it-generalist", "0")),
            ("moe", manifest("moe", "ml-engineer", "[2, 6]")),
            ("speculative", manifest("speculative", "software-engineer", "[1, 3]")),
        ],
        &[],
    ));
    run.suite_sha256 = suite_sha.into();
    run.cpu_model = cpu.into();
    run.write(dir).unwrap();
    dir.to_path_buf()
}

/// Filters, sorts and reads the site's tables, after the page's own script has run.
const SITE_PROBE: &str = r#"<script>
(function () {
  var out = { errors: null };
  try {
    var tables = Array.prototype.slice.call(document.querySelectorAll("table.board"));
    out.tables = tables.map(function (t) { return t.getAttribute("data-definition"); });
    out.mixedTables = tables.filter(function (t) {
      return Array.prototype.some.call(t.tBodies[0].rows, function (r) { return r.getAttribute("data-definition") !== t.getAttribute("data-definition"); });
    }).length;
    function visible() { var n = 0; tables.forEach(function (t) { Array.prototype.forEach.call(t.tBodies[0].rows, function (r) { if (!r.hidden) { n += 1; } }); }); return n; }
    out.rows = visible();
    var hw = document.getElementById("f-hw");
    out.hwOptions = hw.options.length;
    hw.value = hw.options[2].value;
    hw.dispatchEvent(new Event("change"));
    out.filtered = visible();
    out.filteredHw = [];
    tables.forEach(function (t) { Array.prototype.forEach.call(t.tBodies[0].rows, function (r) { if (!r.hidden && out.filteredHw.indexOf(r.getAttribute("data-hw")) < 0) { out.filteredHw.push(r.getAttribute("data-hw")); } }); });
    out.chosenHw = hw.value;
    hw.value = "";
    hw.dispatchEvent(new Event("change"));
    out.reset = visible();
    var t = tables[0], heads = t.tHead.rows[0].cells;
    function col(name) { for (var i = 0; i < heads.length; i++) { if (heads[i].getAttribute("data-col") === name) { return i; } } return -1; }
    var cost = col("cost_per_1k_good_usd");
    heads[cost].click();
    out.costAsc = Array.prototype.map.call(t.tBodies[0].rows, function (r) { return parseFloat(r.cells[cost].getAttribute("data-v")); });
    out.boldElements = document.querySelectorAll("table.board b").length;
    out.links = document.querySelectorAll("table.board a[href^='runs/']").length;
    out.charts = document.querySelectorAll("figure svg").length;
  } catch (e) { out.exception = String(e); }
  window.__oaeReport(out);
})();
</script>"#;

#[test]
fn leaderboard_site_filters_sorts_and_keeps_definitions_apart_in_headless_chromium() {
    let Some(bin) = browser_or_skip("the site check") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // Two hardware classes, a partial run, an estimated-energy run, two suite definitions.
    let runs = [
        site_run(&t.join("epyc"), "aaaa", "AMD EPYC 9654", false, true),
        site_run(&t.join("xeon"), "aaaa", "Intel Xeon 8480", false, false),
        site_run(&t.join("xeon-partial"), "aaaa", "Intel Xeon 8480", true, true),
        site_run(&t.join("other-suite"), "cccc", "AMD EPYC 9654", false, true),
    ];
    let site = t.join("site");
    let o = Command::cargo_bin("oae")
        .unwrap()
        .arg("leaderboard")
        .args(&runs)
        .args(["--allow-mixed", "--title", "Board <i>x</i>", "--out"])
        .arg(&site)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let html = std::fs::read_to_string(site.join("index.html")).unwrap();
    for fetch in [" src=", "<link", "@import", "url(", "fetch(", "XMLHttpRequest"] {
        assert!(!html.contains(fetch), "the page fetches something: `{fetch}`");
    }
    let profile = t.join("profile");
    let (r, dom) = probe_page(&bin, &profile, t, &html, SITE_PROBE);
    // Two definitions, two tables, no table holding another definition's rows.
    assert_eq!(r["tables"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(r["mixedTables"], 0, "{r}");
    assert_eq!(r["rows"], 12, "{r}");
    // The hardware filter hides the other class's rows; clearing it shows all again.
    assert_eq!(r["hwOptions"], 3, "all + two hardware classes: {r}");
    let filtered = r["filtered"].as_u64().unwrap();
    assert!(filtered > 0 && filtered < 12, "{r}");
    assert_eq!(r["filteredHw"], serde_json::json!([r["chosenHw"].clone()]), "{r}");
    assert_eq!(r["reset"], 12, "{r}");
    let asc: Vec<f64> = r["costAsc"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_f64())
        .collect();
    assert!(
        asc.len() >= 3 && asc.windows(2).all(|w| w[0] <= w[1]),
        "ascending: {asc:?}"
    );
    // Labels and titles are text, never markup.
    assert_eq!(r["boldElements"], 0, "{r}");
    assert!(dom.contains("moe &lt;b&gt;bold&lt;/b&gt;"));
    assert!(html.contains("Board &lt;i&gt;x&lt;/i&gt;"));
    assert_eq!(r["links"], 12, "every row links to its run's page: {r}");
    assert!(r["charts"].as_u64().unwrap() >= 6, "{r}");
    // Every linked run page exists.
    for entry in std::fs::read_dir(site.join("runs")).unwrap() {
        assert!(entry.unwrap().path().join("index.html").exists());
    }

    screenshot(&bin, &profile, &site.join("index.html"), "site.png");
}
