//! The replay meter: feeds a recorded `timeline.csv` back through the meter socket, as if
//! its sources were live. Used by tests (exact, known energy) and to run a new schedule
//! against an old run's energy trace.
//!
//! Each (domain, source) of the file becomes one meter, `replay:<source>`, keeping the
//! recorded kind. Reading at `e` seconds after opening returns the recorded cumulative energy
//! at `first + e`, linearly interpolated; past the last recorded sample a read fails, so a
//! short recording ends like a meter that died mid-run.
//!
//! **Overhead model:** a binary search per reading.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{EnergyKind, Meter, MeterError, MeterReading, Opened, ReadErrorKind};

/// One line for `oae list meters`.
pub const ABOUT: &str = "a recorded timeline.csv fed back through the meter socket (kind as recorded)";

/// One recorded point: (t_s, energy_j, band, invalid: the interval ending here is unknown).
pub type Point = (f64, f64, Option<(f64, f64)>, bool);

type Clock = Box<dyn FnMut() -> Duration + Send>;

/// A recorded timeline of one (domain, source).
pub struct ReplayMeter {
    name: String,
    domain: String,
    kind: EnergyKind,
    points: Arc<Vec<Point>>,
    file: String,
    now: Clock,
}

impl ReplayMeter {
    /// A meter over recorded points (time-ordered) with an injectable clock.
    pub fn new(source: &str, domain: &str, kind: EnergyKind, points: Vec<(f64, f64)>, now: Clock) -> ReplayMeter {
        ReplayMeter {
            name: format!("replay:{source}"),
            domain: domain.to_string(),
            kind,
            points: Arc::new(points.into_iter().map(|(t, e)| (t, e, None, false)).collect()),
            file: "(in memory)".into(),
            now,
        }
    }

    fn at(&self, t: f64) -> Option<(f64, Option<(f64, f64)>)> {
        let p = &self.points;
        let (first, last) = (p.first()?, p.last()?);
        if t < first.0 || t > last.0 {
            return None;
        }
        let i = p.partition_point(|x| x.0 <= t);
        let a = p[i - 1];
        let lerp = |x: f64, y: f64, b: &Point| x + (y - x) * (t - a.0) / (b.0 - a.0);
        Some(match p.get(i) {
            Some(b) if b.0 > a.0 => (
                lerp(a.1, b.1, b),
                a.2.zip(b.2).map(|(l, h)| (lerp(l.0, h.0, b), lerp(l.1, h.1, b))),
            ),
            _ => (a.1, a.2),
        })
    }
}

impl Meter for ReplayMeter {
    fn name(&self) -> &str {
        &self.name
    }
    fn domain(&self) -> &str {
        &self.domain
    }
    fn kind(&self) -> EnergyKind {
        self.kind
    }
    fn process_view(&self) -> bool {
        self.name == super::process::NAME
    }
    fn resolution(&self) -> Duration {
        let p = &self.points;
        let min_gap = p
            .windows(2)
            .map(|w| w[1].0 - w[0].0)
            .filter(|d| *d > 0.0)
            .fold(f64::INFINITY, f64::min);
        Duration::from_secs_f64(if min_gap.is_finite() { min_gap } else { 0.0 })
    }
    fn read(&mut self) -> Result<MeterReading, MeterError> {
        let first = self.points.first().map(|p| p.0).unwrap_or(0.0);
        let t = first + (self.now)().as_secs_f64();
        let (e0, b0) = (self.points[0].1, self.points[0].2);
        match self.at(t) {
            Some((e, band)) => Ok(MeterReading {
                band_j: band.zip(b0).map(|(b, z)| (b.0 - z.0, b.1 - z.1)),
                ..MeterReading::new(e - e0, None)
            }),
            None => Err(MeterError::Read(
                ReadErrorKind::Io,
                format!(
                    "replay of {} ended at {:.3} s (recording is {:.3} s long)",
                    self.file,
                    t - first,
                    self.points.last().map(|p| p.0).unwrap_or(0.0) - first
                ),
            )),
        }
    }
    fn provenance(&self) -> serde_json::Value {
        json!({ "replayed_from": self.file, "points": self.points.len(), "kind_as_recorded": self.kind })
    }
}

/// Opens one replay meter per (domain, source) in a `timeline.csv` written by `oae run`.
pub fn open_file(path: &Path) -> Opened {
    let text = std::fs::read_to_string(path).map_err(|e| {
        MeterError::Unavailable(format!(
            "{}: cannot read the replay timeline: {e}; set [energy] replay_timeline to a run's timeline.csv",
            path.display()
        ))
    })?;
    let series = parse(&path.display().to_string(), &text).map_err(MeterError::Unavailable)?;
    let start = Instant::now();
    Ok(series
        .into_iter()
        .map(|(domain, source, kind, points)| {
            Box::new(ReplayMeter {
                name: format!("replay:{source}"),
                domain,
                kind,
                points: Arc::new(points),
                file: path.display().to_string(),
                now: Box::new(move || start.elapsed()),
            }) as Box<dyn Meter>
        })
        .collect())
}

/// Recorded series: (domain, source, kind, points).
type Series = Vec<(String, String, EnergyKind, Vec<Point>)>;

