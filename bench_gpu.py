"""
bench_gpu.py: everything worth measuring on a GPU, in one command of a few minutes, for the day one is lent.

    python bench_gpu.py                    # all sections -> prints tables, writes report/bench_gpu.json
    python bench_gpu.py --quick            # fewer shapes and steps (about a minute)
    python bench_gpu.py --only attention   # one section: attention | rmsnorm | train | memory | parallel

Unlike bench_train.py (the CPU: our train.py vs nanoGPT vs the matmul ceiling), this measures the parts
a CPU cannot: the Triton kernels' speed against torch's own fused versions, the model's MFU with and
without them, and whether the planner's memory prediction holds on a real allocator.

  attention  kernels/attention.py vs F.scaled_dot_product_attention held to its FlashAttention backend,
             bf16, causal, head dims 64 and 128, T = 1k..8k at a fixed token count; forward and
             forward+backward TFLOP/s, and the largest difference of o, dq, dk, dv from SDPA's. FLOPs as
             FlashAttention-2 counts them: 4 * B * H * T^2 * D / 2 forward (the causal half), backward
             2.5x forward.
  rmsnorm    kernels/rmsnorm.py vs the eager torch expression and F.rms_norm, GB/s = bytes that must move
             (read x, write y; backward: read x and dy, write dx) / time.
  train      config/124m.py's model, bf16 autocast, fused AdamW: tokens/s and MFU with kernels="triton" and
             kernels="torch" (SDPA), on random tokens (the data path is not what is measured).
  memory     one training step at 124M (batch 8) and 1B (batch 2): the planner's predicted peak
             (plan.memory_plan) vs torch.cuda.max_memory_allocated; predicted 10 and 23 GiB, so both run on
             a 40 GB card; a case predicted above 70% of the GPU is skipped, one that runs out of memory is
             recorded as such.
  parallel   on more than one visible GPU: 124M under DDP and under FSDP (parallel.wrap_model, as train.py
             uses it), one process per GPU via torchrun: tokens/s and peak memory per rank.

Not yet run on a GPU. By its count of steps and calls a few minutes on one H100, most of it starting
torch, compiling the Triton kernels and (several GPUs) starting NCCL; each section is written to the JSON
as soon as it finishes, and a failing section is recorded and the next one runs.
On a machine without CUDA it stops at once with a one-line message (exit code 2): nothing here can be
measured on a CPU. The CPU-side check of the kernels is `python kernels/compile_report.py [--arch 80]`.
"""
import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from common import device_peak_flops, write_json

# ---------------------------------------------------------------------------------------------------------
# timing: CUDA events around `repeats` calls, after warmup (the first calls compile and autotune)


def cuda_ms(fn, warmup=3, repeats=10):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / repeats


# ---------------------------------------------------------------------------------------------------------
# 1. attention


def attention_flops(B, H, T, D, backward):
    forward = 4 * B * H * T * T * D / 2  # QK^T and PV, 2 FLOPs per multiply-add, causal half
    return forward * (3.5 if backward else 1.0)  # + backward = 2.5 x forward (FlashAttention-2's count)


