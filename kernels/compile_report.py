"""kernels/compile_report.py: what the GPU compiler makes of every Triton kernel in kernels/, without a GPU.

    python kernels/compile_report.py             # for an H100 (sm_90)
    python kernels/compile_report.py --arch 80   # for an A100 (sm_80)

Unlike the benchmarks in kernels/attention.py and kernels/rmsnorm.py, which need a GPU, this runs on any
machine: it compiles each kernel ahead of time with the ptxas that ships inside Triton, exactly as a launch
on that GPU would (the tiles that kernels/attention.py picks for that arch), and prints one row per kernel:

    regs          registers per thread; 255 is the ceiling
    spill_B       bytes spilled to local memory (slow, off-chip): should be 0
    smem_KiB      shared memory per program (a GPU of compute capability 8.x has 99-163 KiB, 9.0 has 227)
    async_copies  cp.async instructions the software pipeline issued, so that the next tile's loads overlap
                  this tile's math: must be > 0 in the attention kernels with a key or query loop (fwd, dkdv,
                  dq). attn_delta and rms_fwd have no loop; rms_bwd's row loop is left unpipelined by Triton
                  (it pipelines loads that feed a tl.dot): a memory-bound kernel hides latency with many programs.

Inputs are assumed bf16 (RMSNorm's weight fp32, as the model keeps its parameters), 16-byte aligned, and
sequence lengths and widths multiples of 16, as a real launch specialises them.
tests/test_kernels.py runs it for sm_90 and sm_80 and asserts no spills and pipelined attention loads.
"""
import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as `python kernels/compile_report.py`: make `kernels` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

import kernels.attention as attention
import kernels.rmsnorm as rmsnorm

CUOBJDUMP = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
# pointer arguments by name -> element type; every other non-constexpr argument is an i32 but the scales/eps
ATTENTION_POINTERS = {"Q": "*bf16", "K": "*bf16", "V": "*bf16", "O": "*bf16", "DO": "*bf16", "DQ": "*bf16",
                      "DK": "*bf16", "DV": "*bf16", "LSE": "*fp32", "DELTA": "*fp32"}
RMSNORM_POINTERS = {"X": "*bf16", "Y": "*bf16", "DY": "*bf16", "DX": "*bf16", "W": "*fp32", "RSTD": "*fp32",
                    "DW_PARTIAL": "*fp32"}
FLOAT_SCALARS = {"qk_scale", "sm_scale", "eps"}
RMSNORM_WIDTHS = (64, 128, 768, 2048, 4096, 8192)  # head dims (qk_norm) and n_embd of config/124m, 1b, 7b


def compile_kernel(fn, arch, pointers, constexprs, num_warps, num_stages):
    """Compile one @triton.jit function for sm_`arch`; {"regs", "spill", "smem", "copies"} of the result."""
    signature = {name: "constexpr" if name in constexprs else
                 pointers.get(name, "fp32" if name in FLOAT_SCALARS else "i32") for name in fn.arg_names}
    # what a launch with aligned tensors and T, N multiples of 16 tells the compiler (wider vector loads)
    aligned = {(i,): [["tt.divisibility", 16]] for i, name in enumerate(fn.arg_names)
               if name in pointers or name in ("T", "N")}
    options = {"num_warps": num_warps} | ({"num_stages": num_stages} if num_stages else {})
    compiled = triton.compile(ASTSource(fn, signature, constexprs, aligned), target=GPUTarget("cuda", arch, 32),
                              options=options)
    with tempfile.NamedTemporaryFile(suffix=".cubin") as cubin:
        cubin.write(compiled.asm["cubin"])
        cubin.flush()
        usage = subprocess.run([str(CUOBJDUMP), "-res-usage", cubin.name], capture_output=True, text=True,
                               check=True).stdout
    return {"regs": int(re.search(r"REG:(\d+)", usage)[1]), "spill": int(re.search(r"STACK:(\d+)", usage)[1]),
            "smem": compiled.metadata.shared, "copies": len(re.findall(r"cp\.async\.c[ag]", compiled.asm["ptx"]))}


def attention_rows(arch):
    """One row per attention kernel and head dim, with the tiles the launcher picks on sm_`arch`."""
    # kernel name in CONFIGS -> (function, the constexpr that gets BIG, the one that gets SMALL)
    kernels = {"fwd": (attention._attn_fwd, "BLOCK_M", "BLOCK_N"),
               "dkdv": (attention._attn_bwd_dkdv, "BLOCK_N", "BLOCK_M"),
               "dq": (attention._attn_bwd_dq, "BLOCK_M", "BLOCK_N")}
    rows = []
    for D, per_kernel in attention.configs_for(arch // 10).items():
        delta_tiles = {"BLOCK_M": attention.DELTA_BLOCK_M, "HEAD_DIM": D}
        rows.append(("attn_delta", f"D={D},M={attention.DELTA_BLOCK_M}",
                     compile_kernel(attention._attn_bwd_delta, arch, ATTENTION_POINTERS, delta_tiles, 4, None)))
        for name, (fn, big_name, small_name) in kernels.items():
            big, small, warps, stages = per_kernel[name]
            tiles = {"CAUSAL": True, big_name: big, small_name: small, "HEAD_DIM": D}
            rows.append((f"attn_{name}", f"D={D},{big}x{small},w{warps},s{stages}",
                         compile_kernel(fn, arch, ATTENTION_POINTERS, tiles, warps, stages)))
    return rows


def rmsnorm_rows(arch):
    """One row per RMSNorm kernel and row width, with the block and warps the launcher picks for that width."""
    rows = []
    for N in RMSNORM_WIDTHS:
        block, warps = rmsnorm._block_n(N)
        for name, fn in (("rms_fwd", rmsnorm._rms_norm_fwd), ("rms_bwd", rmsnorm._rms_norm_bwd)):
            rows.append((name, f"N={N},w{warps}",
                         compile_kernel(fn, arch, RMSNORM_POINTERS, {"BLOCK_N": block}, warps, None)))
    return rows


def report(arch):
    """Print the table for sm_`arch`: kernel, config, regs, spill bytes, shared memory, async copies."""
    print(f"sm_{arch}, Triton {triton.__version__}'s ptxas; attention tiles for compute capability {arch // 10}.x")
    print(f"{'kernel':<10} {'config':<22} {'regs':>4} {'spill_B':>7} {'smem_KiB':>8} {'async_copies':>12}")
    for kernel, config, usage in attention_rows(arch) + rmsnorm_rows(arch):
        print(f"{kernel:<10} {config:<22} {usage['regs']:>4} {usage['spill']:>7} {usage['smem'] / 1024:>8.1f} "
              f"{usage['copies']:>12}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90, choices=(80, 90), help="80 = A100, 90 = H100")
    report(parser.parse_args().arch)
