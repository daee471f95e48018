"""bench_gpu.py on a machine without a GPU: what can be checked before the day one is lent.

It must stop at once with one clear line (not a traceback halfway through), and the cases of its memory
section must fit the GPUs it is meant for, by the planner's own prediction."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

import bench_gpu
from plan import memory_plan

ROOT = Path(__file__).resolve().parent.parent
GiB = 2**30


@pytest.mark.parametrize("args", [[], ["--quick", "--only", "attention"], ["--parallel-rank", "ddp"]],
                         ids=["all", "one-section", "torchrun-rank"])
def test_without_a_gpu_it_stops_at_once_with_one_line(args):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no GPU even where there is one
    done = subprocess.run([sys.executable, str(ROOT / "bench_gpu.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: bench_gpu.py needs a CUDA GPU"), done.stderr[-2000:]


@pytest.mark.parametrize("path, batch", bench_gpu.MEMORY_CASES)
def test_memory_cases_run_on_a_40_gb_card(path, batch):
    """Each one-step memory case is predicted under the share of a 40 GB A100 (39.4 GiB usable) at which
    the benchmark runs it; on an 80 GB card the planner would have to be almost 3x low for it to run out."""
    config, values = bench_gpu.model_config(path, kernels="triton")
    predicted = memory_plan(config, batch, dtype_bytes=2, checkpointing=values["activation_checkpointing"])["peak"]
    assert predicted < bench_gpu.MEMORY_SHARE * 39.4 * GiB, f"{path} batch {batch}: {predicted / GiB:.1f} GiB"
