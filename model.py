"""
model.py — a compact decoder-only transformer in the style 1B-7B open models use, and a memory planner.

    idx (B, T) -> token embedding -> n_layer x [x + attn(norm(x)); x + mlp(norm(x))] -> norm -> head -> logits

- RMSNorm before each sublayer (pre-norm): the residual stream x is never normalised in place, so the
  gradient has a clean path from the loss to the embedding.
- Rotary position embeddings (RoPE): q and k are rotated by an angle proportional to their position, so
  q.k depends only on the distance between tokens. No learned position table.
- SwiGLU MLP: silu(x W_gate) * (x W_up) W_down.
- Grouped-query attention: n_head query heads share n_kv_head key/value heads (a smaller KV cache).
- No biases anywhere; the output head may share the embedding matrix (tie_embeddings).
- Two fixes for the instabilities of high learning rates (Wortsman et al. 2023, arXiv:2309.14322), off by
  default: qk_norm (q and k normalised per head, so q.k cannot grow without bound: attention-logit growth)
  and z_loss (a penalty on log Z = logsumexp(logits), so the output logits cannot drift: logit divergence).

The model knows no loop, no optimizer and no GPU budget: train.py trains it, plan.py answers "will it fit,
how long, what will it cost?" from the same GPTConfig, sample.py and eval.py load it from checkpoints.
"""
import math
import os
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

# -----------------------------------------------------------------------------
# the configuration


@dataclass
class GPTConfig:
    block_size: int = 256                   # context length: the longest sequence the model sees
    vocab_size: int = 4096                  # rows of the embedding table and the output head
    n_layer: int = 4                        # transformer blocks
    n_head: int = 4                         # query heads; head_dim = n_embd // n_head
    n_kv_head: int = 4                      # key/value heads, a divisor of n_head (< n_head: GQA)
    n_embd: int = 128                       # residual stream width C
    ffn_hidden: int = 0                     # SwiGLU hidden width; 0 = 8/3 * n_embd rounded up to 256
    tie_embeddings: bool = True             # the output head reuses the embedding matrix
    rope_theta: float = 10000.0             # RoPE base: pair i of a head turns at theta^(-2i/head_dim)
    norm_eps: float = 1e-6                  # RMSNorm's epsilon
    kernels: str = "auto"                   # "auto" (Triton on CUDA) | "triton" | "torch"
    activation_checkpointing: bool = False  # recompute each block in backward instead of storing it
    qk_norm: bool = False                   # RMSNorm q and k per head before RoPE: caps the attention logits
    z_loss: float = 0.0                     # training adds z_loss * mean(logsumexp(logits)^2): keeps logits near 0

    def __post_init__(self):
        if self.n_embd % self.n_head or self.n_head % self.n_kv_head:
            raise ValueError(f"GPTConfig: n_embd={self.n_embd} must divide by n_head={self.n_head}, "
                             f"and n_head by n_kv_head={self.n_kv_head}")
        if (self.n_embd // self.n_head) % 2:
            raise ValueError(f"GPTConfig: head_dim={self.n_embd // self.n_head} must be even for RoPE")
        if self.kernels not in ("auto", "triton", "torch"):
            raise ValueError(f"GPTConfig: kernels={self.kernels!r}, want 'auto', 'triton' or 'torch'")

    @property
    def hidden(self):
        """SwiGLU has three matrices instead of two, so 8/3 * C keeps the MLP at the 8C^2 parameters of
        a 4C GELU MLP; rounding up to 256 (as Llama does) gives 5632 at C=2048 and 11008 at C=4096."""
        return self.ffn_hidden or 256 * math.ceil(8 * self.n_embd / 3 / 256)


# -----------------------------------------------------------------------------
# kernel dispatch: the Triton kernels of kernels/ on a GPU, plain torch elsewhere

_triton = None  # the two kernel functions, imported on first use (importing triton costs ~1 s)


def triton_kernels():
    global _triton
    if _triton is None:
        from kernels.attention import flash_attention
        from kernels.rmsnorm import rms_norm
        _triton = (flash_attention, rms_norm)
    return _triton


def use_triton(mode, x):
    """kernels="auto": Triton when x is on a GPU and triton imports; "triton"/"torch" force a path
    ("triton" on a CPU needs TRITON_INTERPRET=1 set before the first import, as tests/conftest.py does)."""
    if mode == "torch":
        return False
    if mode == "triton":
        if not x.is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
            raise RuntimeError("model.py: kernels='triton' on a CPU needs TRITON_INTERPRET=1 (set before "
                               "triton is imported); use kernels='torch' or 'auto' instead")
        return True
    if not x.is_cuda:
        return False
    try:
        triton_kernels()
        return True
    except ImportError:
        return False


def attention(q, k, v, mode, mask=None):
    """Causal softmax attention of q (B, H, Tq, D) over k, v (B, H_kv, Tk, D) -> (B, H, Tq, D).
    mask=None means plain causal with Tq == Tk (training, prefill); a KV-cache step passes a (Tq, Tk)
    boolean mask instead, which only SDPA takes (the Triton kernel wants Tq == Tk, and head dims <= 128)."""
    if mask is None and (mode == "triton" or q.shape[-1] <= 128) and use_triton(mode, q):
        return triton_kernels()[0](q, k, v, causal=True)
    if q.device.type == "cpu" and q.dtype == torch.bfloat16:
        # torch's CPU attention backward is 1.7x slower in bf16 than in fp32 (kernels/cpu_attention.py has
        # the figures). Compiled, our own bf16 attention beats both; eagerly, attend in fp32 (autocast off,
        # or it would cast back) and round the output to bf16. T <= 512: that backward holds (B, H, T, T).
        if mask is None and torch.compiler.is_compiling() and q.shape[-2] <= 512:
            from kernels.cpu_attention import cpu_attention
            return cpu_attention(q, k, v)
        with torch.autocast("cpu", enabled=False):
            y = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask,
                                               is_causal=mask is None, enable_gqa=True)
        return y.type_as(q)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None, enable_gqa=True)


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x^2) + eps) * weight, over the last dim; computed in fp32, returned in x's dtype."""

    def __init__(self, dim, eps, mode):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps, self.mode = eps, mode

    def forward(self, x):
        if use_triton(self.mode, x):
            return triton_kernels()[1](x, self.weight, self.eps)
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight.float()).type_as(x)


