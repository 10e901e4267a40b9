#!/usr/bin/env bash
# A real Slurm test: a single-node cluster on this machine (Debian's slurm-wlm and munge,
# installed when missing), the quick suite submitted as a job array of cells with the merge
# job `afterok` the array (the scripts `oae suite slurm` writes), and the merged run checked
# against a one-machine run of the same suite: the same cells, the same counts, histogram
# totals equal, scored.
#
#   tests/slurm/run.sh OAE_BINARY [ONE_MACHINE_RUN_DIR]
#
# ONE_MACHINE_RUN_DIR: an `oae run --requests 30` of the quick suite (made here when not
# given). Needs root (or passwordless sudo) to install packages and start the daemons; where
# it cannot, it says so and exits 0 (skipped). Everything else — the daemons' state, logs,
# sockets and ports — lives in a temporary directory, and the daemons are stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."

oae="$(realpath "${1:?usage: tests/slurm/run.sh OAE_BINARY [ONE_MACHINE_RUN_DIR]}")"
whole="${2:-}"
requests=30
started=$(date +%s)

skip() {
  echo "SKIP (Slurm test): $*"
  exit 0
}

SUDO=""
if [ "$(id -u)" != 0 ]; then
  sudo -n true 2>/dev/null || skip "needs root or passwordless sudo to install slurm-wlm and munge and start slurmctld, slurmd and munged"
  SUDO="sudo -n"
fi
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  echo "== installing slurm-wlm and munge"
  if ! (DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null 2>&1 \
    || ($SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends slurm-wlm munge) >/dev/null 2>&1); then
    skip "could not install Debian's slurm-wlm and munge here (apt-get failed)"
  fi
fi

work="$(mktemp -d)"
chmod 755 "$work"
mkdir -p "$work"/{state,spool,log}
conf="$work/slurm.conf"
host="$(hostname -s)"

stop() {
  for p in slurmd slurmctld munged; do
    if [ -f "$work/$p.pid" ]; then $SUDO kill "$(cat "$work/$p.pid")" 2>/dev/null || true; fi
  done
}
trap stop EXIT

# Its own munged (own key, socket and pid file): a machine's own munge is left alone.
$SUDO dd if=/dev/urandom of="$work/munge.key" bs=1024 count=1 status=none
$SUDO chmod 400 "$work/munge.key"
$SUDO munged --force --key-file="$work/munge.key" --socket="$work/munge.sock" \
  --pid-file="$work/munged.pid" --log-file="$work/log/munged.log" --seed-file="$work/munged.seed"

# Free ports for slurmctld and slurmd.
read -r ctld_port slurmd_port < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')

cat >"$conf" <<EOF
ClusterName=oae-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$work/munge.sock
CredType=cred/munge
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/log/slurmctld.log
SlurmdLogFile=$work/log/slurmd.log
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=600
$(slurmd -C | head -1) State=UNKNOWN
PartitionName=oae Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$conf"
$SUDO env SLURM_CONF="$conf" slurmctld -c -f "$conf"
$SUDO env SLURM_CONF="$conf" slurmd -f "$conf"
for _ in $(seq 1 60); do
  if sinfo -h -o %t 2>/dev/null | grep -q idle; then break; fi
  sleep 1
done
if ! sinfo -h -o %t | grep -q idle; then
  echo "the single-node cluster did not come up:" >&2
  tail -20 "$work"/log/*.log >&2
  exit 1
fi
echo "== single-node Slurm cluster up ($(sinfo --version); node $host) in $(($(date +%s) - started)) s"

if [ -z "$whole" ]; then
  whole="$work/whole"
  echo "== the one-machine run to compare with"
  "$oae" run suites/quick.toml --requests "$requests" --quiet --no-report --out "$whole" >"$work/log/whole.out"
fi

jobs="$work/jobs"
"$oae" suite slurm suites/quick.toml --requests "$requests" --out "$jobs" --time 00:30:00 --partition oae
array_started=$(date +%s)
bash "$jobs/submit.sh"
deadline=$(($(date +%s) + 1200))
while squeue -h | grep -q .; do
  if squeue -h -o '%r' | grep -q DependencyNeverSatisfied; then
    echo "a cell failed, so the merge can never run:" >&2
    tail -n 30 "$jobs"/logs/*.out >&2
    exit 1
  fi
  if [ "$(date +%s)" -gt "$deadline" ]; then
    echo "the job array did not finish in 20 minutes:" >&2
    squeue >&2
    exit 1
  fi
  sleep 2
done
array_s=$(($(date +%s) - array_started))
if [ ! -f "$jobs/merged/run.json" ]; then
  echo "the merge job wrote no merged run:" >&2
  tail -n 30 "$jobs"/logs/*.out >&2
  exit 1
fi

echo "== checking the merged run against the one-machine run"
python3 - "$whole" "$jobs/merged" <<'EOF'
import json, sys
from pathlib import Path

whole, merged = map(Path, sys.argv[1:])
load = lambda d, f: json.loads((d / f).read_text())
records = lambda d: [json.loads(l) for l in (d / "requests.jsonl").read_text().splitlines() if l]
run = load(merged, "run.json")
assert run["status"] == "complete", run["status"]
cells = run["runtime"]["merged"]["from"]
jobs = {c["placement"]["scheduler"].get("SLURM_ARRAY_JOB_ID") for c in cells}
tasks = sorted(c["placement"]["scheduler"].get("SLURM_ARRAY_TASK_ID") for c in cells)
assert None not in jobs and len(jobs) == 1, f"every cell ran as a task of one job array: {jobs}"
print(f"{len(cells)} cells ran as tasks {tasks} of job array {jobs.pop()}")
ws, ms = load(whole, "summary.json")["cells"], load(merged, "summary.json")["cells"]
key = lambda c: (c["method"], c["workload"])
assert sorted(map(key, ws)) == sorted(map(key, ms)), (list(map(key, ws)), list(map(key, ms)))
wr, mr = records(whole), records(merged)
assert len(wr) == len(mr), (len(wr), len(mr))
hist = load(merged, "merged.json")["histograms"]
for w in ws:
    m = next(c for c in ms if key(c) == key(w))
    for k in ["requests", "measured", "warmup", "cooldown", "ok", "failed", "outcomes"]:
        assert w[k] == m[k], f"{key(w)} {k}: one machine {w[k]}, merged {m[k]}"
    ok = [r for r in mr if (r["method"], r["workload"]) == key(w) and r["outcome"] == "ok" and not r["warmup"] and not r["cooldown"]]
    for metric in ["e2e", "ttft"]:
        n = hist[f"{w['method']}|{w['workload']}|{metric}_us"]["n"]
        assert n == len(ok) == w["latency"][f"{metric}_ms"]["n"], f"{key(w)} {metric}: histogram {n}, records {len(ok)}, one machine {w['latency'][f'{metric}_ms']['n']}"
    print(f"{w['method']} | {w['workload']}: {m['requests']} requests, {m['ok']} ok, {m['failed']} failed, histogram totals equal")
rows = load(merged, "scorecards.json")["rows"]
assert sorted((r["method"], r["workload"]) for r in rows) == sorted(map(key, ws)), rows
print(f"scorecards: {len(rows)} rows, as the one-machine run's")
EOF
echo "== Slurm test passed: job array and merge in ${array_s} s; $(($(date +%s) - started)) s in all"