def sdpa_flash(q, k, v):
    """torch's SDPA held to its FlashAttention-2 backend: left to choose, it may take cuDNN's or the
    memory-efficient kernel instead, and the comparison would not be the one it claims to be."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def bench_attention(quick):
    from kernels.attention import flash_attention
    rows = []
    lengths = [1024, 4096] if quick else [1024, 2048, 4096, 8192]
    for D in (64, 128):
        for T in lengths:
            H, B = 2048 // D, max(1, 16384 // T)  # 16k tokens of a 2048-wide model per call
            q, k, v = (torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16, requires_grad=True)
                       for _ in range(3))
            do = torch.randn_like(q)  # (B, H, T, D)
            row = dict(head_dim=D, T=T, B=B, H=H)
            outputs = {}
            for name, fn in (("triton", flash_attention), ("sdpa", sdpa_flash)):
                o = fn(q, k, v)
                outputs[name] = (o, *torch.autograd.grad(o, (q, k, v), do))  # o, dq, dk, dv
                fwd = cuda_ms(lambda: fn(q, k, v))
                both = cuda_ms(lambda: torch.autograd.grad(fn(q, k, v), (q, k, v), do))
                row[f"{name}_fwd_tflops"] = attention_flops(B, H, T, D, False) / fwd / 1e9
                row[f"{name}_fwd_bwd_tflops"] = attention_flops(B, H, T, D, True) / both / 1e9
            # the bf16 kernels were never run on a GPU before: a fast kernel that is wrong must show here
            for tensor, ours, sdpa in zip(("o", "dq", "dk", "dv"), outputs["triton"], outputs["sdpa"]):
                row[f"max_abs_diff_{tensor}"] = (ours.float() - sdpa.float()).abs().max().item()
            row["fwd_bwd_vs_sdpa"] = row["triton_fwd_bwd_tflops"] / row["sdpa_fwd_bwd_tflops"]
            rows.append(row)
            print(f"  D={D:3d} T={T:5d}  fwd {row['triton_fwd_tflops']:6.1f} vs {row['sdpa_fwd_tflops']:6.1f}  "
                  f"fwd+bwd {row['triton_fwd_bwd_tflops']:6.1f} vs {row['sdpa_fwd_bwd_tflops']:6.1f} TFLOP/s "
                  f"({row['fwd_bwd_vs_sdpa']:.2f}x)  max|diff| o {row['max_abs_diff_o']:.1e} "
                  f"dq {row['max_abs_diff_dq']:.1e}", flush=True)
    return rows


# ---------------------------------------------------------------------------------------------------------
# 2. RMSNorm


def bench_rmsnorm(quick):
    """GB/s of kernels/rmsnorm.py vs the eager torch expression (one kernel per op) and torch's own
    F.rms_norm, at the widths of config/124m.py, 1b.py and 7b.py."""
    from kernels.rmsnorm import rms_norm, rms_norm_reference
    rows = []
    for N in ([2048] if quick else [768, 2048, 4096]):
        M = 16384
        x = torch.randn(M, N, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        w = torch.ones(N, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        dy = torch.randn_like(x)  # (M, N)
        row = dict(M=M, N=N, max_abs_diff_y=(rms_norm(x, w) - rms_norm_reference(x, w)).abs().max().item())
        for name, fn in (("triton", rms_norm), ("eager", rms_norm_reference),
                         ("F_rms_norm", lambda x, w: F.rms_norm(x, (N,), w, 1e-6))):
            fwd = cuda_ms(lambda: fn(x, w))
            both = cuda_ms(lambda: torch.autograd.grad(fn(x, w), (x, w), dy))
            row[f"{name}_fwd_gbs"] = 2 * x.numel() * x.element_size() / fwd / 1e6        # read x, write y
            row[f"{name}_fwd_bwd_gbs"] = 5 * x.numel() * x.element_size() / both / 1e6   # + read x, dy, write dx
        rows.append(row)
        print(f"  {M} x {N}: fwd {row['triton_fwd_gbs']:6.0f} vs eager {row['eager_fwd_gbs']:6.0f}, F.rms_norm "
              f"{row['F_rms_norm_fwd_gbs']:6.0f} GB/s; fwd+bwd {row['triton_fwd_bwd_gbs']:6.0f} vs "
              f"{row['eager_fwd_bwd_gbs']:6.0f}, {row['F_rms_norm_fwd_bwd_gbs']:6.0f} GB/s", flush=True)
    return rows


# ---------------------------------------------------------------------------------------------------------
# 3. training throughput and MFU at 124M; 4. the planner's memory vs the allocator's


def model_config(path, **changes):
    """(GPTConfig, every config value) of a config file, with some GPTConfig fields changed (validated)."""
    import dataclasses
    from plan import read_config
    config, values = read_config(path)
    return dataclasses.replace(config, **changes), values


def train_steps(config, batch_size, steps, wrap=lambda model: model):
    """`steps` timed AdamW steps (fused, as train.py on a GPU) on random tokens under bf16 autocast, after
    one untimed step that allocates the gradients and Adam's states; returns (seconds per step, peak bytes
    of that first step above what was allocated before the model). wrap: DDP or FSDP around the model."""
    from model import GPT
    torch.manual_seed(0)
    before = torch.cuda.memory_allocated()
    with torch.device("cuda"):  # built on the GPU: no CPU copy of 1B weights, no host-to-device transfer
        model = GPT(config)
    model = wrap(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    x = torch.randint(0, config.vocab_size, (batch_size, config.block_size + 1), device="cuda")
    torch.cuda.reset_peak_memory_stats()  # FSDP: after sharding, so the full copy it sharded from is not counted

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            _, loss = model(x[:, :-1], x[:, 1:])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # the first step allocates the optimizer states and compiles the Triton kernels
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - before
    seconds = cuda_ms(step, warmup=1, repeats=steps) / 1000 if steps else None
    del model, optimizer
    torch.cuda.empty_cache()
    return seconds, peak


def bench_train(quick):
    """124M at its config's micro-batch (16 x 1024 tokens): Triton attention and RMSNorm vs SDPA and eager."""
    from model import GPT
    rows, peak_flops = [], device_peak_flops("cuda")
    for kernels in ("triton", "torch"):
        config, values = model_config("config/124m.py", kernels=kernels)
        batch = values["batch_size"]
        seconds, _ = train_steps(config, batch, 5 if quick else 20)
        tokens_per_s = batch * config.block_size / seconds
        with torch.device("meta"):
            flops = GPT(config).flops_per_token()
        mfu = tokens_per_s * flops / peak_flops if peak_flops else None
        rows.append(dict(kernels=kernels, batch_size=batch, tokens_per_s=tokens_per_s, flops_per_token=flops,
                         mfu=mfu))
        print(f"  124M kernels={kernels:6s}: {tokens_per_s:9,.0f} tokens/s, MFU "
              f"{'-' if mfu is None else f'{mfu:.1%}'}", flush=True)
    return rows


