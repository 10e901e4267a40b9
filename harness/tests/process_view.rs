//! The process view against a real co-tenant: another process burning a core while this one
//! sleeps spends the machine's CPU energy, not oae's; this process burning a core shows in
//! its own view.

use std::time::{Duration, Instant};

use oae_harness::Meter;
use oae_harness::meters::{self, MeterConfig};

fn open(name: &str) -> Option<Box<dyn Meter>> {
    let spec = meters::registry().iter().find(|s| s.name == name)?;
    (spec.open)(&MeterConfig::default()).ok()?.into_iter().next()
}

/// Energy each meter adds while `during` runs.
fn delta(meters: &mut [Box<dyn Meter>], during: impl FnOnce()) -> Vec<f64> {
    let before: Vec<f64> = meters.iter_mut().map(|m| m.read().unwrap().energy_j).collect();
    during();
    meters
        .iter_mut()
        .zip(before)
        .map(|(m, b)| m.read().unwrap().energy_j - b)
        .collect()
}

#[test]
fn a_co_tenant_process_is_the_machines_energy_not_oaes() {
    let (Some(machine), Some(own)) = (open("cpu-model"), open("cpu-process")) else {
        eprintln!("skipped: no /proc here (the CPU meters cannot open)");
        return;
    };
    if std::process::Command::new("sh")
        .arg("-c")
        .arg("command -v yes")
        .output()
        .is_err()
    {
        eprintln!("skipped: no sh to start a co-tenant");
        return;
    }
    let mut meters = vec![machine, own];
    // A co-tenant outside oae's process tree: `sh` starts `yes` in the background and exits,
    // so `yes` is re-parented away from this process.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("yes > /dev/null 2>&1 & echo $!")
        .output()
        .unwrap();
    let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let co_tenant = delta(&mut meters, || std::thread::sleep(Duration::from_millis(1500)));
    let _ = std::process::Command::new("kill").arg(&pid).status();
    assert!(co_tenant[0] > 0.0, "{co_tenant:?}");
    assert!(
        co_tenant[1] < 0.2 * co_tenant[0],
        "while only the co-tenant works, oae's share is small: {co_tenant:?}"
    );
    // This process burns a core.
    let alone = delta(&mut meters, || {
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(1500) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
    });
    // Other load on the machine (a CI neighbour) can only lower oae's share, so the checks
    // are loose: the process view rises with oae's own work and holds a fair part of it.
    assert!(
        alone[1] > 3.0 * co_tenant[1] && alone[1] > 0.2 * alone[0],
        "while oae works, the process view follows: {alone:?} (co-tenant phase {co_tenant:?})"
    );
}