# -----------------------------------------------------------------------------
# rotary position embeddings


def rope_angles(positions, head_dim, theta):
    """cos and sin (T, head_dim/2) in fp32 for the given positions (T,). Pair i turns at theta^(-2i/D):
    the first pairs spin fast (local order), the last ones slowly (long range). GPT keeps them for every
    position as buffers (not saved: they follow from the config)."""
    freqs = theta ** (-torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim)
    angles = positions.float()[:, None] * freqs[None, :]  # (T, D/2)
    return angles.cos(), angles.sin()


def apply_rope(x, cos, sin):
    """Rotate x (B, H, T, D): the pair (x[i], x[i + D/2]) turns by angle (t, i), as in Llama / GPT-NeoX."""
    x1, x2 = x.float().chunk(2, dim=-1)  # (B, H, T, D/2) each
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).type_as(x)


# -----------------------------------------------------------------------------
# the blocks


class KVCache:
    """Keys and values of the tokens generated so far, per layer: (B, H_kv, block_size, D) preallocated,
    filled up to `pos`. Generation then feeds one new token per step instead of the whole sequence."""

    def __init__(self, config, batch_size, device, dtype):
        shape = (batch_size, config.n_kv_head, config.block_size, config.n_embd // config.n_head)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.pos = 0

    def update(self, layer, k, v):
        """Store k, v (B, H_kv, T, D) at positions pos..pos+T-1; return all keys and values so far."""
        T = k.shape[2]
        self.k[layer][:, :, self.pos:self.pos + T] = k
        self.v[layer][:, :, self.pos:self.pos + T] = v
        return self.k[layer][:, :, :self.pos + T], self.v[layer][:, :, :self.pos + T]


class CausalSelfAttention(nn.Module):
    def __init__(self, config, layer):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.n_kv_head, config.n_embd // config.n_head
        self.layer, self.mode = layer, config.kernels
        # q for every head, k and v only for the kv heads, in one matmul
        self.c_attn = nn.Linear(config.n_embd, (config.n_head + 2 * config.n_kv_head) * self.head_dim, bias=False)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=False)
        # qk_norm: one gain vector (D,) for all heads of q, one for k. Without it a high LR grows |q|, |k|
        # until softmax(q.k) is one-hot (attention-entropy collapse); with it |q.k| <= D * gain_q * gain_k.
        self.q_norm = RMSNorm(self.head_dim, config.norm_eps, config.kernels) if config.qk_norm else None
        self.k_norm = RMSNorm(self.head_dim, config.norm_eps, config.kernels) if config.qk_norm else None

    def qkv(self, x, cos, sin):
        """x (B, T, C) -> q (B, H, T, D), k and v (B, H_kv, T, D): projected, normalised (qk_norm), rotated."""
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split([C, self.n_kv_head * self.head_dim, self.n_kv_head * self.head_dim], dim=-1)
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)     # (B, H, T, D)
        k = k.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, H_kv, T, D)
        v = v.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, H_kv, T, D)
        v = v.contiguous()  # a copy: else v, a view, would keep the whole c_attn output alive for backward
        if self.q_norm is not None:  # over D, per head and position, before RoPE (a rotation keeps the norm)
            q, k = self.q_norm(q), self.k_norm(k)
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v

    def forward(self, x, cos, sin, cache=None):
        B, T, C = x.size()
        q, k, v = self.qkv(x, cos, sin)
        mask = None
        if cache is not None and cache.pos > 0:
            # the new queries sit at positions pos..pos+T-1 and see every key up to their own position
            query_pos = cache.pos + torch.arange(T, device=x.device)
            mask = torch.arange(cache.pos + T, device=x.device)[None, :] <= query_pos[:, None]  # (T, pos+T)
        if cache is not None:
            k, v = cache.update(self.layer, k, v)
        y = attention(q, k, v, self.mode, mask)                           # (B, H, T, D)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 2 * config.hidden, bias=False)  # gate and up, one matmul
        self.c_proj = nn.Linear(config.hidden, config.n_embd, bias=False)

    def forward(self, x):
        gate, up = self.c_fc(x).chunk(2, dim=-1)  # (B, T, hidden) each
        return self.c_proj(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, config, layer):
        super().__init__()
        self.ln_1 = RMSNorm(config.n_embd, config.norm_eps, config.kernels)
        self.attn = CausalSelfAttention(config, layer)
        self.ln_2 = RMSNorm(config.n_embd, config.norm_eps, config.kernels)
        self.mlp = MLP(config)

    def forward(self, x, cos, sin, cache=None):
        x = x + self.attn(self.ln_1(x), cos, sin, cache)
        return x + self.mlp(self.ln_2(x))


