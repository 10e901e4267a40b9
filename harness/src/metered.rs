//! `oae meter`: the machine's energy around any command — a peer harness's run, a server's
//! whole life — so that work oae did not drive still gets its energy. The meters a run
//! would use sample from the start; a loaded-idle baseline is measured before and after the
//! command (nothing of oae's runs then), and the directory keeps `timeline.csv` (as a run
//! writes it) and `metered.json`: the Unix time of the timeline's zero, the command's window,
//! the idle windows and each meter. `oae import --timeline DIR` attributes that energy to the
//! peer's requests by their wall-clock times.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use oae_core::rundir::MeterInfo;
use oae_core::rundir::energy::Unavailable;

use crate::HarnessError;
use crate::meters::{MeterConfig, Sampler, Timeline};
use crate::rundir::{create_empty_dir, timeline_csv, write_atomic_in};

/// `metered.json`.
pub const METERED_JSON: &str = "metered.json";

/// `metered.json`: what a timeline recorded by `oae meter` is of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeteredJson {
    /// oae's version.
    pub oae_version: String,
    /// Unix time of the timeline's zero, s.
    pub unix_start: f64,
    /// The same, UTC RFC 3339.
    pub started_utc: String,
    /// The command metered.
    pub command: Vec<String>,
    /// Its exit code (`None`: killed by a signal, or interrupted before it ended).
    pub exit_code: Option<i32>,
    /// The command's window on the timeline, s.
    pub command_window_s: (f64, f64),
    /// Loaded-idle window before the command, s on the timeline.
    pub idle_before_s: Option<(f64, f64)>,
    /// Loaded-idle window after it.
    pub idle_after_s: Option<(f64, f64)>,
    /// Sampling interval, ms.
    pub sample_interval_ms: f64,
    /// The meters, in timeline.csv's order of first appearance.
    pub meters: Vec<MeterInfo>,
    /// Sources that could not be used here, and why.
    pub unavailable: Vec<Unavailable>,
    /// Read errors during the recording.
    pub read_errors: usize,
    /// The machine it was recorded on (the peer's, since metering is local).
    pub host: oae_core::rundir::HostFacts,
}

/// How to meter.
pub struct MeterOptions {
    /// Loaded-idle baseline before and after the command (0: none).
    pub idle: Duration,
    /// Sampling interval.
    pub interval: Duration,
    /// Which sources.
    pub config: MeterConfig,
}

/// What a metering produced.
pub struct Metered {
    /// The directory written.
    pub dir: PathBuf,
    /// metered.json.
    pub info: MeteredJson,
    /// The samples.
    pub timeline: Timeline,
}

impl Metered {
    /// Energy of the command's window per primary domain, J.
    pub fn command_energy(&self) -> Vec<(String, Option<f64>)> {
        let (a, b) = self.info.command_window_s;
        self.timeline.primary_energy_by_domain(a, b).into_iter().collect()
    }
}

