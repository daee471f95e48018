"""model.py: counts by hand, learning, generation with and without the KV cache, causality, GQA, the Triton
path against the torch path (interpreter on a CPU). The planner's tests are in test_plan.py."""
import pytest
import torch
import torch.nn.functional as F

import model as model_module
from common import device_peak_flops, mfu
from model import GPT, GPTConfig

TINY = dict(block_size=16, vocab_size=50, n_layer=2, n_head=4, n_kv_head=2, n_embd=32, kernels="torch")


def tiny_model(seed=0, **overrides):
    torch.manual_seed(seed)
    return GPT(GPTConfig(**{**TINY, **overrides}))


@pytest.mark.parametrize("tie", [True, False])
def test_num_params_matches_hand_formula(tie):
    V, C, L, H, Hkv, T = 50, 32, 2, 4, 2, 16
    model = tiny_model(tie_embeddings=tie)
    D = C // H
    hidden = 256  # 8/3 * 32 = 85.3, rounded up to a multiple of 256
    per_block = C * (H + 2 * Hkv) * D + C * C + C * 2 * hidden + hidden * C + 2 * C  # qkv, proj, mlp, 2 norms
    non_embedding = L * per_block + C  # + the final norm
    assert model.num_params(non_embedding=True) == non_embedding
    assert model.num_params() == non_embedding + V * C * (1 if tie else 2)
    # training FLOPs: 6 per multiplying parameter (blocks + head) + attention 12 * L * C * T
    assert model.flops_per_token() == 6 * (non_embedding + V * C) + 12 * L * C * T
    assert mfu(1000.0, 1e12, model.flops_per_token()) == pytest.approx(1000 * model.flops_per_token() / 1e12)
    assert device_peak_flops("cpu") is None  # no made-up MFU on a CPU


def test_auto_ffn_width_matches_llama_shapes():
    assert GPTConfig(n_embd=2048, n_head=32).hidden == 5632   # TinyLlama 1.1B
    assert GPTConfig(n_embd=4096, n_head=32).hidden == 11008  # Llama-2-7B
    assert GPTConfig(n_embd=128, ffn_hidden=300).hidden == 300


def test_overfits_one_batch():
    model = tiny_model(n_layer=1, vocab_size=32)
    g = torch.Generator().manual_seed(0)
    batch = torch.randint(0, 32, (4, 17), generator=g)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tensors this small only pay for a second thread's synchronisation
    try:
        for _ in range(150):
            _, loss = model(batch[:, :-1], batch[:, 1:])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    assert loss.item() < 0.05, f"loss {loss.item():.3f} after 150 steps on one batch (starts at ln 32 = 3.47)"


def test_loss_ignores_minus_one_targets():
    model = tiny_model()
    idx = torch.randint(0, 50, (2, 8))
    targets = torch.randint(0, 50, (2, 8))
    targets[0, :3] = -1
    targets[1, 5] = -1
    logits, loss = model(idx, targets)
    keep = targets != -1
    expected = F.cross_entropy(logits[keep], targets[keep])  # mean over the 12 kept positions only
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert logits.shape == (2, 8, 50)


def test_causal_future_token_does_not_change_past_logits():
    model = tiny_model()
    idx = torch.randint(0, 50, (1, 12))
    changed = idx.clone()
    changed[0, 7] = (idx[0, 7] + 1) % 50
    a, _ = model(idx)
    b, _ = model(changed)
    assert torch.equal(a[:, :7], b[:, :7])  # positions before 7 never read token 7: bit-identical
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_gqa_equals_attention_with_repeated_kv_heads():
    """A GQA model is an ordinary multi-head model whose k and v heads come in identical groups."""
    gqa = tiny_model(n_kv_head=2)
    mha = tiny_model(n_kv_head=4)
    state = gqa.state_dict()
    C, D = 32, 8
    for layer in range(2):
        key = f"transformer.h.{layer}.attn.c_attn.weight"
        q, k, v = state[key].split([C, 2 * D, 2 * D])
        repeat = lambda w: w.view(2, D, C).repeat_interleave(2, dim=0).reshape(4 * D, C)  # kv head j -> 2j, 2j+1
        state[key] = torch.cat([q, repeat(k), repeat(v)])
    mha.load_state_dict(state)
    idx = torch.randint(0, 50, (2, 16))
    torch.testing.assert_close(gqa(idx)[0], mha(idx)[0], rtol=1e-5, atol=1e-5)


def test_kv_cache_generation_equals_full_recompute():
    model = tiny_model().eval()
    prompt = torch.randint(0, 50, (2, 5))
    # 30 new tokens run past block_size (16): both paths then crop to the last 16 tokens
    cached = model.generate(prompt, 30, temperature=0)
    recomputed = model.generate(prompt, 30, temperature=0, use_cache=False)
    assert cached.shape == (2, 35)
    assert torch.equal(cached, recomputed)
    assert torch.equal(cached[:, :5], prompt)


def test_sampling_options():
    model = tiny_model().eval()
    prompt = torch.randint(0, 50, (2, 4))
    greedy = model.generate(prompt, 6, temperature=0)
    assert torch.equal(model.generate(prompt, 6, top_k=1), greedy)  # top-1 sampling is greedy
    assert torch.equal(model.generate(prompt, 6, top_p=1e-6), greedy)  # so is a tiny nucleus
    draw = lambda: model.generate(prompt, 6, temperature=1.0, top_k=10, top_p=0.9,
                                  generator=torch.Generator().manual_seed(3))
    assert torch.equal(draw(), draw())
    steps = list(model.generate_tokens(prompt, 3, temperature=0))
    assert len(steps) == 3 and all(s.shape == (2, 1) for s in steps)


