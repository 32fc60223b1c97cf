# With `--executor slurm` (the slurm profile): refuse requests no node can meet before anything
# is submitted, and cancel jobs stuck PENDING for good (grcf.pipeline.slurm_check; GRCF_SLURM_CHECK=0: off).
from grcf.pipeline import slurm_check


onstart:
    slurm_check.onstart(workflow)
