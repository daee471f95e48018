"""
plan.py — will a training run fit on a GPU, how long will it take, what will it cost?

    python plan.py config/1b.py --gpu H100                 # memory per GPU, strategies, time and cost
    python plan.py config/1b.py --gpu A100-80 --gpus 8 --fsdp --checkpointing
    python plan.py --fit --gpu H100                        # which Llama-shaped sizes fit on one GPU
    python plan.py --validate                              # the formulas against measured peaks (CPU)

Unlike model.py, which builds the GPT, this file only counts: bytes of weights, gradients, AdamW states,
autocast copies and activations, written out as formulas a learner can redo by hand, from the same
GPTConfig. The ZeRO table (what DDP, ZeRO-1 and FSDP keep per rank) lives here too, as predicted_bytes();
bench_parallel.py measures it on several processes, and `--validate` measures the single-process formulas.
"""
import argparse
import json
import math
import os
import subprocess
import sys

import torch

from common import PEAK_FLOPS, UserError, cli, dataset_path, release_freed_memory, reset_peak_rss, rss_bytes
from model import GPT, GPTConfig
from train import get_config

# -----------------------------------------------------------------------------
# the planner: will a training run fit on a GPU, how long will it take, what will it cost
#
# Bytes per parameter, per rank (N ranks), as train.py trains: fp32 weights that AdamW updates, matmuls
# run in bf16 under autocast. 16 B/param of model states is the ZeRO paper's mixed-precision figure (it
# splits it 2 + 2 + 12 with bf16 weights and an fp32 master copy; the totals agree); parallel.py's table
# and predicted_bytes() are these rows with a = 4 (pure fp32).
#
#                     weights  grads  AdamW m, v  bf16 weight copies (autocast, kept from forward to backward)
#   DDP (--zero 0)    4        4      8           2 per matmul weight (a = 2; none in fp32)
#   ZeRO-1            4        4      8/N         2
#   FSDP (ZeRO-3)     4/N      4/N    8/N         -  (all-gathered in bf16 instead: + (3a + 4) x the largest
#                                                     unit: its weights and grads, the fp32 copy of the grads
#                                                     that is reduce-scattered, the next unit's prefetched weights)
#   FSDP + offload    in CPU RAM: 16/N; the GPU holds only the gathered unit
#
# Activations saved for backward, bytes per token (a = dtype_bytes, of the compute dtype: 2 in bf16, 4 in fp32;
# the residual stream, the norms and the softmax statistics stay fp32; D = head dim, F = SwiGLU width):
#   per layer  2 x (4C + 4)          the two RMSNorms' inputs and 1/rms (the torch RMSNorm also keeps
#                                    x/rms: + 2 x 4C; the Triton kernel recomputes it)
#              a x 2C                the normalised inputs of c_attn and c_fc
#              a x (2C + 2 Hkv D)    attention's q, k, v and output, + 4H for its log-sum-exp (on a CPU
#                                    always 4 x: attention() computes in fp32 there)
#              a x C                 c_proj's input (heads merged)
#              a x 4F                c_fc's output (gate | up), silu(gate), their product
#   head       4C + 4 (+4C) + a C    the final norm, lm_head's input
#              4V + a V              log-softmax (fp32) and the logits themselves (the caller holds them)
# At the start of backward the loss adds 8V per token (fp32 gradients of the log-probs and the logits).
# Peak = weights + optimizer + the largest of these moments (in backward, activations are freed as
# gradients appear): end of forward (copies + activations + grads alive), start of backward (+ the loss
# gradients), end of backward (all grads). Grads alive early on: all of them under gradient accumulation
# or DDP (its buckets), else only the head's.
# Checkpointing keeps only each layer's input (4C) and the head, and the blocks' bf16 copies die with
# autocast's cache after the forward. Later in backward, with the head freed and (nearly) all grads
# allocated, one layer is recomputed under autocast and back-propagated: + its copies, its full set and
# its largest gradient (a x 2F, c_fc's output's): a fourth moment.
# Checked on a CPU (fp32): `python plan.py --validate` (docs/week3-training.md).

GiB = 2**30
GPUS = {"A100-40": (40, "A100"), "A100-80": (80, "A100"), "H100": (80, "H100"), "H200": (140, "H200")}  # GiB, peak
CUDA_RESERVE = 1 * GiB   # CUDA context and cuBLAS workspaces, not visible to the formulas above
FRAGMENTATION = 0.05     # caching-allocator slack: plan for 95% of what is left


