//! Building run.json (`oae_core::rundir::RunJson`) from the suite, the schedules and what
//! the run has done so far.

use oae_core::rundir::energy::{EnergyInfo, EnergyValidity, SourceStatus, Unavailable};
use oae_core::rundir::{
    CarbonAssumptions, HostFacts, LimitInfo, MethodInfo, NotApplicable, ReplayInfo, RunJson, RunSettings, RunStatus,
    SCHEMA_VERSION, SuiteInfo, WorkloadInfo,
};
use oae_workloads::{Limit, Schedule};

use super::Invocation;
use crate::meters::Timeline;
use crate::suite::Suite;

/// The parts of run.json that stay fixed during a run, and the methods finished so far.
pub struct RunJsonWriter<'a> {
    /// The suite.
    pub suite: &'a Suite,
    /// Its schedules.
    pub schedules: &'a [Schedule],
    /// Who ran it.
    pub invocation: &'a Invocation,
    /// The machine.
    pub host: HostFacts,
    /// Start, UTC.
    pub started_utc: String,
    /// The resolved carbon assumptions.
    pub carbon: CarbonAssumptions,
    /// Every registered source's availability here.
    pub sources: Vec<SourceStatus>,
    /// Sources that could not be opened for the run.
    pub unavailable: Vec<Unavailable>,
    /// Methods finished so far.
    pub methods: Vec<MethodInfo>,
    /// Methods set up and not finished yet (provisional entries: id, setup, facts — no
    /// energy or idle baseline until they finish), so a killed run still names them.
    pub preparing: Vec<MethodInfo>,
    /// Methods found not applicable at setup.
    pub not_applicable: Vec<NotApplicable>,
    /// Replays so far, in run order.
    pub replays: Vec<ReplayInfo>,
    /// The dispatcher thread's scheduling priority, once known.
    pub dispatcher_priority: Option<String>,
}

