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
(GPTConfig.activation_checkpointing) trades them for one extra forward. plan.py predicts these bytes;
`python bench_parallel.py memory` measures them on this CPU. Checkpoints of sharded runs: checkpoint.py.

Launch (torchrun sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT for every process):
    torchrun --standalone --nproc_per_node=8 train.py config/1b.py --fsdp=True
"""
import datetime
import gc
import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, fully_shard
from torch.distributed.optim import ZeroRedundancyOptimizer
from torch.nn.parallel import DistributedDataParallel as DDP

from common import UserError

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
        raise UserError("cpu_offload=True needs fsdp=True: FSDP2 is what moves the shards to CPU")
    if not fsdp:
        if not dist.is_initialized():
            return model
        # gradient_as_bucket_view: grads live inside DDP's all-reduce buckets instead of beside them (-4Φ)
        device = next(model.parameters()).device
        device_ids = [device.index] if device.type == "cuda" else None
        return DDP(model, device_ids=device_ids, gradient_as_bucket_view=True)
    if dtype == "float16":
        raise UserError("fsdp=True: use dtype=bfloat16 (fp16 would need a sharded gradient scaler)")
    if cpu_offload and not torch.cuda.is_available():
        raise UserError("cpu_offload=True moves shards from GPU to CPU memory; this run has no GPU")
    if not dist.is_initialized():
        if cpu_offload:  # the one case where sharding over one rank pays: the "7B on one GPU" recipe
            raise UserError("cpu_offload=True: launch with `torchrun --nproc_per_node=1 train.py ...`")
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
        raise UserError(f"zero={zero}: 0 (DDP) or 1 (ZeRO-1); ZeRO-3 is fsdp=True")
    if zero and dist.is_initialized() and dist.get_world_size() > 1:
        return ZeroRedundancyOptimizer(param_groups, optimizer_class=optimizer_class, **hyperparameters)
    return optimizer_class(param_groups, **hyperparameters)


def local_optimizer(optimizer):
    """The torch optimizer holding this rank's states (ZeRO-1 keeps it in .optim)."""
    return optimizer.optim if isinstance(optimizer, ZeroRedundancyOptimizer) else optimizer


def rank_and_world_size():
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def barrier():
    """Wait for every rank (a no-op in one process)."""
    if dist.is_initialized():
        dist.barrier()
