"""
bench_gpu.py: everything worth measuring on a GPU, in one command of a few minutes, for the day one is lent.

    python bench_gpu.py                    # all sections -> prints tables, writes report/bench_gpu.json
    python bench_gpu.py --quick            # fewer shapes and steps (about a minute)
    python bench_gpu.py --only attention   # one section: attention | rmsnorm | train | memory | parallel

Unlike bench_train.py (the CPU: our train.py vs nanoGPT vs the matmul ceiling), this measures the parts
a CPU cannot: the Triton kernels' speed against torch's own fused versions, the model's MFU with and
without them, and whether the planner's memory prediction holds on a real allocator.

  attention  kernels/attention.py vs F.scaled_dot_product_attention (FlashAttention backend), bf16,
             causal, head dims 64 and 128, T = 1k..8k at a fixed token count; forward and forward+backward
             TFLOP/s. FLOPs as FlashAttention-2 counts them: 4 * B * H * T^2 * D / 2 forward (the causal
             half), backward 2.5x forward.
  rmsnorm    kernels/rmsnorm.py vs the torch expression, GB/s = bytes that must move (read x, write y;
             backward: read x and dy, write dx) / time.
  train      config/124m.py's model, bf16 autocast, AdamW: tokens/s and MFU with kernels="triton" and
             kernels="torch" (SDPA), on random tokens (the data path is not what is measured).
  memory     one training step at 124M and 1B: the planner's predicted peak (plan.memory_plan) vs
             torch.cuda.max_memory_allocated.
  parallel   on more than one visible GPU: DDP and FSDP tokens/s and memory per rank (parallel.py's bench).

On a machine without CUDA it stops at once with a one-line message (exit code 2): nothing here can be
measured on a CPU. The CPU-side check of the kernels is `python kernels/compile_report.py [--arch 80]`.
"""
import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

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


def bench_attention(quick):
    from kernels.attention import flash_attention
    sdpa = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)
    rows = []
    lengths = [1024, 4096] if quick else [1024, 2048, 4096, 8192]
    for D in (64, 128):
        for T in lengths:
            H, B = 2048 // D, max(1, 16384 // T)  # 16k tokens of a 2048-wide model per call
            q, k, v = (torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16, requires_grad=True)
                       for _ in range(3))
            do = torch.randn_like(q)
            row = dict(head_dim=D, T=T, B=B, H=H)
            for name, fn in (("triton", flash_attention), ("sdpa", sdpa)):
                fwd = cuda_ms(lambda: fn(q, k, v))
                both = cuda_ms(lambda: torch.autograd.grad(fn(q, k, v), (q, k, v), do))
                row[f"{name}_fwd_tflops"] = attention_flops(B, H, T, D, False) / fwd / 1e9
                row[f"{name}_fwd_bwd_tflops"] = attention_flops(B, H, T, D, True) / both / 1e9
            row["fwd_bwd_vs_sdpa"] = row["triton_fwd_bwd_tflops"] / row["sdpa_fwd_bwd_tflops"]
            rows.append(row)
            print(f"  D={D:3d} T={T:5d}  fwd {row['triton_fwd_tflops']:6.1f} vs {row['sdpa_fwd_tflops']:6.1f}  "
                  f"fwd+bwd {row['triton_fwd_bwd_tflops']:6.1f} vs {row['sdpa_fwd_bwd_tflops']:6.1f} TFLOP/s "
                  f"({row['fwd_bwd_vs_sdpa']:.2f}x)", flush=True)
    return rows


# ---------------------------------------------------------------------------------------------------------
# 2. RMSNorm


