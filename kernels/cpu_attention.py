"""kernels/cpu_attention.py: causal attention for bf16 training on a CPU: torch's flash forward, and the
backward of kernels/attention.py written as five whole-sequence matmuls instead of a Triton kernel.

    python -m pytest -q tests/test_cpu_attention.py    # gradients vs a float64 reference

Public entry point: cpu_attention(q, k, v) with q (B, H, T, D) and k, v (B, H_kv, T, D), returning
(B, H, T, D); differentiable. model.py calls it on a CPU in bf16 while torch.compile traces the model.

Why. On a CPU, torch's own attention backward is slower in bf16 than in fp32 (at nanoGPT's shape, B 16,
H 4, T 256, D 32: 16.8 ms vs 9.8 ms for forward + backward, 2-core Xeon with AMX, 2026-12-06), so model.py
used to attend in fp32. The forward is fine in bf16 (1.7 ms vs 2.8): it is the backward that loses.
The backward below is the one kernels/attention.py explains (its header has the derivation):

    P     = exp(c * Q K^T - lse)     masked causally          (B, H, T, T)
    dV    = P^T dO
    dP    = dO V^T
    delta = rowsum(dO * O)                                    (B, H, T, 1)
    dS    = P * (dP - delta)
    dQ    = c * dS K,    dK = c * dS^T Q

A GPU kernel never forms P; here T is short (a CPU trains contexts of a few hundred tokens), so the whole
(T, T) tile is one matrix, and the five matmuls run in bf16 on the CPU's bf16 units. Run eagerly, each
elementwise line is a pass over (B, H, T, T) numbers and the whole thing is slower than fp32 SDPA; under
torch.compile, inductor fuses them into two loops and forward + backward takes 7.3 ms against 9.8 ms.
That is why model.py uses it only while compiling.
"""
import torch


class CausalAttention(torch.autograd.Function):
    """forward: torch's CPU flash kernel (it returns the row log-sum-exp the backward needs);
    backward: the five matmuls above. k and v arrive with H heads (GQA already expanded)."""

    @staticmethod
    def forward(ctx, q, k, v):
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, True)
        ctx.save_for_backward(q, k, v, out, lse)  # lse (B, H, T) fp32: rebuilds P without storing it
        return out

    @staticmethod
    def backward(ctx, d_out):
        q, k, v, out, lse = ctx.saved_tensors
        T, scale = q.shape[-2], q.shape[-1] ** -0.5
        future = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1)  # key j > query i
        scores = q @ k.transpose(-2, -1)                                       # (B, H, T, T)
        p = torch.exp(scores.float() * scale - lse.unsqueeze(-1)).masked_fill(future, 0.0).to(q.dtype)
        d_v = p.transpose(-2, -1) @ d_out                                      # (B, H, T, D)
        d_p = d_out @ v.transpose(-2, -1)                                      # (B, H, T, T)
        delta = (d_out.float() * out.float()).sum(-1, keepdim=True)            # (B, H, T, 1)
        d_s = (p.float() * (d_p.float() - delta) * scale).to(q.dtype)          # c folded in once
        return d_s @ k, d_s.transpose(-2, -1) @ q, d_v


def cpu_attention(q, k, v):
    """Causal attention of q (B, H, T, D) over k, v (B, H_kv, T, D) -> (B, H, T, D). With fewer kv heads
    (GQA) each kv head is repeated for its group of query heads; autograd sums their gradients back."""
    group = q.shape[1] // k.shape[1]
    if group > 1:
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    return CausalAttention.apply(q, k, v)
