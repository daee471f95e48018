"""plan.py: the planner's arithmetic recomputed by hand, the shipped configs on their stated hardware, the
plan's rules of thumb, the predicted peak against a measured one on this CPU, and its command line."""
from pathlib import Path

import pytest

import plan
from model import GPT, GPTConfig

TINY = dict(block_size=16, vocab_size=50, n_layer=2, n_head=4, n_kv_head=2, n_embd=32, kernels="torch")


def test_planner_matches_hand_computation():
    """TINY in bf16, one GPU, micro-batch 3: every part of the peak recomputed from the table in plan.py."""
    c = GPTConfig(**TINY)
    memory = plan.memory_plan(c, 3, dtype_bytes=2)
    n = 50 * 32 + 2 * (32 * 64 + 32 * 32 + 32 * 512 + 256 * 32 + 64) + 32  # as in test_num_params
    matmul = n  # every parameter but the embedding lookup; tied, the head is that same matrix
    C, V, F, D, Hkv, H, tokens = 32, 50, 256, 8, 2, 4, 3 * 16
    layer = 2 * (4 * C + 4) + 2 * (2 * C + 2 * C + 2 * Hkv * D + C + 4 * F) + 4 * H  # Triton RMSNorm on a GPU
    head = 4 * C + 4 + 2 * C + 6 * V
    assert memory["weights"] == memory["grads"] == 4 * n and memory["optimizer"] == 8 * n
    assert memory["copies"] == 2 * matmul
    assert memory["activations"] == tokens * (2 * layer + head)
    assert memory["loss_grads"] == tokens * 8 * V
    grads_alive = 4 * V * C  # one micro-batch, no DDP: only the head's gradient exists early in backward
    assert memory["peak"] == 12 * n + 2 * matmul + tokens * (2 * layer + head + 8 * V) + grads_alive
    ckpt = plan.memory_plan(c, 3, dtype_bytes=2, checkpointing=True)
    assert ckpt["activations"] == tokens * (2 * 4 * C + head)
    assert ckpt["recompute"] == tokens * (layer + 2 * 2 * F)
    # four moments; checkpointed blocks' bf16 copies die after the forward, one block's come back to recompute
    A, VC = tokens * (2 * 4 * C + head), V * C
    ckpt_peak = 12 * n + max(2 * n + A + grads_alive, 2 * VC + A + tokens * 8 * V + grads_alive, 4 * n,
                             2 * VC + (n - VC) + tokens * (2 * 4 * C + layer + 4 * F) + 4 * n)
    assert ckpt["peak"] == pytest.approx(ckpt_peak)
    # the largest micro-batch is the last one whose peak fits
    usable = memory["peak"]
    assert plan.largest_batch(c, usable, dtype_bytes=2) == 3
    assert plan.memory_plan(c, 4, dtype_bytes=2)["peak"] > usable


def test_planner_model_states_match_the_zero_table():
    """In fp32 the planner's weights + grads + AdamW states (+ FSDP's gathered unit) are the ZeRO table's (plan.predicted_bytes)."""
    c = GPTConfig(**TINY)
    n, _, unit = plan.counts(c)
    for mode, options in [("ddp", {}), ("zero", dict(zero=1)), ("fsdp", dict(fsdp=True))]:
        memory = plan.memory_plan(c, 1, dtype_bytes=4, world_size=4, **options)
        states = memory["weights"] + memory["grads"] + memory["optimizer"] + memory["unit"]
        assert states == pytest.approx(plan.predicted_bytes(mode, n, 4, unit)), mode


@pytest.mark.parametrize("name,gpus,gib,offload", [("124m", 1, 24, False), ("1b", 8, 80, False), ("1b", 1, 80, False),
                                                    ("7b", 8, 80, False), ("7b", 1, 80, True)])
def test_shipped_configs_fit_their_hardware(name, gpus, gib, offload):
    """Each config's header names its hardware: 124m one 24 GB GPU, 1b 8 (or 1) x 80 GB, 7b 8 x 80 GB (or
    one, with --cpu_offload=True)."""
    c, values = plan.read_config(str(Path(__file__).resolve().parent.parent / "config" / f"{name}.py"))
    accum = values["tokens_per_step"] // (values["batch_size"] * c.block_size * gpus)
    memory = plan.memory_plan(c, values["batch_size"], world_size=gpus, grad_accum=accum, fsdp=values["fsdp"],
                             offload=offload, checkpointing=c.activation_checkpointing)
    assert memory["peak"] <= plan.usable_bytes(gib), f"config/{name}.py does not fit {gpus} x {gib} GiB"


def test_planner_rules_of_thumb():
    """The seeds' rules: 1B ~ 20 GB with AdamW; one 80 GB GPU trains 3-4B plainly and 7B with offload."""
    llama = lambda L, C, H, Hkv, F: GPTConfig(block_size=2048, vocab_size=32000, n_layer=L, n_head=H,
                                               n_kv_head=Hkv, n_embd=C, ffn_hidden=F, tie_embeddings=False)
    tiny_llama = plan.memory_plan(llama(22, 2048, 32, 4, 5632), 1)
    states = tiny_llama["weights"] + tiny_llama["grads"] + tiny_llama["optimizer"] + tiny_llama["copies"]
    assert 18e9 < states < 21e9
    usable = plan.usable_bytes(80)
    assert plan.largest_batch(llama(26, 3200, 32, 32, 8640), usable) >= 1                # 3.4B fits
    assert plan.largest_batch(llama(32, 4096, 32, 32, 11008), usable, checkpointing=True) == 0  # 7B does not
    assert plan.largest_batch(llama(32, 4096, 32, 32, 11008), usable, checkpointing=True, fsdp=True,
                               offload=True) >= 1                                           # unless offloaded


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="measures peak RSS through Linux's /proc")
def test_predicted_peak_within_15_percent_of_measured_on_cpu():
    """On this CPU, in a fresh process (peak RSS): fp32 plain; checkpointing where the recomputed layer
    outweighs the head, in fp32 and under bf16 autocast. Smaller than README's table (`python plan.py
    --validate`), to stay fast."""
    shape = dict(n_embd=128, n_head=2, n_kv_head=1, vocab_size=512, block_size=256)
    ratios = plan.validate([({**shape, "n_layer": 2, "vocab_size": 2048}, 4, 1, "float32"),
                             ({**shape, "n_layer": 6, "activation_checkpointing": True}, 4, 1, "float32"),
                             ({**shape, "n_layer": 6, "activation_checkpointing": True}, 4, 2, "bfloat16")])
    assert all(0.85 <= r <= 1.15 for r in ratios), ratios


def test_planner_cli_on_a_config(tmp_path, capsys):
    path = tmp_path / "c.py"
    path.write_text("n_layer = 2\nn_head = 4\nn_kv_head = 2\nn_embd = 32\nblock_size = 16\nvocab_size = 50\n"
                    "batch_size = 4\ngradient_accumulation_steps = 2\n")
    plan.report(str(path), "A100-80", 0, 2, 0, False, False, False, 0, 0.5, 2.0)
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
    plan.report(str(path), "H100", gpus=2)  # as train.py: 512 / (4 x 16 x 2 GPUs) = 4 micro-batches
    assert "tokens per step 512 = 4 x 16 x 4 x 2 GPU(s)" in capsys.readouterr().out
    path.write_text("n_layer = 2\nn_head = 3\nn_embd = 32\n")
    with pytest.raises(SystemExit, match="c.py"):
        plan.read_config(str(path))


