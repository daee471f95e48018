"""kernels/attention.py: causal self-attention the FlashAttention-2 way, written in Triton, forward and backward.

    python kernels/attention.py       # GPU: TFLOP/s vs torch SDPA (T = 1k..16k); CPU: prints why it stops
    python -m pytest -q tests/test_kernels.py   # CPU checks under the Triton interpreter

Public entry point: flash_attention(q, k, v, causal=True) with q (B, H, T, D) and k, v (B, H_kv, T, D),
returning (B, H, T, D); differentiable. attention_reference() below is the plain torch version it is
tested against.
"""
# -----------------------------------------------------------------------------------------------------
# Why a kernel. Per (batch, head), with scale c = 1/sqrt(D):
#
#     S = c * Q K^T       (T, T)  scores; causal: S[i, j] = -inf where key j > query i
#     P = softmax(S)      (T, T)  row by row
#     O = P V             (T, D)
#
# Written as three torch ops, S and P go to GPU memory and back: at T = 8192 that is 64M numbers per head
# for each of them, so the attention is bound by memory traffic (~T^2 reads and writes) although its
# arithmetic is only 4 T^2 D flops. FlashAttention never forms S or P: a program keeps BLOCK_M query rows
# on chip, streams the keys and values past them in tiles of BLOCK_N, and folds each tile into a running
# softmax. Memory traffic drops to reading Q, K, V and writing O (a few T x D tensors).
#
# Forward: online softmax. For one block of query rows q, before any key tile: m = -inf, l = 0, acc = 0.
# For each key tile (k_j, v_j):
#     s     = c * q k_j^T                  (BLOCK_M, BLOCK_N)
#     m_new = max(m, rowmax(s))            running row max (keeps exp() from overflowing)
#     alpha = exp(m - m_new)               rescales what was summed under the old max
#     p     = exp(s - m_new)
#     l     = alpha * l + rowsum(p)        running softmax denominator
#     acc   = alpha * acc + p v_j          running numerator (BLOCK_M, D)
#     m     = m_new
# At the end o = acc / l, and lse = m + log(l) (the log-sum-exp of the row) is saved for the backward:
# it is all that is needed to rebuild any entry of P later as P = exp(S - lse).
#
# Backward, given dO = dLoss/dO:
#     P     = exp(S - lse)                 recomputed tile by tile from Q, K and lse; never stored
#     dV    = P^T dO
#     dP    = dO V^T
#     dS    = P * (dP - delta)             softmax Jacobian, row by row: dS_ij = P_ij (dP_ij - sum_k P_ik dP_ik)
#     delta = sum_k P_ik dP_ik = sum_k P_ik (dO_i . V_k) = dO_i . O_i     (a T-vector: the preprocess kernel)
#     dQ    = c * dS K
#     dK    = c * dS^T Q
# dV and dK sum over query rows, dQ over key columns: one kernel owns a key tile and loops over query tiles
# (dK, dV), another owns a query tile and loops over key tiles (dQ), so no program writes where another does.
#
# Grouped-query attention: query head h reads kv head h // (H // H_kv). A kv head is shared by a group of
# H // H_kv query heads, so its dK and dV are sums over that group. The dK/dV program for a kv head loops
# over the group's query heads and accumulates in its fp32 registers: no (B, H, T, D) buffer, no extra pass
# to sum it, no atomics. The cost is fewer programs (B * H_kv * T / BLOCK_N), still thousands at long T.
#
# Details that the code follows:
# - exp(x) = exp2(x * log2(e)). The kernels fold log2(e) into the scale (qk_scale = c * log2(e)) and work in
#   base 2, since exp2 is the hardware instruction; the saved lse is in base 2 as well (lse2 = lse * log2 e).
# - Causal masking costs a compare and a select per score, so the key tiles are split into two phases:
#   tiles entirely below the diagonal run without a mask, only the diagonal tile(s) are masked.
# - T need not be a multiple of the block sizes: loads past T read zeros, stores past T are dropped, and
#   scores of keys past T are masked like future keys. In the backward, rows past T load lse = +inf, which
#   makes their P exactly 0, so they add nothing to dK and dV.
# - Precision: Q, K, V, O in the input dtype (fp32, fp16 or bf16); scores, softmax statistics and every
#   accumulator in fp32; P and dS are rounded to the input dtype just before they enter a matmul (as
#   FlashAttention does). fp32 inputs use full-fp32 dots (input_precision="ieee", no TF32), like torch.
# -----------------------------------------------------------------------------------------------------
import math

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

