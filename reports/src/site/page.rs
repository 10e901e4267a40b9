//! The site's `index.html`: one self-contained page (inline CSS, SVG and script; nothing
//! fetched) with a table per benchmark definition — rows of different definitions are never
//! in one table, so never ranked together — filters by hardware, workload and request rate,
//! sortable columns, flags and provenance on every row, a link to each run's own page, and the
//! charts across runs.

use std::fmt::Write;

use oae_scorecards::score::Scorecards;

use super::board::{At, LoadedRun};
use crate::exporters::html::{SCRIPT, STYLE, cell, esc, head};
use crate::table::{Column, Values};
use crate::{ExportError, charts};

const SITE_STYLE: &str = r#"
.filters { display: flex; flex-wrap: wrap; gap: 12px; align-items: center; margin: 8px 0 4px; }
.filters label { color: var(--muted); } .filters select { margin-left: 4px; }
.flags { color: var(--warn); font-size: 12px; }
tr.flagged td { background: #fffaf0; }
section.definition { margin-top: 18px; }
.shown { color: var(--muted); font-size: 13px; }
"#;

/// The filters (sorting is the run page's script, for every table).
const SITE_SCRIPT: &str = r#"
(function () {
  "use strict";
  var tables = Array.prototype.slice.call(document.querySelectorAll("table.board"));
  var filters = Array.prototype.slice.call(document.querySelectorAll("select[data-filter]"));
  function apply() {
    var shown = 0;
    tables.forEach(function (table) {
      Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
        var ok = filters.every(function (f) { return f.value === "" || r.getAttribute("data-" + f.getAttribute("data-filter")) === f.value; });
        r.hidden = !ok;
        if (ok) { shown += 1; }
      });
    });
    var n = document.getElementById("shown");
    if (n) { n.textContent = shown + " row(s) shown"; }
  }
  filters.forEach(function (f) { f.addEventListener("change", apply); });
  apply();
})();
"#;

/// Distinct values in first-seen order.
fn distinct<'a>(it: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for v in it {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// A request rate as the filter shows it.
fn rate_label(q: f64) -> String {
    format!("{} req/s", crate::fmt_num(q))
}

fn select(out: &mut String, id: &str, label: &str, values: &[String]) {
    let _ = write!(
        out,
        "<label>{}<select id=\"f-{id}\" data-filter=\"{id}\"><option value=\"\">all</option>",
        esc(label)
    );
    for v in values {
        let _ = write!(out, "<option value=\"{0}\">{0}</option>", esc(v));
    }
    out.push_str("</select></label>");
}

/// The flags of row `i` as short words.
fn flags(cols: &[Column], i: usize) -> Vec<&'static str> {
    let mut out = Vec::new();
    for c in cols {
        if let (Some(word), Values::Flag(v)) = (c.name.strip_prefix("flag_"), &c.values)
            && v[i]
        {
            out.push(match word {
                "estimated_energy" => "estimated energy",
                "partial_run" => "partial run",
                "short_idle_baseline" => "short idle baseline",
                "invalid" => "invalid cell",
                "declared_costs" => "declared adoption cost",
                _ => "flagged",
            });
        }
    }
    out
}

/// The text value of column `name` at row `i`.
fn text<'a>(cols: &'a [Column], name: &str, i: usize) -> &'a str {
    match cols.iter().find(|c| c.name == name).map(|c| &c.values) {
        Some(Values::Text(v)) => &v[i],
        _ => "",
    }
}

fn num(cols: &[Column], name: &str, i: usize) -> Option<f64> {
    match cols.iter().find(|c| c.name == name).map(|c| &c.values) {
        Some(Values::Num(v)) => v[i],
        _ => None,
    }
}

