"""kernels/rmsnorm.py: RMSNorm fused into one Triton kernel for the forward and one for the backward.

    python kernels/rmsnorm.py       # GPU: GB/s vs torch (eager and F.rms_norm); CPU: prints why it stops
    python -m pytest -q tests/test_kernels.py   # CPU checks under the Triton interpreter

Public entry point: rms_norm(x, weight, eps=1e-6) normalises over the last dim of x (any leading shape);
differentiable in x and weight. rms_norm_reference() below is the plain torch version it is tested against.
"""
# -----------------------------------------------------------------------------------------------------
# Why a kernel. RMSNorm is a handful of elementwise ops and one row reduction; in eager torch each op
# reads its input from GPU memory and writes its output back (x^2, mean, rsqrt, x * rstd, * w: about five
# round trips over the (M, N) activations, more in the backward). The arithmetic is trivial, so the time
# is the memory traffic. Fused, the forward reads x once and writes y once; the backward reads x and dy
# once and writes dx once. The benchmark reports GB/s of that minimal traffic.
#
# Forward, per row x of length N:
#     rstd = 1 / sqrt(mean(x^2) + eps)      one fp32 number per row, saved for the backward
#     xhat = x * rstd
#     y    = xhat * w
# Backward, given dy = dLoss/dy, per row:
#     dxhat = dy * w
#     dx    = rstd * (dxhat - xhat * mean(dxhat * xhat))
#   because y_i = w_i x_i rstd and d rstd / d x_j = -rstd^3 x_j / N, so
#     dx_j = sum_i dxhat_i (delta_ij rstd + x_i d rstd/d x_j) = rstd dxhat_j - rstd^3 x_j / N sum_i dxhat_i x_i
#   and across rows:
#     dw    = sum over rows of dy * xhat    (N,)
# dw is a reduction over all M rows. Each backward program walks its own set of rows (row = pid, pid + P,
# ...), keeps its share of dw in fp32 registers, and writes it to a (P, N) buffer that torch sums. With
# P = a few programs per GPU core this adds P x N floats of traffic, is deterministic (no atomics, unlike
# the Triton layer-norm tutorial's lock-and-add), and leaves no program idle.
#
# Precision: x, y, dy, dx in x's dtype; weight and dw in the weight's dtype (it may differ from x's);
# everything in between (x^2, the mean, rstd, xhat, the dw partial sums) in fp32, rounded once on store.
# -----------------------------------------------------------------------------------------------------
import sys

import torch
import triton
import triton.language as tl


@triton.jit
def _rms_norm_fwd(X,  # pointer to the input (M, N), rows contiguous
                  W,  # pointer to the weight (N,)
                  Y,  # pointer to the output (M, N)
                  RSTD,  # pointer to 1/rms per row (M,), fp32, saved for the backward
                  N,  # row length
                  eps,  # added to the mean square
                  BLOCK_N: tl.constexpr):  # a power of two >= N: one program holds a whole row
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_N)
    x = tl.load(X + row * N + cols, mask=cols < N, other=0.0).to(tl.float32)
    w = tl.load(W + cols, mask=cols < N, other=0.0).to(tl.float32)
    rstd = 1.0 / tl.sqrt(tl.sum(x * x, 0) / N + eps)
    xhat = x * rstd
    tl.store(Y + row * N + cols, (xhat * w).to(Y.dtype.element_ty), mask=cols < N)
    tl.store(RSTD + row, rstd)


@triton.jit
def _rms_norm_bwd(X,  # pointer to the forward input (M, N)
                  W,  # pointer to the weight (N,)
                  RSTD,  # pointer to the saved 1/rms per row (M,), fp32
                  DY,  # pointer to dLoss/dy (M, N)
                  DX,  # pointer to the output dLoss/dx (M, N)
                  DW_PARTIAL,  # pointer to per-program partial sums of dLoss/dw (P, N), fp32
                  M,  # rows
                  N,  # row length
                  BLOCK_N: tl.constexpr):  # a power of two >= N
    pid = tl.program_id(0)
    num_programs = tl.num_programs(0)  # P
    cols = tl.arange(0, BLOCK_N)
    w = tl.load(W + cols, mask=cols < N, other=0.0).to(tl.float32)
    dw = tl.zeros([BLOCK_N], dtype=tl.float32)
    for row in range(pid, M, num_programs):
        offs = tl.cast(row, tl.int64) * N + cols
        x = tl.load(X + offs, mask=cols < N, other=0.0).to(tl.float32)
        dy = tl.load(DY + offs, mask=cols < N, other=0.0).to(tl.float32)
        rstd = tl.load(RSTD + row)
        xhat = x * rstd
        dxhat = dy * w
        dx = rstd * (dxhat - xhat * (tl.sum(dxhat * xhat, 0) / N))
        tl.store(DX + offs, dx.to(DX.dtype.element_ty), mask=cols < N)
        dw += dy * xhat
    tl.store(DW_PARTIAL + pid * N + cols, dw, mask=cols < N)


