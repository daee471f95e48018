"""
bench_parallel.py — what DDP, ZeRO-1 and FSDP cost per rank, measured on this machine's CPU processes.

    python bench_parallel.py memory     # predicted vs measured per-rank memory, 1-4 ranks (~2 min)
    python bench_parallel.py scaling    # tokens/s of 1 process vs 2 (~1 min)

Unlike parallel.py (which sets the processes up and wraps the model) and plan.py (which predicts the
bytes), this runs real training steps under torchrun (gloo) and reads each rank's peak RSS, so the ZeRO
table of plan.predicted_bytes is checked against an allocator rather than believed.
"""
import argparse
import gc
import json
import os
import subprocess
import sys
import time

import torch
import torch.distributed as dist

from common import release_freed_memory, reset_peak_rss, rss_bytes
from model import GPT, GPTConfig
from parallel import init_distributed, make_optimizer, rank_and_world_size, shutdown, transformer_blocks, wrap_model
from plan import memory_plan, predicted_bytes

# -----------------------------------------------------------------------------
# 1. One rank's measurement: peak memory and seconds per step


def unit_sizes(model):
    """(parameters, parameters of the largest FSDP unit): each block, and the root's rest (embeddings...)."""
    n_params = sum(p.numel() for p in model.parameters())
    blocks = transformer_blocks(model)
    in_blocks = [sum(p.numel() for p in block.parameters()) for block in blocks]
    return n_params, max(in_blocks + [n_params - sum(in_blocks)])


def _train_steps(model, optimizer, vocab_size, block_size, batch_size, steps):
    """AdamW steps on random tokens; returns the seconds each step took."""
    step_times = []
    for _ in range(steps):
        tokens = torch.randint(0, vocab_size, (batch_size, block_size + 1))
        start = time.perf_counter()
        _, loss = model(tokens[:, :-1], tokens[:, 1:])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step_times.append(time.perf_counter() - start)
    return step_times


def measure_rank(mode, build, vocab_size, block_size, batch_size, steps, exact_memory=True):
    """Collective. Peak memory of `steps` AdamW steps of build() wrapped as `mode` (ddp | zero | fsdp).

    Returns this rank's figures: params, predicted and measured bytes, seconds per step. The weights are
    counted from before the model is built; the full copy FSDP shards from is not: it is freed before
    training starts (a model built on the meta device would never have it). exact_memory costs speed:
    every tensor then comes from fresh zeroed pages.
    """
    if exact_memory:
        release_freed_memory()
    for measured in [False, True]:  # round 1 pages in libtorch's code and lazy tables; round 2 counts
        gc.collect()
        baseline = rss_bytes("VmRSS")
        model = build()
        n_params, largest_unit = unit_sizes(model)
        model = wrap_model(model, fsdp=mode == "fsdp")
        optimizer = make_optimizer(torch.optim.AdamW, model.parameters(), zero=int(mode == "zero"))
        gc.collect()  # the unsharded weights fully_shard copied its shards from
        reset_peak_rss()
        step_times = _train_steps(model, optimizer, vocab_size, block_size, batch_size, steps)
        peak = rss_bytes("VmHWM") - baseline
        del model, optimizer
    _, world_size = rank_and_world_size()
    return {"mode": mode, "world_size": world_size, "threads": torch.get_num_threads(),
            "params": n_params, "predicted": predicted_bytes(mode, n_params, world_size, largest_unit),
            "peak": peak, "step_s": step_times[1:]}  # step 1 allocates grads and Adam states: not timed


