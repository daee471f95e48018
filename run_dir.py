"""
run_dir.py — the run directory train.py leaves behind, and how it survives the ways runs end.

    out_dir/  config.json  metrics.jsonl  tokenizer/  ckpt_*.pt  best.pt  events/  (+ out_dir.lock beside it)

A run is never lost, whatever happens to the process (issue "a run is never lost"):
- one train.py per out_dir: a lock file beside it (common.run_lock), taken after every check passed;
- a fresh start removes an earlier run's outputs only after the new config, dataset, model and (on
  --resume) checkpoint were checked: a typo never costs the old run;
- metrics.jsonl is appended one line per record; a kill can cut the last line, which resume drops;
- SIGTERM (a preempted cloud GPU, a scheduler's stop, torchrun stopping its workers) and SIGINT (Ctrl-C)
  only raise a flag: the loop finishes its step, saves a checkpoint and ends with status "preempted";
  the exit code is 128 + the signal (143 for SIGTERM, 130 for SIGINT), as schedulers expect.
Checkpoints themselves are checkpoint.py's; this file is everything else in the directory.
"""
import json
import math
import shutil
import signal
import textwrap

import torch
import torch.distributed as dist

from common import UserError, run_lock, write_atomic, write_json

OUTPUTS = ["ckpt_*", "best*", "metrics.jsonl", "range_test.json", "events", "tb"]  # what a run writes


def open_run_dir(out, config, tok_dir, fresh):
    """Rank 0: lock out_dir, clear an earlier run's outputs when fresh, copy the tokenizer, write
    config.json. Returns the lock (common.release_lock frees it)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: out_dir is a file, not a directory")
    try:
        lock = run_lock(out, "train.py")
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # read-only disk, no permission, a file where a folder should be
        raise UserError(f"{out}: cannot create the run directory ({error.strerror})") from None
    old = [p for pattern in OUTPUTS for p in out.glob(pattern)] if fresh else []
    if old:
        print(f"{out}: starting fresh, removing {len(old)} outputs of an earlier run (--resume continues it)")
    for path in old + list(out.glob(".*.tmp")):  # + temp files left by a kill during a save
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    shutil.copytree(tok_dir, out / "tokenizer", dirs_exist_ok=True)
    write_json(out / "config.json", config)
    text = ", ".join(f"{k}={v!r}" for k, v in config.items())
    print("config:\n" + textwrap.fill(text, 110, initial_indent="  ", subsequent_indent="  "))
    return lock


def append_metrics(out, record):
    """One line of metrics.jsonl. JSON has no NaN: a non-finite number is written as null."""
    record = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    return record


def read_metrics_until(path, step):
    """metrics.jsonl's records up to `step`, without the end record. A partial last line (the run was
    killed while writing it) is dropped; a broken line before the last is an error."""
    lines = path.read_text().splitlines() if path.is_file() else []
    records = []
    for n, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if n < len(lines):
                raise UserError(f"{path}:{n}: not JSON; fix or delete that line to resume") from None
    return [r for r in records if r.get("kind") != "end" and r.get("step", 0) <= step]


def trim_metrics(path, records):
    """Rewrite metrics.jsonl as `records` (resume: the lines after the checkpoint's step go)."""
    write_atomic(path, "".join(json.dumps(r) + "\n" for r in records))


def catch_stop_signals(run):
    """SIGTERM and SIGINT set run.stop_signal instead of killing the process. Returns a function that puts
    the previous handlers back."""
    def handler(signum, frame):
        run.stop_signal = signum
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    return lambda: [signal.signal(sig, old) for sig, old in previous.items()]


def agree(flags, world_size, device):
    """Every rank's flags OR-ed together, so all ranks take the same branch at the same step (one small
    all-reduce per step; a rank deciding alone would leave the others waiting in a collective)."""
    if world_size == 1:
        return flags
    tensor = torch.tensor([float(f) for f in flags], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return [bool(v) for v in tensor.tolist()]


def exit_code(status, stop_signal):
    """0 finished, 1 diverged, 128 + the signal when preempted (143 SIGTERM, 130 SIGINT), as shells and
    schedulers read it; an error is 2 (common.cli)."""
    return {"finished": 0, "diverged": 1}.get(status, 128 + (stop_signal or signal.SIGTERM))


def run_cost(world_size, wall_s, price_per_hour, params, tokens, flops_per_token, peak_flops, assumed_mfu=0.4):
    """What the run used: device-hours (devices x wall clock), its cost at price_per_hour, the model FLOPs
    done, and, where the device's peak is known, what the planner would have predicted for the same
    tokens (plan.py's time_and_cost at its assumed MFU), so a retrospective can put the two side by side."""
    device_hours = world_size * wall_s / 3600
    cost = {"params": params, "flops": flops_per_token * tokens, "device_hours": round(device_hours, 6),
            "cost": round(device_hours * price_per_hour, 6) if price_per_hour else None}
    if peak_flops:
        hours = tokens * flops_per_token / (assumed_mfu * peak_flops * world_size) / 3600 * world_size
        cost["planned"] = {"mfu": assumed_mfu, "hours": round(hours, 6), "cost": round(hours * price_per_hour, 6)}
    return cost


def record_cost(out, config, cost):
    """config.json gains a "measured" section: the cost next to the config that produced it."""
    write_json(out / "config.json", {**config, "measured": cost})
