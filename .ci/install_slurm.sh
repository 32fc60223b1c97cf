#!/usr/bin/env bash
# Install Slurm + munge for the single-node test cluster (src/grcf/slurm_cluster.py, `grcf slurm up`).
# Idempotent: does nothing when the binaries are already there.
# Debian/Ubuntu only; needs root or passwordless sudo.
set -euo pipefail

need=(slurmctld slurmd sbatch squeue sinfo scontrol scancel munged mungekey)
missing=()
for b in "${need[@]}"; do
  command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || missing+=("$b")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_slurm: slurm and munge already installed"
  exit 0
fi
echo "install_slurm: missing ${missing[*]}; installing slurm-wlm munge"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo -n"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  slurm-wlm munge >/dev/null
# The packages may start system daemons (systemd hosts); the test harness
# runs its own on free ports with its own munge key, so they don't interfere.
for b in slurmctld slurmd munged; do command -v "$b" >/dev/null || [ -x "/usr/sbin/$b" ]; done
echo "install_slurm: $(slurmctld -V 2>/dev/null || echo slurm installed), $(munged -V 2>/dev/null | head -1)"
