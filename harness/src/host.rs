//! Facts about the machine, and which energy sources it offers and why not.

pub use oae_core::rundir::HostFacts;
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

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
        virtual_machine: virtual_machine(),
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

/// Whether this is a virtual machine: x86 CPUs set the `hypervisor` flag in /proc/cpuinfo
/// under a hypervisor (false where the file is absent or says nothing).
pub fn virtual_machine() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|t| {
        t.lines()
            .filter(|l| l.starts_with("flags"))
            .any(|l| l.split_whitespace().any(|f| f == "hypervisor"))
    })
}

/// CPU time stolen by the hypervisor from this VM so far, seconds summed over vCPUs
/// (`steal` in /proc/stat, at USER_HZ = 100). `None` where /proc/stat is unavailable.
pub fn cpu_steal_s() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let steal: u64 = line.split_whitespace().nth(8)?.parse().ok()?;
    Some(steal as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_are_plausible() {
        let f = facts();
        assert!(f.logical_cpus >= 1);
        assert!(!f.cpu_model.is_empty());
    }
}
