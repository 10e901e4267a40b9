//! The leaderboard as columns: one row per (method, workload, device class), every column
//! tagged with its provenance. CSV, Parquet and the HTML table are all written from this.

use oae_scorecards::BreakEven;
use oae_scorecards::score::{Figure, Row, Scorecards};

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

/// One leaderboard column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Machine name (CSV header, Parquet field).
    pub name: &'static str,
    /// Human heading.
    pub heading: &'static str,
    /// measured / declared / site, joined with `+`; empty for identifiers.
    pub provenance: String,
    /// Whether it is shown in the HTML table (the rest are in the downloads).
    pub headline: bool,
    /// Values, one per row.
    pub values: Values,
    /// Per row: the value rests on an estimate (modelled energy). Empty: none do.
    pub estimated: Vec<bool>,
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

fn prov(f: &Figure) -> String {
    f.sources.join("+")
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// Builds the columns of `cards`.
pub fn columns(cards: &Scorecards) -> Vec<Column> {
    let rows = &cards.rows;
    let mut cols = Vec::new();
    let text = |name, heading, headline, f: &dyn Fn(&Row) -> String| Column {
        name,
        heading,
        provenance: String::new(),
        headline,
        values: Values::Text(rows.iter().map(f).collect()),
        estimated: Vec::new(),
    };
    let flag = |name, heading, headline, f: &dyn Fn(&Row) -> bool| Column {
        name,
        heading,
        provenance: String::new(),
        headline,
        values: Values::Flag(rows.iter().map(f).collect()),
        estimated: Vec::new(),
    };
    // A figure and, optionally, its CI and range columns.
    let figure = |cols: &mut Vec<Column>,
                  name: &'static str,
                  heading: &'static str,
                  headline: bool,
                  ci: [&'static str; 2],
                  f: &dyn Fn(&Row) -> Option<&Figure>| {
        let provenance = rows.iter().find_map(|r| f(r).map(prov)).unwrap_or_default();
        let get = |g: &dyn Fn(&Figure) -> Option<f64>| {
            Values::Num(rows.iter().map(|r| f(r).and_then(g).and_then(finite)).collect())
        };
        cols.push(Column {
            name,
            heading,
            provenance: provenance.clone(),
            headline,
            values: get(&|x| Some(x.value)),
            estimated: rows.iter().map(|r| f(r).is_some_and(|x| x.estimated)).collect(),
        });
        if !ci[0].is_empty() {
            for (n, g) in [
                (ci[0], (|x: &Figure| x.ci_lo) as fn(&Figure) -> Option<f64>),
                (ci[1], |x| x.ci_hi),
            ] {
                cols.push(Column {
                    name: n,
                    heading: n,
                    provenance: provenance.clone(),
                    headline: false,
                    values: get(&g),
                    estimated: Vec::new(),
                });
            }
        }
    };

    cols.push(text("method", "method", true, &|r| r.method.clone()));
    cols.push(text("method_id", "id", false, &|r| r.method_id.clone()));
    cols.push(text("workload", "workload", true, &|r| r.workload.clone()));
    cols.push(text("device_class", "device class", false, &|r| r.device_class.clone()));
    cols.push(flag("baseline", "baseline", false, &|r| r.baseline));
    cols.push(flag("partial_run", "partial run", false, &|_| cards.run.partial));
    cols.push(Column {
        name: "rate_qps",
        heading: "rate (req/s)",
        provenance: "measured".into(),
        headline: true,
        values: Values::Num(rows.iter().map(|r| finite(r.rate_qps)).collect()),
        estimated: Vec::new(),
    });
    cols.push(Column {
        name: "requests",
        heading: "n",
        provenance: "measured".into(),
        headline: true,
        values: Values::Num(rows.iter().map(|r| Some(r.requests as f64)).collect()),
        estimated: Vec::new(),
    });
    cols.push(Column {
        name: "failed",
        heading: "failed",
        provenance: "measured".into(),
        headline: false,
        values: Values::Num(rows.iter().map(|r| Some(r.failed as f64)).collect()),
        estimated: Vec::new(),
    });
    cols.push(text("verdict", "verdict", true, &|r| r.verdict.name().to_string()));
    figure(
        &mut cols,
        "oae_ratio",
        "OAE ratio",
        true,
        ["oae_ratio_ci_lo", "oae_ratio_ci_hi"],
        &|r| r.oae_ratio.as_ref(),
    );
    cols.push(Column {
        name: "oae_ratio_range_lo",
        heading: "oae_ratio_range_lo",
        provenance: "declared".into(),
        headline: false,
        values: Values::Num(
            rows.iter()
                .map(|r| r.oae_ratio.as_ref().and_then(|f| f.range_lo))
                .collect(),
        ),
        estimated: Vec::new(),
    });
    cols.push(Column {
        name: "oae_ratio_range_hi",
        heading: "oae_ratio_range_hi",
        provenance: "declared".into(),
        headline: false,
        values: Values::Num(
            rows.iter()
                .map(|r| r.oae_ratio.as_ref().and_then(|f| f.range_hi))
                .collect(),
        ),
        estimated: Vec::new(),
    });
    figure(
        &mut cols,
        "cost_per_1k_good_usd",
        "USD / 1k good",
        true,
        ["cost_per_1k_good_usd_ci_lo", "cost_per_1k_good_usd_ci_hi"],
        &|r| Some(&r.cost_per_1k_good_usd),
    );
    for (name, f) in [
        ("hardware_usd", (|r: &Row| r.breakdown.hardware_usd) as fn(&Row) -> f64),
        ("energy_usd", |r| r.breakdown.energy_usd),
        ("carbon_usd", |r| r.breakdown.carbon_usd),
        ("labor_usd", |r| r.breakdown.labor_usd),
        ("total_usd", |r| r.breakdown.total_usd),
        ("devices", |r| r.breakdown.devices),
    ] {
        cols.push(Column {
            name,
            heading: name,
            provenance: if name == "labor_usd" {
                "declared+site"
            } else {
                "measured+site"
            }
            .into(),
            headline: false,
            values: Values::Num(rows.iter().map(|r| finite(f(r))).collect()),
            estimated: Vec::new(),
        });
    }
    figure(
        &mut cols,
        "tor",
        "good req / USD",
        false,
        ["tor_ci_lo", "tor_ci_hi"],
        &|r| Some(&r.tor),
    );
    cols.push(Column {
        name: "break_even_qps",
        heading: "break-even (req/s)",
        provenance: "measured+declared+site".into(),
        headline: true,
        values: Values::Text(
            rows.iter()
                .map(|r| {
                    r.break_even
                        .as_ref()
                        .map(|b| break_even_text(b.point))
                        .unwrap_or_default()
                })
                .collect(),
        ),
        estimated: Vec::new(),
    });
    for (name, f) in [
        (
            "break_even_ci_lo",
            (|b: &oae_scorecards::score::BreakEvenFigure| b.ci_lo) as fn(&_) -> BreakEven,
        ),
        ("break_even_ci_hi", |b| b.ci_hi),
    ] {
        cols.push(Column {
            name,
            heading: name,
            provenance: "measured+declared+site".into(),
            headline: false,
            values: Values::Text(
                rows.iter()
                    .map(|r| r.break_even.as_ref().map(|b| break_even_text(f(b))).unwrap_or_default())
                    .collect(),
            ),
            estimated: Vec::new(),
        });
    }
    figure(
        &mut cols,
        "talent_premium_usd",
        "talent premium (USD)",
        true,
        ["", ""],
        &|r| Some(&r.talent_premium_usd),
    );
    cols.push(flag("talent_dependent", "talent-dependent", false, &|r| {
        r.talent_dependent
    }));
    cols.push(Column {
        name: "expertise",
        heading: "expertise",
        provenance: "declared".into(),
        headline: true,
        values: Values::Text(
            rows.iter()
                .map(|r| format!("L{} {}", r.declared.level, r.declared.expertise))
                .collect(),
        ),
        estimated: Vec::new(),
    });
    cols.push(Column {
        name: "engineer_weeks",
        heading: "engineer-weeks",
        provenance: "declared".into(),
        headline: false,
        values: Values::Num(rows.iter().map(|r| Some(r.declared.engineer_weeks[1])).collect()),
        estimated: Vec::new(),
    });
    figure(&mut cols, "energy_dyn_j", "dyn J/req", false, ["", ""], &|r| {
        Some(&r.energy_per_request.dynamic_j)
    });
    figure(&mut cols, "energy_active_j", "active J/req", false, ["", ""], &|r| {
        Some(&r.energy_per_request.active_j)
    });
    figure(
        &mut cols,
        "energy_amortized_j",
        "amortized J/req",
        true,
        ["energy_amortized_j_ci_lo", "energy_amortized_j_ci_hi"],
        &|r| Some(&r.energy_per_request.amortized_j),
    );
    cols.push(text("energy_source", "energy source", false, &|r| {
        r.energy_per_request.source.clone()
    }));
    cols.push(flag("energy_estimated", "energy estimated", false, &|r| {
        r.energy_per_request.amortized_j.estimated
    }));
    figure(&mut cols, "gco2e_per_request", "gCO2e/req", true, ["", ""], &|r| {
        Some(&r.gco2e_per_request.total_g)
    });
    figure(&mut cols, "gco2e_operational", "operational g", false, ["", ""], &|r| {
        Some(&r.gco2e_per_request.operational_g)
    });
    figure(&mut cols, "gco2e_embodied", "embodied g", false, ["", ""], &|r| {
        Some(&r.gco2e_per_request.embodied_g)
    });
    for (name, key, headline) in [
        ("e2e_p50_ms", "e2e_p50", false),
        ("e2e_p95_ms", "e2e_p95", true),
        ("ttft_p50_ms", "ttft_p50", false),
        ("ttft_p95_ms", "ttft_p95", false),
        ("tpot_p50_ms", "tpot_p50", false),
    ] {
        figure(&mut cols, name, name, headline, ["", ""], &|r| r.latency_ms.get(key));
    }
    figure(
        &mut cols,
        "attainment",
        "SLO attainment",
        true,
        ["attainment_ci_lo", "attainment_ci_hi"],
        &|r| Some(&r.inputs.attainment),
    );
    figure(&mut cols, "service_s", "service s", false, ["", ""], &|r| {
        Some(&r.inputs.service_s)
    });
    figure(&mut cols, "idle_w", "idle W", false, ["", ""], &|r| {
        Some(&r.inputs.idle_w)
    });
    figure(&mut cols, "memory_bytes", "memory bytes", false, ["", ""], &|r| {
        Some(&r.inputs.memory_bytes)
    });
    cols.push(Column {
        name: "worst_goodput_ratio",
        heading: "worst goodput ratio",
        provenance: "measured".into(),
        headline: false,
        values: Values::Num(
            rows.iter()
                .map(|r| {
                    r.robustness
                        .as_ref()
                        .and_then(|x| x.worst_goodput.as_ref().map(|w| w.0))
                })
                .collect(),
        ),
        estimated: Vec::new(),
    });
    cols.push(text("worst_perturbation", "worst perturbation", false, &|r| {
        r.robustness
            .as_ref()
            .and_then(|x| x.worst_goodput.as_ref().map(|w| w.1.clone()))
            .unwrap_or_default()
    }));
    cols.push(flag("valid", "valid", false, &|r| r.valid));
    cols
}
