"""model.py: counts by hand, learning, generation with and without the KV cache, causality, GQA, the Triton
path against the torch path (interpreter on a CPU), and the planner's arithmetic."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import model as model_module
from model import GPT, GPTConfig, mfu

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
    assert model_module.device_peak_flops("cpu") is None  # no made-up MFU on a CPU


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


def test_triton_and_torch_paths_agree_forward_and_backward():
    """Tiny shape under the Triton interpreter (TRITON_INTERPRET=1 from conftest, or a real GPU); fp32.
    Tolerance 1e-4: the kernels accumulate in fp32 like torch, in a different order."""
    pytest.importorskip("triton")
    shape = dict(n_layer=1, n_head=2, n_kv_head=1, n_embd=64, block_size=32)  # head_dim 32, GQA 2:1
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


# -----------------------------------------------------------------------------
# the planner


def test_planner_matches_hand_computation():
    """TINY in bf16, one GPU, micro-batch 3: every part of the peak recomputed from the table in model.py."""
    import model
    c = GPTConfig(**TINY)
    plan = model.memory_plan(c, 3, a=2)
    n = 50 * 32 + 2 * (32 * 64 + 32 * 32 + 32 * 512 + 256 * 32 + 64) + 32  # as in test_num_params
    matmul = n  # every parameter but the embedding lookup; tied, the head is that same matrix
    C, V, F, D, Hkv, H, tokens = 32, 50, 256, 8, 2, 4, 3 * 16
    layer = 2 * (4 * C + 4) + 2 * (2 * C + 2 * C + 2 * Hkv * D + C + 4 * F) + 4 * H  # Triton RMSNorm on a GPU
    head = 4 * C + 4 + 2 * C + 6 * V
    assert plan["weights"] == plan["grads"] == 4 * n and plan["optimizer"] == 8 * n
    assert plan["copies"] == 2 * matmul
    assert plan["activations"] == tokens * (2 * layer + head)
    assert plan["loss_grads"] == tokens * 8 * V
    grads_alive = 4 * V * C  # one micro-batch, no DDP: only the head's gradient exists early in backward
    assert plan["peak"] == 12 * n + 2 * matmul + tokens * (2 * layer + head + 8 * V) + grads_alive
    ckpt = model.memory_plan(c, 3, a=2, checkpointing=True)
    assert ckpt["activations"] == tokens * (2 * 4 * C + head)
    assert ckpt["recompute"] == tokens * (layer + 2 * 2 * F)
    # four moments; checkpointed blocks' bf16 copies die after the forward, one block's come back to recompute
    A, VC = tokens * (2 * 4 * C + head), V * C
    ckpt_peak = 12 * n + max(2 * n + A + grads_alive, 2 * VC + A + tokens * 8 * V + grads_alive, 4 * n,
                             2 * VC + (n - VC) + tokens * (2 * 4 * C + layer + 4 * F) + 4 * n)
    assert ckpt["peak"] == pytest.approx(ckpt_peak)
    # the largest micro-batch is the last one whose peak fits
    usable = plan["peak"]
    assert model.largest_batch(c, usable, a=2) == 3
    assert model.memory_plan(c, 4, a=2)["peak"] > usable


def test_planner_model_states_match_parallel_table():
    """In fp32 the planner's weights + grads + AdamW states (+ FSDP's gathered unit) are parallel.py's formulas."""
    parallel = pytest.importorskip("parallel")
    import model
    c = GPTConfig(**TINY)
    n, _, unit = model.counts(c)
    for mode, options in [("ddp", {}), ("zero", dict(zero=1)), ("fsdp", dict(fsdp=True))]:
        plan = model.memory_plan(c, 1, a=4, world_size=4, **options)
        states = plan["weights"] + plan["grads"] + plan["optimizer"] + plan["unit"]
        assert states == pytest.approx(parallel.predicted_bytes(mode, n, 4, unit)), mode


@pytest.mark.parametrize("name,gpus,gib,offload", [("124m", 1, 24, False), ("1b", 8, 80, False), ("1b", 1, 80, False),
                                                    ("7b", 8, 80, False), ("7b", 1, 80, True)])
def test_shipped_configs_fit_their_hardware(name, gpus, gib, offload):
    """Each config's header names its hardware: 124m one 24 GB GPU, 1b 8 (or 1) x 80 GB, 7b 8 x 80 GB (or
    one, with --cpu_offload=True)."""
    import model
    c, values = model.read_config(str(Path(__file__).resolve().parent.parent / "config" / f"{name}.py"))
    accum = values["tokens_per_step"] // (values["batch_size"] * c.block_size * gpus)
    plan = model.memory_plan(c, values["batch_size"], world_size=gpus, grad_accum=accum, fsdp=values["fsdp"],
                             offload=offload, checkpointing=c.activation_checkpointing)
    assert plan["peak"] <= model.usable_bytes(gib), f"config/{name}.py does not fit {gpus} x {gib} GiB"


