"""train.py with --zero=1 and --fsdp=True under torch.distributed.run (gloo, CPU): the same losses as one
process with the same global batch; a sharded checkpoint saved by 2 ranks resumes on 1 and on 4 ranks with
the same losses; consolidate gives the one-file checkpoint sample.py loads.

Every launch starts fresh interpreters (~5 s each on 2 cores), so the test makes three and checks all it
can on their outputs.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import parallel
from model import GPT, GPTConfig
# fixtures: the tiny prepare.py-style dataset, and one torch thread for these tiny models
from test_train import SMALL, dataset, one_thread, run  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
# 4 steps of a global batch of 4 rows; a (sharded) checkpoint every 2 steps
COMMON = ["--max_iters=4", "--checkpoint_interval=2", "--eval_interval=2", "--keep_last=2"]
GLOBAL_ROWS = 4


def torchrun(ranks, out_dir, dataset, *args):
    """train.py on `ranks` gloo processes, each with GLOBAL_ROWS / ranks rows per step; its records."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}",
               str(ROOT / "train.py"), *SMALL, *COMMON, f"--batch_size={GLOBAL_ROWS // ranks}",
               f"--dataset={dataset}", f"--out_dir={out_dir}", "--dist_timeout_s=120", *args]
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return records(out_dir)


def records(out_dir):
    return [json.loads(line) for line in (Path(out_dir) / "metrics.jsonl").read_text().splitlines()]


def losses(metrics, first_step=1):
    return {r["step"]: r["loss"] for r in metrics if r["kind"] == "train" and r["step"] >= first_step}


def test_zero1_and_fsdp_train_like_one_process_and_resume_at_another_world_size(tmp_path, dataset):
    single = run(tmp_path / "one", dataset, *COMMON, "--batch_size=2", "--gradient_accumulation_steps=2")
    reference = losses(single)
    assert sorted(reference) == [1, 2, 3, 4]
    assert reference[4] < reference[1]
    trained = {}
    for option in ["--zero=1", "--fsdp=True"]:
        metrics = torchrun(2, tmp_path / option[2:6], dataset, option)
        assert [r["step"] for r in metrics if r["kind"] == "train"] == [1, 2, 3, 4]  # rank 0 alone writes
        trained[option] = losses(metrics)
        assert trained[option] == pytest.approx(reference, rel=1e-5), option
    assert sorted(p.name for p in (tmp_path / "fsdp").glob("ckpt_*")) == ["ckpt_0000002", "ckpt_0000004"]

    # resume each 2-rank checkpoint of step 2 on another number of ranks: steps 3 and 4 come out the same
    for name, ranks, option in [("zero", 1, "--zero=1"), ("fsdp", 4, "--fsdp=True")]:
        resumed = tmp_path / f"{name}_on_{ranks}"
        shutil.copytree(tmp_path / name, resumed)
        shutil.rmtree(resumed / "ckpt_0000004")
        if ranks == 1:  # plain `python train.py`: no process group, the shards are read by one process
            metrics = run(resumed, dataset, *COMMON, "--batch_size=2", "--gradient_accumulation_steps=2",
                          option, "--resume")
        else:
            metrics = torchrun(ranks, resumed, dataset, option, "--resume")
        assert losses(metrics, first_step=3) == pytest.approx({3: reference[3], 4: reference[4]}, rel=1e-5), name

    # one file with the keys of a .pt checkpoint; sample.py / eval.py rebuild the model from it
    out_file = tmp_path / "fsdp" / "ckpt_0000004.pt"
    subprocess.run([sys.executable, str(ROOT / "checkpoint.py"), "consolidate", str(tmp_path / "fsdp" / "ckpt_0000004"),
                    str(out_file)], check=True, capture_output=True)
    checkpoint = torch.load(out_file, weights_only=False)
    assert {"model", "model_config", "step", "config", "tokenizer_hash"} <= set(checkpoint)
    assert checkpoint["step"] == 4
    model = GPT(GPTConfig(**checkpoint["model_config"]))
    model.load_state_dict(checkpoint["model"])  # strict: every key, every shape
    single_weights = torch.load(tmp_path / "one" / "ckpt_0000004.pt", weights_only=False)["model"]
    for key, tensor in single_weights.items():
        torch.testing.assert_close(checkpoint["model"][key], tensor, rtol=1e-4, atol=1e-6)
