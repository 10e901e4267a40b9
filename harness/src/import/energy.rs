//! Energy for imported requests from a timeline `oae meter` recorded around the peer's run:
//! each cell is placed on the timeline by its wall-clock time, the loaded-idle baselines the
//! recording measured give idle power, and the harness's own attribution splits the window's
//! energy over the requests as it does for a run (active, dynamic, amortized; per domain),
//! with carbon from the same assumptions.

use std::path::Path;

use oae_core::rundir::energy::{IdleBaseline, IdleDrift};
use oae_core::rundir::{CarbonSummary, EnergySummary, MeterInfo};

use super::{PeerCell, PeerRun};
use crate::carbon::CarbonModel;
use crate::energy::cell::{CellWindow, Settings, attribute_cell};
use crate::energy::idle::{IdleFit, baseline_record, idle_model};
use crate::metered::Metered;
use crate::suite::DEFAULT_IDLE_BASELINE_S;
use crate::{HarnessError, RequestRecord};

/// A metered timeline and its idle fits.
pub(super) struct Alignment<'a> {
    pub metered: &'a Metered,
    pub fits: Vec<Option<IdleFit>>,
}

impl<'a> Alignment<'a> {
    pub fn new(metered: &'a Metered) -> Alignment<'a> {
        let fits = idle_model(&metered.timeline, metered.info.idle_before_s, metered.info.idle_after_s);
        Alignment { metered, fits }
    }

    /// run.json's idle baseline of every imported method (the recording's).
    pub fn baseline(&self) -> IdleBaseline {
        let m = self.metered;
        baseline_record(
            &m.timeline.meters,
            &self.fits,
            m.info.idle_before_s,
            m.info.idle_after_s,
            DEFAULT_IDLE_BASELINE_S,
        )
    }
}

/// Where a cell lies on the timeline.
#[derive(Debug, Clone, Copy)]
pub(super) struct Placed {
    /// Its replay window, s on the timeline.
    pub window: CellWindow,
    /// The same window in Unix time.
    pub unix: (f64, f64),
}

/// The cell's window on the timeline (its first intended arrival `t0` on the peer's clock,
/// `replay_s` long), or why it cannot be placed there.
pub(super) fn place(
    m: &Metered,
    file: &Path,
    label: &str,
    run: &PeerRun,
    cell: &PeerCell,
    t0: f64,
    replay_s: f64,
) -> Result<Placed, HarnessError> {
    let origin = cell.origin_unix.ok_or_else(|| {
        HarnessError::Invalid(format!(
            "{}: {}'s request times are not wall-clock times, so the timeline in {} cannot be aligned with them; import without --timeline",
            file.display(),
            run.tool,
            m.dir.display()
        ))
    })?;
    let unix0 = origin + t0;
    let t0_s = unix0 - m.info.unix_start;
    let end_s = t0_s + replay_s;
    let first = m.timeline.samples.first().map_or(0.0, |s| s.t_s);
    let last = m.timeline.samples.last().map_or(0.0, |s| s.t_s);
    if t0_s < first || end_s > last {
        let utc = crate::clock::utc_rfc3339;
        return Err(HarnessError::Invalid(format!(
            "{}: `{label}` on `{}` ran from {} to {} (UTC), outside the timeline in {} ({} to {}); meter the peer's own run: oae meter --out DIR -- <peer command>",
            file.display(),
            cell.workload,
            utc(unix0),
            utc(unix0 + replay_s),
            m.dir.display(),
            utc(m.info.unix_start + first),
            utc(m.info.unix_start + last)
        )));
    }
    Ok(Placed {
        window: CellWindow {
            t0_s,
            end_s,
            compressed_s: 0.0,
        },
        unix: (unix0, unix0 + replay_s),
    })
}

/// Attributes the timeline's energy over the cell's window to its records (in place) and
/// returns the cell's energy and carbon summaries (carbon only from valid energy).
pub(super) fn attribute(
    a: &Alignment<'_>,
    carbon: &CarbonModel,
    recs: &mut [RequestRecord],
    at: Placed,
    confidence: f64,
) -> (Option<EnergySummary>, Option<CarbonSummary>) {
    let idle_w: Vec<Option<f64>> = a.fits.iter().map(|f| f.map(|x| x.both.median_w)).collect();
    let settings = Settings {
        prefill_weight: 1.0,
        setup_j: None,
        confidence,
    };
    let energy = attribute_cell(&a.metered.timeline, recs, at.window, &idle_w, settings);
    let part = energy
        .as_ref()
        .is_some_and(|e| e.valid)
        .then(|| crate::carbon::attach_to_cell(carbon, recs, at.unix, at.unix.1 - at.unix.0));
    (
        crate::energy::cell::pool(vec![energy], recs, confidence),
        part.and_then(|c| crate::carbon::pool(vec![c])),
    )
}

/// Each primary domain's idle drift between the recording's two baselines.
pub(super) fn drift_of(label: &str, meters: &[MeterInfo], fits: &[Option<IdleFit>]) -> Vec<IdleDrift> {
    fits.iter()
        .zip(meters)
        .filter(|(_, info)| info.primary)
        .filter_map(|(fit, info)| {
            Some(IdleDrift {
                method: label.to_string(),
                domain: info.domain.clone(),
                drift_pct: fit.as_ref()?.drift_pct()?,
            })
        })
        .collect()
}
