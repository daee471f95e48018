"""parallel.py — how one model is spread over many processes (all through torch.distributed).

Every rank (one process per GPU, started by torchrun) runs the same training loop on a different slice of
each global batch. What differs between the strategies is which rank KEEPS which bytes, and what the ranks
send each other every step. With Φ parameters and N ranks, AdamW keeps 16 bytes per parameter: fp32
weights 4, fp32 grads 4, Adam's m 4 and v 4. That holds under bf16 autocast too: autocast makes bf16
copies of a weight for one matmul and drops them, so the fp32 weights are the master copy.

    strategy        per-rank bytes    numbers each rank sends per step             here
    DDP             16Φ               2Φ  all-reduce the grads                     --zero=0 (default)
    ZeRO-1          8Φ + 8Φ/N         3Φ  the same all-reduce, then every rank     --zero=1
                                          broadcasts the weights it updated
    FSDP (ZeRO-3)   16Φ/N + 16·unit   3Φ  all-gather a block's weights in forward  --fsdp=True
                                          and again in backward, reduce-scatter
                                          its grads; unit = the largest block

(an all-reduce sends ~2Φ: a reduce-scatter Φ plus an all-gather Φ. The ZeRO paper's 4Φ + 12Φ/N for
ZeRO-1 counts bf16 weights and grads beside an fp32 master copy, and replaces the all-reduce by a
reduce-scatter so its traffic stays 2Φ; torch's ZeroRedundancyOptimizer shards only Adam's states.)
So: DDP while 16Φ plus activations fit; ZeRO-1 when the optimizer states are what does not fit; FSDP
when even weights + grads do not fit, paying 1.5x DDP's traffic (bf16 all-gathers halve it again);
FSDP + cpu_offload when the GPU cannot even hold the shards (CPU RAM and PCIe become the limit).
Activations come on top of all of these, per rank; activation checkpointing
(GPTConfig.activation_checkpointing) trades them for one extra forward. `python parallel.py memory`
measures the table on this CPU (README).

Launch (torchrun sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT for every process):
    torchrun --standalone --nproc_per_node=8 train.py config/1b.py --fsdp=True
    python parallel.py consolidate out/RUN/ckpt_0001000 out/RUN/ckpt_0001000.pt   # for sample.py/eval.py
"""
import argparse
import datetime
import gc
import json
import os
import shutil
import subprocess
import sys
import time

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (get_model_state_dict, get_optimizer_state_dict,
                                                     set_model_state_dict, set_optimizer_state_dict)
from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, fully_shard
from torch.distributed.optim import ZeroRedundancyOptimizer
from torch.nn.parallel import DistributedDataParallel as DDP

# -----------------------------------------------------------------------------
# 1. Joining the process group, and failing loudly when a rank hangs


def init_distributed(timeout_s=600):
    """Join the process group torchrun set up; returns (rank, local_rank, world_size).

    Run as plain `python train.py` (no RANK in the environment) it is a single process and joins nothing.
    Every collective (all-reduce, all-gather, barrier) waits at most `timeout_s` for the other ranks: a
    rank that died or hangs (stuck reading data, a deadlock, a dead node) then fails the others with an
    error instead of a silent hang that burns the whole allocation.
    """
    if "RANK" not in os.environ:
        return 0, 0, 1
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)  # before init, so NCCL binds this process to its own GPU
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    _explain_timeouts(rank, timeout_s)
    return rank, local_rank, dist.get_world_size()


def _explain_timeouts(rank, timeout_s):
    """Put one plain sentence above the backend's cryptic traceback when a collective times out.

    gloo raises RuntimeError("... Timed out waiting 600000ms for recv operation ..."); NCCL's watchdog
    raises DistBackendError (or, by default, aborts the process after logging "Watchdog caught collective
    operation timeout"). Both reach Python's last-chance hook only in the rank(s) that waited.
    """
    default_hook = sys.excepthook

    def hook(kind, error, traceback):
        text = str(error).lower()
        if isinstance(error, dist.DistBackendError) or "timed out" in text or "timeout" in text:
            print(f"\nrank {rank}: a collective (all-reduce/all-gather/barrier) waited more than "
                  f"{timeout_s} s for the other ranks. Another rank is probably dead or hung: find the "
                  f"first rank that failed in the logs (torchrun reports it). If a slow but healthy step "
                  f"(a big checkpoint, the first compile) needs longer, raise dist_timeout_s.\n",
                  file=sys.stderr, flush=True)
        default_hook(kind, error, traceback)

    sys.excepthook = hook


