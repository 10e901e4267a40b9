//! RAPL energy counters through the Linux powercap interface
//! (`/sys/class/powercap/intel-rapl:*`, also used for AMD Zen's RAPL).
//!
//! Two domains: `cpu` = the sum of the package zones (`package-N`), `dram` = the sum of the
//! zones named `dram` (memory is outside the package counter on server parts). Core, uncore
//! and `psys` zones are not read: they overlap the package or the whole platform, and adding
//! them would count energy twice. Each zone's `energy_uj` is a wrapping counter; a reading
//! smaller than the last is a wrap, and `max_energy_range_uj` is added back. The counters
//! update about every millisecond (the hardware's ~1 ms energy-status interval).
//!
//! Unavailable for three distinct reasons, told apart: no powercap tree (VMs, non-Linux),
//! no RAPL zones in it, or `energy_uj` readable only by root (since CVE-2020-8694).
//!
//! **Overhead model:** one small sysfs read per zone per reading (a few µs each).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use super::{EnergyKind, Meter, MeterError, MeterReading, MeterSpec, ReadErrorKind, SourceStatus};

pub(super) const SPEC: MeterSpec = MeterSpec {
    name: "rapl",
    about: "CPU package and DRAM energy counters via Linux powercap (measured)",
    open,
    check: |_| check_at(Path::new(ROOT)),
};

const ROOT: &str = "/sys/class/powercap";

fn open(_: &super::MeterConfig) -> super::Opened {
    open_at(Path::new(ROOT))
}

/// Checks the RAPL powercap interface under `root` (normally `/sys/class/powercap`).
pub fn check_at(root: &Path) -> SourceStatus {
    let mut st = SourceStatus {
        source: "rapl".into(),
        available: false,
        detail: String::new(),
        items: vec![],
    };
    let zones = match zone_dirs(root) {
        Ok(z) => z,
        Err(e) => {
            st.detail = e;
            return st;
        }
    };
    let mut denied = 0;
    for z in &zones {
        let name = std::fs::read_to_string(z.join("name"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "?".into());
        let zone = z.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        match std::fs::read_to_string(z.join("energy_uj")) {
            Ok(v) => {
                st.available = true;
                st.items.push(format!("{zone} ({name}): readable, {} µJ", v.trim()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                denied += 1;
                st.items.push(format!("{zone} ({name}): permission denied"));
            }
            Err(e) => st.items.push(format!("{zone} ({name}): {e}")),
        }
    }
    st.detail = if st.available {
        format!("{} zone(s) readable", zones.len() - denied)
    } else if denied > 0 {
        "permission denied: energy_uj is root-only since CVE-2020-8694; run as root or grant read access".into()
    } else {
        "zones present but unreadable".into()
    };
    st
}

/// One counter file.
#[derive(Debug)]
struct Zone {
    path: PathBuf,
    label: String,
    max_uj: Option<u64>,
    last_uj: u64,
    total_uj: u128,
}

/// A RAPL domain: the sum of its zones' counters.
#[derive(Debug)]
pub struct RaplMeter {
    domain: &'static str,
    zones: Vec<Zone>,
    last_read: Option<(std::time::Instant, f64)>,
}

fn read_uj(path: &Path) -> Result<u64, String> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => format!(
            "permission denied reading {}: energy_uj is root-only since CVE-2020-8694; run as root or grant read access",
            path.display()
        ),
        _ => format!("cannot read {}: {e}", path.display()),
    })?;
    text.trim()
        .parse()
        .map_err(|_| format!("{}: `{}` is not a counter value", path.display(), text.trim()))
}

/// The RAPL zone directories under `root` (normally `/sys/class/powercap`), sorted, or why
/// there are none (`absent: ...`).
pub fn zone_dirs(root: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "absent: {} does not exist (no powercap driver; typical on VMs)",
                root.display()
            ));
        }
        Err(e) => return Err(format!("cannot list {}: {e}", root.display())),
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("intel-rapl:"))
        })
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        return Err(format!("absent: no intel-rapl zones under {}", root.display()));
    }
    Ok(dirs)
}