def counts(config):
    """(parameters, matmul parameters, parameters of the largest FSDP unit) from a model on the meta
    device: exact counts, no memory."""
    with torch.device("meta"):
        model = GPT(config)
    n = model.num_params()
    block = sum(p.numel() for p in model.transformer.h[0].parameters())
    return n, model.num_params(non_embedding=True) + config.vocab_size * config.n_embd, max(block, n - config.n_layer * block)


def activation_bytes_per_token(c, dtype_bytes, fused_norm, cpu=False):
    """(one layer, the head): bytes per token saved for backward (the table above)."""
    D, F = c.n_embd // c.n_head, c.hidden
    norm = 4 * c.n_embd + 4 + (0 if fused_norm else 4 * c.n_embd)
    attn = 4 if cpu else dtype_bytes  # on a CPU, attention() runs in fp32 whatever the autocast dtype
    layer = (2 * norm + dtype_bytes * (2 * c.n_embd + c.n_embd + 4 * F)
             + attn * (2 * c.n_embd + 2 * c.n_kv_head * D) + 4 * c.n_head)
    head = norm + dtype_bytes * c.n_embd + (4 + dtype_bytes) * c.vocab_size
    return layer, head


def memory_plan(c, batch_size, dtype_bytes=2, world_size=1, zero=0, fsdp=False, offload=False, checkpointing=False,
                grad_accum=1, fused_norm=True, cpu=False):
    """Peak bytes per rank for training GPTConfig c on micro-batches of batch_size x c.block_size tokens;
    a dict of the parts (see the table above)."""
    n, matmul, unit = counts(c)
    N = world_size
    shard = N if fsdp else 1
    plan = dict(weights=4 * n / shard, grads=4 * n / shard, optimizer=8 * n / (N if (zero or fsdp) else 1),
                copies=2 * matmul if dtype_bytes == 2 and not fsdp else 0,
                unit=(3 * dtype_bytes + 4) * unit if fsdp else 0)
    if offload:  # FSDP's CPUOffloadPolicy: shards, grads and optimizer states live in CPU RAM
        plan["cpu"] = plan["weights"] + plan["grads"] + plan["optimizer"]
        plan["weights"] = plan["grads"] = plan["optimizer"] = 0
    tokens = batch_size * c.block_size
    layer, head = activation_bytes_per_token(c, dtype_bytes, fused_norm, cpu)
    kept = 4 * c.n_embd if checkpointing else layer  # per layer: its input only, or everything
    plan["activations"] = tokens * (c.n_layer * kept + head)
    plan["loss_grads"] = tokens * 8 * c.vocab_size
    grads_alive = plan["grads"] if grad_accum > 1 or N > 1 else 4 * c.vocab_size * c.n_embd / shard
    # checkpointed blocks save nothing, so their weights' copies die with autocast's cache after the forward
    copies_kept = plan["copies"] * (c.vocab_size * c.n_embd / matmul if checkpointing else 1)
    moments = [plan["copies"] + plan["activations"] + grads_alive,                         # end of forward
               copies_kept + plan["activations"] + plan["loss_grads"] + grads_alive,       # start of backward
               plan["grads"]]                                                              # end of backward
    if checkpointing:  # later, the head is freed, a layer is recomputed, and its backward holds gradients
        # ... of which c_fc's output's (2F) is the largest
        plan["recompute"] = tokens * (layer + dtype_bytes * 2 * c.hidden)
        block_copies = plan["copies"] * (matmul - c.vocab_size * c.n_embd) / matmul / c.n_layer
        moments.append(copies_kept + block_copies + tokens * c.n_layer * kept + plan["recompute"] + plan["grads"])
    plan["peak"] = plan["weights"] + plan["optimizer"] + plan["unit"] + max(moments)
    return plan


def usable_bytes(gpu_gib):
    return (gpu_gib * GiB - CUDA_RESERVE) * (1 - FRAGMENTATION)


def largest_batch(c, usable, **options):
    """The largest micro-batch whose peak fits in `usable` bytes, or 0 (bisection: the peak grows with it)."""
    fits = lambda b: memory_plan(c, b, **options)["peak"] <= usable
    low, high = 0, 1
    while fits(high) and high < 2**20:
        low, high = high, 2 * high
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def read_config(path):
    """A training config file -> (GPTConfig, every config value), read by train.py's own loader: the same
    defaults, and an unknown key or a wrong type is the same error."""
    values = vars(get_config([path]))
    if values["vocab_size"] == 0:  # train.py then takes the dataset's
        meta = dataset_path(values["dataset"]) / "meta.json"
        if not meta.is_file():
            raise UserError(f"{path}: vocab_size = 0 means the dataset's, but {meta} does not exist: set vocab_size")
        values["vocab_size"] = json.loads(meta.read_text())["vocab_size"]
    try:
        return GPTConfig(**{key: values[key] for key in GPTConfig.__dataclass_fields__}), values
    except ValueError as error:
        raise UserError(f"{path}: {error}")