def shutdown():
    """Leave the process group at the end of training (drop references to the model and optimizer first).

    gc.collect() first: the last step's communication handles sit in reference cycles; left to interpreter
    shutdown, gloo's worker threads are torn down after Python and the process dies with SIGABRT
    ("terminate called without an active exception"), about one run in three on this CPU.
    """
    if dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()


# -----------------------------------------------------------------------------
# 2. Wrapping the model: DDP, or FSDP2 per transformer block (ZeRO-3)


def transformer_blocks(model):
    """The repeated blocks are the entries of the model's longest nn.ModuleList (GPT.transformer.h)."""
    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    if not lists:
        raise ValueError(f"{type(model).__name__} has no nn.ModuleList of blocks to shard")
    return max(lists, key=len)


def wrap_model(model, fsdp=False, dtype="float32", cpu_offload=False):
    """DDP or FSDP2 around `model` (already on this rank's device); unchanged for one plain process.

    FSDP shards each block separately so that only a block or two hold full weights at any time: before
    a block runs, its shards are all-gathered (the next block's already while this one computes), after
    it runs they are freed again, and in backward its gradients are reduce-scattered so each rank keeps
    1/N of them. The root call takes what is left (embeddings, final norm, head: tied weights must live
    in one unit). One plain process has nothing to shard: the model comes back as it is, and its sharded
    checkpoints still load anywhere.
    """
    if cpu_offload and not fsdp:
        raise SystemExit("cpu_offload=True needs fsdp=True: FSDP2 is what moves the shards to CPU")
    if not fsdp:
        if not dist.is_initialized():
            return model
        # gradient_as_bucket_view: grads live inside DDP's all-reduce buckets instead of beside them (-4Φ)
        device = next(model.parameters()).device
        device_ids = [device.index] if device.type == "cuda" else None
        return DDP(model, device_ids=device_ids, gradient_as_bucket_view=True)
    if dtype == "float16":
        raise SystemExit("fsdp=True: use dtype=bfloat16 (fp16 would need a sharded gradient scaler)")
    if cpu_offload and not torch.cuda.is_available():
        raise SystemExit("cpu_offload=True moves shards from GPU to CPU memory; this run has no GPU")
    if not dist.is_initialized():
        if cpu_offload:  # the one case where sharding over one rank pays: the "7B on one GPU" recipe
            raise SystemExit("cpu_offload=True: launch with `torchrun --nproc_per_node=1 train.py ...`")
        return model
    # weights are all-gathered and used in bf16 (half the traffic), gradients reduced in fp32 (accuracy);
    # the sharded fp32 weights are the master copy the optimizer updates
    low = {"bfloat16": torch.bfloat16, "float32": None}[dtype]
    policy = {"mp_policy": MixedPrecisionPolicy(param_dtype=low, reduce_dtype=torch.float32)}
    if cpu_offload:  # shards, their grads and Adam states live in CPU RAM; the CPU runs optimizer.step()
        policy["offload_policy"] = CPUOffloadPolicy()
    for block in transformer_blocks(model):
        fully_shard(block, **policy)
    fully_shard(model, **policy)
    return model


def set_gradient_sync(model, sync):
    """With gradient accumulation, only the last micro-step needs to communicate gradients.

    DDP: skipping the all-reduce on earlier micro-steps is free (full grads are kept anyway). FSDP: NOT
    done — skipping the reduce-scatter would keep full unsharded gradients (4Φ per rank) between
    micro-steps, which is the memory FSDP exists to save; so FSDP reduce-scatters every micro-step.
    """
    if isinstance(model, DDP):
        model.require_backward_grad_sync = sync


def unwrap(model):
    """The GPT inside (for generate, num_params, saving): DDP hides it in .module; FSDP2 keeps the class."""
    return model.module if isinstance(model, DDP) else model


# -----------------------------------------------------------------------------
# 3. The optimizer: ZeRO-1 shards its states across ranks


