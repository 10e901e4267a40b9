//! The leaderboard as columns: one row per (method, workload, device class), every column
//! declared once in [`COLUMNS`] — its name, heading, unit, provenance, how it is displayed
//! and how its value is read from a scorecard — so a new column is one entry. CSV, Parquet,
//! JSON and the HTML table are all written from the materialised [`Column`]s.

use oae_scorecards::BreakEven;
use oae_scorecards::score::{BreakEvenFigure, Figure, Row, Scorecards};

/// A column's values.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Numbers; `None` where not applicable.
    Num(Vec<Option<f64>>),
    /// Text.
    Text(Vec<String>),
    /// Flags.
    Flag(Vec<bool>),
}

/// How a column's values are shown to people (the data files keep full precision).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// Three significant digits, with the `_ci_lo`/`_ci_hi` columns in brackets when they
    /// exist.
    Number,
    /// A rate, `always` or `never`; sorts by rate.
    BreakEven,
    /// `better` / `worse` / `inconclusive` / `baseline`, coloured.
    Verdict,
    /// Plain text.
    Text,
    /// yes / no.
    Flag,
}

/// One leaderboard column, materialised for a set of scorecards.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Machine name (CSV header, Parquet field).
    pub name: &'static str,
    /// Human heading.
    pub heading: &'static str,
    /// Unit of the values (empty for identifiers, shares and counts).
    pub unit: &'static str,
    /// measured / declared / site, joined with `+`; empty for identifiers.
    pub provenance: &'static str,
    /// Whether it is shown in the HTML table (the rest are in the downloads).
    pub headline: bool,
    /// How it is displayed.
    pub display: Display,
    /// Values, one per row.
    pub values: Values,
    /// Per row: the value rests on an estimate (modelled energy). Empty: none do.
    pub estimated: Vec<bool>,
}

/// One cell's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// A number, or none.
    Num(Option<f64>),
    /// Text.
    Text(String),
    /// A flag.
    Flag(bool),
}

/// A column, declared.
pub struct ColumnDef {
    /// Machine name.
    pub name: &'static str,
    /// Human heading.
    pub heading: &'static str,
    /// Unit.
    pub unit: &'static str,
    /// Provenance.
    pub provenance: &'static str,
    /// Shown in the HTML table.
    pub headline: bool,
    /// How it is displayed.
    pub display: Display,
    /// The value of a row.
    pub value: fn(&Row, &Scorecards) -> Cell,
    /// Whether a row's value rests on an estimate; `None`: never.
    pub estimated: Option<fn(&Row) -> bool>,
}

/// A break-even rate for data files: the number at full precision, `always` or `never`.
pub fn break_even_text(b: BreakEven) -> String {
    match b {
        BreakEven::At(q) => format!("{q}"),
        BreakEven::Always => "always".into(),
        BreakEven::Never => "never".into(),
    }
}

/// A break-even rate for people: three significant digits.
pub fn break_even_display(b: BreakEven) -> String {
    match b {
        BreakEven::At(q) => crate::fmt_num(q),
        other => break_even_text(other),
    }
}

fn finite(v: f64) -> Cell {
    Cell::Num(v.is_finite().then_some(v))
}

fn opt(v: Option<f64>) -> Cell {
    Cell::Num(v.filter(|x| x.is_finite()))
}

fn break_even(r: &Row, f: fn(&BreakEvenFigure) -> BreakEven) -> Cell {
    Cell::Text(r.break_even.as_ref().map(|b| break_even_text(f(b))).unwrap_or_default())
}

const MEASURED: &str = "measured";
const DECLARED: &str = "declared";
const ALL: &str = "measured+declared+site";

/// A plain column.
const fn col(
    name: &'static str,
    heading: &'static str,
    unit: &'static str,
    provenance: &'static str,
    headline: bool,
    display: Display,
    value: fn(&Row, &Scorecards) -> Cell,
) -> ColumnDef {
    ColumnDef {
        name,
        heading,
        unit,
        provenance,
        headline,
        display,
        value,
        estimated: None,
    }
}