def describe(plan, c, batch_size):
    """The memory part of the report: one line per part of the peak."""
    parts = [("weights (fp32)", "weights", ""), ("gradients (fp32)", "grads", ""),
             ("AdamW m, v (fp32)", "optimizer", ""), ("bf16 weight copies", "copies", "autocast's, kept for backward"),
             ("FSDP gathered units", "unit", "(3a + 4) B x the largest block or root"),
             ("activations", "activations", f"{batch_size} x {c.block_size} tokens"),
             ("loss gradients", "loss_grads", "8 B x vocab per token, at the start of backward"),
             ("a recomputed layer", "recompute", "and its largest gradient, in backward"),
             ("in CPU RAM (offload)", "cpu", "not on the GPU"), ("peak", "peak", "")]
    return "\n".join(f"  {label:22s}{plan[key] / GiB:9.2f} GiB   {note}".rstrip()
                     for label, key, note in parts if plan.get(key) or key == "peak")


STRATEGIES = [  # (name, memory_plan options): the ways to trade memory for compute or communication
    ("DDP", dict()), ("DDP + checkpointing", dict(checkpointing=True)),
    ("ZeRO-1 + checkpointing", dict(zero=1, checkpointing=True)),
    ("FSDP + checkpointing", dict(fsdp=True, checkpointing=True)),
    ("FSDP + offload + checkpointing", dict(fsdp=True, offload=True, checkpointing=True))]


def report(path, gpu="H100", gpu_mem=0, gpus=1, zero=None, fsdp=False, offload=False, checkpointing=False,
           tokens=0, assumed_mfu=0.4, price=2.0):
    """Print the plan for a config file; the options add to the config's own zero/fsdp/cpu_offload/... keys."""
    c, values = read_config(path)
    n, matmul, unit = counts(c)
    flops = 6 * matmul + 12 * c.n_layer * c.n_embd * c.block_size  # GPT.flops_per_token, without a model
    print(f"{path}: {c.n_layer} layers, width {c.n_embd}, {c.n_head} heads ({c.n_kv_head} kv), SwiGLU "
          f"{c.hidden}, vocab {c.vocab_size}, block {c.block_size}, tied embeddings {c.tie_embeddings}")
    embedding = c.vocab_size * c.n_embd * (1 if c.tie_embeddings else 2)
    print(f"parameters       {n:,} ({n / 1e9:.3f} B); without the vocab x width matrices {n - embedding:,}")
    print(f"FLOPs per token  {flops:.4g} (training) = 6 x {matmul:,} parameters but the embedding lookup "
          f"+ 12 x {c.n_layer} x {c.n_embd} x {c.block_size} (attention)")

    zero = values["zero"] if zero is None else zero
    offload = offload or values["cpu_offload"]
    fsdp = fsdp or offload or values["fsdp"]
    checkpointing = checkpointing or c.activation_checkpointing
    batch, accum = values["batch_size"], values["gradient_accumulation_steps"]
    if values["tokens_per_step"]:  # as train.py: accumulate until a step sees tokens_per_step tokens
        accum, rest = divmod(values["tokens_per_step"], batch * c.block_size * gpus)
        if rest or not accum:
            raise UserError(f"{path}: tokens_per_step={values['tokens_per_step']} is not a multiple of "
                             f"batch_size x block_size x GPUs = {batch * c.block_size * gpus}")
    gpu_gib = gpu_mem or GPUS[gpu][0]
    usable = usable_bytes(gpu_gib)
    common = dict(dtype_bytes=4 if values["dtype"] == "float32" else 2, world_size=gpus, grad_accum=accum,
                  fused_norm=c.kernels != "torch")
    plan = memory_plan(c, batch, zero=zero, fsdp=fsdp, offload=offload, checkpointing=checkpointing, **common)
    strategy = ("FSDP + offload" if offload else "FSDP" if fsdp else "ZeRO-1" if zero else "DDP") + \
        (" + checkpointing" if checkpointing else "")
    print(f"\nmemory per GPU: {strategy}, {gpus} x {gpu} ({gpu_gib:g} GiB; {usable / GiB:.1f} usable after "
          f"1 GiB CUDA context and 5% slack), {values['dtype']}, micro-batch {batch}, accumulation {accum}")
    print(describe(plan, c, batch) + ("   FITS" if plan["peak"] <= usable else "   DOES NOT FIT"))
    layer, head = activation_bytes_per_token(c, common["dtype_bytes"], common["fused_norm"])
    print(f"  activations per sequence: {(c.n_layer * layer + head) * c.block_size / GiB:.3f} GiB; with "
          f"checkpointing {(c.n_layer * 4 * c.n_embd + head) * c.block_size / GiB:.3f} GiB")
    print(f"  per layer and sequence: {layer * c.block_size / 2**20:.1f} MiB; checkpointed "
          f"{4 * c.n_embd * c.block_size / 2**20:.2f} MiB (its input only); "
          f"the head {head * c.block_size / 2**20:.1f} MiB")
    zero_stages(n, gpus)
    strategies(c, batch, usable, common, fits=plan["peak"] <= usable)
    # checkpointing's recompute is one more forward: 8 instead of 6 FLOPs per parameter for the same tokens
    time_and_cost(n, flops, batch * c.block_size * accum * gpus, f"{batch} x {c.block_size} x {accum} x {gpus} GPU(s)",
                  gpus, gpu, tokens, assumed_mfu * (0.75 if checkpointing else 1.0), checkpointing, price)