MEMORY_CASES = [("config/124m.py", 8), ("config/1b.py", 2)]  # predicted 10.2 and 23.2 GiB
MEMORY_SHARE = 0.7  # a case runs only if predicted below this share of the GPU: room for the planner to be off


def bench_memory(quick):
    """One step at 124M and 1B: plan.memory_plan's peak vs torch.cuda.max_memory_allocated. A case whose
    prediction would crowd the GPU is skipped; one that runs out of memory is recorded as such (that the
    planner underestimates is itself the finding)."""
    from plan import memory_plan
    rows, total = [], torch.cuda.get_device_properties(0).total_memory
    for path, batch in MEMORY_CASES:
        config, values = model_config(path, kernels="triton")  # fused RMSNorm: the planner's default too
        predicted = memory_plan(config, batch, dtype_bytes=2, checkpointing=values["activation_checkpointing"])["peak"]
        row = dict(config=path, batch_size=batch, predicted_gib=predicted / 2**30)
        if predicted > MEMORY_SHARE * total:
            row["skipped"] = f"predicted {predicted / 2**30:.1f} GiB > {MEMORY_SHARE:.0%} of {total / 2**30:.0f} GiB"
        else:
            try:
                _, measured = train_steps(config, batch, 0)
                row.update(measured_gib=measured / 2**30, measured_vs_predicted=measured / predicted)
            except torch.OutOfMemoryError:
                row["out_of_memory"] = True
            torch.cuda.empty_cache()
        rows.append(row)
        outcome = row.get("skipped") or ("out of memory" if "out_of_memory" in row else f"measured "
                                         f"{row['measured_gib']:.2f} GiB ({row['measured_vs_predicted']:.2f}x)")
        print(f"  {path} batch {batch}: predicted {predicted / 2**30:.2f} GiB, {outcome}", flush=True)
    return rows


# ---------------------------------------------------------------------------------------------------------
# 5. several GPUs: DDP and FSDP, one process per GPU, each running parallel_rank() below under torchrun

PARALLEL_BATCH = 8  # 124M, 8 x 1024 tokens per rank and step
PARALLEL_TIMEOUT_S = 180  # per mode: starting N processes and NCCL takes ~30 s, the steps a few seconds


def parallel_rank(mode, steps):
    """One rank of `torchrun --nproc_per_node=N bench_gpu.py --parallel-rank MODE`: the 124M model wrapped
    as parallel.py wraps it for train.py (DDP, or FSDP with bf16 weights); rank 0 prints every rank's
    seconds per step and peak bytes as one `RESULT [...]` JSON line."""
    import torch.distributed as dist
    from parallel import init_distributed, shutdown, wrap_model
    rank, _, world_size = init_distributed(timeout_s=PARALLEL_TIMEOUT_S)
    config, _ = model_config("config/124m.py", kernels="triton")
    wrap = lambda model: wrap_model(model, fsdp=mode == "fsdp", dtype="bfloat16")
    seconds, peak = train_steps(config, PARALLEL_BATCH, steps, wrap)
    ranks = [None] * world_size
    dist.all_gather_object(ranks, dict(rank=rank, step_s=seconds, peak=peak))
    if rank == 0:
        print("RESULT " + json.dumps(ranks), flush=True)
    shutdown()


