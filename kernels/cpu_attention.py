"""kernels/cpu_attention.py: causal attention for bf16 training on a CPU, as whole-sequence matmuls: the
forward keeps the probabilities P, the backward is the one kernels/attention.py explains, without a
Triton kernel.

    python -m pytest -q tests/test_cpu_attention.py    # gradients vs a float64 reference

Public entry point: cpu_attention(q, k, v) with q (B, H, T, D) and k, v (B, H_kv, T, D), returning
(B, H, T, D); differentiable. model.py calls it on a CPU in bf16 while torch.compile traces the model.

Why. On a CPU, torch's own attention backward is slower in bf16 than in fp32 (at nanoGPT's shape, B 16,
H 4, T 256, D 32: 16.8 ms vs 9.8 ms for forward + backward, 2-core Xeon with AMX, 2026-12-06), so model.py
used to attend in fp32. The math (kernels/attention.py's header has the derivation):

    P     = softmax(c Q K^T + mask)                       (B, H, T, T), kept for the backward
    O     = P V
    dV    = P^T dO
    dP    = dO V^T
    delta = rowsum(dO * O)                                (B, H, T, 1)
    dS    = P * (dP - delta)
    dQ    = c dS K,    dK = c dS^T Q

A GPU kernel never forms P; here T is short (a CPU trains contexts of a few hundred tokens), so the whole
(T, T) tile is one matrix, and the six matmuls run on the CPU's bf16 units. Keeping P (B*H*T*T bf16, 8 MB
per layer at nanoGPT's shape) instead of rebuilding it in the backward from the row log-sum-exp saves one
matmul and one exp over (B, H, T, T): forward + backward 8.1 -> 6.1 ms per layer compiled (2026-12-07).
The price: the scores Q K^T leave the matmul rounded to bf16 (a CPU matmul cannot return fp32 from bf16
inputs), so O is within about one bf16 step of the exact value where torch's kernels round correctly
(half a step); the gradients are as accurate as torch's (tests/test_cpu_attention.py). Run eagerly, each
elementwise line is a pass over (B, H, T, T) numbers and the whole is slower than fp32 SDPA; under
torch.compile inductor fuses them. That is why model.py uses it only while compiling.
"""
import torch

_future = {}  # T -> (T, T) fp32: 0 on and below the diagonal, -inf above (key j > query i)


def future_mask(T):
    """A constant tensor, not a mask built inside the graph: built inside, inductor recomputes it in every
    loop as int64 index arithmetic, which costs as much as the exp it guards."""
    if T not in _future:
        _future[T] = torch.full((T, T), float("-inf")).triu(1)
    return _future[T]


class CausalAttention(torch.autograd.Function):
    """forward: softmax(c Q K^T + mask) V with P kept for the backward; backward: the four matmuls and
    one elementwise pass above. k and v arrive with H heads (GQA already expanded)."""

    @staticmethod
    def forward(ctx, q, k, v, future):
        scale = q.shape[-1] ** -0.5
        scores = (q @ k.transpose(-2, -1)).float() * scale + future           # (B, H, T, T) fp32
        p = torch.softmax(scores, dim=-1).to(q.dtype)                          # rows sum to 1, bf16
        out = p @ v                                                            # (B, H, T, D)
        ctx.save_for_backward(q, k, v, out, p)  # P: B*H*T*T*2 bytes; rebuilding it cost more than storing
        return out

    @staticmethod
    def backward(ctx, d_out):
        q, k, v, out, p = ctx.saved_tensors
        scale = q.shape[-1] ** -0.5
        d_v = p.transpose(-2, -1) @ d_out                                      # (B, H, T, D)
        d_p = d_out @ v.transpose(-2, -1)                                      # (B, H, T, T)
        delta = (d_out.float() * out.float()).sum(-1, keepdim=True)            # (B, H, T, 1)
        d_s = (p.float() * (d_p.float() - delta) * scale).to(q.dtype)          # c folded in once
        return d_s @ k, d_s.transpose(-2, -1) @ q, d_v, None


def cpu_attention(q, k, v):
    """Causal attention of q (B, H, T, D) over k, v (B, H_kv, T, D) -> (B, H, T, D). With fewer kv heads
    (GQA) each kv head is repeated for its group of query heads; autograd sums their gradients back."""
    group = q.shape[1] // k.shape[1]
    if group > 1:
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    return CausalAttention.apply(q, k, v, future_mask(q.shape[-2]).to(q.device))
