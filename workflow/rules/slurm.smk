# With `--executor slurm` (the slurm profile): ask Slurm (sbatch --test-only) whether each rule's
# request could ever run and stop before anything is submitted if not, cancel jobs stuck PENDING
# for good, and drop the executor's always-failing account-guess warnings
# (grcf.pipeline.slurm_check; GRCF_SLURM_CHECK=0: no check, no watchdog).
from grcf.pipeline import slurm_check


onstart:
    slurm_check.onstart(workflow)