def bench_parallel(quick):
    gpus = torch.cuda.device_count()
    if gpus < 2:
        print("  one GPU visible: skipped")
        return []
    torch.cuda.empty_cache()  # rank 0 shares GPU 0 with this process: give back what earlier sections cached
    rows = []
    for mode in ("ddp", "fsdp"):
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}",
                   __file__, "--parallel-rank", mode, "--steps", "5" if quick else "10"]
        # a session of its own, so that a timeout kills torchrun and every rank it started: an orphaned
        # rank would keep holding its GPU through the next mode
        launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    start_new_session=True)
        try:
            stdout, stderr = launcher.communicate(timeout=PARALLEL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.communicate()
            rows.append(dict(mode=mode, gpus=gpus, error=f"timed out after {PARALLEL_TIMEOUT_S} s"))
            print(f"  {mode}: {rows[-1]['error']}")
            continue
        lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
        if launcher.returncode or not lines:
            rows.append(dict(mode=mode, gpus=gpus, error=stderr.strip()[-2000:]))
            print(f"  {mode}: failed ({stderr.strip().splitlines()[-1:]})")
            continue
        ranks = json.loads(lines[0].removeprefix("RESULT "))
        step_s = max(r["step_s"] for r in ranks)  # the slowest rank sets the pace
        rows.append(dict(mode=mode, gpus=gpus, batch_per_rank=PARALLEL_BATCH, step_s=step_s,
                         tokens_per_s=gpus * PARALLEL_BATCH * 1024 / step_s,
                         peak_gib_per_rank=max(r["peak"] for r in ranks) / 2**30))
        print(f"  {mode} x {gpus}: {rows[-1]['tokens_per_s']:,.0f} tokens/s, "
              f"{rows[-1]['peak_gib_per_rank']:.1f} GiB per rank", flush=True)
    return rows


# ---------------------------------------------------------------------------------------------------------
# command line

SECTIONS = {"attention": bench_attention, "rmsnorm": bench_rmsnorm, "train": bench_train,
            "memory": bench_memory, "parallel": bench_parallel}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="fewer shapes and steps")
    parser.add_argument("--only", choices=list(SECTIONS), action="append", help="run only these sections")
    parser.add_argument("--out", default="report/bench_gpu.json")
    parser.add_argument("--parallel-rank", choices=["ddp", "fsdp"], help=argparse.SUPPRESS)  # torchrun's ranks
    parser.add_argument("--steps", type=int, default=10, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("error: bench_gpu.py needs a CUDA GPU and none is visible (on a CPU: bench_train.py, and "
              "`python kernels/compile_report.py` for the kernels)", file=sys.stderr)
        return 2
    if torch.cuda.get_device_capability() < (8, 0):  # bf16 and the Triton kernels' tiles start at the A100
        print(f"error: bench_gpu.py needs an A100-class GPU or newer (compute capability 8.0+, for bf16); "
              f"{torch.cuda.get_device_name()} is {'.'.join(map(str, torch.cuda.get_device_capability()))}",
              file=sys.stderr)
        return 2
    if args.parallel_rank:
        parallel_rank(args.parallel_rank, args.steps)
        return 0
    result = dict(date=time.strftime("%Y-%m-%d"), gpu=torch.cuda.get_device_name(), gpus=torch.cuda.device_count(),
                  torch=torch.__version__, host=platform.node(), peak_flops=device_peak_flops("cuda"))
    print(f"{result['gpu']} x {result['gpus']}, torch {result['torch']}")
    for name in args.only or list(SECTIONS):
        print(f"{name}:", flush=True)
        started = time.time()
        try:
            result[name] = SECTIONS[name](args.quick)
        except Exception as error:  # one broken section must not lose the others' figures
            result[name] = {"error": f"{type(error).__name__}: {error}"}
            print(f"  failed: {result[name]['error']}")
        print(f"  ({time.time() - started:.0f} s)")
        write_json(args.out, result)  # after every section: a timeout keeps what was measured
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