def test_planner_rules_of_thumb():
    """The seeds' rules: 1B ~ 20 GB with AdamW; one 80 GB GPU trains 3-4B plainly and 7B with offload."""
    import model
    llama = lambda L, C, H, Hkv, F: GPTConfig(block_size=2048, vocab_size=32000, n_layer=L, n_head=H,
                                               n_kv_head=Hkv, n_embd=C, ffn_hidden=F, tie_embeddings=False)
    tiny_llama = model.memory_plan(llama(22, 2048, 32, 4, 5632), 1)
    states = tiny_llama["weights"] + tiny_llama["grads"] + tiny_llama["optimizer"] + tiny_llama["copies"]
    assert 18e9 < states < 21e9
    usable = model.usable_bytes(80)
    assert model.largest_batch(llama(26, 3200, 32, 32, 8640), usable) >= 1                # 3.4B fits
    assert model.largest_batch(llama(32, 4096, 32, 32, 11008), usable, checkpointing=True) == 0  # 7B does not
    assert model.largest_batch(llama(32, 4096, 32, 32, 11008), usable, checkpointing=True, fsdp=True,
                               offload=True) >= 1                                           # unless offloaded


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="measures peak RSS through Linux's /proc")
def test_predicted_peak_within_15_percent_of_measured_on_cpu():
    """On this CPU, in a fresh process (peak RSS): fp32 plain; checkpointing where the recomputed layer
    outweighs the head, in fp32 and under bf16 autocast. Smaller than README's table (`python model.py
    --validate`), to stay fast."""
    import model
    shape = dict(n_embd=128, n_head=2, n_kv_head=1, vocab_size=512, block_size=256)
    ratios = model.validate([({**shape, "n_layer": 2, "vocab_size": 2048}, 4, 1, "float32"),
                             ({**shape, "n_layer": 6, "activation_checkpointing": True}, 4, 1, "float32"),
                             ({**shape, "n_layer": 6, "activation_checkpointing": True}, 4, 2, "bfloat16")])
    assert all(0.85 <= r <= 1.15 for r in ratios), ratios


def test_planner_cli_on_a_config(tmp_path, capsys):
    import model
    path = tmp_path / "c.py"
    path.write_text("n_layer = 2\nn_head = 4\nn_kv_head = 2\nn_embd = 32\nblock_size = 16\nvocab_size = 50\n"
                    "batch_size = 4\ngradient_accumulation_steps = 2\n")
    model.report(str(path), "A100-80", 0, 2, 0, False, False, False, 0, 0.5, 2.0)
    out = capsys.readouterr().out
    n = GPT(GPTConfig(**TINY)).num_params()
    assert f"parameters       {n:,}" in out and "FITS" in out
    assert f"tokens per step 256 = 4 x 16 x 2 x 2 GPU(s) -> {-(-20 * n // 256):,} steps" in out
    # ZeRO stages over 2 GPUs, bytes per parameter: weights, grads, AdamW, total (16, 12, 10, 8)
    for stage, row in [("0: DDP", "4 4 8 16"), ("1: --zero=1", "4 4 4 12"), ("2: + gradients", "4 2 4 10"),
                       ("3: --fsdp=True", "2 2 4 8")]:
        line = next(line for line in out.splitlines() if line.strip().startswith(stage))
        assert " ".join(line.split()[-5:-1]) == row, line  # the last column is GiB
    path.write_text(path.read_text().replace("gradient_accumulation_steps = 2", "tokens_per_step = 512"))
    model.report(str(path), "H100", gpus=2)  # as train.py: 512 / (4 x 16 x 2 GPUs) = 4 micro-batches
    assert "tokens per step 512 = 4 x 16 x 4 x 2 GPU(s)" in capsys.readouterr().out
    path.write_text("n_layer = 2\nn_head = 3\nn_embd = 32\n")
    with pytest.raises(SystemExit, match="c.py"):
        model.read_config(str(path))


def test_cpu_attention_under_bf16_autocast_computes_in_fp32():
    """model.attention on a CPU: bf16 in and out, but the softmax and both matmuls in fp32 (torch's CPU
    attention is several times slower in bf16), so it equals fp32 SDPA rounded once to bf16."""
    q, k, v = torch.randn(3, 2, 4, 17, 32).bfloat16().unbind(0)  # (B, H, T, D) each
    with torch.autocast("cpu", torch.bfloat16):
        y = model_module.attention(q, k, v, "torch")
    reference = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True)
    assert y.dtype == torch.bfloat16 and torch.equal(y, reference.bfloat16())