def make_optimizer(optimizer_class, param_groups, zero=0, **hyperparameters):
    """optimizer_class(param_groups, **hyperparameters), or its ZeRO-1 version when zero=1.

    ZeroRedundancyOptimizer gives each rank whole parameters to own (greedy, largest first, so the split
    is close to Φ/N): every rank still computes full gradients (DDP all-reduce), but only the owner keeps
    Adam's m and v for a parameter and updates it, then broadcasts the new weights to the others.
    Under FSDP the optimizer sees only shards already, so it is a plain optimizer there.
    """
    if zero not in (0, 1):
        raise SystemExit(f"zero={zero}: 0 (DDP) or 1 (ZeRO-1); ZeRO-3 is fsdp=True")
    if zero and dist.is_initialized() and dist.get_world_size() > 1:
        return ZeroRedundancyOptimizer(param_groups, optimizer_class=optimizer_class, **hyperparameters)
    return optimizer_class(param_groups, **hyperparameters)


def _local_optimizer(optimizer):
    """The torch optimizer holding this rank's states (ZeRO-1 keeps it in .optim)."""
    return optimizer.optim if isinstance(optimizer, ZeroRedundancyOptimizer) else optimizer


# -----------------------------------------------------------------------------
# 4. Sharded checkpoints that load at any world size (torch.distributed.checkpoint)
#
# A checkpoint is a directory: DCP's .distcp files (each rank writes the shards it owns; replicated DDP
# tensors are written once), DCP's .metadata (which byte range of which file holds which slice of which
# tensor), and extra_rank{R}.pt (step, config, RNG... of rank R). Tensors are keyed by the plain
# parameter names ("transformer.h.0.attn.c_attn.weight") whatever the wrapper, so a checkpoint written by
# FSDP on 2 ranks loads into DDP, ZeRO-1 or FSDP on 1, 4 or 8 ranks: DCP reads each rank's new slice.
# Optimizer states are saved per parameter name ("state" only); hyperparameters and param groups come
# from the config of the resuming run (ZeRO-1 on another world size has different local groups).


def _state(model, optimizer, with_optimizer):
    """What DCP saves or fills: {"model": ..., "optimizer": ...}, and the optimizer's param groups.

    Asked for the state of an optimizer that has not stepped yet, torch creates it by running one step
    with zero grads and lr 0: the weights stay, but Adam's step count becomes 1 and every later bias
    correction shifts. So a save before the first step (best.pt at step 0) leaves the optimizer out.
    """
    state = {"model": get_model_state_dict(model)}
    if not with_optimizer:
        return state, None
    optim_state = get_optimizer_state_dict(model, _local_optimizer(optimizer))
    state["optimizer"] = optim_state["state"]
    return state, optim_state["param_groups"]


def save_sharded(ckpt_dir, model, optimizer, extra):
    """Collective: every rank calls it. Atomic: written to .NAME.tmp beside it, renamed by rank 0 when
    complete (a leading dot, so a half-written one never matches a run's ckpt_* listing).

    extra: this rank's small state (step, config, rng, data position...), a torch.save-able dict.
    """
    rank, world_size = rank_and_world_size()
    parent, name = os.path.split(os.path.abspath(ckpt_dir))
    tmp, old = os.path.join(parent, f".{name}.tmp"), os.path.join(parent, f".{name}.old")
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)  # left by a run killed mid-save
    _barrier()
    state, _ = _state(model, optimizer, with_optimizer=bool(_local_optimizer(optimizer).state))
    # without a process group (plain `python train.py`) DCP reads and writes as a single process
    dcp.save(state, checkpoint_id=tmp, no_dist=not dist.is_initialized())  # fsyncs every file it writes
    _save_synced({**extra, "world_size": world_size}, os.path.join(tmp, f"extra_rank{rank}.pt"))
    _barrier()  # every rank's files are in tmp
    if rank == 0:
        if os.path.exists(ckpt_dir):  # saving the same step twice: keep the old one until the swap
            os.replace(ckpt_dir, old)
        os.replace(tmp, ckpt_dir)
        shutil.rmtree(old, ignore_errors=True)
        _fsync_dir(parent)
    _barrier()  # nobody goes on (or prunes old checkpoints) before the rename