def _block_n(N):
    BLOCK_N = triton.next_power_of_2(N)
    if BLOCK_N > 65536:
        raise ValueError(f"kernels/rmsnorm.py: rows of {N} elements do not fit one program (max 65536)")
    return BLOCK_N, min(max(BLOCK_N // 256, 1), 16)  # the block, and num_warps: ~256 elements per warp


class RMSNorm(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x, weight, eps):
        shape = x.shape
        x = x.reshape(-1, shape[-1]).contiguous()  # (M, N)
        weight = weight.contiguous()
        M, N = x.shape
        BLOCK_N, warps = _block_n(N)
        y = torch.empty_like(x)
        rstd = torch.empty(M, device=x.device, dtype=torch.float32)
        _rms_norm_fwd[(M,)](x, weight, y, rstd, N, eps, BLOCK_N=BLOCK_N, num_warps=warps)
        ctx.save_for_backward(x, weight, rstd)
        ctx.shape = shape
        return y.reshape(shape)

    @staticmethod
    def backward(ctx, dy):
        x, weight, rstd = ctx.saved_tensors
        M, N = x.shape
        dy = dy.reshape(M, N).contiguous()
        BLOCK_N, warps = _block_n(N)
        # P programs: enough to fill the GPU (4 per SM), never more than there are rows
        cores = torch.cuda.get_device_properties(x.device).multi_processor_count if x.is_cuda else 2
        P = max(1, min(M, 4 * cores))
        dx = torch.empty_like(x)
        dw_partial = torch.empty((P, N), device=x.device, dtype=torch.float32)
        _rms_norm_bwd[(P,)](x, weight, rstd, dy, dx, dw_partial, M, N, BLOCK_N=BLOCK_N, num_warps=warps)
        return dx.reshape(ctx.shape), dw_partial.sum(0).to(weight.dtype), None


def rms_norm(x, weight, eps=1e-6):
    """RMSNorm of x (..., N) with weight (N,) over the last dim -> x's shape and dtype."""
    if x.shape[-1] != weight.shape[0] or weight.dim() != 1:
        raise ValueError(f"kernels/rmsnorm.py: weight {tuple(weight.shape)} does not match the last dim of x "
                         f"{tuple(x.shape)}")
    return RMSNorm.apply(x, weight, eps)


def rms_norm_reference(x, weight, eps=1e-6):
    """The same RMSNorm in plain torch, in fp32 (or fp64 for fp64 inputs), rounded to x's dtype at the end."""
    dtype = torch.promote_types(x.dtype, torch.float32)
    xf = x.to(dtype)
    rstd = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return (xf * rstd * weight.to(dtype)).to(x.dtype)


def benchmark():
    """GB/s of the minimal traffic: forward reads x and writes y (2 M N elements); forward + backward adds
    reading x and dy and writing dx (3 M N more). Compared with the eager torch reference (one kernel per
    op) and torch's own F.rms_norm. bf16, M = 16384 rows."""
    import torch.nn.functional as F
    from triton.testing import do_bench

    M = 16384
    print(f"{'N':>6} | {'fwd GB/s':>8} {'eager':>6} {'F.rms':>6} | {'fwd+bwd GB/s':>12} {'eager':>6} {'F.rms':>6} | "
          f"max|y - y_ref|")
    for N in (1024, 2048, 4096, 8192):
        x = torch.randn(M, N, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        w = torch.randn(N, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        dy = torch.randn_like(x)
        fns = {"ours": lambda: rms_norm(x, w), "eager": lambda: rms_norm_reference(x, w),
               "F": lambda: F.rms_norm(x, (N,), w, 1e-6)}
        err = (fns["ours"]() - fns["eager"]()).abs().max().item()
        gbs = {}
        for name, fn in fns.items():
            ms_fwd = do_bench(fn)
            ms_all = do_bench(lambda: fn().backward(dy), grad_to_none=[x, w])
            gbs[name] = (2 * M * N * 2 / ms_fwd * 1e-6, 5 * M * N * 2 / ms_all * 1e-6)
        print(f"{N:>6} | {gbs['ours'][0]:>8.0f} {gbs['eager'][0]:>6.0f} {gbs['F'][0]:>6.0f} | "
              f"{gbs['ours'][1]:>12.0f} {gbs['eager'][1]:>6.0f} {gbs['F'][1]:>6.0f} | {err:.2e}")


if __name__ == "__main__":
    if not torch.cuda.is_available():
        print("kernels/rmsnorm.py: no CUDA GPU here, so there is nothing to time; the CPU checks are "
              "`python -m pytest -q tests/test_kernels.py` (Triton interpreter) and "
              "`python kernels/compile_report.py` (registers, spills for an H100; --arch 80: A100).")
        sys.exit(0)
    print(f"{torch.cuda.get_device_name()}, bf16, M = 16384 rows; GB/s of the minimal traffic (higher is better)")
    benchmark()
