#!/usr/bin/env bash
# A real SLURM test: start a single-node cluster (Debian's slurmctld/slurmd/munge), run the pipeline on
# three small demo stations with `snakemake --profile profiles/slurm`, and check that every job ran as a
# SLURM job (each job's log starts with its SLURM_JOB_ID). Run as root, from anywhere; part of .ci/run.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
bash tests/slurm/start_cluster.sh
bash bin/setup ".[test,slurm]"
WORK="$(mktemp -d /tmp/ratingflow-slurm.XXXXXX)"
trap 'bash "$ROOT/tests/slurm/stop_cluster.sh"' EXIT
.venv/bin/python tests/project.py "$WORK" provo_natural,krokfors,co_channel "$ROOT/.cache/jax-tests"
cp -r profiles "$WORK/"   # the profile names its resources file relative to the working folder
cd "$WORK"
# SIGINT, not SIGTERM, lets Snakemake cancel its SLURM jobs if this hangs
status=0
timeout --signal=INT 900 "$ROOT/.venv/bin/snakemake" -s "$ROOT/workflow/Snakefile" --profile profiles/slurm \
    --slurm-init-seconds-before-status-checks 2 --latency-wait 5 --jobs 4 > snakemake.log 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
    tail -n 40 snakemake.log
    tail -n 20 /var/log/slurm/slurmctld.log
    echo "SLURM test: snakemake failed ($status)"
    exit 1
fi
jobs=0
missing=0
# rules all, publish (links files) and overview (one HTML page) are local; every other job writes a log under logs/
while IFS= read -r log; do
    jobs=$((jobs + 1))
    if ! grep -qE '^SLURM_JOB_ID=[0-9]+' "$log"; then
        echo "not run as a SLURM job: $log"
        missing=$((missing + 1))
    fi
done < <(find logs -name '*.log' -not -name 'publish.log' -not -name 'overview.log')
submitted=$(grep -c "Job .* has been submitted with SLURM jobid" snakemake.log || true)
echo "SLURM test: $jobs job logs, $missing without a SLURM_JOB_ID; $submitted sbatch submissions"
test -s results/stations.csv
[ "$jobs" -ge 16 ] && [ "$missing" -eq 0 ]