# -----------------------------------------------------------------------------
# the model


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            h=nn.ModuleList(Block(config, layer) for layer in range(config.n_layer)),
            ln_f=RMSNorm(config.n_embd, config.norm_eps, config.kernels),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # RoPE's angles once, not per forward: computed inside the forward, torch.compile fuses them into each
        # kernel that reads them, and every element of q and k recomputed a cos and a sin (2026-12-07, CPU)
        cos, sin = rope_angles(torch.arange(config.block_size), config.n_embd // config.n_head, config.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)  # (block_size, head_dim/2) fp32
        self.register_buffer("rope_sin", sin, persistent=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.transformer.wte.weight
        self.apply(self._init_weights)
        # Each block ADDS two outputs (attention's and the MLP's c_proj) to the residual stream; with
        # std 0.02 each, the stream's variance would grow with 2 * n_layer. Scaling those two matrices by
        # 1/sqrt(2 * n_layer) keeps the stream's size independent of depth (GPT-2's init).
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):  # every matrix N(0, 0.02); RMSNorm gains are 1
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets=None, cache=None):
        """idx (B, T) int64 -> logits (B, T, vocab), and the mean cross-entropy over targets != -1.
        With a KVCache (generation only) the tokens continue the cached ones and only the last
        position's logits are computed: (B, 1, vocab)."""
        B, T = idx.size()
        start = cache.pos if cache is not None else 0
        if start + T > self.config.block_size:
            raise ValueError(f"model.py: {start + T} tokens > block_size {self.config.block_size}")
        cos, sin = self.rope_cos[start:start + T], self.rope_sin[start:start + T]  # (T, head_dim/2) each
        x = self.transformer.wte(idx)  # (B, T, C)
        for block in self.transformer.h:
            if self.config.activation_checkpointing and self.training and torch.is_grad_enabled():
                # keep only x; rerun the block in backward to get its activations back (one more forward)
                x = checkpoint(block, x, cos, sin, use_reentrant=False)
            else:
                x = block(x, cos, sin, cache)
        if cache is not None:
            cache.pos += T
            x = x[:, -1:]
        logits = self.lm_head(self.transformer.ln_f(x))  # (B, T, vocab)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-1)
            if self.config.z_loss and self.training:  # PaLM's z-loss, training only: eval loss stays pure CE
                log_z = torch.logsumexp(logits.float(), dim=-1)[targets != -1]  # (tokens,)
                loss = loss + self.config.z_loss * log_z.pow(2).mean()
        return logits, loss

    # -------------------------------------------------------------------------
    # generation

    @torch.no_grad()
    def generate_tokens(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, use_cache=True,
                        generator=None):
        """Yield the next token (B, 1) max_new_tokens times, continuing idx (B, T).

        With the cache, the prompt is run once (prefill) and then each step feeds only its new token.
        The context is cropped to the last block_size tokens, as without the cache: once the cache is
        full, each step recomputes the cropped window (prefill again), so cached and uncached generation
        see exactly the same tokens at the same positions."""
        block_size = self.config.block_size
        cache = None
        for _ in range(max_new_tokens):
            if not use_cache:
                logits, _ = self(idx[:, -block_size:])
            elif cache is None or cache.pos == block_size:
                cache = KVCache(self.config, idx.size(0), idx.device, self.lm_head.weight.dtype)
                logits, _ = self(idx[:, -block_size:], cache=cache)
            else:
                logits, _ = self(idx[:, -1:], cache=cache)
            next_token = sample_next(logits[:, -1, :].float(), temperature, top_k, top_p, generator)
            idx = torch.cat([idx, next_token], dim=1)
            yield next_token

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, use_cache=True,
                 generator=None):
        """idx (B, T) -> (B, T + max_new_tokens): the prompt followed by the generated tokens."""
        new = list(self.generate_tokens(idx, max_new_tokens, temperature, top_k, top_p, use_cache, generator))
        return torch.cat([idx] + new, dim=1)

    # -------------------------------------------------------------------------
    # counting

    def num_params(self, non_embedding=False):
        """Parameters (a tied matrix counted once). non_embedding: without the vocab x C matrices (the
        embedding table and an untied head), i.e. the blocks plus the final norm, as scaling laws count."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.transformer.wte.weight.numel()
            if not self.config.tie_embeddings:
                n -= self.lm_head.weight.numel()
        return n

    def flops_per_token(self):
        """Training FLOPs (forward + backward) per token, as PaLM (appendix B) and nanoGPT count for MFU:
        6 per parameter that multiplies an activation (a matmul is 2 FLOPs per weight forward, 4 backward):
        every parameter but the embedding lookup (the norm gains, a rounding error, included); plus attention's two (T x T x D)
        matmuls per head, 2 * 2 * T * C forward per token and layer, x3 with backward = 12 * L * C * T
        (counted without the causal half, as PaLM does). Norms, softmax and RoPE are left out."""
        c = self.config
        matmul_params = self.num_params(non_embedding=True) + c.vocab_size * c.n_embd
        return 6 * matmul_params + 12 * c.n_layer * c.n_embd * c.block_size


def sample_next(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    """logits (B, vocab) -> next token (B, 1). temperature 0 = greedy (argmax); top_k keeps the k most
    likely tokens; top_p keeps the smallest set whose probability reaches p (nucleus sampling)."""
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        sorted_logits, order = torch.sort(logits, descending=True)
        before = sorted_logits.softmax(-1).cumsum(-1) - sorted_logits.softmax(-1)  # mass of the tokens above
        sorted_logits = sorted_logits.masked_fill(before >= top_p, float("-inf"))  # the first always stays
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return torch.multinomial(logits.softmax(-1), 1, generator=generator)
