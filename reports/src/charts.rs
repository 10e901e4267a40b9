//! The leaderboard's charts, drawn by plotters as SVG strings (inlined in the HTML page).
//! plotters' SVG backend escapes text, so method names cannot inject markup.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use oae_scorecards::BreakEven;
use oae_scorecards::score::{Row, Scorecards};

/// Chart size, px.
const SIZE: (u32, u32) = (760, 420);

type Res<T> = Result<T, String>;

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn color(i: usize) -> RGBColor {
    // Okabe–Ito colour-blind-safe palette, then plotters' 99.
    const OI: [(u8, u8, u8); 8] = [
        (0, 114, 178),
        (213, 94, 0),
        (0, 158, 115),
        (204, 121, 167),
        (230, 159, 0),
        (86, 180, 233),
        (0, 0, 0),
        (240, 228, 66),
    ];
    if i < OI.len() {
        RGBColor(OI[i].0, OI[i].1, OI[i].2)
    } else {
        let c = Palette99::pick(i).to_rgba();
        RGBColor(c.0, c.1, c.2)
    }
}

/// Draws the series legend in a translucent box.
fn legend<'a, DB, X, Y>(chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>, pos: SeriesLabelPosition) -> Res<()>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    X: Ranged,
    Y: Ranged,
{
    chart
        .configure_series_labels()
        .position(pos)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(err)
}

/// Method labels in first-seen order, each with its colour index.
pub fn methods(cards: &Scorecards) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in &cards.rows {
        if !out.contains(&r.method) {
            out.push(r.method.clone());
        }
    }
    out
}

fn color_of(methods: &[String], m: &str) -> RGBColor {
    color(methods.iter().position(|x| x == m).unwrap_or(0))
}

fn bounds(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let v: Vec<f64> = values.filter(|x| x.is_finite() && (!log || *x > 0.0)).collect();
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return if log { (0.1, 10.0) } else { (0.0, 1.0) };
    }
    if log {
        let (lo, hi) = (lo / 1.5, hi * 1.5);
        if hi / lo < 10.0 { (lo / 3.0, hi * 3.0) } else { (lo, hi) }
    } else if (hi - lo).abs() < 1e-12 {
        (lo - 1.0, hi + 1.0)
    } else {
        let pad = (hi - lo) * 0.05;
        (lo - pad, hi + pad)
    }
}

/// Cost per 1k good requests vs request rate (log-log) for one workload: one line per
/// method, the workload's own rate as a dashed line, break-even points marked.
pub fn cost_vs_rate(cards: &Scorecards, workload: &str) -> Res<String> {
    let names = methods(cards);
    let rows: Vec<&Row> = cards.rows.iter().filter(|r| r.workload == workload).collect();
    let (ylo, yhi) = bounds(rows.iter().flat_map(|r| r.curve.iter().map(|p| p.1)), true);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Cost per 1k good requests vs rate — {workload}"),
                ("sans-serif", 17),
            )
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(70)
            .build_cartesian_2d((1e-3f64..1e3f64).log_scale(), (ylo..yhi).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("request rate λ (req/s, log)")
            .y_desc("USD per 1k good requests (log)")
            .x_label_formatter(&|x| crate::fmt_num(*x))
            .y_label_formatter(&|y| crate::fmt_num(*y))
            .draw()
            .map_err(err)?;
        for r in &rows {
            let c = color_of(&names, &r.method);
            let pts: Vec<(f64, f64)> = r
                .curve
                .iter()
                .copied()
                .filter(|p| p.1.is_finite() && p.1 > 0.0)
                .collect();
            chart
                .draw_series(LineSeries::new(pts, c.stroke_width(2)))
                .map_err(err)?
                .label(r.method.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
            if let Some(BreakEven::At(q)) = r.break_even.as_ref().map(|b| b.point) {
                // Mark where the method's line crosses the baseline's.
                let y = interpolate(&r.curve, q);
                if let Some(y) = y.filter(|y| *y >= ylo && *y <= yhi) {
                    chart
                        .draw_series(std::iter::once(Circle::new((q, y), 6, c.filled())))
                        .map_err(err)?;
                    chart
                        .draw_series(std::iter::once(Text::new(
                            format!("break-even {} req/s ", crate::fmt_num(q)),
                            (q, y),
                            // Right of the mark in the left half, left of it in the right half.
                            ("sans-serif", 12)
                                .into_font()
                                .color(&c)
                                .pos(Pos::new(if q > 1.0 { HPos::Right } else { HPos::Left }, VPos::Bottom)),
                        )))
                        .map_err(err)?;
                }
            }
        }
        if let Some(rate) = rows.first().map(|r| r.rate_qps).filter(|q| *q > 0.0) {
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(rate, ylo), (rate, yhi)],
                    6,
                    4,
                    BLACK.mix(0.5).stroke_width(1),
                ))
                .map_err(err)?
                .label(format!("this workload: {} req/s", crate::fmt_num(rate)))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.mix(0.5)));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Log-log interpolation of a cost curve at λ.