def zero_stages(n, gpus):
    """Model states per GPU at each ZeRO stage: 16 bytes per parameter, sharded a little more each stage."""
    N = gpus
    print(f"\n  model states per GPU over {N} GPU(s), bytes per parameter (ZeRO, Rajbhandari et al. 2020):")
    print(f"  {'stage':32s}{'weights':>8s}{'grads':>8s}{'AdamW':>8s}{'total':>8s}{'GiB':>9s}")
    for name, shards in [("0: DDP", (1, 1, 1)), ("1: --zero=1 (optimizer)", (1, 1, N)),
                         ("2: + gradients (not in train.py)", (1, N, N)), ("3: --fsdp=True (+ weights)", (N, N, N))]:
        per_param = [bytes_ / shard for bytes_, shard in zip((4, 4, 8), shards)]
        print(f"  {name:32s}" + "".join(f"{b:8.3g}" for b in per_param) + f"{sum(per_param):8.3g}"
              f"{sum(per_param) * n / GiB:9.2f}")
    print("  (torch's stage 2 is FSDP's SHARD_GRAD_OP / FSDP2's reshard_after_forward=False; activations, "
          "bf16 copies and FSDP's gathered block come on top: the plan above)")


def strategies(c, batch, usable, common, fits):
    """The peak and the largest micro-batch under each strategy; the cheapest that fits if ours does not."""
    print(f"\n  {'strategy':32s}{'peak at micro-batch ' + str(batch):>26s}  largest micro-batch that fits")
    fitting = []
    for name, options in STRATEGIES:  # ordered by what they cost: recompute, then communication, then PCIe
        peak = memory_plan(c, batch, **common, **options)["peak"]
        largest = largest_batch(c, usable, **common, **options)
        print(f"  {name:32s}{peak / GiB:21.1f} GiB  {largest:>6d}")
        fitting += [(name, largest)] if largest else []
    if not fits:
        print("  -> " + (f"{fitting[0][0]} fits micro-batches up to {fitting[0][1]} (keep tokens per step through "
                         f"gradient accumulation)" if fitting else "nothing fits micro-batch 1: more GPUs with FSDP"))


def time_and_cost(n, flops, step_tokens, step_text, gpus, gpu, tokens, useful_mfu, checkpointing, price):
    """Steps, wall time, GPU-hours and cost to train on `tokens` (default 20 per parameter)."""
    budget = tokens or 20 * n
    per_gpu = useful_mfu * PEAK_FLOPS[GPUS[gpu][1]] / flops  # tokens/s per GPU
    seconds = budget / (per_gpu * gpus)
    gpu_hours = seconds * gpus / 3600
    print(f"\ntime to {budget:.4g} tokens ({'given' if tokens else '20 per parameter, Chinchilla'}) at MFU "
          f"{useful_mfu:.2f} (assumed{', x 3/4 for the recompute' if checkpointing else ''}):")
    print(f"  tokens per step {step_tokens:,} = {step_text} -> {math.ceil(budget / step_tokens):,} steps")
    print(f"  {per_gpu:,.0f} tokens/s per GPU = {useful_mfu:.2f} x {PEAK_FLOPS[GPUS[gpu][1]]:.3g} FLOP/s / {flops:.4g} FLOPs")
    print(f"  wall time {seconds / 3600:,.1f} h ({seconds / 86400:,.1f} days), {gpu_hours:,.0f} GPU-hours, "
          f"${gpu_hours * price:,.0f} at ${price:.2f} per GPU-hour")


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