def test_activation_checkpointing_gives_the_same_gradients():
    idx = torch.randint(0, 50, (2, 16))
    grads = []
    for ckpt in (False, True):
        model = tiny_model(activation_checkpointing=ckpt)
        model(idx, idx)[1].backward()
        grads.append([p.grad for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("qk_norm", [False, True])
def test_triton_and_torch_paths_agree_forward_and_backward(qk_norm):
    """Tiny shape under the Triton interpreter (TRITON_INTERPRET=1 from conftest, or a real GPU); fp32.
    Tolerance 1e-4: the kernels accumulate in fp32 like torch, in a different order. qk_norm runs the
    RMSNorm kernel on q and k, (B, H, T, D) views that are not contiguous."""
    pytest.importorskip("triton")
    shape = dict(n_layer=1, n_head=2, n_kv_head=1, n_embd=64, block_size=32, qk_norm=qk_norm)  # head_dim 32, GQA 2:1
    device = "cuda" if torch.cuda.is_available() else "cpu"
    idx = torch.randint(0, 50, (2, 17), device=device)  # T = 17: not a multiple of any tile
    outputs = []
    for kernels in ("torch", "triton"):
        model = tiny_model(kernels=kernels, **shape).to(device)
        logits, loss = model(idx, idx)
        loss.backward()
        outputs.append((logits, {n: p.grad for n, p in model.named_parameters()}))
    (a, grads_a), (b, grads_b) = outputs
    assert model_module._triton is not None  # the kernels really ran
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=1e-4, atol=1e-5, msg=name)


def test_meta_device_counts_without_memory():
    with torch.device("meta"):
        model = GPT(GPTConfig(n_layer=32, n_head=32, n_kv_head=32, n_embd=4096, vocab_size=32000,
                              block_size=4096, tie_embeddings=False))
    assert model.num_params() == 6_738_415_616  # Llama-2-7B's published count
    assert model.flops_per_token() == 6 * (6_738_415_616 - 32000 * 4096) + 12 * 32 * 4096 * 4096


def test_cpu_attention_under_bf16_autocast_computes_in_fp32():
    """model.attention on a CPU: bf16 in and out, but the softmax and both matmuls in fp32 (torch's CPU
    attention is several times slower in bf16), so it equals fp32 SDPA rounded once to bf16."""
    q, k, v = torch.randn(3, 2, 4, 17, 32).bfloat16().unbind(0)  # (B, H, T, D) each
    with torch.autocast("cpu", torch.bfloat16):
        y = model_module.attention(q, k, v, "torch")
    reference = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True)
    assert y.dtype == torch.bfloat16 and torch.equal(y, reference.bfloat16())


def test_qk_norm_makes_q_and_k_unit_rms_per_head_and_caps_the_logits():
    """qk_norm: each head's q and k have RMS 1 over D (before the gains, which start at 1), whatever the
    scale of c_attn; so |q.k| / sqrt(D) <= sqrt(D) even with c_attn's weights blown up 1000x."""
    model = tiny_model(qk_norm=True)
    attn = model.transformer.h[0].attn
    with torch.no_grad():
        attn.c_attn.weight.mul_(1000)
    x = torch.randn(2, 16, 32)
    cos, sin = model_module.rope_angles(torch.arange(16), 8, 10000.0)
    q, k, v = attn.qkv(x, cos, sin)  # (B, H, T, D), (B, H_kv, T, D) x 2
    assert q.shape == (2, 4, 16, 8) and k.shape == v.shape == (2, 2, 16, 8)
    for t in (q, k):  # RoPE rotates pairs, so the per-head RMS survives it
        torch.testing.assert_close(t.pow(2).mean(-1), torch.ones(t.shape[:-1]), rtol=1e-4, atol=1e-4)
    logits = q @ k.repeat_interleave(2, dim=1).transpose(-2, -1) / 8 ** 0.5
    assert logits.abs().max() <= 8 ** 0.5 + 1e-4
    plain = tiny_model()
    with torch.no_grad():
        plain.transformer.h[0].attn.c_attn.weight.mul_(1000)
    q0, k0, _ = plain.transformer.h[0].attn.qkv(x, cos, sin)
    assert (q0 @ k0.repeat_interleave(2, dim=1).transpose(-2, -1)).abs().max() / 8 ** 0.5 > 1000
    # off by default, and 2 x D gains per layer when on
    assert plain.transformer.h[0].attn.q_norm is None
    assert model.num_params() - plain.num_params() == 2 * 2 * 8


def test_z_loss_adds_coeff_times_mean_squared_logsumexp_in_training_only():
    idx, targets = torch.randint(0, 50, (2, 16)), torch.randint(0, 50, (2, 16))
    targets[0, :3] = -1  # ignored positions count in neither term
    plain, with_z = tiny_model(), tiny_model(z_loss=1e-2)
    logits, ce = plain(idx, targets)
    _, total = with_z(idx, targets)
    log_z = torch.logsumexp(logits.float(), dim=-1)[targets != -1]
    torch.testing.assert_close(total, ce + 1e-2 * log_z.pow(2).mean())
    with_z.eval()  # evaluation reports the cross-entropy alone
    torch.testing.assert_close(with_z(idx, targets)[1], ce)
    # its gradient pulls log Z toward 0: a small SGD step on the z term alone lowers mean(log Z^2)
    logits, _ = with_z(idx)
    before = torch.logsumexp(logits, dim=-1).pow(2).mean()
    before.backward()
    with torch.no_grad():
        for p in with_z.parameters():
            p -= 0.01 * p.grad
        assert torch.logsumexp(with_z(idx)[0], dim=-1).pow(2).mean() < before
