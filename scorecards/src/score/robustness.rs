//! Robustness: how each method's goodput, p95 latency and (for task workloads) answer
//! quality on a nominal workload hold up under the suite's perturbations of it (workloads with
//! `perturbs = "<nominal>"`).

use super::types::{Perturbation, Robustness, Row};
use crate::rundir::RunData;

/// Fills `robustness` of every row whose workload has perturbations in this run.
pub(super) fn add_robustness(data: &RunData, rows: &mut [Row]) {
    // (perturbed workload, nominal, what it perturbs in words)
    let perturbations: Vec<(String, String, String)> = data
        .run
        .workloads
        .iter()
        .filter_map(|w| {
            let nominal = w.perturbs.clone()?;
            Some((w.name.clone(), nominal, w.perturbation.clone().unwrap_or_default()))
        })
        .collect();
    if perturbations.is_empty() {
        return;
    }
    let stat = |method: &str, workload: &str| {
        let c = data.summary_cell(method, workload)?;
        let quality = crate::rundir::quality_scorer(&data.run.slo, data.quality_preference.as_deref(), &c.quality)
            .and_then(|name| c.quality.get(name))
            .map(|s| s.mean.value)
            .filter(|v| v.is_finite());
        Some((
            Some(c.goodput.goodput_qps),
            c.latency.get("e2e_ms").map(|s| s.p95.value).filter(|v| v.is_finite()),
            quality,
        ))
    };
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    for row in rows.iter_mut() {
        let mine: Vec<_> = perturbations.iter().filter(|p| p.1 == row.workload).collect();
        if mine.is_empty() {
            continue;
        }
        let Some((good_n, p95_n, q_n)) = stat(&row.method, &row.workload) else {
            continue;
        };
        let list: Vec<Perturbation> = mine
            .iter()
            .filter_map(|(w, _, what)| {
                let (good_p, p95_p, q_p) = stat(&row.method, w)?;
                Some(Perturbation {
                    workload: w.clone(),
                    perturbation: if what.is_empty() { w.clone() } else { what.clone() },
                    goodput_ratio: ratio(good_p, good_n),
                    p95_e2e_ratio: ratio(p95_p, p95_n),
                    quality_ratio: ratio(q_p, q_n),
                })
            })
            .collect();
        let worst_goodput = list
            .iter()
            .filter_map(|p| Some((p.goodput_ratio?, p.perturbation.clone())))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        let worst_p95_e2e = list
            .iter()
            .filter_map(|p| Some((p.p95_e2e_ratio?, p.perturbation.clone())))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let worst_quality = list
            .iter()
            .filter_map(|p| Some((p.quality_ratio?, p.perturbation.clone())))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        row.robustness = Some(Robustness {
            worst_goodput,
            worst_p95_e2e,
            worst_quality,
            perturbations: list,
        });
    }
}