# Llama-shaped models for `--fit` (block 2048, vocab 32000): (name, n_layer, n_embd, n_head, n_kv_head, ffn_hidden)
FAMILY = [("GPT-2 124M shape", 12, 768, 12, 12, 0), ("350M", 24, 1024, 16, 16, 0),
          ("TinyLlama 1.1B", 22, 2048, 32, 4, 5632), ("OpenLLaMA 3B", 26, 3200, 32, 32, 8640),
          ("Llama-2 7B", 32, 4096, 32, 32, 11008), ("Llama-2 13B", 40, 5120, 40, 40, 13824),
          ("CodeLlama 34B", 48, 8192, 64, 8, 22016)]


def fit_table(gpu, gpu_mem):
    """What trains on one GPU: peak memory at micro-batch 1 x 2048 tokens (bf16, AdamW) per strategy."""
    gpu_gib = gpu_mem or GPUS[gpu][0]
    usable = usable_bytes(gpu_gib)
    names = ["DDP", "DDP + checkpointing", "FSDP + offload + checkpointing"]
    print(f"one {gpu} ({gpu_gib:g} GiB, {usable / GiB:.1f} usable): peak GiB at micro-batch 1 x 2048 tokens, "
          f"bf16 autocast, AdamW; * = fits. Offload needs the 16 B/param column in CPU RAM instead.")
    print(f"| model | params | 16 B/param | " + " | ".join(names) + " |")
    print("|---|---:|---:|" + "---:|" * len(names))
    for name, L, C, H, Hkv, F in FAMILY:
        c = GPTConfig(block_size=2048, vocab_size=32000, n_layer=L, n_head=H, n_kv_head=Hkv, n_embd=C,
                      ffn_hidden=F, tie_embeddings=False)
        n = counts(c)[0]
        cells = []
        for label, options in STRATEGIES:
            if label in names:
                peak = memory_plan(c, 1, **options)["peak"]
                cells.append(f"{peak / GiB:.1f}{' *' if peak <= usable else ''}")
        print(f"| {name} | {n / 1e9:.2f} B | {16 * n / GiB:.0f} | " + " | ".join(cells) + " |")


# Checking the memory formulas where we can: fp32 training on this CPU, peak RSS of a fresh process
_SMALL = dict(n_layer=4, n_embd=256, n_head=4, n_kv_head=2, vocab_size=4096, block_size=256)
_DEEP = dict(n_layer=8, n_embd=128, n_head=2, n_kv_head=1, vocab_size=512, block_size=512)
_WIDE = dict(n_layer=6, n_embd=512, n_head=8, n_kv_head=8, vocab_size=8192, block_size=128, tie_embeddings=False)
VALIDATION = [  # (GPTConfig fields, micro-batch, gradient accumulation, dtype)
    (_SMALL, 8, 1, "float32"), (_SMALL, 8, 2, "float32"), ({**_SMALL, "activation_checkpointing": True}, 8, 1, "float32"),
    (dict(n_layer=2, n_embd=512, n_head=8, n_kv_head=8, vocab_size=8192, block_size=128, tie_embeddings=False),
     4, 1, "float32"),
    (_DEEP, 4, 2, "float32"), ({**_DEEP, "activation_checkpointing": True}, 4, 1, "float32"),
    (_SMALL, 8, 1, "bfloat16"), ({**_SMALL, "activation_checkpointing": True}, 8, 2, "bfloat16"),
    ({**_DEEP, "activation_checkpointing": True}, 4, 1, "bfloat16"),
    (_WIDE, 1, 2, "bfloat16"), ({**_WIDE, "activation_checkpointing": True}, 1, 1, "bfloat16")]


