#!/usr/bin/env bash
# Stop the test cluster started by start_cluster.sh.
pkill -x slurmd || true
pkill -x slurmctld || true
pkill -x munged || true
