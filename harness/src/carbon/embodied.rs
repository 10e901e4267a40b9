//! Embodied (manufacturing) carbon of the reserved hardware, always an estimate.
//!
//! Table (Luccioni, Viguier & Ligozat, "Estimating the Carbon Footprint of BLOOM", JMLR 24(253),
//! 2023, §embodied emissions): a compute node's non-GPU parts ≈ 2,500 kgCO2e, one datacentre
//! GPU (A100 class) ≈ 150 kgCO2e, replaced after 6 years. The paper's 11.2 t for BLOOM's
//! training follows from exactly these figures (48 nodes + 384 GPUs, 118 days of 6 years at 85 %
//! use). oae amortizes over reserved time without the 85 % use factor: an idle reserved machine
//! still wears out its share.
//!
//! The CPU side is charged `n_vcpu / host_vcpus` of a node. `host_vcpus` defaults to the
//! machine's own vCPUs on bare metal (the whole box is reserved, as for a small deployment's
//! own server) and, on a virtual machine (the CPU reports a hypervisor), to
//! [`VM_HOST_VCPUS`] — a VM is a slice of a host whose size it cannot see. Each metered GPU
//! is charged one GPU. `[carbon] embodied_kg`, `lifetime_years` and `host_vcpus` override.

use oae_core::rundir::Embodied;

/// kgCO2e of one compute node's non-GPU parts.
pub const NODE_KG: f64 = 2500.0;
/// kgCO2e of one datacentre GPU.
pub const GPU_KG: f64 = 150.0;
/// Years over which hardware is amortized.
pub const LIFETIME_YEARS: f64 = 6.0;
/// Source of the table.
pub const SOURCE: &str = "Luccioni, Viguier & Ligozat, Estimating the Carbon Footprint of BLOOM, JMLR 24(253), 2023: node 2,500 kgCO2e, GPU 150 kgCO2e, 6-year lifetime";

/// `[carbon]` overrides.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Overrides {
    /// Total embodied kgCO2e of the reserved hardware.
    pub kg: Option<f64>,
    /// Lifetime, years.
    pub lifetime_years: Option<f64>,
    /// vCPUs of the host a VM runs on.
    pub host_vcpus: Option<u32>,
}

/// Host size assumed for a virtual machine when `[carbon] host_vcpus` is not set: a 96-vCPU
/// two-socket server (e.g. AWS m7i.24xlarge), the same assumption as the site defaults'
/// 2-vCPU VM device class.
pub const VM_HOST_VCPUS: usize = 96;

/// The hardware a run reserves.
#[derive(Debug, Clone, PartialEq)]
pub struct Hardware {
    /// Logical CPUs of this machine.
    pub vcpus: usize,
    /// The CPU reports a hypervisor.
    pub virtual_machine: bool,
    /// Metered GPUs (`gpu:0`, ...).
    pub gpus: Vec<String>,
}

/// The embodied carbon of `hw`, with the user's overrides.
pub fn for_hardware(hw: &Hardware, o: &Overrides) -> Embodied {
    let lifetime_years = o.lifetime_years.unwrap_or(LIFETIME_YEARS);
    if let Some(kg) = o.kg {
        return Embodied {
            kg,
            lifetime_years,
            parts: vec!["user value ([carbon] embodied_kg)".into()],
            source: "user".into(),
        };
    }
    let n_vcpu = hw.vcpus.max(1);
    let (host, assumed) = match o.host_vcpus {
        Some(h) => (h as usize, ""),
        None if hw.virtual_machine => (
            VM_HOST_VCPUS,
            "; a virtual machine: host size assumed, set [carbon] host_vcpus",
        ),
        None => (n_vcpu, ""),
    };
    let host = host.max(n_vcpu);
    let share = n_vcpu as f64 / host as f64;
    let mut parts = vec![format!(
        "node × {n_vcpu}/{host} vCPUs ({:.0} kg){assumed}",
        NODE_KG * share
    )];
    parts.extend(hw.gpus.iter().map(|g| format!("{g} ({GPU_KG:.0} kg)")));
    Embodied {
        kg: NODE_KG * share + GPU_KG * hw.gpus.len() as f64,
        lifetime_years,
        parts,
        source: SOURCE.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hw(vcpus: usize, virtual_machine: bool, gpus: &[&str]) -> Hardware {
        Hardware {
            vcpus,
            virtual_machine,
            gpus: gpus.iter().map(|g| g.to_string()).collect(),
        }
    }

    #[test]
    fn shares_and_overrides() {
        let e = for_hardware(&hw(2, false, &[]), &Overrides::default());
        assert_eq!(e.kg, NODE_KG);
        let vm = Overrides {
            host_vcpus: Some(64),
            ..Overrides::default()
        };
        let e = for_hardware(&hw(16, false, &["gpu:0"]), &vm);
        assert!((e.kg - (2500.0 / 4.0 + 150.0)).abs() < 1e-9);
        // 6 years of a 2,500 kg node: 13.2 mg per second.
        let g = for_hardware(&hw(8, false, &[]), &Overrides::default()).g_per_s();
        assert!((g - 0.0132).abs() < 1e-4, "{g}");
        let user = Overrides {
            kg: Some(100.0),
            lifetime_years: Some(4.0),
            ..Overrides::default()
        };
        let e = for_hardware(&hw(8, false, &[]), &user);
        assert_eq!((e.kg, e.lifetime_years), (100.0, 4.0));
    }

    #[test]
    fn a_virtual_machine_is_charged_its_share_of_an_assumed_host() {
        let e = for_hardware(&hw(2, true, &[]), &Overrides::default());
        assert!((e.kg - 2500.0 * 2.0 / 96.0).abs() < 1e-9, "{}", e.kg);
        assert!(e.parts[0].contains("host size assumed"), "{:?}", e.parts);
        let told = Overrides {
            host_vcpus: Some(8),
            ..Overrides::default()
        };
        assert_eq!(for_hardware(&hw(2, true, &[]), &told).kg, 2500.0 / 4.0);
    }
}
