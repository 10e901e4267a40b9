//! `summary.md`: the verdict in a few lines and a table, ready for a CI job summary or a PR
//! comment. Estimated values carry `ᴱ`, values resting on declared estimates `ᴰ`.

use std::fmt::Write;

use oae_scorecards::score::Verdict;

use super::{ExportError, Exporter};
use crate::table::break_even_display;
use crate::{Report, fmt_figure, headline_sentences};

pub struct Markdown;

/// Markdown-safe text: table pipes, emphasis and HTML are neutralised.
fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' | '*' | '_' | '`' | '[' | ']' | '\\' | '#' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

impl Exporter for Markdown {
    fn name(&self) -> &'static str {
        "markdown"
    }

    fn file_name(&self) -> &'static str {
        "summary.md"
    }

    fn render(&self, report: &Report) -> Result<Vec<u8>, ExportError> {
        let c = report.cards;
        let mut s = String::new();
        let _ = writeln!(s, "## OAE scorecard — suite `{}`\n", md(&c.run.suite));
        if c.run.partial {
            let _ = writeln!(
                s,
                "> **PARTIAL RUN** — status `{}`{}. These figures cover only what was recorded before it stopped.\n",
                md(&c.run.status),
                c.run
                    .abort_reason
                    .as_deref()
                    .map(|r| format!(" ({})", md(r)))
                    .unwrap_or_default()
            );
        }
        for line in headline_sentences(c) {
            let _ = writeln!(s, "- {}", md(&line));
        }
        let _ = writeln!(
            s,
            "\n| method | workload | verdict | OAE ratio | USD / 1k good | break-even req/s | amortized J/req | gCO2e/req | E2E p95 ms | n |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
        for r in &c.rows {
            let est = |e: bool| if e { "ᴱ" } else { "" };
            let verdict = match r.verdict {
                Verdict::Better => "**better**",
                v => v.name(),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {}ᴰ{} | {}ᴰ{} | {} | {}{} | {}{} | {} | {} |",
                md(&r.method),
                md(&r.workload),
                verdict,
                r.oae_ratio.as_ref().map(fmt_figure).unwrap_or_else(|| "—".into()),
                est(r.oae_ratio.as_ref().is_some_and(|f| f.estimated)),
                fmt_figure(&r.cost_per_1k_good_usd),
                est(r.cost_per_1k_good_usd.estimated),
                r.break_even
                    .as_ref()
                    .map(|b| break_even_display(b.point))
                    .unwrap_or_else(|| "—".into()),
                fmt_figure(&r.energy_per_request.amortized_j),
                est(r.energy_per_request.amortized_j.estimated),
                fmt_figure(&r.gco2e_per_request.total_g),
                est(r.gco2e_per_request.total_g.estimated),
                r.latency_ms
                    .get("e2e_p95")
                    .map(fmt_figure)
                    .unwrap_or_else(|| "—".into()),
                r.requests
            );
        }
        let _ = writeln!(
            s,
            "\nIntervals are {:.0} % bootstrap CIs over requests ({} resamples). ᴱ estimated (modelled energy), ᴰ rests on declared adoption costs (manifests); site assumptions: {}. A verdict whose CI straddles 1 is `inconclusive`.",
            c.bootstrap.confidence * 100.0,
            c.bootstrap.draws,
            md(&c.site_source)
        );
        for n in &c.not_applicable {
            let _ = writeln!(
                s,
                "\n**{}** (`{}`): not applicable — {}",
                md(&n.label),
                md(&n.id),
                md(&n.reason)
            );
        }
        for w in &c.warnings {
            let _ = writeln!(s, "\n> ⚠ {}", md(w));
        }
        Ok(s.into_bytes())
    }
}