def measure_peak(fields, batch_size, grad_accum, dtype="float32", steps=2):
    """Peak RSS above the start of `steps` AdamW steps (forward under autocast unless float32, as in
    train.py; torch kernels): call it in a fresh process.

    glibc would serve tensors under 32 MiB from heaps it rarely returns to the OS, so RSS would count freed
    tensors; above 64 KiB (M_MMAP_THRESHOLD) each allocation gets its own mmap and RSS follows live tensors.
    A first round on a one-layer model pages in torch's lazily loaded code, which is not the model's."""
    release_freed_memory()
    torch.manual_seed(0)
    for warmup in (True, False):
        config = GPTConfig(**{**fields, "kernels": "torch"} | (dict(n_layer=1) if warmup else {}))
        start = rss_bytes("VmRSS")
        reset_peak_rss()
        model = GPT(config)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        for _ in range(steps):
            for _ in range(grad_accum):
                tokens = torch.randint(0, config.vocab_size, (batch_size, config.block_size + 1))
                with torch.autocast("cpu", torch.bfloat16, enabled=dtype != "float32"):
                    logits, loss = model(tokens[:, :-1], tokens[:, 1:])
                (loss / grad_accum).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        peak = rss_bytes("VmHWM") - start
        del model, optimizer, logits, loss
    return peak


def validate(cases=VALIDATION):
    """Predicted vs measured peak for small models on this CPU, all measured in one fresh process."""
    code = "import json, sys, plan; print(json.dumps([plan.measure_peak(*case) for case in json.loads(sys.argv[1])]))"
    done = subprocess.run([sys.executable, "-c", code, json.dumps(cases)], capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.abspath(__file__)), env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode:
        raise SystemExit(f"plan.py --validate: the measuring process failed:\n{done.stderr[-2000:]}")
    print("| model | micro-batch x T | accumulation | dtype | checkpointing | predicted MiB | measured MiB | ratio |")
    print("|---|---|---:|---|---|---:|---:|---:|")
    ratios = []
    for (fields, batch, accum, dtype), measured in zip(cases, json.loads(done.stdout.splitlines()[-1])):
        c = GPTConfig(**fields, kernels="torch")
        predicted = memory_plan(c, batch, dtype_bytes=4 if dtype == "float32" else 2, grad_accum=accum, fused_norm=False,
                                checkpointing=c.activation_checkpointing, cpu=True)["peak"]
        ratios.append(measured / predicted)
        print(f"| L{c.n_layer} C{c.n_embd} H{c.n_head}/{c.n_kv_head} V{c.vocab_size} | {batch} x {c.block_size} | "
              f"{accum} | {dtype} | {c.activation_checkpointing} | {predicted / 2**20:.0f} | {measured / 2**20:.0f} | "
              f"{ratios[-1]:.3f} |")
    return ratios


def main(argv=None):
    parser = argparse.ArgumentParser(description="Memory, time and cost of training a config (the planner)")
    parser.add_argument("config", nargs="?", help="a training config file, e.g. config/1b.py")
    parser.add_argument("--gpu", choices=GPUS, default="H100", help="GPU model (memory and peak FLOP/s)")
    parser.add_argument("--gpu-mem", type=float, default=0, help="override the GPU's memory, GiB")
    parser.add_argument("--gpus", type=int, default=1, help="data-parallel ranks")
    parser.add_argument("--zero", type=int, choices=[0, 1], default=None, help="1 = ZeRO-1: shard AdamW's states")
    parser.add_argument("--fsdp", action="store_true", help="FSDP (ZeRO-3): shard weights, grads and states")
    parser.add_argument("--offload", action="store_true", help="FSDP with weights, grads, states in CPU RAM")
    parser.add_argument("--checkpointing", action="store_true", help="activation checkpointing")
    parser.add_argument("--tokens", type=float, default=0, help="token budget (default 20 x parameters)")
    parser.add_argument("--mfu", type=float, default=0.4, help="assumed model FLOPs utilisation")
    parser.add_argument("--price", type=float, default=2.0, help="USD per GPU-hour (assumed)")
    parser.add_argument("--fit", action="store_true", help="table: which model sizes fit on one --gpu")
    parser.add_argument("--validate", action="store_true", help="predicted vs measured peak memory on this CPU")
    args = parser.parse_args(argv)
    if args.validate:
        validate()
    elif args.fit:
        fit_table(args.gpu, args.gpu_mem)
    elif args.config:
        report(args.config, args.gpu, args.gpu_mem, args.gpus, args.zero, args.fsdp, args.offload,
               args.checkpointing, int(args.tokens), args.mfu, args.price)
    else:
        parser.error("name a config file, or --fit")


if __name__ == "__main__":
    sys.exit(cli(main))
