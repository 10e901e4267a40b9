//! `leaderboard.html`: one self-contained page — inline CSS, inline SVG charts, a few lines
//! of inline JavaScript for sorting; nothing is fetched. Every user-provided string (method
//! labels, workload and suite names, manifest text, warnings) is HTML-escaped.

use std::fmt::Write;

use oae_scorecards::score::{Row, Scorecards};

use super::{ExportError, Exporter};
use crate::table::{Column, Display, Values};
use crate::{Report, charts, fmt_figure, fmt_num, headline_sentences};

pub struct Html;

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) const STYLE: &str = r#"
:root { --fg:#1b1f24; --muted:#5b636e; --line:#d7dbe0; --accent:#0072b2; --warn:#9a3412; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); margin: 0 auto; max-width: 1400px; padding: 16px 24px 48px; }
h1 { font-size: 22px; margin: 8px 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
.meta { color: var(--muted); margin: 0 0 8px; }
.partial { background: #fde8e8; border: 2px solid #b91c1c; color: #7f1d1d; padding: 10px 14px; font-weight: 600; margin: 12px 0; }
.warn { color: var(--warn); }
.tablewrap { overflow-x: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 8px; text-align: right; vertical-align: top; white-space: nowrap; }
th { background: #f3f5f7; position: sticky; top: 0; cursor: pointer; user-select: none; }
th small { display: block; font-weight: 400; color: var(--muted); font-size: 11px; }
th[aria-sort="ascending"]::after { content: " ▲"; } th[aria-sort="descending"]::after { content: " ▼"; }
td.t, th.t { text-align: left; }
td.est { background: #fff7e6; } td.decl { font-style: italic; }
sup.m { color: var(--warn); font-weight: 600; margin-left: 1px; }
.ci { color: var(--muted); font-size: 12px; }
tr.baseline td { background: #eef6fb; }
.verdict-better { color: #166534; font-weight: 600; } .verdict-worse { color: #991b1b; } .verdict-inconclusive { color: #92400e; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; } .charts figure { margin: 0; border: 1px solid var(--line); }
.charts svg { display: block; max-width: 100%; height: auto; }
.legend { color: var(--muted); font-size: 13px; }
details { margin: 6px 0; } pre { white-space: pre-wrap; }
"#;

/// Sorting by a click on a heading, for every `table.sortable` of a page (cells carry their
/// sort value in `data-v`; headings say `data-type="num"` or `"text"`).
pub(crate) const SCRIPT: &str = r#"
(function () {
  "use strict";
  function key(cell, numeric) {
    var v = cell.getAttribute("data-v");
    if (numeric) { var x = parseFloat(v); return isNaN(x) ? null : x; }
    return v === null ? "" : v.toLowerCase();
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    var heads = table.tHead.rows[0].cells;
    function sortBy(col) {
      var th = heads[col];
      var numeric = th.getAttribute("data-type") === "num";
      var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
      for (var i = 0; i < heads.length; i++) { heads[i].removeAttribute("aria-sort"); }
      th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a.cells[col], numeric), y = key(b.cells[col], numeric);
        if (x === null && y === null) { return 0; }
        if (x === null) { return 1; }
        if (y === null) { return -1; }
        return x < y ? -dir : x > y ? dir : 0;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    }
    Array.prototype.forEach.call(heads, function (th, i) {
      th.addEventListener("click", function () { sortBy(i); });
      th.setAttribute("title", "click to sort");
    });
  });
})();
"#;

fn partial_banner(c: &Scorecards) -> String {
    if !c.run.partial {
        return String::new();
    }
    format!(
        "<div class=\"partial\" role=\"alert\">PARTIAL RUN — status “{}”{}. These figures cover only what was recorded before the run stopped; do not publish them as complete.</div>\n",
        esc(&c.run.status),
        c.run
            .abort_reason
            .as_deref()
            .map(|r| format!(" ({})", esc(r)))
            .unwrap_or_default()
    )
}

pub(crate) fn cell(col: &Column, all: &[Column], i: usize) -> String {
    let present = match &col.values {
        Values::Num(v) => v[i].is_some(),
        Values::Text(v) => !v[i].is_empty(),
        Values::Flag(_) => true,
    };
    let est = present && col.estimated.get(i).copied().unwrap_or(false);
    let decl = present && col.provenance.contains("declared");
    let mut class = Vec::new();
    let mut marks = String::new();
    if decl {
        class.push("decl");
        marks.push_str("<sup class=\"m\" title=\"rests on declared adoption costs\">D</sup>");
    }
    if est {
        class.push("est");
        marks.push_str("<sup class=\"m\" title=\"estimated (modelled energy)\">E</sup>");
    }
    match &col.values {
        Values::Num(v) => {
            let ci = |suffix: &str| {
                all.iter()
                    .find(|c| c.name.strip_suffix(suffix) == Some(col.name))
                    .and_then(|c| match &c.values {
                        Values::Num(v) => v[i],
                        _ => None,
                    })
            };
            let (lo, hi) = (ci("_ci_lo"), ci("_ci_hi"));
            let text = match v[i] {
                None => "—".to_string(),
                Some(x) => {
                    let mut t = fmt_num(x);
                    if let (Some(lo), Some(hi)) = (lo, hi) {
                        let _ = write!(t, " <span class=\"ci\">[{}, {}]</span>", fmt_num(lo), fmt_num(hi));
                    }
                    t
                }
            };
            format!(
                "<td class=\"{}\" data-v=\"{}\">{text}{marks}</td>",
                class.join(" "),
                v[i].map(|x| x.to_string()).unwrap_or_default()
            )
        }
        Values::Text(v) => {
            let sort = match col.display {
                // Break-even sorts by rate: always < numbers < never.
                Display::BreakEven => match v[i].as_str() {
                    "always" => "0".to_string(),
                    "never" => "1e300".to_string(),
                    x => x.to_string(),
                },
                _ => v[i].clone(),
            };
            if col.display == Display::Verdict {
                class.push(match v[i].as_str() {
                    "better" => "verdict-better",
                    "worse" => "verdict-worse",
                    "inconclusive" => "verdict-inconclusive",
                    _ => "",
                });
            }
            if col.display != Display::BreakEven {
                class.push("t");
            }
            format!(
                "<td class=\"{}\" data-v=\"{}\">{}{marks}</td>",
                class.join(" "),
                esc(&sort),
                match v[i].parse::<f64>() {
                    // Break-even rates are stored at full precision; shown rounded.
                    Ok(q) if col.display == Display::BreakEven => fmt_num(q),
                    _ if v[i].is_empty() => "—".to_string(),
                    _ => esc(&v[i]),
                }
            )
        }
        Values::Flag(v) => format!("<td data-v=\"{}\">{}</td>", v[i], if v[i] { "yes" } else { "no" }),
    }
}

/// A column's heading cell: its name, provenance, and how it sorts.
pub(crate) fn head(c: &Column) -> String {
    let numeric = matches!(c.values, Values::Num(_)) || c.display == Display::BreakEven;
    format!(
        "<th class=\"{}\" data-type=\"{}\" data-col=\"{}\">{}<small>{}</small></th>",
        if numeric { "" } else { "t" },
        if numeric { "num" } else { "text" },
        c.name,
        esc(c.heading),
        esc(c.provenance)
    )
}

fn leaderboard_table(report: &Report, out: &mut String) {
    let cols: Vec<&Column> = report.columns.iter().filter(|c| c.headline).collect();
    out.push_str("<div class=\"tablewrap\"><table id=\"leaderboard\" class=\"sortable\"><thead><tr>");
    for c in &cols {
        out.push_str(&head(c));
    }
    out.push_str("</tr></thead><tbody>\n");
    for (i, r) in report.cards.rows.iter().enumerate() {
        let _ = write!(out, "<tr{}>", if r.baseline { " class=\"baseline\"" } else { "" });
        for c in &cols {
            out.push_str(&cell(c, &report.columns, i));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></div>\n");
}

fn sensitivity_tables(c: &Scorecards, out: &mut String) {
    for r in c.rows.iter().filter(|r| !r.sensitivity.is_empty()) {
        let _ = write!(
            out,
            "<details><summary>{} on {} — verdict {} (OAE ratio {})</summary><table><thead><tr><th class=\"t\">assumption</th><th>value here</th><th>verdict flips at</th><th>searched</th></tr></thead><tbody>",
            esc(&r.method),
            esc(&r.workload),
            esc(r.verdict.name()),
            esc(&r.oae_ratio.as_ref().map(fmt_figure).unwrap_or_default())
        );
        for s in &r.sensitivity {
            let _ = write!(
                out,
                "<tr><td class=\"t\">{}</td><td>{} {}</td><td>{}</td><td>{} – {}</td></tr>",
                esc(s.assumption),
                fmt_num(s.value),
                esc(s.unit),
                s.flips_at
                    .map(|v| format!("{} {}", fmt_num(v), esc(s.unit)))
                    .unwrap_or_else(|| "does not flip".into()),
                fmt_num(s.searched[0]),
                fmt_num(s.searched[1])
            );
        }
        out.push_str("</tbody></table></details>\n");
    }
}

fn robustness(c: &Scorecards, out: &mut String) {
    let rows: Vec<&Row> = c.rows.iter().filter(|r| r.robustness.is_some()).collect();
    if rows.is_empty() {
        out.push_str("<p class=\"legend\">This suite has no perturbation workloads (`perturbs = \"…\"`), so robustness is not scored.</p>");
        return;
    }
    out.push_str("<table><thead><tr><th class=\"t\">method</th><th class=\"t\">nominal workload</th><th class=\"t\">perturbation</th><th>goodput ratio</th><th>p95 E2E ratio</th><th>quality ratio</th></tr></thead><tbody>");
    for r in rows {
        for p in &r.robustness.as_ref().expect("filtered").perturbations {
            let _ = write!(
                out,
                "<tr><td class=\"t\">{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&r.method),
                esc(&r.workload),
                esc(&p.perturbation),
                p.goodput_ratio.map(fmt_num).unwrap_or_else(|| "—".into()),
                p.p95_e2e_ratio.map(fmt_num).unwrap_or_else(|| "—".into()),
                p.quality_ratio.map(fmt_num).unwrap_or_else(|| "—".into())
            );
        }
    }
    out.push_str("</tbody></table>\n");
}

fn assumptions(c: &Scorecards, out: &mut String) {
    let s = &c.site;
    let l = &s.labor_usd_per_week;
    let _ = write!(
        out,
        "<p class=\"legend\">Site assumptions ({}). Defaults and their sources: <code>oae_scorecards::site</code>.</p><table><tbody>",
        esc(&c.site_source)
    );
    let rows: [(&str, String); 12] = [
        ("horizon", format!("{} years", fmt_num(s.horizon_years))),
        ("utilisation cap ρ_max", fmt_num(s.rho_max)),
        ("energy price", format!("{} USD/kWh", fmt_num(s.energy_usd_per_kwh))),
        ("PUE", fmt_num(s.pue)),
        ("grid intensity", format!("{} gCO2e/kWh", fmt_num(s.grid_g_per_kwh))),
        ("carbon price", format!("{} USD/tCO2e", fmt_num(s.carbon_usd_per_tonne))),
        (
            "device",
            format!(
                "{}: {} GB, {} USD/h, {} kgCO2e embodied over {} years",
                s.device.name,
                fmt_num(s.device.memory_gb),
                fmt_num(s.device.usd_per_hour),
                fmt_num(s.device.embodied_kg),
                fmt_num(s.device.lifetime_years)
            ),
        ),
        (
            "labour L1 it-generalist",
            format!("{} USD/week", fmt_num(l.it_generalist)),
        ),
        (
            "labour L2 software-engineer",
            format!("{} USD/week", fmt_num(l.software_engineer)),
        ),
        ("labour L3 ml-engineer", format!("{} USD/week", fmt_num(l.ml_engineer))),
        (
            "labour L4 ml-specialist",
            format!("{} USD/week", fmt_num(l.ml_specialist)),
        ),
        (
            "bootstrap",
            format!(
                "{} resamples, {:.0} % intervals",
                c.bootstrap.draws,
                c.bootstrap.confidence * 100.0
            ),
        ),
    ];
    for (k, v) in rows {
        let _ = write!(
            out,
            "<tr><td class=\"t\">{}</td><td class=\"t\">{}</td></tr>",
            esc(k),
            esc(&v)
        );
    }
    out.push_str("</tbody></table>\n<h3>Declared adoption costs (manifests)</h3>\n");
    let mut seen = Vec::new();
    for r in &c.rows {
        if seen.contains(&&r.method_id) {
            continue;
        }
        seen.push(&r.method_id);
        let d = &r.declared;
        let _ = write!(
            out,
            "<details><summary>{} — L{} {}, {} engineer-weeks over the horizon (range {} – {})<sup class=\"m\">D</sup></summary><p>components: {}<br>tuning knobs: {}<br>evidence: {}</p></details>",
            esc(&r.method_id),
            d.level,
            esc(d.expertise),
            fmt_num(d.engineer_weeks[1]),
            fmt_num(d.engineer_weeks[0]),
            fmt_num(d.engineer_weeks[2]),
            esc(&d.components.join(", ")),
            esc(&d.tuning_knobs.join(", ")),
            esc(&d.evidence)
        );
    }
}

impl Exporter for Html {
    fn name(&self) -> &'static str {
        "html"
    }

    fn file_name(&self) -> &'static str {
        "leaderboard.html"
    }

    fn render(&self, report: &Report) -> Result<Vec<u8>, ExportError> {
        let c = report.cards;
        let mut o = String::with_capacity(256 * 1024);
        let _ = write!(
            o,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}OAE leaderboard — {}</title><style>{STYLE}</style></head><body>\n",
            if c.run.partial { "[PARTIAL] " } else { "" },
            esc(&c.run.suite)
        );
        let _ = write!(
            o,
            "<header><h1>OAE leaderboard — suite “{}”</h1><p class=\"meta\">run <code>{}</code> · status {} · started {} · oae {}{} · baseline <strong>{}</strong> · device class {}</p></header>",
            esc(&c.run.suite),
            esc(&c.run.dir),
            esc(&c.run.status),
            esc(c.run.started_utc.as_deref().unwrap_or("?")),
            esc(c.run.oae_version.as_deref().unwrap_or("?")),
            c.run
                .git_sha
                .as_deref()
                .map(|g| format!(" ({})", esc(g)))
                .unwrap_or_default(),
            esc(&c.baseline),
            esc(c.rows.first().map(|r| r.device_class.as_str()).unwrap_or("?"))
        );
        o.push_str(&partial_banner(c));
        o.push_str("<section id=\"verdicts\"><h2>Verdicts</h2><ul>");
        for s in headline_sentences(c) {
            let _ = write!(o, "<li>{}</li>", esc(&s));
        }
        o.push_str("</ul></section>\n<section><h2>Leaderboard</h2>");
        let _ = write!(
            o,
            "<p class=\"legend\">One row per (method, workload). Click a heading to sort. Under each heading: where the figure comes from (measured / declared / site). <sup class=\"m\">E</sup> estimated (modelled energy, not a hardware counter) · <sup class=\"m\">D</sup> rests on declared adoption costs. Brackets: {:.0} % bootstrap CIs over requests. A verdict whose CI straddles 1 is “inconclusive”. All columns: leaderboard.csv / .parquet / .json.</p>",
            c.bootstrap.confidence * 100.0
        );
        leaderboard_table(report, &mut o);
        o.push_str("</section>\n<section id=\"charts\"><h2>Charts</h2><div class=\"charts\">");
        let mut workloads: Vec<&str> = Vec::new();
        for r in &c.rows {
            if !workloads.contains(&r.workload.as_str()) {
                workloads.push(&r.workload);
            }
        }
        let figure = |svg: Result<String, String>, o: &mut String| -> Result<(), ExportError> {
            let svg = svg.map_err(ExportError::Chart)?;
            // Drop plotters' XML prolog if any: the SVG is inlined in HTML.
            let start = svg.find("<svg").unwrap_or(0);
            let _ = write!(o, "<figure>{}</figure>", &svg[start..]);
            Ok(())
        };
        for w in &workloads {
            figure(charts::cost_vs_rate(c, w), &mut o)?;
        }
        for w in &workloads {
            figure(charts::latency_cdf(c, w), &mut o)?;
        }
        figure(charts::energy_breakdown(c), &mut o)?;
        figure(charts::quality_vs_cost(c), &mut o)?;
        o.push_str("</div></section>\n<section id=\"sensitivity\"><h2>Which single assumption flips the verdict</h2>");
        sensitivity_tables(c, &mut o);
        o.push_str("</section>\n<section id=\"robustness\"><h2>Robustness</h2>");
        robustness(c, &mut o);
        o.push_str("</section>\n<section id=\"assumptions\"><h2>Assumptions</h2>");
        assumptions(c, &mut o);
        o.push_str("</section>\n");
        if !c.not_applicable.is_empty() {
            o.push_str("<section id=\"not-applicable\"><h2>Not applicable</h2><ul>");
            for n in &c.not_applicable {
                let _ = write!(
                    o,
                    "<li><b>{}</b> ({}): {}</li>",
                    esc(&n.label),
                    esc(&n.id),
                    esc(&n.reason)
                );
            }
            o.push_str("</ul></section>\n");
        }
        if !c.warnings.is_empty() {
            o.push_str("<section id=\"warnings\"><h2>Warnings</h2><ul>");
            for w in &c.warnings {
                let _ = write!(o, "<li class=\"warn\">{}</li>", esc(w));
            }
            o.push_str("</ul></section>\n");
        }
        o.push_str(&partial_banner(c));
        let _ = write!(
            o,
            "<footer class=\"legend\">Generated by oae {} from {}. Self-contained: nothing on this page is fetched.</footer>\n<script>{SCRIPT}</script>\n</body></html>\n",
            esc(c.run.oae_version.as_deref().unwrap_or("?")),
            esc(&c.run.dir)
        );
        Ok(o.into_bytes())
    }
}