/// Scorecards for the charts of `picks`: one row per (method, hardware) — the run whose cost
/// per 1,000 good requests is the (lower) median of that pair's runs, its cost curve the
/// pointwise median of theirs — labelled `method · hardware` (and the run when it is the
/// only one), so a definition with hundreds of runs still draws one series per pair.
fn combined(runs: &[LoadedRun], picks: &[At]) -> Scorecards {
    let mut groups: Vec<((String, String), Vec<At>)> = Vec::new();
    for &a in picks {
        let r = &runs[a.run];
        let row = &r.cards.rows[a.row];
        let key = (row.method.clone(), super::board::hardware(&r.run, row));
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(a),
            None => groups.push((key, vec![a])),
        }
    }
    let mut cards = runs[picks[0].run].cards.clone();
    cards.rows = groups
        .into_iter()
        .map(|((method, hw), mut members)| {
            let row_of = |a: &At| &runs[a.run].cards.rows[a.row];
            members.sort_by(|a, b| {
                row_of(a)
                    .cost_per_1k_good_usd
                    .value
                    .total_cmp(&row_of(b).cost_per_1k_good_usd.value)
            });
            let mid = members[(members.len() - 1) / 2];
            let mut row = row_of(&mid).clone();
            let n = members.len();
            if n == 1 {
                row.method = format!("{method} · {hw} · {}", runs[mid.run].id);
            } else {
                row.method = format!("{method} · {hw} (median of {n} runs)");
                let grid: Vec<f64> = row.curve.iter().map(|p| p.0).collect();
                let same = members
                    .iter()
                    .all(|a| row_of(a).curve.iter().map(|p| p.0).eq(grid.iter().copied()));
                if same {
                    row.curve = grid
                        .iter()
                        .enumerate()
                        .map(|(i, &x)| {
                            let mut ys: Vec<f64> = members.iter().map(|a| row_of(a).curve[i].1).collect();
                            ys.sort_by(f64::total_cmp);
                            (x, ys[(ys.len() - 1) / 2])
                        })
                        .collect();
                }
            }
            row
        })
        .collect();
    cards
}

fn figure(out: &mut String, svg: Result<String, String>) -> Result<(), ExportError> {
    let svg = svg.map_err(ExportError::Chart)?;
    let start = svg.find("<svg").unwrap_or(0);
    let _ = write!(out, "<figure>{}</figure>", &svg[start..]);
    Ok(())
}

