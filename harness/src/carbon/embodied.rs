//! Embodied (manufacturing) carbon of the reserved hardware, always an estimate.
//!
//! Table (Luccioni, Viguier & Ligozat, "Estimating the Carbon Footprint of BLOOM", JMLR 24(253),
//! 2023, §embodied emissions): a compute node's non-GPU parts ≈ 2,500 kgCO2e, one datacentre
//! GPU (A100 class) ≈ 150 kgCO2e, replaced after 6 years. The paper's 11.2 t for BLOOM's
//! training follows from exactly these figures (48 nodes + 384 GPUs, 118 days of 6 years at 85 %
//! use). oae amortizes over reserved time without the 85 % use factor: an idle reserved machine
//! still wears out its share.
//!
//! The CPU side is charged `n_vcpu / host_vcpus` of a node (`host_vcpus` defaults to the
//! machine's own vCPUs: the whole box is reserved, as for a small deployment's own server); each
//! metered GPU is charged one GPU. `[carbon] embodied_kg` and `lifetime_years` override.

use serde::{Deserialize, Serialize};

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

/// The embodied carbon charged to a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embodied {
    /// kgCO2e of the reserved hardware.
    pub kg: f64,
    /// Amortization period, years.
    pub lifetime_years: f64,
    /// What was counted, e.g. `node × 2/2 vCPUs`, `gpu:0`.
    pub parts: Vec<String>,
    /// Where the figures come from.
    pub source: String,
}

impl Embodied {
    /// For `n_vcpu` vCPUs and `gpus` metered GPUs, with the user's overrides.
    pub fn for_hardware(n_vcpu: usize, gpus: &[String], o: &Overrides) -> Embodied {
        let lifetime_years = o.lifetime_years.unwrap_or(LIFETIME_YEARS);
        if let Some(kg) = o.kg {
            return Embodied {
                kg,
                lifetime_years,
                parts: vec!["user value ([carbon] embodied_kg)".into()],
                source: "user".into(),
            };
        }
        let host = o.host_vcpus.map(|h| h as usize).unwrap_or(n_vcpu).max(n_vcpu).max(1);
        let share = n_vcpu as f64 / host as f64;
        let mut parts = vec![format!("node × {n_vcpu}/{host} vCPUs ({:.0} kg)", NODE_KG * share)];
        parts.extend(gpus.iter().map(|g| format!("{g} ({GPU_KG:.0} kg)")));
        Embodied {
            kg: NODE_KG * share + GPU_KG * gpus.len() as f64,
            lifetime_years,
            parts,
            source: SOURCE.into(),
        }
    }

    /// Amortization rate, gCO2e per reserved second.
    pub fn g_per_s(&self) -> f64 {
        self.kg * 1000.0 / (self.lifetime_years * 365.25 * 86_400.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_overrides() {
        let e = Embodied::for_hardware(2, &[], &Overrides::default());
        assert_eq!(e.kg, NODE_KG);
        let vm = Overrides {
            host_vcpus: Some(64),
            ..Overrides::default()
        };
        let e = Embodied::for_hardware(16, &["gpu:0".into()], &vm);
        assert!((e.kg - (2500.0 / 4.0 + 150.0)).abs() < 1e-9);
        // 6 years of a 2,500 kg node: 13.2 mg per second.
        let g = Embodied::for_hardware(8, &[], &Overrides::default()).g_per_s();
        assert!((g - 0.0132).abs() < 1e-4, "{g}");
        let user = Overrides {
            kg: Some(100.0),
            lifetime_years: Some(4.0),
            ..Overrides::default()
        };
        let e = Embodied::for_hardware(8, &[], &user);
        assert_eq!((e.kg, e.lifetime_years), (100.0, 4.0));
    }
}