def _gpt_config(n_layer, n_embd, vocab_size, block_size):
    return GPTConfig(block_size=block_size, vocab_size=vocab_size, n_layer=n_layer, n_head=n_embd // 64,
                     n_kv_head=n_embd // 64, n_embd=n_embd)


def _gpt(n_layer, n_embd, vocab_size, block_size):
    torch.manual_seed(0)
    return GPT(_gpt_config(n_layer, n_embd, vocab_size, block_size))


def bench(mode, n_layer, n_embd, vocab_size, block_size, batch_size, steps, exact_memory):
    """One rank of `torchrun --nproc_per_node=N bench_parallel.py bench`; rank 0 prints every rank's figures."""
    init_distributed()
    result = measure_rank(mode, lambda: _gpt(n_layer, n_embd, vocab_size, block_size),
                          vocab_size, block_size, batch_size, steps, bool(exact_memory))
    results = [result]
    if dist.is_initialized():
        results = [None] * dist.get_world_size()
        dist.all_gather_object(results, result)
    if rank_and_world_size()[0] == 0:
        print("RESULT " + json.dumps(results), flush=True)
    shutdown()


def _run_bench(world_size, threads, **options):
    """Launch `bench_parallel.py bench` under torchrun in fresh processes; every rank's figures."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={world_size}", os.path.abspath(__file__), "bench"]
    command += [f"--{key}={value}" for key, value in options.items()]
    done = subprocess.run(command, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[0].removeprefix("RESULT "))


def memory_table(shape):
    """Per-rank memory for DDP / ZeRO-1 / FSDP on 1, 2 and 4 ranks: the model states of plan.predicted_bytes (the ZeRO
    table), plan.memory_plan (model states + activations, fp32), and the measured peak."""
    config = _gpt_config(shape["n_layer"], shape["n_embd"], shape["vocab_size"], shape["block_size"])
    print(f"| strategy | ranks | params | model states MiB/rank | planner MiB/rank | measured peak MiB/rank | "
          f"measured/planner |")
    print(f"|---|---|---|---|---|---|---|")
    for mode, world_size in [("ddp", 1), ("ddp", 2), ("zero", 2), ("zero", 4), ("fsdp", 2), ("fsdp", 4)]:
        ranks = _run_bench(world_size, threads=1, mode=mode, **shape)
        peak = max(rank["peak"] for rank in ranks)  # the rank that needs the most decides what fits
        planned = memory_plan(config, shape["batch_size"], dtype_bytes=4, world_size=world_size,  # fp32
                              zero=int(mode == "zero"), fsdp=mode == "fsdp", fused_norm=False)["peak"]  # torch RMSNorm
        print(f"| {mode} | {world_size} | {ranks[0]['params'] / 1e6:.1f}M | {ranks[0]['predicted'] / 2**20:.0f} | "
              f"{planned / 2**20:.0f} | {peak / 2**20:.0f} | {peak / planned:.2f} |", flush=True)


def scaling_table(shape):
    """Tokens/s of DDP with a fixed per-rank batch: 1 process (1 and all cores) vs 2 processes of 1 core."""
    print(f"| processes x threads | tokens/s | vs 1 x 1 |")
    print(f"|---|---|---|")
    baseline = None
    for world_size, threads in [(1, 1), (1, 2), (2, 1)]:
        ranks = _run_bench(world_size, threads, mode="ddp", **shape)
        step_s = sum(ranks[0]["step_s"]) / len(ranks[0]["step_s"])
        tokens_per_s = world_size * shape["batch_size"] * shape["block_size"] / step_s
        baseline = baseline or tokens_per_s
        print(f"| {world_size} x {threads} | {tokens_per_s:,.0f} | {tokens_per_s / baseline:.2f}x |", flush=True)


# -----------------------------------------------------------------------------
# 3. Command line

MEMORY_SHAPE = dict(n_layer=8, n_embd=768, vocab_size=4096, block_size=32, batch_size=1, steps=3,
                    exact_memory=1)
SCALING_SHAPE = dict(n_layer=4, n_embd=128, vocab_size=4096, block_size=128, batch_size=8, steps=12,
                     exact_memory=0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("memory", help="predicted vs measured per-rank memory, DDP / ZeRO-1 / FSDP (~2 min)")
    commands.add_parser("scaling", help="tokens/s on 1 and 2 processes (~1 min)")
    measure = commands.add_parser("bench", help="one measurement, under torchrun (memory/scaling run it)")
    measure.add_argument("--mode", choices=["ddp", "zero", "fsdp"], default="ddp")
    for name, default in MEMORY_SHAPE.items():
        measure.add_argument(f"--{name}", type=int, default=default)
    args = parser.parse_args(argv)
    if args.command == "bench":
        bench(**{k: v for k, v in vars(args).items() if k != "command"})
    if args.command == "memory":
        memory_table(MEMORY_SHAPE)
    if args.command == "scaling":
        scaling_table(SCALING_SHAPE)


if __name__ == "__main__":
    main()