def load_sharded(ckpt_dir, model, optimizer):
    """Collective. Fills model and optimizer in place from ckpt_dir (any saving world size); returns extra.

    extra is this rank's own when the world size is unchanged, otherwise rank 0's, with
    extra["world_size"] telling which: per-rank state such as RNG streams must then be re-derived.
    """
    if not os.path.isfile(os.path.join(ckpt_dir, ".metadata")):
        raise SystemExit(f"{ckpt_dir}: not a sharded checkpoint (no .metadata)")
    saved = dcp.FileSystemReader(ckpt_dir).read_metadata().state_dict_metadata
    with_optimizer = any(key.startswith("optimizer.") for key in saved)
    state, param_groups = _state(model, optimizer, with_optimizer)  # the shapes and shards THIS run wants
    dcp.load(state, checkpoint_id=ckpt_dir, no_dist=not dist.is_initialized())  # each rank: its slices
    set_model_state_dict(model, state["model"])
    if with_optimizer:
        set_optimizer_state_dict(model, _local_optimizer(optimizer),
                                 {"state": state["optimizer"], "param_groups": param_groups})
    else:  # saved before the first step: the optimizer starts afresh, as it did then
        _local_optimizer(optimizer).state.clear()
    rank, world_size = rank_and_world_size()
    extra = torch.load(os.path.join(ckpt_dir, "extra_rank0.pt"), weights_only=False)
    if extra["world_size"] == world_size:
        extra = torch.load(os.path.join(ckpt_dir, f"extra_rank{rank}.pt"), weights_only=False)
    return extra


def consolidate(ckpt_dir, out_file):
    """One process, no GPU: gather the sharded weights into a single run-dir checkpoint file.

    The file has the keys sample.py/eval.py read (model, model_config, config, tokenizer_hash, step, ...:
    everything rank 0 put in extra); the optimizer states stay in the directory (resume from there).
    """
    metadata = dcp.FileSystemReader(ckpt_dir).read_metadata()
    # an empty tensor of the saved full shape for every model entry; DCP fills them from all the shards
    model_state = {key.removeprefix("model."): torch.empty(meta.size, dtype=meta.properties.dtype)
                   for key, meta in metadata.state_dict_metadata.items() if key.startswith("model.")}
    dcp.load({"model": model_state}, checkpoint_id=ckpt_dir, no_dist=True)
    extra = torch.load(os.path.join(ckpt_dir, "extra_rank0.pt"), weights_only=False)
    checkpoint = {**extra, "model": model_state}
    tmp = f"{out_file}.tmp"
    _save_synced(checkpoint, tmp)
    os.replace(tmp, out_file)
    return checkpoint


def rank_and_world_size():
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def _barrier():
    if dist.is_initialized():
        dist.barrier()


def _save_synced(obj, path):
    with open(path, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())  # on disk before the rename that publishes it


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # makes the rename itself durable
    finally:
        os.close(fd)


# -----------------------------------------------------------------------------
# 5. Measuring the table: per-rank peak memory and throughput on this machine


def predicted_bytes(mode, n_params, world_size, largest_unit):
    """AdamW's per-rank bytes, the table at the top: 4 weights + 4 grads + 8 Adam m, v per parameter.

    FSDP also holds units (a block, or the root's embeddings) unsharded: the running one's weights (4)
    and grads (4), the flat copy of those grads that is reduce-scattered (4), and the next unit's weights
    (4), all-gathered ahead so communication overlaps compute: 16 bytes x largest_unit. (bf16 weights
    via MixedPrecisionPolicy: 2 + 2 + 4 + 2.) Not counted: activations, and transient copies of single
    tensors (a grad before it lands in DDP's bucket, CPU Adam's temporaries): ~4 bytes x a block's size.
    """
    if mode == "ddp":
        return 16 * n_params
    if mode == "zero":
        return 8 * n_params + 8 * n_params / world_size
    return 16 * n_params / world_size + 16 * largest_unit


def unit_sizes(model):
    """(parameters, parameters of the largest FSDP unit): each block, and the root's rest (embeddings...)."""
    n_params = sum(p.numel() for p in model.parameters())
    blocks = transformer_blocks(model)
    in_blocks = [sum(p.numel() for p in block.parameters()) for block in blocks]
    return n_params, max(in_blocks + [n_params - sum(in_blocks)])