/// A figure's point value, flagged where it rests on estimated energy.
const fn fig(
    name: &'static str,
    heading: &'static str,
    unit: &'static str,
    provenance: &'static str,
    headline: bool,
    value: fn(&Row, &Scorecards) -> Cell,
    estimated: fn(&Row) -> bool,
) -> ColumnDef {
    ColumnDef {
        name,
        heading,
        unit,
        provenance,
        headline,
        display: Display::Number,
        value,
        estimated: Some(estimated),
    }
}

/// A bound of a figure's interval or range (named as its heading, not a headline).
const fn bound(
    name: &'static str,
    unit: &'static str,
    provenance: &'static str,
    value: fn(&Row, &Scorecards) -> Cell,
) -> ColumnDef {
    col(name, name, unit, provenance, false, Display::Number, value)
}

fn est(f: Option<&Figure>) -> bool {
    f.is_some_and(|x| x.estimated)
}

use Display::{Flag, Number, Text};

/// Every leaderboard column, in file order.
pub const COLUMNS: &[ColumnDef] = &[
    col("method", "method", "", "", true, Text, |r, _| {
        Cell::Text(r.method.clone())
    }),
    col("method_id", "id", "", "", false, Text, |r, _| {
        Cell::Text(r.method_id.clone())
    }),
    col("workload", "workload", "", "", true, Text, |r, _| {
        Cell::Text(r.workload.clone())
    }),
    col("device_class", "device class", "", "", false, Text, |r, _| {
        Cell::Text(r.device_class.clone())
    }),
    col("baseline", "baseline", "", "", false, Flag, |r, _| {
        Cell::Flag(r.baseline)
    }),
    col("partial_run", "partial run", "", "", false, Flag, |_, c| {
        Cell::Flag(c.run.partial)
    }),
    col("rate_qps", "rate (req/s)", "req/s", MEASURED, true, Number, |r, _| {
        finite(r.rate_qps)
    }),
    col("requests", "n", "", MEASURED, true, Number, |r, _| {
        Cell::Num(Some(r.requests as f64))
    }),
    col("failed", "failed", "", MEASURED, false, Number, |r, _| {
        Cell::Num(Some(r.failed as f64))
    }),
    col("verdict", "verdict", "", "", true, Display::Verdict, |r, _| {
        Cell::Text(r.verdict.name().into())
    }),
    fig(
        "oae_ratio",
        "OAE ratio",
        "",
        ALL,
        true,
        |r, _| opt(r.oae_ratio.as_ref().map(|f| f.value)),
        |r| est(r.oae_ratio.as_ref()),
    ),
    bound("oae_ratio_ci_lo", "", ALL, |r, _| {
        opt(r.oae_ratio.as_ref().and_then(|f| f.ci_lo))
    }),
    bound("oae_ratio_ci_hi", "", ALL, |r, _| {
        opt(r.oae_ratio.as_ref().and_then(|f| f.ci_hi))
    }),
    bound("oae_ratio_range_lo", "", DECLARED, |r, _| {
        opt(r.oae_ratio.as_ref().and_then(|f| f.range_lo))
    }),
    bound("oae_ratio_range_hi", "", DECLARED, |r, _| {
        opt(r.oae_ratio.as_ref().and_then(|f| f.range_hi))
    }),
    fig(
        "cost_per_1k_good_usd",
        "USD / 1k good",
        "USD",
        ALL,
        true,
        |r, _| finite(r.cost_per_1k_good_usd.value),
        |r| r.cost_per_1k_good_usd.estimated,
    ),
    bound("cost_per_1k_good_usd_ci_lo", "USD", ALL, |r, _| {
        opt(r.cost_per_1k_good_usd.ci_lo)
    }),
    bound("cost_per_1k_good_usd_ci_hi", "USD", ALL, |r, _| {
        opt(r.cost_per_1k_good_usd.ci_hi)
    }),
    bound("hardware_usd", "USD", "measured+site", |r, _| {
        finite(r.breakdown.hardware_usd)
    }),
    bound("energy_usd", "USD", "measured+site", |r, _| {
        finite(r.breakdown.energy_usd)
    }),
    bound("carbon_usd", "USD", "measured+site", |r, _| {
        finite(r.breakdown.carbon_usd)
    }),
    bound("labor_usd", "USD", "declared+site", |r, _| {
        finite(r.breakdown.labor_usd)
    }),
    bound("total_usd", "USD", "measured+site", |r, _| {
        finite(r.breakdown.total_usd)
    }),
    bound("devices", "", "measured+site", |r, _| finite(r.breakdown.devices)),
    fig(
        "tor",
        "good req / USD",
        "1/USD",
        ALL,
        false,
        |r, _| finite(r.tor.value),
        |r| r.tor.estimated,
    ),
    bound("tor_ci_lo", "1/USD", ALL, |r, _| opt(r.tor.ci_lo)),
    bound("tor_ci_hi", "1/USD", ALL, |r, _| opt(r.tor.ci_hi)),
    col(
        "break_even_qps",
        "break-even (req/s)",
        "req/s",
        ALL,
        true,
        Display::BreakEven,
        |r, _| break_even(r, |b| b.point),
    ),
    col(
        "break_even_ci_lo",
        "break_even_ci_lo",
        "req/s",
        ALL,
        false,
        Text,
        |r, _| break_even(r, |b| b.ci_lo),
    ),
    col(
        "break_even_ci_hi",
        "break_even_ci_hi",
        "req/s",
        ALL,
        false,
        Text,
        |r, _| break_even(r, |b| b.ci_hi),
    ),
    fig(
        "talent_premium_usd",
        "talent premium (USD)",
        "USD",
        "declared+site",
        true,
        |r, _| finite(r.talent_premium_usd.value),
        |r| r.talent_premium_usd.estimated,
    ),
    col("talent_dependent", "talent-dependent", "", "", false, Flag, |r, _| {
        Cell::Flag(r.talent_dependent)
    }),
    col("expertise", "expertise", "", DECLARED, true, Text, |r, _| {
        Cell::Text(format!("L{} {}", r.declared.level, r.declared.expertise))
    }),
    col(
        "engineer_weeks",
        "engineer-weeks",
        "weeks",
        DECLARED,
        false,
        Number,
        |r, _| Cell::Num(Some(r.declared.engineer_weeks[1])),
    ),
    fig(
        "energy_dyn_j",
        "dyn J/req",
        "J",
        MEASURED,
        false,
        |r, _| finite(r.energy_per_request.dynamic_j.value),
        |r| r.energy_per_request.dynamic_j.estimated,
    ),
    fig(
        "energy_active_j",
        "active J/req",
        "J",
        MEASURED,
        false,
        |r, _| finite(r.energy_per_request.active_j.value),
        |r| r.energy_per_request.active_j.estimated,
    ),
    fig(
        "energy_amortized_j",
        "amortized J/req",
        "J",
        MEASURED,
        true,
        |r, _| finite(r.energy_per_request.amortized_j.value),
        |r| r.energy_per_request.amortized_j.estimated,
    ),
    bound("energy_amortized_j_ci_lo", "J", MEASURED, |r, _| {
        opt(r.energy_per_request.amortized_j.ci_lo)
    }),
    bound("energy_amortized_j_ci_hi", "J", MEASURED, |r, _| {
        opt(r.energy_per_request.amortized_j.ci_hi)
    }),
    col("energy_source", "energy source", "", "", false, Text, |r, _| {
        Cell::Text(r.energy_per_request.source.clone())
    }),
    col("energy_estimated", "energy estimated", "", "", false, Flag, |r, _| {
        Cell::Flag(r.energy_per_request.amortized_j.estimated)
    }),
    bound("tokens_per_correct", "tokens", MEASURED, |r, _| {
        opt(r.per_correct.as_ref().and_then(|p| p.tokens))
    }),
    bound("energy_j_per_correct", "J", MEASURED, |r, _| {
        opt(r.per_correct.as_ref().and_then(|p| p.energy_j))
    }),
    bound("cost_usd_per_correct", "USD", "measured+declared+site", |r, _| {
        opt(r.per_correct.as_ref().and_then(|p| p.cost_usd))
    }),
    bound(
        "reasoning_overhead",
        "reasoning tokens per answer token",
        MEASURED,
        |r, _| opt(r.per_correct.as_ref().and_then(|p| p.reasoning_overhead)),
    ),
    col(
        "energy_by_domain",
        "energy by domain (J/req amortized)",
        "J",
        MEASURED,
        false,
        Text,
        |r, _| {
            let e = &r.energy_per_request;
            Cell::Text(
                e.by_domain
                    .iter()
                    .map(|d| format!("{} {:.4} ({})", d.domain, d.amortized_j.value, d.kind))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        },
    ),
    col(
        "energy_process_cpu_j",
        "oae's CPU share (J/req active)",
        "J",
        MEASURED,
        false,
        Text,
        |r, _| {
            let e = &r.energy_per_request;
            Cell::Text(match e.process_cpu_active_j {
                Some(j) if e.co_tenant_flagged => format!("{j:.4} (co-tenant: machine view unreliable)"),
                Some(j) => format!("{j:.4}"),
                None => String::new(),
            })
        },
    ),
    fig(
        "gco2e_per_request",
        "gCO2e/req",
        "g",
        "measured+site",
        true,
        |r, _| finite(r.gco2e_per_request.total_g.value),
        |r| r.gco2e_per_request.total_g.estimated,
    ),
    fig(
        "gco2e_operational",
        "operational g",
        "g",
        "measured+site",
        false,
        |r, _| finite(r.gco2e_per_request.operational_g.value),
        |r| r.gco2e_per_request.operational_g.estimated,
    ),
    fig(
        "gco2e_embodied",
        "embodied g",
        "g",
        "measured+site",
        false,
        |r, _| finite(r.gco2e_per_request.embodied_g.value),
        |r| r.gco2e_per_request.embodied_g.estimated,
    ),
    fig(
        "e2e_p50_ms",
        "e2e_p50_ms",
        "ms",
        MEASURED,
        false,
        |r, _| latency(r, "e2e_p50"),
        |r| est(r.latency_ms.get("e2e_p50")),
    ),
    fig(
        "e2e_p95_ms",
        "e2e_p95_ms",
        "ms",
        MEASURED,
        true,
        |r, _| latency(r, "e2e_p95"),
        |r| est(r.latency_ms.get("e2e_p95")),
    ),
    fig(
        "ttft_p50_ms",
        "ttft_p50_ms",
        "ms",
        MEASURED,
        false,
        |r, _| latency(r, "ttft_p50"),
        |r| est(r.latency_ms.get("ttft_p50")),
    ),
    fig(
        "ttft_p95_ms",
        "ttft_p95_ms",
        "ms",
        MEASURED,
        false,
        |r, _| latency(r, "ttft_p95"),
        |r| est(r.latency_ms.get("ttft_p95")),
    ),
    fig(
        "tpot_p50_ms",
        "tpot_p50_ms",
        "ms",
        MEASURED,
        false,
        |r, _| latency(r, "tpot_p50"),
        |r| est(r.latency_ms.get("tpot_p50")),
    ),
    fig(
        "attainment",
        "SLO attainment",
        "",
        MEASURED,
        true,
        |r, _| finite(r.inputs.attainment.value),
        |r| r.inputs.attainment.estimated,
    ),
    bound("attainment_ci_lo", "", MEASURED, |r, _| opt(r.inputs.attainment.ci_lo)),
    bound("attainment_ci_hi", "", MEASURED, |r, _| opt(r.inputs.attainment.ci_hi)),
    fig(
        "quality",
        "quality",
        "",
        MEASURED,
        true,
        |r, _| opt(r.inputs.quality.as_ref().map(|q| q.value)),
        |_| false,
    ),
    bound("quality_ci_lo", "", MEASURED, |r, _| {
        opt(r.inputs.quality.as_ref().and_then(|q| q.ci_lo))
    }),
    bound("quality_ci_hi", "", MEASURED, |r, _| {
        opt(r.inputs.quality.as_ref().and_then(|q| q.ci_hi))
    }),
    col("quality_scorer", "quality scorer", "", "", false, Text, |r, _| {
        Cell::Text(r.inputs.quality_scorer.clone().unwrap_or_default())
    }),
    fig(
        "service_s",
        "service s",
        "s",
        MEASURED,
        false,
        |r, _| finite(r.inputs.service_s.value),
        |r| r.inputs.service_s.estimated,
    ),
    fig(
        "idle_w",
        "idle W",
        "W",
        MEASURED,
        false,
        |r, _| finite(r.inputs.idle_w.value),
        |r| r.inputs.idle_w.estimated,
    ),
    fig(
        "memory_bytes",
        "memory bytes",
        "bytes",
        MEASURED,
        false,
        |r, _| finite(r.inputs.memory_bytes.value),
        |r| r.inputs.memory_bytes.estimated,
    ),
    col(
        "worst_goodput_ratio",
        "worst goodput ratio",
        "",
        MEASURED,
        false,
        Number,
        |r, _| {
            opt(r
                .robustness
                .as_ref()
                .and_then(|x| x.worst_goodput.as_ref().map(|w| w.0)))
        },
    ),
    col(
        "worst_perturbation",
        "worst perturbation",
        "",
        "",
        false,
        Text,
        |r, _| {
            Cell::Text(
                r.robustness
                    .as_ref()
                    .and_then(|x| x.worst_goodput.as_ref().map(|w| w.1.clone()))
                    .unwrap_or_default(),
            )
        },
    ),
    col(
        "worst_quality_ratio",
        "worst quality ratio",
        "",
        MEASURED,
        false,
        Number,
        |r, _| {
            opt(r
                .robustness
                .as_ref()
                .and_then(|x| x.worst_quality.as_ref().map(|w| w.0)))
        },
    ),
    col("valid", "valid", "", "", false, Flag, |r, _| Cell::Flag(r.valid)),
];

fn latency(r: &Row, key: &str) -> Cell {
    opt(r.latency_ms.get(key).map(|f| f.value))
}

/// Builds the columns of `cards` from [`COLUMNS`].
pub fn columns(cards: &Scorecards) -> Vec<Column> {
    COLUMNS.iter().map(|d| materialise(d, cards)).collect()
}

fn materialise(d: &ColumnDef, cards: &Scorecards) -> Column {
    let cells: Vec<Cell> = cards.rows.iter().map(|r| (d.value)(r, cards)).collect();
    let values = match cells.first() {
        Some(Cell::Text(_)) => Values::Text(
            cells
                .into_iter()
                .map(|c| if let Cell::Text(t) = c { t } else { String::new() })
                .collect(),
        ),
        Some(Cell::Flag(_)) => Values::Flag(cells.into_iter().map(|c| matches!(c, Cell::Flag(true))).collect()),
        _ => Values::Num(
            cells
                .into_iter()
                .map(|c| if let Cell::Num(v) = c { v } else { None })
                .collect(),
        ),
    };
    // An empty set of rows still needs the column's type: take it from the display.
    let values = match (&values, d.display, cards.rows.is_empty()) {
        (_, Display::Text | Display::BreakEven | Display::Verdict, true) => Values::Text(Vec::new()),
        (_, Display::Flag, true) => Values::Flag(Vec::new()),
        _ => values,
    };
    Column {
        name: d.name,
        heading: d.heading,
        unit: d.unit,
        provenance: d.provenance,
        headline: d.headline,
        display: d.display,
        values,
        estimated: d
            .estimated
            .map(|f| cards.rows.iter().map(f).collect())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_is_declared_once_with_a_type_matching_its_display() {
        let mut names: Vec<&str> = COLUMNS.iter().map(|c| c.name).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "duplicate column names");
        for c in COLUMNS {
            if c.display == Display::Number && (c.name.ends_with("_ci_lo") || c.name.ends_with("_ci_hi")) {
                let base = c.name.trim_end_matches("_ci_lo").trim_end_matches("_ci_hi");
                assert!(COLUMNS.iter().any(|b| b.name == base), "{} has no base column", c.name);
            }
            assert!(!c.headline || !c.heading.is_empty(), "{}", c.name);
        }
    }
}