def bench_rmsnorm(quick):
    from kernels.rmsnorm import rms_norm, rms_norm_reference
    rows = []
    for N in ([2048] if quick else [768, 2048, 4096]):
        M = 16384
        x = torch.randn(M, N, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        w = torch.ones(N, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        dy = torch.randn_like(x)
        row = dict(M=M, N=N)
        for name, fn in (("triton", rms_norm), ("torch", rms_norm_reference)):
            fwd = cuda_ms(lambda: fn(x, w))
            both = cuda_ms(lambda: torch.autograd.grad(fn(x, w), (x, w), dy))
            row[f"{name}_fwd_gbs"] = 2 * x.numel() * x.element_size() / fwd / 1e6        # read x, write y
            row[f"{name}_fwd_bwd_gbs"] = 5 * x.numel() * x.element_size() / both / 1e6   # + read x, dy, write dx
        rows.append(row)
        print(f"  {M} x {N}: fwd {row['triton_fwd_gbs']:6.0f} vs {row['torch_fwd_gbs']:6.0f} GB/s, "
              f"fwd+bwd {row['triton_fwd_bwd_gbs']:6.0f} vs {row['torch_fwd_bwd_gbs']:6.0f} GB/s", flush=True)
    return rows


# ---------------------------------------------------------------------------------------------------------
# 3. training throughput and MFU at 124M; 4. the planner's memory vs the allocator's


def model_config(path, **changes):
    from plan import read_config
    config, values = read_config(path)
    for key, value in changes.items():
        setattr(config, key, value)
    return config, values


def train_steps(config, batch_size, steps):
    """`steps` AdamW steps on random tokens under bf16 autocast; (seconds per step, peak bytes)."""
    from model import GPT
    torch.manual_seed(0)
    model = GPT(config).cuda()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    x = torch.randint(0, config.vocab_size, (batch_size, config.block_size + 1), device="cuda")
    torch.cuda.reset_peak_memory_stats()

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            _, loss = model(x[:, :-1], x[:, 1:])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # the first step allocates the optimizer states and autotunes the kernels
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    seconds = cuda_ms(step, warmup=1, repeats=steps) / 1000
    del model, optimizer
    torch.cuda.empty_cache()
    return seconds, peak


def bench_train(quick):
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
        rows.append(dict(kernels=kernels, batch_size=batch, tokens_per_s=tokens_per_s, mfu=mfu))
        print(f"  124M kernels={kernels:6s}: {tokens_per_s:9,.0f} tokens/s, MFU "
              f"{'-' if mfu is None else f'{mfu:.1%}'}", flush=True)
    return rows


def bench_memory(quick):
    from plan import memory_plan
    rows = []
    for path, batch in (("config/124m.py", 8), ("config/1b.py", 2)):
        config, values = model_config(path)
        predicted = memory_plan(config, batch, dtype_bytes=2, checkpointing=values["activation_checkpointing"])["peak"]
        _, measured = train_steps(config, batch, 1)
        rows.append(dict(config=path, batch_size=batch, predicted_gib=predicted / 2**30,
                         measured_gib=measured / 2**30, measured_vs_predicted=measured / predicted))
        print(f"  {path} batch {batch}: predicted {predicted / 2**30:.2f} GiB, measured "
              f"{measured / 2**30:.2f} GiB ({measured / predicted:.2f}x)", flush=True)
    return rows


# ---------------------------------------------------------------------------------------------------------
# 5. several GPUs: parallel.py's own measurement under torchrun


def bench_parallel(quick):
    gpus = torch.cuda.device_count()
    if gpus < 2:
        print("  one GPU visible: skipped")
        return []
    rows = []
    for mode in ("ddp", "fsdp"):
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}",
                   "parallel.py", "bench", f"--mode={mode}", "--n_layer=12", "--n_embd=768",
                   "--vocab_size=50304", "--block_size=1024", "--batch_size=8", "--steps=5", "--exact_memory=0"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode or not lines:
            print(f"  {mode}: failed ({done.stderr.strip().splitlines()[-1:]})")
            continue
        ranks = json.loads(lines[0].removeprefix("RESULT "))
        step_s = sum(ranks[0]["step_s"]) / len(ranks[0]["step_s"])
        rows.append(dict(mode=mode, gpus=gpus, tokens_per_s=gpus * 8 * 1024 / step_s,
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
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("error: bench_gpu.py needs a CUDA GPU and none is visible (on a CPU: bench_train.py, and "
              "`python kernels/compile_report.py` for the kernels)", file=sys.stderr)
        return 2
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
