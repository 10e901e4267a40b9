//! Facts about the machine, and which energy sources it offers and why not.

use std::path::Path;

use serde::Serialize;
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

/// What run.json and `oae doctor` record about the host.
#[derive(Debug, Clone, Serialize)]
pub struct HostFacts {
    /// CPU model name.
    pub cpu_model: String,
    /// Physical cores, when known.
    pub physical_cores: Option<usize>,
    /// Logical CPUs (vCPUs).
    pub logical_cpus: usize,
    /// Total memory, bytes.
    pub memory_bytes: u64,
    /// Operating system, e.g. `Linux 12 (Debian)`.
    pub os: Option<String>,
    /// Kernel version.
    pub kernel: Option<String>,
    /// CPU architecture, e.g. `x86_64`.
    pub arch: String,
}

/// Reads the host facts.
pub fn facts() -> HostFacts {
    let sys = System::new_with_specifics(
        RefreshKind::nothing()
            .with_cpu(CpuRefreshKind::nothing())
            .with_memory(MemoryRefreshKind::nothing().with_ram()),
    );
    HostFacts {
        cpu_model: cpu_model_name(),
        physical_cores: System::physical_core_count(),
        logical_cpus: sys.cpus().len().max(1),
        memory_bytes: sys.total_memory(),
        os: System::long_os_version(),
        kernel: System::kernel_version(),
        arch: System::cpu_arch(),
    }
}

/// The CPU model name (first `model name` in /proc/cpuinfo, else sysinfo's brand).
pub fn cpu_model_name() -> String {
    if let Ok(text) = std::fs::read_to_string("/proc/cpuinfo")
        && let Some(name) = text.lines().find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, v)| v.trim())
        })
    {
        return name.to_string();
    }
    let sys = System::new_with_specifics(RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing()));
    sys.cpus()
        .first()
        .map(|c| c.brand().trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// CPU time stolen by the hypervisor from this VM so far, seconds summed over vCPUs
/// (`steal` in /proc/stat, at USER_HZ = 100). `None` where /proc/stat is unavailable.
pub fn cpu_steal_s() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let steal: u64 = line.split_whitespace().nth(8)?.parse().ok()?;
    Some(steal as f64 / 100.0)
}

/// Whether an energy source can be used here, and the details or the reason it cannot.
#[derive(Debug, Clone, Serialize)]
pub struct SourceStatus {
    /// Source name (`nvml`, `rapl`).
    pub source: String,
    /// Usable.
    pub available: bool,
    /// What was found, or why it is unavailable and how to fix it.
    pub detail: String,
    /// Per-device or per-domain lines.
    pub items: Vec<String>,
}

/// Tries to load NVML at run time (no driver needed to build or run oae).
pub fn nvml_status() -> SourceStatus {
    let mut st = SourceStatus {
        source: "nvml".into(),
        available: false,
        detail: String::new(),
        items: vec![],
    };
    match crate::meters::nvml::library() {
        Err(e) => {
            st.detail = format!("{e}; GPU energy cannot be measured");
        }
        Ok(nvml) => {
            st.available = true;
            let driver = nvml.sys_driver_version().unwrap_or_else(|e| format!("? ({e})"));
            let version = nvml.sys_nvml_version().unwrap_or_else(|e| format!("? ({e})"));
            let count = nvml.device_count().unwrap_or(0);
            st.detail = format!("NVML {version}, driver {driver}, {count} GPU(s)");
            for i in 0..count {
                let line = match nvml.device_by_index(i) {
                    Ok(d) => {
                        let name = d.name().unwrap_or_else(|e| format!("? ({e})"));
                        let counter = match d.total_energy_consumption() {
                            Ok(mj) => format!("energy counter readable ({mj} mJ)"),
                            Err(e) => format!("energy counter unavailable: {e}"),
                        };
                        format!("gpu:{i} {name}: {counter}")
                    }
                    Err(e) => format!("gpu:{i}: cannot open: {e}"),
                };
                st.items.push(line);
            }
        }
    }
    st
}

/// Checks the RAPL powercap interface under `root` (normally `/sys/class/powercap`).
pub fn rapl_status_at(root: &Path) -> SourceStatus {
    let mut st = SourceStatus {
        source: "rapl".into(),
        available: false,
        detail: String::new(),
        items: vec![],
    };
    let zones = match crate::meters::rapl::zone_dirs(root) {
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

/// Checks RAPL at the standard location.
pub fn rapl_status() -> SourceStatus {
    rapl_status_at(Path::new("/sys/class/powercap"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rapl_absent_readable_and_denied() {
        let dir = tempfile::tempdir().unwrap();
        let missing = rapl_status_at(&dir.path().join("nope"));
        assert!(!missing.available && missing.detail.starts_with("absent"));

        let z = dir.path().join("intel-rapl:0");
        std::fs::create_dir_all(&z).unwrap();
        std::fs::write(z.join("name"), "package-0\n").unwrap();
        std::fs::write(z.join("energy_uj"), "12345\n").unwrap();
        let ok = rapl_status_at(dir.path());
        assert!(ok.available, "{ok:?}");
        assert!(ok.items[0].contains("package-0"));
    }

    #[test]
    fn facts_are_plausible() {
        let f = facts();
        assert!(f.logical_cpus >= 1);
        assert!(!f.cpu_model.is_empty());
    }
}