/// Renders the index page.
pub fn render(
    title: &str,
    runs: &[LoadedRun],
    at: &[At],
    cols: &[Column],
    site_source: &str,
) -> Result<String, ExportError> {
    let mut o = String::with_capacity(512 * 1024);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{STYLE}{SITE_STYLE}</style></head><body>\n",
        esc(title)
    );
    let definitions: Vec<&str> = distinct(at.iter().map(|a| runs[a.run].definition.as_str()));
    let _ = writeln!(
        o,
        "<header><h1>{}</h1><p class=\"meta\">{} run(s) · {} row(s) · {} benchmark definition(s) · costs under {}</p></header>",
        esc(title),
        runs.len(),
        at.len(),
        definitions.len(),
        esc(site_source)
    );
    o.push_str("<p class=\"legend\">One row per (method, workload, hardware, run). Rows are ranked by cost per 1,000 good requests only against rows of the same benchmark definition (suite file, workloads' schedules and datasets, run-directory and scorecard schemas) and workload; each definition has its own table. Rows of partial runs and invalid cells are not ranked. <sup class=\"m\">E</sup> estimated (modelled energy) · <sup class=\"m\">D</sup> rests on declared adoption costs. Every row links to its run's own page. All columns: leaderboard.csv / .parquet / .json.</p>\n");

    // Filters over every table.
    o.push_str("<div class=\"filters\">");
    let hw: Vec<String> = distinct((0..at.len()).map(|i| text(cols, "hardware", i)))
        .into_iter()
        .map(str::to_string)
        .collect();
    let mut wl: Vec<String> = distinct(at.iter().map(|a| runs[a.run].cards.rows[a.row].workload.as_str()))
        .into_iter()
        .map(str::to_string)
        .collect();
    wl.sort();
    let mut rates: Vec<f64> = at.iter().map(|a| runs[a.run].cards.rows[a.row].rate_qps).collect();
    rates.sort_by(f64::total_cmp);
    rates.dedup();
    let rates: Vec<String> = rates.into_iter().map(rate_label).collect();
    select(&mut o, "hw", "hardware", &hw);
    select(&mut o, "workload", "workload", &wl);
    select(&mut o, "rate", "request rate", &rates);
    o.push_str("<span id=\"shown\" class=\"shown\"></span></div>\n");

    let shown: Vec<&Column> = cols.iter().filter(|c| c.headline && c.name != "run_date").collect();
    for def in &definitions {
        let rows: Vec<usize> = (0..at.len()).filter(|&i| runs[at[i].run].definition == *def).collect();
        let first = &runs[at[rows[0]].run];
        let suites = distinct(rows.iter().map(|&i| runs[at[i].run].run.suite.name.as_str()));
        let _ = write!(
            o,
            "<section class=\"definition\" data-definition=\"{0}\"><h2>Definition {0} — suite “{1}”</h2><p class=\"meta\">suite file SHA-256 {2} · workloads {3}</p>",
            esc(def),
            esc(&suites.join("”, “")),
            esc(&first.run.suite.sha256),
            esc(&first
                .run
                .workloads
                .iter()
                .map(|w| format!("{} ({})", w.name, w.process))
                .collect::<Vec<_>>()
                .join(", "))
        );
        let _ = write!(
            o,
            "<div class=\"tablewrap\"><table class=\"board sortable\" data-definition=\"{}\"><thead><tr>",
            esc(def)
        );
        for c in &shown {
            o.push_str(&head(c));
        }
        o.push_str("<th class=\"t\" data-type=\"text\" data-col=\"flags\">flags<small></small></th><th class=\"t\" data-type=\"text\" data-col=\"provenance\">provenance<small></small></th></tr></thead><tbody>\n");
        for &i in &rows {
            let a = at[i];
            let r = &runs[a.run];
            let row = &r.cards.rows[a.row];
            let f = flags(cols, i);
            let _ = write!(
                o,
                "<tr class=\"{}\" data-hw=\"{}\" data-workload=\"{}\" data-rate=\"{}\" data-definition=\"{}\" data-run=\"{}\">",
                if f.is_empty() { "" } else { "flagged" },
                esc(text(cols, "hardware", i)),
                esc(&row.workload),
                esc(&rate_label(row.rate_qps)),
                esc(def),
                esc(&r.id)
            );
            for c in &shown {
                if c.name == "rank" {
                    let k = num(cols, "rank", i);
                    let _ = write!(
                        o,
                        "<td data-v=\"{}\">{}</td>",
                        k.map(|k| k.to_string()).unwrap_or_default(),
                        k.map_or("—".to_string(), |k| format!("{k:.0}"))
                    );
                } else if c.name == "run" {
                    let _ = write!(
                        o,
                        "<td class=\"t\" data-v=\"{0}\"><a href=\"runs/{0}/index.html\">{0}</a></td>",
                        esc(&r.id)
                    );
                } else {
                    o.push_str(&cell(c, cols, i));
                }
            }
            let _ = write!(o, "<td class=\"t flags\" data-v=\"{0}\">{0}</td>", esc(&f.join(", ")));
            let _ = writeln!(
                o,
                "<td class=\"t\" data-v=\"{0}\"><small>{0} · CPU {1}{2} · energy {3} · oae {4}{5} · {6} · from <code>{7}</code></small></td></tr>",
                esc(text(cols, "run_date", i)),
                esc(text(cols, "cpu_model", i)),
                match text(cols, "gpu", i) {
                    "" => String::new(),
                    g => format!(" · GPU {} (driver {})", esc(g), esc(text(cols, "gpu_driver", i))),
                },
                esc(text(cols, "energy_sources", i)),
                esc(text(cols, "oae_version", i)),
                match text(cols, "git_sha", i) {
                    "" => String::new(),
                    g => format!(" ({})", esc(&g[..g.len().min(12)])),
                },
                match num(cols, "rank", i) {
                    Some(k) => format!("rank {k} in its definition and workload"),
                    None => "not ranked".to_string(),
                },
                esc(text(cols, "source_dir", i)),
            );
        }
        o.push_str("</tbody></table></div>\n");

        // The charts across this definition's runs: cost per 1,000 good requests against the
        // request rate per workload (a series per method on each hardware class), energy per
        // request by domain and by kind (dynamic, idle, gaps), quality against cost.
        o.push_str("<div class=\"charts\">");
        let picks: Vec<At> = rows.iter().map(|&i| at[i]).collect();
        let cards = combined(runs, &picks);
        let mut workloads: Vec<&str> = distinct(cards.rows.iter().map(|r| r.workload.as_str()));
        workloads.sort();
        for w in workloads {
            figure(&mut o, charts::cost_vs_rate(&cards, w))?;
        }
        figure(&mut o, charts::energy_by_domain(&cards))?;
        figure(&mut o, charts::energy_breakdown(&cards))?;
        figure(&mut o, charts::quality_vs_cost(&cards))?;
        o.push_str("</div></section>\n");
    }
    let _ = write!(
        o,
        "<footer class=\"legend\">Generated by oae {} from {} run director{}. Self-contained: nothing on this page is fetched.</footer>\n<script>{SCRIPT}{SITE_SCRIPT}</script>\n</body></html>\n",
        esc(env!("CARGO_PKG_VERSION")),
        runs.len(),
        if runs.len() == 1 { "y" } else { "ies" }
    );
    Ok(o)
}