LOG2_E = 1.4426950408889634  # log2(e): exp(x) = exp2(x * LOG2_E)


# ---------------------------------------------------------------------------------------- forward
@triton.jit
def _fwd_key_tiles(acc, m_i, l_i,  # running numerator (BLOCK_M, D), max and denominator (BLOCK_M,), fp32
                   q,  # the query tile (BLOCK_M, HEAD_DIM), input dtype
                   k_base, v_base,  # pointers to K[b, kv head] and V[b, kv head], each (T, HEAD_DIM)
                   offs_m,  # query row indices of this tile (BLOCK_M,)
                   lo, hi,  # the key rows to visit: [lo, hi), lo a multiple of BLOCK_N
                   T,  # sequence length
                   qk_scale,  # softmax scale times log2(e)
                   MASK: tl.constexpr,  # apply the causal / end-of-sequence mask to the scores
                   CAUSAL: tl.constexpr,
                   BLOCK_N: tl.constexpr,
                   HEAD_DIM: tl.constexpr):
    offs_d = tl.arange(0, HEAD_DIM)
    for start_n in range(lo, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        kv_offs = offs_n[:, None] * HEAD_DIM + offs_d[None, :]
        k = tl.load(k_base + kv_offs, mask=offs_n[:, None] < T, other=0.0)  # (BLOCK_N, D)
        v = tl.load(v_base + kv_offs, mask=offs_n[:, None] < T, other=0.0)  # (BLOCK_N, D)
        s = tl.dot(q, tl.trans(k), input_precision="ieee") * qk_scale  # (BLOCK_M, BLOCK_N), base 2
        if MASK:
            keep = offs_n[None, :] < T
            if CAUSAL:
                keep = keep & (offs_m[:, None] >= offs_n[None, :])
            s = tl.where(keep, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))  # finite: each row's first tile holds a key it may see
        alpha = tl.exp2(m_i - m_new)  # 0 on the first tile (m_i = -inf)
        p = tl.exp2(s - m_new[:, None])
        l_i = alpha * l_i + tl.sum(p, 1)
        acc = alpha[:, None] * acc + tl.dot(p.to(v.dtype), v, input_precision="ieee")
        m_i = m_new
    return acc, m_i, l_i