def _memory_bytes(field):
    """VmRSS: resident now; VmHWM: the peak since the last _reset_peak (Linux /proc)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) * 1024


def _reset_peak():
    """Writing 5 to clear_refs resets VmHWM to the current RSS: torch.cuda.reset_peak_memory_stats for RAM."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _give_freed_memory_back():
    """glibc serves allocations under 32 MiB from heaps it rarely returns, so RSS would count freed tensors
    too (the CPU twin of CUDA's "reserved" memory). Above 64 KiB every allocation gets its own mmap, which
    free() unmaps: RSS then follows the live tensors."""
    import ctypes
    M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
    try:
        ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, 65536)
    except (OSError, AttributeError):  # not glibc: freed memory may stay counted (the peak is an upper bound)
        pass


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
        _give_freed_memory_back()
    for measured in [False, True]:  # round 1 pages in libtorch's code and lazy tables; round 2 counts
        gc.collect()
        baseline = _memory_bytes("VmRSS")
        model = build()
        n_params, largest_unit = unit_sizes(model)
        model = wrap_model(model, fsdp=mode == "fsdp")
        optimizer = make_optimizer(torch.optim.AdamW, model.parameters(), zero=int(mode == "zero"))
        gc.collect()  # the unsharded weights fully_shard copied its shards from
        _reset_peak()
        step_times = _train_steps(model, optimizer, vocab_size, block_size, batch_size, steps)
        peak = _memory_bytes("VmHWM") - baseline
        del model, optimizer
    _, world_size = rank_and_world_size()
    return {"mode": mode, "world_size": world_size, "threads": torch.get_num_threads(),
            "params": n_params, "predicted": predicted_bytes(mode, n_params, world_size, largest_unit),
            "peak": peak, "step_s": step_times[1:]}  # step 1 allocates grads and Adam states: not timed


def _gpt_config(n_layer, n_embd, vocab_size, block_size):
    from model import GPTConfig  # only the benchmark needs the model
    return GPTConfig(block_size=block_size, vocab_size=vocab_size, n_layer=n_layer, n_head=n_embd // 64,
                     n_kv_head=n_embd // 64, n_embd=n_embd)


def _gpt(n_layer, n_embd, vocab_size, block_size):
    from model import GPT
    torch.manual_seed(0)
    return GPT(_gpt_config(n_layer, n_embd, vocab_size, block_size))


def bench(mode, n_layer, n_embd, vocab_size, block_size, batch_size, steps, exact_memory):
    """One rank of `torchrun --nproc_per_node=N parallel.py bench`; rank 0 prints every rank's figures."""
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
    """Launch `parallel.py bench` under torchrun in fresh processes; every rank's figures."""
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
    """Per-rank memory for DDP / ZeRO-1 / FSDP on 1, 2 and 4 ranks: the model states of the table at the
    top (predicted_bytes), model.py's planner (model states + activations, fp32), and the measured peak."""
    from model import memory_plan
    config = _gpt_config(shape["n_layer"], shape["n_embd"], shape["vocab_size"], shape["block_size"])
    print(f"| strategy | ranks | params | model states MiB/rank | planner MiB/rank | measured peak MiB/rank | "
          f"measured/planner |")
    print(f"|---|---|---|---|---|---|---|")
    for mode, world_size in [("ddp", 1), ("ddp", 2), ("zero", 2), ("zero", 4), ("fsdp", 2), ("fsdp", 4)]:
        ranks = _run_bench(world_size, threads=1, mode=mode, **shape)
        peak = max(rank["peak"] for rank in ranks)  # the rank that needs the most decides what fits
        planned = memory_plan(config, shape["batch_size"], a=4, world_size=world_size, zero=int(mode == "zero"),
                              fsdp=mode == "fsdp", fused_norm=False)["peak"]  # fp32, torch's RMSNorm
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
# 6. Command line

MEMORY_SHAPE = dict(n_layer=8, n_embd=768, vocab_size=4096, block_size=32, batch_size=1, steps=3,
                    exact_memory=1)
SCALING_SHAPE = dict(n_layer=4, n_embd=128, vocab_size=4096, block_size=128, batch_size=8, steps=12,
                     exact_memory=0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    merge = commands.add_parser("consolidate", help="sharded checkpoint dir -> one .pt file for sample/eval")
    merge.add_argument("ckpt_dir")
    merge.add_argument("out_file")
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
    if args.command == "consolidate":
        if not os.path.isfile(os.path.join(args.ckpt_dir, ".metadata")):
            raise SystemExit(f"{args.ckpt_dir}: not a sharded checkpoint (no .metadata)")
        checkpoint = consolidate(args.ckpt_dir, args.out_file)
        size = sum(t.numel() for t in checkpoint["model"].values())
        print(f"{args.out_file}: {len(checkpoint['model'])} tensors, {size:,} numbers, "
              f"step {checkpoint.get('step')}")


if __name__ == "__main__":
    main()
