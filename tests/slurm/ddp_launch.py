"""Inside a SLURM allocation: train tests/_ddp_worker.py data-parallel with the srun launcher, as the
``train`` rule launches scripts/train.py (bidl.distributed.torchrun_command with the allocation's first
node and job id). Arguments: out_dir epochs processes. Prints the head node it found."""

import os
import subprocess
import sys
from pathlib import Path

from bidl.distributed import DistributedSettings, slurm_head_node, torchrun_command

WORKER = Path(__file__).resolve().parents[1] / "_ddp_worker.py"

if __name__ == "__main__":
    out_dir, epochs, processes = sys.argv[1], sys.argv[2], int(sys.argv[3])
    settings = DistributedSettings.from_mapping(
        {"nproc_per_node": processes, "backend": "gloo", "launcher": "srun"}
    )
    head = slurm_head_node()
    command = torchrun_command(
        settings, str(WORKER), [out_dir, epochs, "gloo"], head_node=head, job_id=os.environ["SLURM_JOB_ID"]
    )
    print(f"head node {head}; {' '.join(command)}", flush=True)
    sys.exit(subprocess.run(command, check=False).returncode)