@triton.jit
def _attn_fwd(Q,  # pointer to q (B, H, T, HEAD_DIM), contiguous
              K, V,  # pointers to k and v (B, H_KV, T, HEAD_DIM), contiguous
              O,  # pointer to the output (B, H, T, HEAD_DIM)
              LSE,  # pointer to the saved log2-sum-exp2 per row (B, H, T), fp32
              qk_scale,  # softmax scale times log2(e)
              T,  # sequence length
              H,  # query heads
              H_KV,  # key/value heads (H is a multiple of it)
              CAUSAL: tl.constexpr,
              BLOCK_M: tl.constexpr,  # query rows per program
              BLOCK_N: tl.constexpr,  # key rows per loop step (BLOCK_M is a multiple of it)
              HEAD_DIM: tl.constexpr):
    start_m = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1)  # b * H + h
    bkv = (bh // H) * H_KV + (bh % H) // (H // H_KV)  # b * H_KV + the kv head that head h reads
    q_base = Q + bh.to(tl.int64) * T * HEAD_DIM
    k_base = K + bkv.to(tl.int64) * T * HEAD_DIM
    v_base = V + bkv.to(tl.int64) * T * HEAD_DIM

    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    q_offs = offs_m[:, None] * HEAD_DIM + offs_d[None, :]
    q = tl.load(q_base + q_offs, mask=offs_m[:, None] < T, other=0.0)  # (BLOCK_M, D)

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    # Phase 1, no mask: key tiles every row of this query tile may see in full. Phase 2, masked: the rest.
    if CAUSAL:
        full_hi = start_m  # keys before the diagonal tile
        masked_hi = tl.minimum(start_m + BLOCK_M, T)  # the diagonal tile(s)
    else:
        full_hi = (T // BLOCK_N) * BLOCK_N  # all whole key tiles
        masked_hi = T  # the ragged last one
    acc, m_i, l_i = _fwd_key_tiles(acc, m_i, l_i, q, k_base, v_base, offs_m, 0, full_hi, T, qk_scale,
                                   False, CAUSAL, BLOCK_N, HEAD_DIM)
    acc, m_i, l_i = _fwd_key_tiles(acc, m_i, l_i, q, k_base, v_base, offs_m, full_hi, masked_hi, T, qk_scale,
                                   True, CAUSAL, BLOCK_N, HEAD_DIM)

    o = acc / l_i[:, None]
    lse2 = m_i + tl.log2(l_i)
    tl.store(O + bh.to(tl.int64) * T * HEAD_DIM + q_offs, o.to(O.dtype.element_ty), mask=offs_m[:, None] < T)
    tl.store(LSE + bh.to(tl.int64) * T + offs_m, lse2, mask=offs_m < T)


# ---------------------------------------------------------------------------------------- backward
@triton.jit
def _attn_bwd_delta(O,  # pointer to the forward output (B, H, T, HEAD_DIM)
                    DO,  # pointer to dLoss/dO, same shape
                    DELTA,  # pointer to delta = rowsum(dO * O) (B, H, T), fp32
                    T,  # sequence length
                    BLOCK_M: tl.constexpr,  # rows per program
                    HEAD_DIM: tl.constexpr):
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    bh = tl.program_id(1).to(tl.int64)
    offs_d = tl.arange(0, HEAD_DIM)
    offs = bh * T * HEAD_DIM + offs_m[:, None] * HEAD_DIM + offs_d[None, :]
    o = tl.load(O + offs, mask=offs_m[:, None] < T, other=0.0).to(tl.float32)
    do = tl.load(DO + offs, mask=offs_m[:, None] < T, other=0.0).to(tl.float32)
    delta = tl.sum(o * do, 1)
    tl.store(DELTA + bh * T + offs_m, delta, mask=offs_m < T)


@triton.jit
def _dkdv_query_tiles(dk, dv,  # accumulators (BLOCK_N, HEAD_DIM), fp32
                      k, v,  # this program's key and value tile (BLOCK_N, HEAD_DIM)
                      q_base, do_base,  # pointers to Q[b, h] and dO[b, h], each (T, HEAD_DIM)
                      lse_base, delta_base,  # pointers to lse2[b, h] and delta[b, h], each (T,)
                      offs_n,  # key row indices of this tile (BLOCK_N,)
                      lo, hi,  # the query rows to visit: [lo, hi), lo a multiple of BLOCK_M
                      T,  # sequence length
                      qk_scale,  # softmax scale times log2(e)
                      MASK: tl.constexpr,  # apply the causal mask (the diagonal tile)
                      BLOCK_M: tl.constexpr,
                      HEAD_DIM: tl.constexpr):
    offs_d = tl.arange(0, HEAD_DIM)
    for start_m in range(lo, hi, BLOCK_M):
        offs_m = start_m + tl.arange(0, BLOCK_M)
        row_offs = offs_m[:, None] * HEAD_DIM + offs_d[None, :]
        q = tl.load(q_base + row_offs, mask=offs_m[:, None] < T, other=0.0)  # (BLOCK_M, D)
        do = tl.load(do_base + row_offs, mask=offs_m[:, None] < T, other=0.0)  # (BLOCK_M, D)
        lse2 = tl.load(lse_base + offs_m, mask=offs_m < T, other=float("inf"))  # rows past T: P = 0
        delta = tl.load(delta_base + offs_m, mask=offs_m < T, other=0.0)
        # Transposed tiles (keys along rows), so that dK and dV come out as (BLOCK_N, D).
        sT = tl.dot(k, tl.trans(q), input_precision="ieee") * qk_scale  # S^T (BLOCK_N, BLOCK_M), base 2
        pT = tl.exp2(sT - lse2[None, :])  # P^T
        if MASK:
            pT = tl.where(offs_m[None, :] >= offs_n[:, None], pT, 0.0)
        dv += tl.dot(pT.to(do.dtype), do, input_precision="ieee")
        dpT = tl.dot(v, tl.trans(do), input_precision="ieee")  # dP^T (BLOCK_N, BLOCK_M)
        dsT = pT * (dpT - delta[None, :])  # dS^T, without the factor c (applied once at the end)
        dk += tl.dot(dsT.to(q.dtype), q, input_precision="ieee")
    return dk, dv


@triton.jit
def _attn_bwd_dkdv(Q, K, V,  # pointers to q (B, H, T, HEAD_DIM) and k, v (B, H_KV, T, HEAD_DIM)
                   DO,  # pointer to dLoss/dO (B, H, T, HEAD_DIM)
                   LSE, DELTA,  # pointers to lse2 and delta (B, H, T), fp32
                   DK, DV,  # pointers to the outputs dk, dv (B, H_KV, T, HEAD_DIM)
                   sm_scale,  # softmax scale c
                   qk_scale,  # c times log2(e)
                   T,  # sequence length
                   H,  # query heads
                   H_KV,  # key/value heads
                   CAUSAL: tl.constexpr,
                   BLOCK_M: tl.constexpr,  # query rows per loop step
                   BLOCK_N: tl.constexpr,  # key rows per program (a multiple of BLOCK_M)
                   HEAD_DIM: tl.constexpr):
    start_n = tl.program_id(0) * BLOCK_N
    bkv = tl.program_id(1)  # b * H_KV + kv head
    b = bkv // H_KV
    group = H // H_KV  # query heads that share this kv head
    offs_n = start_n + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    kv_offs = bkv.to(tl.int64) * T * HEAD_DIM + offs_n[:, None] * HEAD_DIM + offs_d[None, :]
    k = tl.load(K + kv_offs, mask=offs_n[:, None] < T, other=0.0)  # (BLOCK_N, D)
    v = tl.load(V + kv_offs, mask=offs_n[:, None] < T, other=0.0)  # (BLOCK_N, D)
    dk = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)

    first_head = (bkv % H_KV) * group
    for h in range(first_head, first_head + group):  # GQA: sum over the query heads of the group
        bh = (b * H + h).to(tl.int64)
        q_base = Q + bh * T * HEAD_DIM
        do_base = DO + bh * T * HEAD_DIM
        lse_base = LSE + bh * T
        delta_base = DELTA + bh * T
        if CAUSAL:
            # only queries at or after the first key see this tile: the diagonal part masked, the rest not
            dk, dv = _dkdv_query_tiles(dk, dv, k, v, q_base, do_base, lse_base, delta_base, offs_n,
                                       start_n, tl.minimum(start_n + BLOCK_N, T), T, qk_scale,
                                       True, BLOCK_M, HEAD_DIM)
            dk, dv = _dkdv_query_tiles(dk, dv, k, v, q_base, do_base, lse_base, delta_base, offs_n,
                                       start_n + BLOCK_N, T, T, qk_scale, False, BLOCK_M, HEAD_DIM)
        else:
            dk, dv = _dkdv_query_tiles(dk, dv, k, v, q_base, do_base, lse_base, delta_base, offs_n,
                                       0, T, T, qk_scale, False, BLOCK_M, HEAD_DIM)

    tl.store(DK + kv_offs, (dk * sm_scale).to(DK.dtype.element_ty), mask=offs_n[:, None] < T)
    tl.store(DV + kv_offs, dv.to(DV.dtype.element_ty), mask=offs_n[:, None] < T)


@triton.jit
def _dq_key_tiles(dq,  # accumulator (BLOCK_M, HEAD_DIM), fp32
                  q, do,  # this program's query and dO tile (BLOCK_M, HEAD_DIM)
                  lse2, delta,  # their saved lse2 and delta (BLOCK_M,), fp32
                  k_base, v_base,  # pointers to K[b, kv head] and V[b, kv head], each (T, HEAD_DIM)
                  offs_m,  # query row indices (BLOCK_M,)
                  lo, hi,  # the key rows to visit: [lo, hi), lo a multiple of BLOCK_N
                  T,  # sequence length
                  qk_scale,  # softmax scale times log2(e)
                  MASK: tl.constexpr,  # apply the causal / end-of-sequence mask
                  CAUSAL: tl.constexpr,
                  BLOCK_N: tl.constexpr,
                  HEAD_DIM: tl.constexpr):
    offs_d = tl.arange(0, HEAD_DIM)
    for start_n in range(lo, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        kv_offs = offs_n[:, None] * HEAD_DIM + offs_d[None, :]
        k = tl.load(k_base + kv_offs, mask=offs_n[:, None] < T, other=0.0)  # (BLOCK_N, D)
        v = tl.load(v_base + kv_offs, mask=offs_n[:, None] < T, other=0.0)  # (BLOCK_N, D)
        s = tl.dot(q, tl.trans(k), input_precision="ieee") * qk_scale  # (BLOCK_M, BLOCK_N), base 2
        p = tl.exp2(s - lse2[:, None])
        if MASK:
            keep = offs_n[None, :] < T
            if CAUSAL:
                keep = keep & (offs_m[:, None] >= offs_n[None, :])
            p = tl.where(keep, p, 0.0)
        dp = tl.dot(do, tl.trans(v), input_precision="ieee")  # (BLOCK_M, BLOCK_N)
        ds = p * (dp - delta[:, None])  # without the factor c (applied once at the end)
        dq += tl.dot(ds.to(k.dtype), k, input_precision="ieee")
    return dq


@triton.jit
def _attn_bwd_dq(Q, K, V,  # pointers to q (B, H, T, HEAD_DIM) and k, v (B, H_KV, T, HEAD_DIM)
                 DO,  # pointer to dLoss/dO (B, H, T, HEAD_DIM)
                 LSE, DELTA,  # pointers to lse2 and delta (B, H, T), fp32
                 DQ,  # pointer to the output dq (B, H, T, HEAD_DIM)
                 sm_scale,  # softmax scale c
                 qk_scale,  # c times log2(e)
                 T,  # sequence length
                 H,  # query heads
                 H_KV,  # key/value heads
                 CAUSAL: tl.constexpr,
                 BLOCK_M: tl.constexpr,  # query rows per program (a multiple of BLOCK_N)
                 BLOCK_N: tl.constexpr,  # key rows per loop step
                 HEAD_DIM: tl.constexpr):
    start_m = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1)  # b * H + h
    bkv = (bh // H) * H_KV + (bh % H) // (H // H_KV)
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    q_offs = bh.to(tl.int64) * T * HEAD_DIM + offs_m[:, None] * HEAD_DIM + offs_d[None, :]
    q = tl.load(Q + q_offs, mask=offs_m[:, None] < T, other=0.0)
    do = tl.load(DO + q_offs, mask=offs_m[:, None] < T, other=0.0)
    lse2 = tl.load(LSE + bh.to(tl.int64) * T + offs_m, mask=offs_m < T, other=float("inf"))
    delta = tl.load(DELTA + bh.to(tl.int64) * T + offs_m, mask=offs_m < T, other=0.0)
    k_base = K + bkv.to(tl.int64) * T * HEAD_DIM
    v_base = V + bkv.to(tl.int64) * T * HEAD_DIM

    dq = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    if CAUSAL:  # the same two phases as the forward
        full_hi = start_m
        masked_hi = tl.minimum(start_m + BLOCK_M, T)
    else:
        full_hi = (T // BLOCK_N) * BLOCK_N
        masked_hi = T
    dq = _dq_key_tiles(dq, q, do, lse2, delta, k_base, v_base, offs_m, 0, full_hi, T, qk_scale,
                       False, CAUSAL, BLOCK_N, HEAD_DIM)
    dq = _dq_key_tiles(dq, q, do, lse2, delta, k_base, v_base, offs_m, full_hi, masked_hi, T, qk_scale,
                       True, CAUSAL, BLOCK_N, HEAD_DIM)
    tl.store(DQ + q_offs, (dq * sm_scale).to(DQ.dtype.element_ty), mask=offs_m[:, None] < T)


# ---------------------------------------------------------------------------------------- launch
# Tile sizes per GPU generation (compute capability major: 9 = H100, 8 = A100), head dim and kernel:
# (BIG, SMALL, num_warps, num_stages). The forward and dQ kernels take BLOCK_M=BIG query rows and step
# through BLOCK_N=SMALL key rows; the dK/dV kernel the other way round (BIG key rows, SMALL query rows), so
# each loop's tile divides the program's. Chosen so that ptxas reports no register spills and pipelined
# loads (`python kernels/compile_report.py --arch 90` or `--arch 80` shows it, without a GPU). The H100
# tiles spill on an A100 (fwd at D=64, dK/dV at D=128): there tl.dot becomes mma.sync, which holds both
# operands in registers, where the H100's wgmma reads them from shared memory. So sm_80 gets 8 warps for
# the D=64 forward (half the rows per thread), a 64-key dK/dV tile and a 2-stage dQ at D=128.
# Their speed is not measured yet: this is the one place to tune. The launcher reads the GPU's major.
CONFIGS = {
    9: {64: {"fwd": (128, 64, 4, 3), "dkdv": (128, 32, 8, 3), "dq": (128, 64, 8, 3)},
        128: {"fwd": (128, 64, 8, 3), "dkdv": (128, 32, 8, 2), "dq": (128, 32, 8, 3)}},
    8: {64: {"fwd": (128, 64, 8, 3), "dkdv": (128, 32, 8, 3), "dq": (128, 64, 8, 3)},
        128: {"fwd": (128, 64, 8, 3), "dkdv": (64, 32, 8, 3), "dq": (128, 32, 8, 2)}},
}
# Any other generation (Blackwell, the interpreter on a CPU) gets the sm_80 tiles: they need the fewest
# registers and at most 96 KiB of shared memory, which fits every GPU from sm_80 on (sm_86/89/120: 99 KiB).
DEFAULT_MAJOR = 8
DELTA_BLOCK_M = 64  # rows per program of the delta preprocess kernel (no loop, no tile to tune)


def configs_for(major):
    """{head dim: {kernel: (BIG, SMALL, num_warps, num_stages)}} for a GPU of compute capability major.x."""
    return CONFIGS.get(major, CONFIGS[DEFAULT_MAJOR])


def _launch_config(kernel, T, head_dim, major, block_sizes=None):
    """(BIG, SMALL, num_warps, num_stages) for one kernel at sequence length T on a GPU of compute
    capability major.x; block_sizes=(BIG, SMALL) overrides the tiles."""
    big, small, warps, stages = configs_for(major)[max(64, head_dim)][kernel]
    if block_sizes is not None:
        big, small = block_sizes
    big = min(big, max(16, triton.next_power_of_2(T)))  # short sequences: no mostly-empty tiles
    small = min(small, big)
    if big % small:
        raise ValueError(f"kernels/attention.py: block sizes {big}, {small}: the first must be a multiple "
                         "of the second")
    return big, small, warps, stages


class FlashAttention(torch.autograd.Function):
    """q (B, H, T, D), k and v (B, H_kv, T, D), D a power of two in 16..128 (flash_attention pads others)."""

    @staticmethod
    def forward(ctx, q, k, v, causal, sm_scale, block_sizes):
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        B, H, T, D = q.shape
        H_kv = k.shape[1]
        major = torch.cuda.get_device_capability(q.device)[0] if q.is_cuda else DEFAULT_MAJOR
        big, small, warps, stages = _launch_config("fwd", T, D, major, block_sizes)
        o = torch.empty_like(q)
        lse2 = torch.empty((B, H, T), device=q.device, dtype=torch.float32)
        grid = (triton.cdiv(T, big), B * H)
        _attn_fwd[grid](q, k, v, o, lse2, sm_scale * LOG2_E, T, H, H_kv, CAUSAL=causal, BLOCK_M=big,
                        BLOCK_N=small, HEAD_DIM=D, num_warps=warps, num_stages=stages)
        ctx.save_for_backward(q, k, v, o, lse2)
        ctx.causal, ctx.sm_scale, ctx.block_sizes, ctx.major = causal, sm_scale, block_sizes, major
        return o

    @staticmethod
    def backward(ctx, do):
        q, k, v, o, lse2 = ctx.saved_tensors
        do = do.contiguous()
        B, H, T, D = q.shape
        H_kv = k.shape[1]
        delta = torch.empty_like(lse2)
        _attn_bwd_delta[(triton.cdiv(T, DELTA_BLOCK_M), B * H)](o, do, delta, T, BLOCK_M=DELTA_BLOCK_M,
                                                                 HEAD_DIM=D)
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        args = (ctx.sm_scale, ctx.sm_scale * LOG2_E, T, H, H_kv)
        big, small, warps, stages = _launch_config("dkdv", T, D, ctx.major, ctx.block_sizes)
        _attn_bwd_dkdv[(triton.cdiv(T, big), B * H_kv)](q, k, v, do, lse2, delta, dk, dv, *args,
                                                        CAUSAL=ctx.causal, BLOCK_M=small, BLOCK_N=big,
                                                        HEAD_DIM=D, num_warps=warps, num_stages=stages)
        big, small, warps, stages = _launch_config("dq", T, D, ctx.major, ctx.block_sizes)
        _attn_bwd_dq[(triton.cdiv(T, big), B * H)](q, k, v, do, lse2, delta, dq, *args,
                                                   CAUSAL=ctx.causal, BLOCK_M=big, BLOCK_N=small,
                                                   HEAD_DIM=D, num_warps=warps, num_stages=stages)
        return dq, dk, dv, None, None, None


def flash_attention(q, k, v, causal=True, sm_scale=None, block_sizes=None):
    """Softmax attention of q (B, H, T, D) over k, v (B, H_kv, T, D) -> (B, H, T, D), in q's dtype.
    Query head h reads kv head h // (H // H_kv). sm_scale defaults to 1/sqrt(D). block_sizes=(BIG, SMALL)
    overrides the tile sizes (powers of two, BIG a multiple of SMALL; tests use small ones).
    Under torch.autocast the inputs are cast to the autocast dtype first, as F.scaled_dot_product_attention's
    are (so an fp32 q from RoPE meets a bf16 v in one dtype)."""
    if torch.is_autocast_enabled(q.device.type):
        dtype = torch.get_autocast_dtype(q.device.type)
        q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    if q.dim() != 4 or k.shape != v.shape or k.dim() != 4:
        raise ValueError(f"kernels/attention.py: want q (B, H, T, D) and k, v (B, H_kv, T, D), got "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    B, H, T, D = q.shape
    if k.shape[0] != B or k.shape[2:] != (T, D) or H % k.shape[1]:
        raise ValueError(f"kernels/attention.py: k, v {tuple(k.shape)} do not fit q {tuple(q.shape)}: same "
                         "B, T, D wanted and H a multiple of H_kv")
    if not (q.dtype == k.dtype == v.dtype) or q.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"kernels/attention.py: q, k, v must share one dtype of fp32/fp16/bf16, got "
                         f"{q.dtype}, {k.dtype}, {v.dtype}")
    if D > 128:
        raise ValueError(f"kernels/attention.py: head dim {D} > 128 is not supported (registers)")
    if sm_scale is None:
        sm_scale = 1.0 / math.sqrt(D)
    D_pad = max(16, triton.next_power_of_2(D))  # HEAD_DIM must be a power of two: zero columns change
    if D_pad != D:  # neither q.k nor, once sliced off again, the output
        q, k, v = (F.pad(t, (0, D_pad - D)) for t in (q, k, v))
    o = FlashAttention.apply(q, k, v, causal, sm_scale, block_sizes)
    return o[..., :D] if D_pad != D else o


def attention_reference(q, k, v, causal=True, sm_scale=None):
    """The same attention in plain torch, materialising S and P: the definition the kernel is tested
    against. Computes in q's dtype; pass fp64 tensors for a ground truth."""
    B, H, T, D = q.shape
    group = H // k.shape[1]
    k = k.repeat_interleave(group, dim=1)  # (B, H, T, D): query head h reads kv head h // group
    v = v.repeat_interleave(group, dim=1)
    scale = 1.0 / math.sqrt(D) if sm_scale is None else sm_scale
    s = scale * (q @ k.transpose(-2, -1))  # (B, H, T, T)
    if causal:
        future = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1)
        s = s.masked_fill(future, float("-inf"))
    return torch.softmax(s, dim=-1) @ v


# ---------------------------------------------------------------------------------------- benchmark
def benchmark():
    """TFLOP/s of flash_attention vs torch SDPA (FlashAttention-2 backend on H100 for bf16), causal, bf16.
    16k tokens per batch, so B = 16384 // T; H * D = 2048. Matmul flops only, as FlashAttention counts
    them: forward 4 * B * H * T^2 * D / 2 (two matmuls, half the scores are masked), backward 2.5x that."""
    from triton.testing import do_bench

    print(f"{'D':>4} {'T':>6} {'B':>3} {'H':>3} | {'fwd TFLOP/s':>11} {'sdpa':>6} | "
          f"{'fwd+bwd TFLOP/s':>15} {'sdpa':>6} {'ratio':>6} | max|o - o_sdpa|")
    for D in (64, 128):
        for T in (1024, 2048, 4096, 8192, 16384):
            B, H = max(1, 16384 // T), 2048 // D
            q, k, v = (torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16, requires_grad=True)
                       for _ in range(3))
            do = torch.randn_like(q)
            fwd_flops = 4 * B * H * T * T * D / 2
            ours = lambda: flash_attention(q, k, v, causal=True)
            sdpa = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)
            err = (ours() - sdpa()).abs().max().item()
            tf = {}
            for name, fn in (("ours", ours), ("sdpa", sdpa)):
                ms_fwd = do_bench(fn)
                ms_all = do_bench(lambda: fn().backward(do), grad_to_none=[q, k, v])
                tf[name] = (fwd_flops / ms_fwd * 1e-9, 3.5 * fwd_flops / ms_all * 1e-9)
            print(f"{D:>4} {T:>6} {B:>3} {H:>3} | {tf['ours'][0]:>11.1f} {tf['sdpa'][0]:>6.1f} | "
                  f"{tf['ours'][1]:>15.1f} {tf['sdpa'][1]:>6.1f} {tf['ours'][1] / tf['sdpa'][1]:>6.2f} | "
                  f"{err:.2e}")


if __name__ == "__main__":
    if not torch.cuda.is_available():
        print("kernels/attention.py: no CUDA GPU here, so there is nothing to time. What can be checked on a "
              "CPU: `python -m pytest -q tests/test_kernels.py` (the kernels under the Triton "
              "interpreter) and `python kernels/compile_report.py` (registers, spills for an H100; --arch 80: A100).")
    else:
        print(f"{torch.cuda.get_device_name()}, bf16, causal; ratio = ours / SDPA, forward + backward")
        benchmark()