impl RunJsonWriter<'_> {
    fn settings(&self) -> RunSettings {
        let run = &self.suite.run;
        RunSettings {
            limit: match run.limit {
                Limit::Count(n) => LimitInfo::Requests { requests: n },
                Limit::Duration(d) => LimitInfo::Duration {
                    duration_s: d.as_secs_f64(),
                },
            },
            warmup_s: run.warmup.as_secs_f64(),
            cooldown_s: run.cooldown.as_secs_f64(),
            idle_gap_cap_s: run.idle_gap_cap.map(|d| d.as_secs_f64()),
            device: run.device.to_string(),
            sample_interval_ms: run.sample_interval.as_secs_f64() * 1e3,
            confidence: run.confidence,
            timeout_s: run.controls.timeout.map(|d| d.as_secs_f64()),
            queue_bound: run.controls.queue_bound,
            min_requests: run.min_requests,
            min_duration_s: run.min_duration_s,
            trials: run.trials,
            order: run.order().as_str().to_string(),
        }
    }

    fn workloads(&self) -> Vec<WorkloadInfo> {
        self.schedules
            .iter()
            .zip(&self.suite.workloads)
            .map(|(s, w)| WorkloadInfo {
                name: s.workload.clone(),
                process: s.process.clone(),
                schedule_hash: s.hash.clone(),
                requests: s.len(),
                source_failed: s.arrivals.iter().filter(|a| a.request.source_failed).count(),
                reordered_rows: s.reordered_rows,
                offered_rate_qps: s.replay_rate_qps(),
                mean_rate_qps_before_compression: w.mean_rate_qps(),
                perturbs: w.perturbs.as_ref().map(|p| p.0.clone()),
                perturbation: w.perturbation.clone(),
                config: w.describe(),
                compression: s.compression,
            })
            .collect()
    }

    /// run.json as of now.
    pub fn render(
        &self,
        status: RunStatus,
        abort_reason: Option<&str>,
        finished_utc: Option<&str>,
        t: &Timeline,
        validity: EnergyValidity,
        records: usize,
    ) -> RunJson {
        let inv = self.invocation;
        RunJson {
            schema_version: SCHEMA_VERSION,
            oae_version: inv.oae_version.clone(),
            git_sha: inv.git_sha.clone(),
            command: inv.command.clone(),
            status,
            abort_reason: abort_reason.map(str::to_string),
            started_utc: self.started_utc.clone(),
            finished_utc: finished_utc.map(str::to_string),
            suite: SuiteInfo {
                name: self.suite.name.clone(),
                file: self.suite.source.label.clone(),
                sha256: self.suite.sha256.clone(),
                description: self.suite.description.clone(),
            },
            seed: self.suite.run.seed,
            slo: self.suite.slo.clone(),
            overrides: inv.overrides.clone(),
            runtime: inv.runtime.clone(),
            scoring: inv.scoring.clone(),
            dispatcher_priority: self.dispatcher_priority.clone(),
            run: self.settings(),
            host: self.host.clone(),
            carbon: self.carbon.clone(),
            workloads: self.workloads(),
            knowledge: self.suite.knowledge.iter().map(|k| k.describe()).collect(),
            methods: self.methods.iter().chain(&self.preparing).cloned().collect(),
            not_applicable: self.not_applicable.clone(),
            replays: self.replays.clone(),
            energy: EnergyInfo {
                meters: t.meters.clone(),
                unavailable: self.unavailable.clone(),
                sources_checked: self.sources.clone(),
                validity,
            },
            records,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::carbon::Hardware;
    use oae_core::rundir::carbon::CarbonOverrides;

    const SUITE: &str = r#"
[run]
seed = 3
duration_s = 4
idle_gap_cap_s = 0.5
[[workloads]]
name = "w"
arrival = { process = "constant", rate_qps = 2 }
input_tokens = 8
output_tokens = 4
[[workloads]]
name = "burst"
arrival = { process = "constant", rate_qps = 8 }
input_tokens = 8
output_tokens = 4
perturbs = "w"
perturbation = "four times the rate"
[[methods]]
id = "mock"
"#;

    #[test]
    fn run_json_is_typed_versioned_and_reads_back_strictly() {
        let suite = Suite::parse("s.toml", SUITE, "s").unwrap();
        let schedules: Vec<Schedule> = suite
            .workloads
            .iter()
            .map(|w| {
                w.schedule(suite.run.seed, suite.run.limit, suite.run.idle_gap_cap)
                    .unwrap()
            })
            .collect();
        let hardware = Hardware {
            vcpus: 2,
            virtual_machine: true,
            gpus: vec![],
        };
        let invocation = Invocation::default();
        let writer = RunJsonWriter {
            suite: &suite,
            schedules: &schedules,
            invocation: &invocation,
            host: crate::host::facts(),
            started_utc: "2026-01-01T00:00:00Z".into(),
            carbon: suite.carbon.resolve(&CarbonOverrides::default(), &hardware).assumptions,
            sources: Vec::new(),
            unavailable: Vec::new(),
            methods: Vec::new(),
            preparing: Vec::new(),
            not_applicable: Vec::new(),
            replays: Vec::new(),
            dispatcher_priority: None,
        };
        let t = Timeline::default();
        let v = crate::energy::validity::validity(&t, &[], &[]);
        let run = writer.render(RunStatus::Running, None, None, &t, v, 0);
        assert_eq!(run.schema_version, SCHEMA_VERSION);
        assert_eq!(run.run.limit, LimitInfo::Duration { duration_s: 4.0 });
        assert_eq!(run.run.idle_gap_cap_s, Some(0.5));
        assert_eq!(run.workloads.len(), 2);
        assert_eq!(run.workloads[1].perturbs.as_deref(), Some("w"));
        assert_eq!(run.workloads[1].perturbation.as_deref(), Some("four times the rate"));
        assert_eq!(run.workloads[0].perturbs, None);
        assert_eq!(run.workloads[0].requests, schedules[0].len());
        assert!(
            (run.carbon.embodied.kg - 2500.0 * 2.0 / 96.0).abs() < 1e-9,
            "a 2-vCPU VM"
        );
        // Through JSON and back, strictly: nothing lost, nothing the reader does not know.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("run.json"), serde_json::to_vec_pretty(&run).unwrap()).unwrap();
        let back = oae_core::rundir::read_run(dir.path()).unwrap();
        assert_eq!(back, run);
    }
}