/// Parses `timeline.csv` (`t_s,domain,source,kind,energy_j,power_w[,invalid,energy_lo_j,energy_hi_j]`).
pub fn parse(label: &str, text: &str) -> Result<Series, String> {
    let mut lines = text.lines().enumerate();
    let header: Vec<&str> = match lines.next() {
        Some((_, h)) => h.split(',').map(str::trim).collect(),
        None => return Err(format!("{label}: empty file; expected a timeline.csv header")),
    };
    let col = |name: &str| header.iter().position(|h| *h == name);
    let need = |name: &str| {
        col(name)
            .ok_or_else(|| format!("{label}:1: missing column `{name}`; expected a timeline.csv written by `oae run`"))
    };
    let (ct, cd, cs, ck, ce) = (
        need("t_s")?,
        need("domain")?,
        need("source")?,
        need("kind")?,
        need("energy_j")?,
    );
    let (clo, chi, cinv) = (col("energy_lo_j"), col("energy_hi_j"), col("invalid"));
    let mut out: Series = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let at = |c: usize, name: &str| {
            f.get(c)
                .copied()
                .ok_or_else(|| format!("{label}:{}: field `{name}`: missing", i + 1))
        };
        let num = |c: usize, name: &str| -> Result<f64, String> {
            let v = at(c, name)?;
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| format!("{label}:{}: field `{name}`: `{v}` is not a finite number", i + 1))
        };
        let t = num(ct, "t_s")?;
        let e = num(ce, "energy_j")?;
        let kind: EnergyKind = serde_json::from_value(json!(at(ck, "kind")?)).map_err(|_| {
            format!(
                "{label}:{}: field `kind`: `{}` is not measured, integrated or estimated",
                i + 1,
                f[ck]
            )
        })?;
        let band = match (clo, chi) {
            (Some(a), Some(b)) if !f.get(a).is_none_or(|v| v.is_empty()) => {
                Some((num(a, "energy_lo_j")?, num(b, "energy_hi_j")?))
            }
            _ => None,
        };
        let (domain, source) = (at(cd, "domain")?.to_string(), at(cs, "source")?.to_string());
        let idx = match out.iter().position(|s| s.0 == domain && s.1 == source) {
            Some(k) => k,
            None => {
                out.push((domain, source, kind, Vec::new()));
                out.len() - 1
            }
        };
        let pts = &mut out[idx].3;
        if let Some(last) = pts.last()
            && (t < last.0 || e < last.1)
        {
            return Err(format!(
                "{label}:{}: field `{}`: goes backwards ({} after {}); a timeline is cumulative and time-ordered per source",
                i + 1,
                if t < last.0 { "t_s" } else { "energy_j" },
                if t < last.0 { t } else { e },
                if t < last.0 { last.0 } else { last.1 }
            ));
        }
        let invalid = match cinv.and_then(|c| f.get(c).copied()) {
            None | Some("" | "0") => false,
            Some("1") => true,
            Some(v) => return Err(format!("{label}:{}: field `invalid`: `{v}` is not 0 or 1", i + 1)),
        };
        pts.push((t, e, band, invalid));
    }
    if out.is_empty() {
        return Err(format!("{label}: no samples; a replay needs at least two per source"));
    }
    if let Some(s) = out.iter().find(|s| s.3.len() < 2) {
        return Err(format!(
            "{label}: source `{}` on `{}` has {} sample; a replay needs at least two",
            s.1,
            s.0,
            s.3.len()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn replays_recorded_energy_and_ends() {
        let times = Arc::new(Mutex::new(vec![0.0, 0.5, 2.0, 2.5]));
        let t = times.clone();
        let mut m = ReplayMeter::new(
            "rapl",
            "cpu",
            EnergyKind::Measured,
            vec![(10.0, 100.0), (11.0, 110.0), (12.0, 130.0)],
            Box::new(move || Duration::from_secs_f64(t.lock().unwrap().remove(0))),
        );
        assert_eq!(m.read().unwrap().energy_j, 0.0);
        assert_eq!(m.read().unwrap().energy_j, 5.0);
        assert_eq!(m.read().unwrap().energy_j, 30.0);
        assert!(m.read().unwrap_err().to_string().contains("ended"));
        assert_eq!(m.name(), "replay:rapl");
    }

    #[test]
    fn parses_timeline_and_locates_errors() {
        let ok = "t_s,domain,source,kind,energy_j,power_w\n0,cpu,cpu-model,estimated,0,\n1,cpu,cpu-model,estimated,2.5,2.5\n";
        let s = parse("t.csv", ok).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].2, EnergyKind::Estimated);
        let e = parse("t.csv", "t_s,domain,source,kind,energy_j\n0,cpu,x,estimated,abc\n").unwrap_err();
        assert!(e.starts_with("t.csv:2: field `energy_j`"), "{e}");
        let e = parse("t.csv", "t_s,domain,source,kind,energy_j\n0,cpu,x,guessed,1\n").unwrap_err();
        assert!(e.contains("field `kind`"), "{e}");
        let e = parse("t.csv", "t_s,domain,kind,energy_j\n").unwrap_err();
        assert!(e.contains("missing column `source`"), "{e}");
        let e = parse(
            "t.csv",
            "t_s,domain,source,kind,energy_j\n1,cpu,x,measured,5\n0.5,cpu,x,measured,6\n",
        )
        .unwrap_err();
        assert!(e.starts_with("t.csv:3: field `t_s`: goes backwards"), "{e}");
        assert!(parse("t.csv", "t_s,domain,source,kind,energy_j\n1,cpu,x,measured,5\n").is_err());
    }
}