/// Opens the RAPL meters under `root` (normally `/sys/class/powercap`).
pub fn open_at(root: &Path) -> super::Opened {
    let dirs = zone_dirs(root).map_err(MeterError::Unavailable)?;
    let (mut cpu, mut dram) = (Vec::new(), Vec::new());
    let mut first_error = None;
    for dir in dirs {
        let name = std::fs::read_to_string(dir.join("name"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let target = if name.starts_with("package") {
            &mut cpu
        } else if name == "dram" {
            &mut dram
        } else {
            continue;
        };
        match read_uj(&dir.join("energy_uj")) {
            Ok(v) => target.push(Zone {
                label: format!("{} ({name})", dir.file_name().and_then(|n| n.to_str()).unwrap_or("?")),
                max_uj: read_uj(&dir.join("max_energy_range_uj")).ok().filter(|&m| m > 0),
                path: dir.join("energy_uj"),
                last_uj: v,
                total_uj: 0,
            }),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if cpu.is_empty() && dram.is_empty() {
        return Err(MeterError::Unavailable(first_error.unwrap_or_else(|| {
            format!("absent: no package or dram zones under {}", root.display())
        })));
    }
    let mut out: Vec<Box<dyn Meter>> = Vec::new();
    for (domain, zones) in [("cpu", cpu), ("dram", dram)] {
        if !zones.is_empty() {
            out.push(Box::new(RaplMeter {
                domain,
                zones,
                last_read: None,
            }));
        }
    }
    Ok(out)
}

impl Meter for RaplMeter {
    fn name(&self) -> &str {
        "rapl"
    }
    fn domain(&self) -> &str {
        self.domain
    }
    fn kind(&self) -> EnergyKind {
        EnergyKind::Measured
    }
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }
    fn read(&mut self) -> Result<MeterReading, MeterError> {
        for z in &mut self.zones {
            let v = read_uj(&z.path).map_err(|e| MeterError::Read(ReadErrorKind::Io, e))?;
            let delta = if v >= z.last_uj {
                v - z.last_uj
            } else {
                match z.max_uj {
                    // The counter wrapped at max_energy_range_uj.
                    Some(max) if z.last_uj <= max => max - z.last_uj + v,
                    _ => {
                        return Err(MeterError::Read(
                            ReadErrorKind::Other,
                            format!("{}: counter went backwards and its range is unknown", z.label),
                        ));
                    }
                }
            };
            z.last_uj = v;
            z.total_uj += u128::from(delta);
        }
        let energy_j = self.zones.iter().map(|z| z.total_uj as f64 / 1e6).sum::<f64>();
        let now = std::time::Instant::now();
        let power_w = self.last_read.and_then(|(t, e)| {
            let dt = now.duration_since(t).as_secs_f64();
            (dt > 0.0).then(|| (energy_j - e) / dt)
        });
        self.last_read = Some((now, energy_j));
        Ok(MeterReading::new(energy_j, power_w))
    }
    fn provenance(&self) -> serde_json::Value {
        json!({
            "interface": "linux powercap (intel-rapl)",
            "zones": self.zones.iter().map(|z| json!({
                "zone": z.label,
                "max_energy_range_uj": z.max_uj,
            })).collect::<Vec<_>>(),
            "update_interval": "~1 ms (hardware energy-status update)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rapl_absent_readable_and_denied() {
        let dir = tempfile::tempdir().unwrap();
        let missing = check_at(&dir.path().join("nope"));
        assert!(!missing.available && missing.detail.starts_with("absent"));

        let z = dir.path().join("intel-rapl:0");
        std::fs::create_dir_all(&z).unwrap();
        std::fs::write(z.join("name"), "package-0\n").unwrap();
        std::fs::write(z.join("energy_uj"), "12345\n").unwrap();
        let ok = check_at(dir.path());
        assert!(ok.available, "{ok:?}");
        assert!(ok.items[0].contains("package-0"));
    }

    fn zone(root: &Path, dir: &str, name: &str, uj: u64, max: u64) {
        let z = root.join(dir);
        std::fs::create_dir_all(&z).unwrap();
        std::fs::write(z.join("name"), format!("{name}\n")).unwrap();
        std::fs::write(z.join("energy_uj"), format!("{uj}\n")).unwrap();
        std::fs::write(z.join("max_energy_range_uj"), format!("{max}\n")).unwrap();
    }

    #[test]
    fn packages_sum_into_cpu_dram_is_separate_and_wraps_are_unwrapped() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        zone(r, "intel-rapl:0", "package-0", 1_000_000, 10_000_000);
        zone(r, "intel-rapl:1", "package-1", 2_000_000, 10_000_000);
        zone(r, "intel-rapl:0:0", "dram", 500_000, 10_000_000);
        zone(r, "intel-rapl:0:1", "core", 7, 10_000_000); // inside the package: not read
        zone(r, "intel-rapl-mmio:0", "package-0", 7, 10_000_000); // duplicate interface: ignored
        let mut m = open_at(r).unwrap();
        assert_eq!(
            m.iter().map(|m| m.domain().to_string()).collect::<Vec<_>>(),
            ["cpu", "dram"]
        );
        assert_eq!(m[0].read().unwrap().energy_j, 0.0);
        // package-0 +3 J, package-1 +7.5 J; then package-1 wraps at its 10 J range: 9.5 -> 0.5 is +1 J.
        std::fs::write(r.join("intel-rapl:0/energy_uj"), "4000000").unwrap();
        std::fs::write(r.join("intel-rapl:1/energy_uj"), "9500000").unwrap();
        assert!((m[0].read().unwrap().energy_j - (3.0 + 7.5)).abs() < 1e-9);
        std::fs::write(r.join("intel-rapl:1/energy_uj"), "500000").unwrap();
        let e = m[0].read().unwrap().energy_j;
        assert!((e - (3.0 + 7.5 + 1.0)).abs() < 1e-9, "wrap of 1 J: {e}");
        std::fs::write(r.join("intel-rapl:0:0/energy_uj"), "800000").unwrap();
        assert!((m[1].read().unwrap().energy_j - 0.3).abs() < 1e-9);
        assert_eq!(m[0].kind(), EnergyKind::Measured);
    }

    #[test]
    fn absent_and_empty_trees_say_so() {
        let dir = tempfile::tempdir().unwrap();
        let e = open_at(&dir.path().join("nope")).err().unwrap().to_string();
        assert!(e.starts_with("absent") && e.contains("does not exist"), "{e}");
        let e = open_at(dir.path()).err().unwrap().to_string();
        assert!(e.starts_with("absent") && e.contains("no intel-rapl zones"), "{e}");
    }

    #[test]
    fn unreadable_counter_is_reported_not_zero() {
        let dir = tempfile::tempdir().unwrap();
        zone(dir.path(), "intel-rapl:0", "package-0", 1, 10);
        std::fs::write(dir.path().join("intel-rapl:0/energy_uj"), "garbage").unwrap();
        let e = open_at(dir.path()).err().unwrap().to_string();
        assert!(e.contains("not a counter value"), "{e}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let p = dir.path().join("intel-rapl:0/energy_uj");
            std::fs::write(&p, "5").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o000)).unwrap();
            // Root reads anything; the check is only meaningful for an unprivileged user.
            if std::fs::read_to_string(&p).is_err() {
                let e = open_at(dir.path()).err().unwrap().to_string();
                assert!(e.contains("permission denied"), "{e}");
            }
        }
    }
}