/// Runs `command` between two idle baselines with every available meter sampling, and
/// writes `out` (created; must not exist or be empty). `stop` (Ctrl-C, SIGTERM) cuts an idle
/// baseline short; the command itself gets the signal from the terminal or the scheduler.
pub fn record(
    command: &[String],
    out: &Path,
    opts: &MeterOptions,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(&str),
) -> Result<Metered, HarnessError> {
    let Some((program, args)) = command.split_first() else {
        return Err(HarnessError::Invalid("give the command to meter after `--`".into()));
    };
    create_empty_dir(out)?;
    let opened = crate::meters::open_all(&opts.config);
    for (name, reason) in &opened.unavailable {
        progress(&format!("energy source {name} unavailable: {reason}"));
    }
    if opened.meters.is_empty() {
        return Err(HarnessError::Invalid(
            "no energy source opened on this machine (see `oae doctor`); nothing to meter".into(),
        ));
    }
    let unix_start = unix_now();
    let epoch = Instant::now();
    let sampler = Sampler::start(opened.meters, opts.interval, epoch);
    let idle = |when: &str, progress: &mut dyn FnMut(&str)| -> Option<(f64, f64)> {
        if opts.idle.is_zero() {
            return None;
        }
        progress(&format!(
            "measuring loaded idle {when} the command for {:.0} s",
            opts.idle.as_secs_f64()
        ));
        let from = sampler.read_now();
        let done = crate::clock::sleep_until(Instant::now() + opts.idle, stop);
        let to = sampler.read_now();
        done.then_some((from, to))
    };
    let before = idle("before", progress);
    if stop.load(std::sync::atomic::Ordering::SeqCst) {
        let _ = sampler.stop();
        let _ = std::fs::remove_dir(out);
        return Err(HarnessError::Invalid(
            "interrupted before the command started: nothing was run or metered".into(),
        ));
    }
    let t0 = sampler.read_now();
    progress(&format!("running: {}", command.join(" ")));
    let status = Command::new(program).args(args).status();
    let t1 = sampler.read_now();
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            let _ = sampler.stop();
            let _ = std::fs::remove_dir(out);
            return Err(HarnessError::Invalid(format!(
                "cannot start `{program}`: {e}; give a command on PATH or its path"
            )));
        }
    };
    let after = if stop.load(std::sync::atomic::Ordering::SeqCst) {
        None
    } else {
        idle("after", progress)
    };
    let timeline = sampler.stop();
    let info = MeteredJson {
        oae_version: crate::VERSION.to_string(),
        unix_start,
        started_utc: crate::clock::utc_rfc3339(unix_start),
        command: command.to_vec(),
        exit_code: status.code(),
        command_window_s: (t0, t1),
        idle_before_s: before,
        idle_after_s: after,
        sample_interval_ms: opts.interval.as_secs_f64() * 1e3,
        meters: timeline.meters.clone(),
        unavailable: opened
            .unavailable
            .into_iter()
            .map(|(source, reason)| Unavailable { source, reason })
            .collect(),
        read_errors: timeline.errors.len(),
        host: crate::host::facts(),
    };
    write_atomic_in(out, oae_core::rundir::TIMELINE_CSV, timeline_csv(&timeline).as_bytes())?;
    let mut json = serde_json::to_vec_pretty(&info).map_err(|e| HarnessError::Invalid(e.to_string()))?;
    json.push(b'\n');
    write_atomic_in(out, METERED_JSON, &json)?;
    Ok(Metered {
        dir: out.to_path_buf(),
        info,
        timeline,
    })
}

