//! Job scripts that run a suite as an array of cells on a cluster's own scheduler: a Slurm
//! job array (one cell per task, whole nodes, retried per index) with a merge job that runs
//! after every task succeeded, and a Kubernetes Indexed Job template doing the same.
//!
//! The scripts call `oae run SUITE --cell auto` (the task's index from
//! `SLURM_ARRAY_TASK_ID` / `JOB_COMPLETION_INDEX`), so the cells, their ids and their
//! directories are exactly what `oae suite plan` lists.

use std::fmt::Write as _;
use std::path::Path;

/// What the scripts ask of the cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterSpec {
    /// Slurm partition (`None`: the cluster's default).
    pub partition: Option<String>,
    /// GPUs per cell (0: none requested).
    pub gpus_per_cell: u32,
    /// Wall-time limit per cell, Slurm syntax (`HH:MM:SS`, `D-HH`).
    pub time: Option<String>,
    /// Attempts per cell after the first when `oae run` fails (not when a signal stops it:
    /// Slurm requeues preempted tasks itself).
    pub retries: u32,
    /// Container image for the Kubernetes template.
    pub image: String,
}

/// Single-quotes `s` for a POSIX shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The three Slurm scripts (`cells.sbatch`, `merge.sbatch`, `submit.sh`) and the Kubernetes
/// template, as (file name, text). `oae` is the binary to call, `suite` the suite file,
/// `run_args` the options every cell runs with (seed, requests, trials — part of the cell
/// ids), `out` the directory the cells and the merge write into, `name` the suite's name.
#[allow(clippy::too_many_arguments)]
pub fn scripts(
    oae: &Path,
    suite: &Path,
    run_args: &[String],
    out: &Path,
    name: &str,
    cells: usize,
    spec: &ClusterSpec,
) -> Vec<(&'static str, String)> {
    let (oae_q, suite_q, out_q) = (
        quote(&oae.display().to_string()),
        quote(&suite.display().to_string()),
        quote(&out.display().to_string()),
    );
    let args: String = run_args.iter().map(|a| format!(" {}", quote(a))).collect();
    let last = cells.saturating_sub(1);

    let mut cells_sh = String::new();
    let _ = writeln!(cells_sh, "#!/bin/bash");
    let _ = writeln!(
        cells_sh,
        "# One cell of suite `{name}` per array task ({cells} cells; `oae suite plan` lists them)."
    );
    let _ = writeln!(cells_sh, "#SBATCH --job-name=oae-{name}");
    let _ = writeln!(cells_sh, "#SBATCH --array=0-{last}");
    let _ = writeln!(
        cells_sh,
        "# Whole nodes: another job on the node would be measured as this cell's energy."
    );
    let _ = writeln!(cells_sh, "#SBATCH --exclusive");
    let _ = writeln!(cells_sh, "#SBATCH --ntasks=1");
    if let Some(p) = &spec.partition {
        let _ = writeln!(cells_sh, "#SBATCH --partition={p}");
    }
    if spec.gpus_per_cell > 0 {
        let _ = writeln!(cells_sh, "#SBATCH --gpus-per-task={}", spec.gpus_per_cell);
    }
    if let Some(t) = &spec.time {
        let _ = writeln!(cells_sh, "#SBATCH --time={t}");
    }
    let _ = writeln!(
        cells_sh,
        "# Preempted or failed nodes: Slurm puts the task back in the queue."
    );
    let _ = writeln!(cells_sh, "#SBATCH --requeue");
    let _ = writeln!(cells_sh, "#SBATCH --output={}/logs/cell-%a.out", out.display());
    let _ = writeln!(cells_sh, "set -uo pipefail");
    let _ = writeln!(cells_sh, "OAE={oae_q}");
    let _ = writeln!(cells_sh, "SUITE={suite_q}");
    let _ = writeln!(cells_sh, "OUT={out_q}/cells/\"$SLURM_ARRAY_TASK_ID\"");
    let _ = writeln!(cells_sh, "mkdir -p {out_q}/cells");
    let _ = writeln!(
        cells_sh,
        "# A complete cell from an earlier attempt (a requeue) is kept, not run again."
    );
    let _ = writeln!(
        cells_sh,
        "if [ -f \"$OUT/run.json\" ] && grep -q '\"status\": \"complete\"' \"$OUT/run.json\"; then exit 0; fi"
    );
    let _ = writeln!(cells_sh, "for attempt in $(seq 1 {}); do", spec.retries + 1);
    let _ = writeln!(
        cells_sh,
        "  if [ -e \"$OUT\" ]; then mv \"$OUT\" \"$OUT.failed-$(date +%s)-$attempt\"; fi"
    );
    let _ = writeln!(
        cells_sh,
        "  \"$OAE\" run \"$SUITE\"{args} --cell auto --no-report --quiet --out \"$OUT\""
    );
    let _ = writeln!(cells_sh, "  code=$?");
    let _ = writeln!(cells_sh, "  if [ \"$code\" -eq 0 ]; then exit 0; fi");
    let _ = writeln!(
        cells_sh,
        "  # 128 + a signal: the time limit or a preemption stopped it; the run directory says so."
    );
    let _ = writeln!(cells_sh, "  if [ \"$code\" -gt 128 ]; then exit \"$code\"; fi");
    let _ = writeln!(
        cells_sh,
        "  echo \"cell $SLURM_ARRAY_TASK_ID: attempt $attempt failed with exit code $code\" >&2"
    );
    let _ = writeln!(cells_sh, "done");
    let _ = writeln!(cells_sh, "exit \"$code\"");

    let mut merge_sh = String::new();
    let _ = writeln!(merge_sh, "#!/bin/bash");
    let _ = writeln!(
        merge_sh,
        "# Merges the cells of suite `{name}` once every array task succeeded."
    );
    let _ = writeln!(merge_sh, "#SBATCH --job-name=oae-{name}-merge");
    let _ = writeln!(merge_sh, "#SBATCH --ntasks=1");
    if let Some(p) = &spec.partition {
        let _ = writeln!(merge_sh, "#SBATCH --partition={p}");
    }
    let _ = writeln!(merge_sh, "#SBATCH --output={}/logs/merge.out", out.display());
    let _ = writeln!(merge_sh, "set -euo pipefail");
    let _ = writeln!(merge_sh, "dirs=()");
    let _ = writeln!(
        merge_sh,
        "for i in $(seq 0 {last}); do dirs+=({out_q}/cells/\"$i\"); done"
    );
    let _ = writeln!(merge_sh, "{oae_q} merge \"${{dirs[@]}}\" --out {out_q}/merged");

    let mut submit = String::new();
    let _ = writeln!(submit, "#!/bin/bash");
    let _ = writeln!(
        submit,
        "# Submits the {cells} cells of suite `{name}` as a job array, then the merge after all succeeded."
    );
    let _ = writeln!(submit, "set -euo pipefail");
    let _ = writeln!(submit, "cd \"$(dirname \"$0\")\"");
    let _ = writeln!(submit, "mkdir -p {out_q}/logs");
    let _ = writeln!(submit, "array=$(sbatch --parsable cells.sbatch)");
    let _ = writeln!(
        submit,
        "merge=$(sbatch --parsable --dependency=afterok:\"${{array%%;*}}\" merge.sbatch)"
    );
    let _ = writeln!(
        submit,
        "echo \"cells: job array $array; merge: job $merge (runs when every cell succeeded) -> {}/merged\"",
        out.display()
    );

    let gpus = if spec.gpus_per_cell > 0 {
        format!(
            "\n          resources:\n            limits:\n              nvidia.com/gpu: {}",
            spec.gpus_per_cell
        )
    } else {
        String::new()
    };
    let run_args_yaml: String = run_args.iter().map(|a| format!(", {}", yaml_str(a))).collect();
    let k8s = format!(
        "# A Kubernetes Indexed Job running the {cells} cells of suite `{name}`, one per index
# (JOB_COMPLETION_INDEX), each retried up to {retries} times on its own. Fill in the image
# (with oae and the suite at these paths) and the volume; merge the cells afterwards with
#   oae merge <results>/cells/0 … <results>/cells/{last} --out <results>/merged
apiVersion: batch/v1
kind: Job
metadata:
  name: oae-{name}
spec:
  completionMode: Indexed
  completions: {cells}
  parallelism: {cells}
  backoffLimitPerIndex: {retries}
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: cell
          image: {image}
          command: [\"/bin/sh\", \"-c\"]
          args:
            - exec oae run {suite_q}{args} --cell auto --no-report --quiet --out /results/cells/$JOB_COMPLETION_INDEX{gpus}
          volumeMounts:
            - name: results
              mountPath: /results
      volumes:
        - name: results
          emptyDir: {{}}  # replace with a persistent volume shared by every index
# cell options as a list, for tools that template them: [\"--cell\", \"auto\"{run_args_yaml}]
",
        retries = spec.retries,
        image = spec.image,
    );
    vec![
        ("cells.sbatch", cells_sh),
        ("merge.sbatch", merge_sh),
        ("submit.sh", submit),
        ("k8s-indexed-job.yaml", k8s),
    ]
}

/// A YAML double-quoted string.
fn yaml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(spec: &ClusterSpec) -> Vec<(&'static str, String)> {
        scripts(
            Path::new("/opt/oae/bin/oae"),
            Path::new("/home/me/suite's.toml"),
            &["--trials".into(), "2".into()],
            Path::new("/scratch/run"),
            "quick",
            6,
            spec,
        )
    }

    /// The array covers every cell, asks for whole nodes (and GPUs when asked), retries a
    /// failed cell but not a signalled one, and the merge waits for every task; every script
    /// is valid shell.
    #[test]
    fn slurm_scripts_cover_every_cell_and_parse() {
        let spec = ClusterSpec {
            partition: Some("gpu".into()),
            gpus_per_cell: 1,
            time: Some("02:00:00".into()),
            retries: 2,
            image: "ghcr.io/example/oae:latest".into(),
        };
        let files = written(&spec);
        let get = |n: &str| files.iter().find(|(f, _)| *f == n).unwrap().1.clone();
        let cells = get("cells.sbatch");
        for line in [
            "#SBATCH --array=0-5",
            "#SBATCH --exclusive",
            "#SBATCH --partition=gpu",
            "#SBATCH --gpus-per-task=1",
            "#SBATCH --time=02:00:00",
            "for attempt in $(seq 1 3); do",
            "'--trials' '2' --cell auto",
            "SUITE='/home/me/suite'\\''s.toml'",
        ] {
            assert!(cells.contains(line), "{line} in\n{cells}");
        }
        assert!(get("submit.sh").contains("--dependency=afterok:"));
        assert!(get("merge.sbatch").contains("$(seq 0 5)"));
        let k8s = get("k8s-indexed-job.yaml");
        for line in [
            "completions: 6",
            "backoffLimitPerIndex: 2",
            "nvidia.com/gpu: 1",
            "completionMode: Indexed",
        ] {
            assert!(k8s.contains(line), "{line}");
        }
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files.iter().filter(|(n, _)| !n.ends_with(".yaml")) {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            let o = std::process::Command::new("bash").arg("-n").arg(&p).output().unwrap();
            assert!(o.status.success(), "{name}: {}", String::from_utf8_lossy(&o.stderr));
        }
        // Without GPUs or a partition, none is asked for.
        let plain = written(&ClusterSpec::default());
        assert!(!plain[0].1.contains("--gpus") && !plain[0].1.contains("--partition"));
    }
}