fn interpolate(curve: &[(f64, f64)], q: f64) -> Option<f64> {
    let i = curve.windows(2).position(|w| w[0].0 <= q && q <= w[1].0)?;
    let (a, b) = (curve[i], curve[i + 1]);
    if !(a.1 > 0.0 && b.1 > 0.0 && a.1.is_finite() && b.1.is_finite()) {
        return None;
    }
    let t = (q.ln() - a.0.ln()) / (b.0.ln() - a.0.ln());
    Some((a.1.ln() + t * (b.1.ln() - a.1.ln())).exp())
}

/// E2E latency CDFs of ok requests for one workload, one line per method.
pub fn latency_cdf(cards: &Scorecards, workload: &str) -> Res<String> {
    let names = methods(cards);
    let rows: Vec<&Row> = cards
        .rows
        .iter()
        .filter(|r| r.workload == workload && r.cdf_ms.contains_key("e2e"))
        .collect();
    let (xlo, xhi) = bounds(rows.iter().flat_map(|r| r.cdf_ms["e2e"].iter().copied()), true);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("End-to-end latency CDF — {workload}"), ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(55)
            .build_cartesian_2d((xlo..xhi).log_scale(), 0f64..1f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_labels(8)
            .x_desc("E2E latency from intended arrival (ms, log)")
            .y_desc("share of ok requests ≤ x")
            .x_label_formatter(&|x| crate::fmt_num(*x))
            .draw()
            .map_err(err)?;
        for r in &rows {
            let c = color_of(&names, &r.method);
            let pts: Vec<(f64, f64)> = r.cdf_ms["e2e"]
                .iter()
                .enumerate()
                .map(|(i, &x)| (x.max(xlo), i as f64 / 100.0))
                .collect();
            chart
                .draw_series(LineSeries::new(pts, c.stroke_width(2)))
                .map_err(err)?
                .label(format!("{} (n={})", r.method, r.requests))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Energy per request split three ways per scorecard: dynamic, idle while busy, share of idle
/// gaps (stacked to the amortized figure).
pub fn energy_breakdown(cards: &Scorecards) -> Res<String> {
    let parts = |r: &Row| {
        let e = &r.energy_per_request;
        let d = e.dynamic_j.value.max(0.0);
        let a = (e.active_j.value - d).max(0.0);
        let g = (e.amortized_j.value - e.active_j.value).max(0.0);
        vec![d, a, g]
    };
    let names = ["dynamic", "idle while busy", "idle gaps (amortized)"].map(str::to_string);
    let shades = vec![color(0), color(4), RGBColor(180, 180, 180)];
    stacked(
        cards,
        "Energy per request (J): dynamic · idle while busy · share of idle gaps",
        &names,
        &shades,
        &parts,
    )
}

/// Amortized energy per request by domain (each GPU, the CPU, DRAM: each with its own meter
/// and kind), stacked per scorecard.
pub fn energy_by_domain(cards: &Scorecards) -> Res<String> {
    let mut domains: Vec<String> = Vec::new();
    for r in &cards.rows {
        for d in &r.energy_per_request.by_domain {
            if !domains.contains(&d.domain) {
                domains.push(d.domain.clone());
            }
        }
    }
    domains.sort();
    let parts = |r: &Row| {
        domains
            .iter()
            .map(|name| {
                r.energy_per_request
                    .by_domain
                    .iter()
                    .find(|d| &d.domain == name)
                    .map_or(0.0, |d| d.amortized_j.value.max(0.0))
            })
            .collect()
    };
    let names: Vec<String> = domains
        .iter()
        .map(|d| {
            let kinds: Vec<&str> = cards
                .rows
                .iter()
                .flat_map(|r| &r.energy_per_request.by_domain)
                .filter(|x| &x.domain == d)
                .map(|x| x.kind.as_str())
                .collect();
            let estimated = kinds.contains(&"estimated");
            format!("{d}{}", if estimated { " (estimated)" } else { "" })
        })
        .collect();
    let shades: Vec<RGBColor> = (0..domains.len()).map(color).collect();
    stacked(
        cards,
        "Energy per request by domain (J, amortized)",
        &names,
        &shades,
        &parts,
    )
}

/// Stacked bars, one per scorecard, of the `parts` named `names`.
fn stacked(
    cards: &Scorecards,
    caption: &str,
    names: &[String],
    shades: &[RGBColor],
    parts: &dyn Fn(&Row) -> Vec<f64>,
) -> Res<String> {
    let rows = &cards.rows;
    let finite = |r: &Row| -> Vec<f64> {
        parts(r)
            .into_iter()
            .map(|x| if x.is_finite() { x } else { 0.0 })
            .collect()
    };
    let ymax = rows
        .iter()
        .map(|r| finite(r).iter().sum::<f64>())
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.1;
    let n = rows.len().max(1);
    let height = SIZE.1 + 40;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (SIZE.0, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(60)
            .y_label_area_size(60)
            .build_cartesian_2d((0..n as i32).into_segmented(), 0f64..ymax)
            .map_err(err)?;
        let labels: Vec<String> = rows.iter().map(|r| format!("{} · {}", r.method, r.workload)).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n.min(50) + 1)
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .y_desc("J per request")
            .draw()
            .map_err(err)?;
        let values: Vec<Vec<f64>> = rows.iter().map(finite).collect();
        for (k, shade) in shades.iter().enumerate() {
            let bars: Vec<Rectangle<(SegmentValue<i32>, f64)>> = values
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let base: f64 = p[..k].iter().sum();
                    let mut bar = Rectangle::new(
                        [
                            (SegmentValue::Exact(i as i32), base),
                            (
                                SegmentValue::Exact(i as i32 + 1),
                                base + p.get(k).copied().unwrap_or(0.0),
                            ),
                        ],
                        shade.filled(),
                    );
                    bar.set_margin(0, 0, 12, 12);
                    bar
                })
                .collect();
            let s = *shade;
            chart
                .draw_series(bars)
                .map_err(err)?
                .label(names[k].as_str())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], s.filled()));
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Quality vs cost (the Pareto view): good share (SLO attainment × quality where known)
/// against cost per 1k good requests, one point per scorecard.
pub fn quality_vs_cost(cards: &Scorecards) -> Res<String> {
    let names = methods(cards);
    let pts: Vec<(&Row, f64, f64)> = cards
        .rows
        .iter()
        .map(|r| {
            let q = match &r.inputs.quality {
                Some(q) if !r.inputs.quality_in_attainment => q.value,
                _ => 1.0,
            };
            (r, r.cost_per_1k_good_usd.value, r.inputs.attainment.value * q)
        })
        .filter(|p| p.1.is_finite() && p.1 > 0.0)
        .collect();
    let (xlo, xhi) = bounds(pts.iter().map(|p| p.1), true);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Quality vs cost (up and left is better)", ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(55)
            .build_cartesian_2d((xlo..xhi).log_scale(), 0f64..1.05f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_labels(8)
            .x_desc("USD per 1k good requests (log)")
            .y_desc("good share: SLO attainment × quality (where known)")
            .x_label_formatter(&|x| crate::fmt_num(*x))
            .draw()
            .map_err(err)?;
        for m in &names {
            let c = color_of(&names, m);
            let mine: Vec<(f64, f64)> = pts.iter().filter(|p| &p.0.method == m).map(|p| (p.1, p.2)).collect();
            if mine.is_empty() {
                continue;
            }
            chart
                .draw_series(mine.into_iter().map(move |p| Circle::new(p, 6, c.filled())))
                .map_err(err)?
                .label(m.clone())
                .legend(move |(x, y)| Circle::new((x + 8, y), 5, c.filled()));
        }
        legend(&mut chart, SeriesLabelPosition::LowerLeft)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}
