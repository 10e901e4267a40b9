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

/// CPU time the whole machine has been busy so far, seconds summed over vCPUs: user, nice,
/// system, irq and softirq of the aggregate line of /proc/stat (guest time is inside user;
/// idle, iowait and steal are not busy). `None` where /proc/stat is unavailable.
pub fn machine_busy_s() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    busy_from_stat(&text)
}

fn busy_from_stat(text: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal ...
    let busy = [0, 1, 2, 5, 6]
        .iter()
        .map(|&i| f.get(i).copied().unwrap_or(0))
        .sum::<u64>();
    Some(busy as f64 / 100.0)
}

/// CPU time used so far by this process and its descendants, seconds: utime + stime of each
/// live process in the tree, plus the children it has already reaped (cutime + cstime of
/// this process). `None` where /proc is unavailable.
pub fn own_tree_cpu_s() -> Option<f64> {
    let me = std::process::id();
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(stat) = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|t| ProcStat::parse(&t))
        {
            parents.push((pid, stat));
        }
    }
    let own = parents.iter().find(|(p, _)| *p == me)?.1;
    let mut tree = vec![me];
    let mut total = own.utime + own.stime + own.cutime + own.cstime;
    // Parents have lower pids only until pids wrap; iterate to a fixed point instead.
    loop {
        let before = tree.len();
        for (pid, st) in &parents {
            if !tree.contains(pid) && tree.contains(&st.ppid) {
                tree.push(*pid);
                total += st.utime + st.stime;
            }
        }
        if tree.len() == before {
            break;
        }
    }
    Some(total as f64 / 100.0)
}

/// The fields of /proc/PID/stat this module needs (clock ticks at USER_HZ = 100).
#[derive(Debug, Clone, Copy, PartialEq)]
struct ProcStat {
    ppid: u32,
    utime: u64,
    stime: u64,
    cutime: u64,
    cstime: u64,
}

impl ProcStat {
    /// Parses a stat line; the command name (field 2) may hold spaces and parentheses, so
    /// fields are counted after its last `)`.
    fn parse(text: &str) -> Option<ProcStat> {
        let rest = &text[text.rfind(')')? + 1..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // rest starts at field 3 (state): ppid = 4, utime = 14, stime = 15, cutime = 16, cstime = 17.
        let n = |field: usize| f.get(field - 3).and_then(|v| v.parse::<i64>().ok());
        Some(ProcStat {
            ppid: u32::try_from(n(4)?).ok()?,
            utime: n(14)?.max(0) as u64,
            stime: n(15)?.max(0) as u64,
            cutime: n(16)?.max(0) as u64,
            cstime: n(17)?.max(0) as u64,
        })
    }
}

/// A reading of the machine's busy time and oae's own, to difference later.
#[derive(Debug, Clone, Copy)]
pub struct CpuMark {
    machine_s: f64,
    own_s: f64,
}

impl CpuMark {
    /// Now; `None` where /proc is unavailable.
    pub fn now() -> Option<CpuMark> {
        Some(CpuMark {
            machine_s: machine_busy_s()?,
            own_s: own_tree_cpu_s()?,
        })
    }

    /// CPU time other processes used since `self`, seconds (never below 0: the two counters
    /// are read a moment apart).
    pub fn others_since(self, later: CpuMark) -> f64 {
        ((later.machine_s - self.machine_s) - (later.own_s - self.own_s)).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_fields_survive_odd_command_names() {
        let line = "4242 (tokio (rt) x) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 75 12 3 20 0 9 0 1000 1 1";
        assert_eq!(
            ProcStat::parse(line),
            Some(ProcStat {
                ppid: 17,
                utime: 250,
                stime: 75,
                cutime: 12,
                cstime: 3
            })
        );
        assert_eq!(ProcStat::parse("garbage"), None);
    }

    #[test]
    fn machine_busy_counts_user_nice_system_irq_softirq() {
        let stat = "cpu  100 10 50 1000 40 5 3 70 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
        assert_eq!(busy_from_stat(stat), Some(1.68));
    }

    #[test]
    fn own_cpu_is_part_of_the_machine_busy_time() {
        let (Some(a), Some(m0)) = (own_tree_cpu_s(), machine_busy_s()) else {
            eprintln!("skipped: no /proc on this machine");
            return;
        };
        // Burn some CPU in this process: it must show up in both counters.
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < std::time::Duration::from_millis(300) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let (b, m1) = (own_tree_cpu_s().unwrap(), machine_busy_s().unwrap());
        assert!(b - a >= 0.1, "own CPU grew by {}", b - a);
        assert!(m1 - m0 >= 0.1, "machine busy grew by {}", m1 - m0);
    }

    #[test]
    fn facts_are_plausible() {
        let f = facts();
        assert!(f.logical_cpus >= 1);
        assert!(!f.cpu_model.is_empty());
    }
}