/// Reads a directory `oae meter` wrote: metered.json and the timeline it describes.
pub fn read(dir: &Path) -> Result<Metered, HarnessError> {
    let file = dir.join(METERED_JSON);
    let text = std::fs::read_to_string(&file)
        .map_err(|e| HarnessError::io(&file, e, "pass a directory written by `oae meter -- <command>`"))?;
    let de = &mut serde_json::Deserializer::from_str(&text);
    let info: MeteredJson = serde_path_to_error::deserialize(de).map_err(|e| {
        HarnessError::Invalid(format!(
            "{}: field `{}`: {}; pass metered.json as `oae meter` wrote it",
            file.display(),
            e.path(),
            e.inner()
        ))
    })?;
    let csv = dir.join(oae_core::rundir::TIMELINE_CSV);
    let text = std::fs::read_to_string(&csv)
        .map_err(|e| HarnessError::io(&csv, e, "oae meter writes timeline.csv beside metered.json"))?;
    let series = crate::meters::replay::parse(&csv.display().to_string(), &text).map_err(HarnessError::Invalid)?;
    let mut timeline = Timeline {
        meters: info.meters.clone(),
        ..Timeline::default()
    };
    for (domain, source, _, points) in series {
        let meter = info
            .meters
            .iter()
            .position(|m| m.domain == domain && m.name == source)
            .ok_or_else(|| {
                HarnessError::Invalid(format!(
                    "{}: meter `{source}` on `{domain}` is not among metered.json's meters",
                    csv.display()
                ))
            })?;
        timeline.samples.extend(
            points
                .into_iter()
                .map(|(t_s, energy_j, band_j, invalid)| crate::meters::Sample {
                    t_s,
                    meter,
                    energy_j,
                    power_w: None,
                    invalid,
                    band_j,
                }),
        );
    }
    timeline
        .samples
        .sort_by(|a, b| a.t_s.total_cmp(&b.t_s).then(a.meter.cmp(&b.meter)));
    Ok(Metered {
        dir: dir.to_path_buf(),
        info,
        timeline,
    })
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> MeterOptions {
        MeterOptions {
            idle: Duration::from_millis(300),
            interval: Duration::from_millis(20),
            config: MeterConfig::default(),
        }
    }

    #[test]
    fn a_command_is_metered_between_idle_baselines_and_reads_back() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("m");
        let stop = AtomicBool::new(false);
        let cmd = ["sh".to_string(), "-c".into(), "sleep 0.2; exit 3".into()];
        let m = record(&cmd, &out, &opts(), &stop, &mut |_| {}).unwrap();
        assert_eq!(m.info.exit_code, Some(3));
        let (a, b) = m.info.command_window_s;
        assert!(b - a >= 0.2, "{a}..{b}");
        let before = m.info.idle_before_s.unwrap();
        let after = m.info.idle_after_s.unwrap();
        assert!(before.1 <= a && after.0 >= b, "{before:?} {a} {b} {after:?}");
        assert!(!m.info.meters.is_empty(), "the modelled CPU meter opens everywhere");
        let mut back = read(&out).unwrap();
        // serde_json's float parsing may land one ulp off a 10-digit epoch time; the rest of
        // the record must read back exactly.
        assert!((back.info.unix_start - m.info.unix_start).abs() < 1e-6);
        back.info.unix_start = m.info.unix_start;
        assert_eq!(back.info, m.info);
        assert_eq!(back.timeline.meters, m.timeline.meters);
        assert_eq!(back.timeline.samples.len(), m.timeline.samples.len());
        let e = |t: &Timeline| t.primary_energy_between(a, b).unwrap();
        assert!((e(&back.timeline) - e(&m.timeline)).abs() < 1e-3);
    }

    #[test]
    fn invalid_intervals_survive_the_round_trip_and_bad_flags_are_named() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("m");
        let stop = AtomicBool::new(false);
        let cmd = ["true".to_string()];
        record(&cmd, &out, &opts(), &stop, &mut |_| {}).unwrap();
        let csv = out.join(oae_core::rundir::TIMELINE_CSV);
        let text = std::fs::read_to_string(&csv).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let col = lines[0].split(',').position(|c| c == "invalid").unwrap();
        let mark = |line: &str, v: &str| {
            let mut f: Vec<String> = line.split(',').map(str::to_string).collect();
            f[col] = v.into();
            f.join(",")
        };
        lines[3] = mark(&lines[3], "1");
        std::fs::write(&csv, lines.join("\n")).unwrap();
        let back = read(&out).unwrap();
        assert_eq!(back.timeline.samples.iter().filter(|s| s.invalid).count(), 1);
        assert_eq!(back.info.host, crate::host::facts());
        lines[3] = mark(&lines[3], "yes");
        std::fs::write(&csv, lines.join("\n")).unwrap();
        let e = read(&out).err().unwrap().to_string();
        assert!(e.contains(":4: field `invalid`: `yes` is not 0 or 1"), "{e}");
    }

    #[test]
    fn a_command_that_cannot_start_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("m");
        let stop = AtomicBool::new(false);
        let cmd = ["oae-no-such-command-here".to_string()];
        let e = record(&cmd, &out, &opts(), &stop, &mut |_| {})
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("cannot start `oae-no-such-command-here`"), "{e}");
        assert!(!out.exists());
        // Stopped during the first idle baseline: the command never runs.
        let stopped = AtomicBool::new(true);
        let marker = d.path().join("ran");
        let cmd = ["touch".to_string(), marker.display().to_string()];
        let e = record(&cmd, &out, &opts(), &stopped, &mut |_| {})
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("interrupted before the command started"), "{e}");
        assert!(!marker.exists() && !out.exists());
        let e = read(d.path()).err().unwrap().to_string();
        assert!(e.contains("metered.json"), "{e}");
    }
}
