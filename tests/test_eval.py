"""eval.py: loss / perplexity / bits per byte against hand computations, the multiple-choice loaders and
scoring (a random model at chance), the HuggingFace export (weights read back, logits of an independent
Llama forward, and transformers' own when installed), and the run-comparison report."""
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import eval as ev
from test_sample import TEXT, make_run, one_thread, tokenizer_dir  # noqa: F401  (fixtures)
from tokenizer import load_tokenizer

FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures"


class Bigram(torch.nn.Module):
    """A model whose logits we choose: logits at position t = table[idx[t]], whatever came before."""

    def __init__(self, vocab, block_size, seed=0):
        super().__init__()
        self.config = SimpleNamespace(block_size=block_size)
        self.table = torch.nn.Parameter(torch.randn(vocab, vocab, generator=torch.Generator().manual_seed(seed)))

    def forward(self, idx, targets=None):
        return self.table[idx], None


class Unigram(Bigram):
    """logits = table[0] at every position: log p(ending) = sum of log_softmax(table[0]) over its tokens."""

    def forward(self, idx, targets=None):
        return self.table[0].expand(*idx.shape, -1), None


# -----------------------------------------------------------------------------
# loss, perplexity, bits per byte


def test_perplexity_of_a_known_model_equals_the_hand_computation():
    vocab, tokens = 11, np.random.default_rng(0).integers(0, 11, 37)  # 37: the last window is a short one
    model = Bigram(vocab, block_size=8)
    table = model.table.detach().numpy().astype(np.float64)
    # by hand: -log softmax(table[previous])[token] for every token after the first
    nll = [np.log(np.exp(table[a]).sum()) - table[a][b] for a, b in zip(tokens[:-1], tokens[1:])]
    total, count = ev.sum_nll(model, tokens, batch_size=3)
    assert count == 36 and total / count == pytest.approx(np.mean(nll), abs=1e-5)
    total, count = ev.sum_nll(model, tokens, max_tokens=10)
    assert count == 10 and total / count == pytest.approx(np.mean(nll[:10]), abs=1e-5)
    r = ev.loss_report(6.0, 3, tokens=100, n_bytes=400)  # loss 2 nats/token
    assert r["loss"] == 2 and r["perplexity"] == pytest.approx(math.e ** 2)
    assert r["bpb"] == pytest.approx(2 * 100 / (400 * math.log(2)))  # 0.7213 bits per byte


def test_windows_give_a_gpt_the_context_of_its_window(run_and_enc):
    (model, enc), T = run_and_enc, 32
    tokens = np.array(([enc.eot_token] + enc.encode_ordinary(TEXT))[:2 * T + 1])  # exactly two windows
    w = torch.from_numpy(tokens).long()
    by_window = [model(w[None, s:s + T], w[None, s + 1:s + T + 1])[1].item() for s in (0, T)]
    total, count = ev.sum_nll(model, tokens)
    assert count == 2 * T and total / count == pytest.approx(np.mean(by_window), rel=1e-5)


@pytest.fixture
def run_and_enc(tmp_path, tokenizer_dir):  # noqa: F811
    return make_run(tmp_path / "run", tokenizer_dir), load_tokenizer(tokenizer_dir)


def make_dataset(data_dir, enc):
    """A dataset dir as prepare.py writes it: val bins (documents preceded by <|endoftext|>) + meta.json."""
    data_dir.mkdir()
    bins = {}
    for name, docs in [("val.bin", TEXT.split("\n")[:6]), ("val_code.bin", TEXT.split("\n")[1:5])]:
        ids = [i for d in docs for i in [enc.eot_token] + enc.encode_ordinary(d)]
        np.array(ids, dtype=np.uint16).tofile(data_dir / name)
        bins[name] = {"tokens": len(ids), "bytes": sum(len(d.encode()) for d in docs), "docs": len(docs)}
    (data_dir / "meta.json").write_text(json.dumps({"vocab_size": enc.n_vocab, "bins": bins}))
    return bins


def test_eval_cli_writes_loss_ppl_bpb_and_samples(tmp_path, tokenizer_dir, capsys):  # noqa: F811
    enc = load_tokenizer(tokenizer_dir)
    bins = make_dataset(tmp_path / "data", enc)
    make_run(tmp_path / "run", tokenizer_dir, dataset=str(tmp_path / "data"))
    ev.main(["--ckpt", str(tmp_path / "run")])
    result = json.loads((tmp_path / "run" / "eval.json").read_text())["loss"]
    assert set(result["bins"]) == {"val.bin", "val_code.bin"} and result["step"] == 5
    for name, r in result["bins"].items():
        assert r["tokens_scored"] == bins[name]["tokens"] - 1
        assert r["perplexity"] == pytest.approx(math.exp(r["loss"]))
        assert r["bpb"] == pytest.approx(r["loss"] * bins[name]["tokens"] / (bins[name]["bytes"] * math.log(2)))
    assert [s["prompt"] for s in result["samples"]] == ev.PROMPTS and all(s["output"] for s in result["samples"])
    assert "val_code.bin" in capsys.readouterr().out
    text = tmp_path / "notes.txt"
    text.write_text("Crème brûlée for ROMEO.\n")
    ev.main(["--ckpt", str(tmp_path / "run"), "--text", str(text), "--no-samples"])
    r = json.loads((tmp_path / "run" / "eval.json").read_text())["loss:notes.txt"]["bins"]["notes.txt"]
    n = 1 + len(enc.encode_ordinary(text.read_text()))
    assert r["tokens_scored"] == n - 1
    assert r["bpb"] == pytest.approx(r["loss"] * n / (len(text.read_bytes()) * math.log(2)))
    with pytest.raises(SystemExit, match="missing.bin: no such file"):
        ev.main(["--ckpt", str(tmp_path / "run"), "--bin", str(tmp_path / "missing.bin")])


# -----------------------------------------------------------------------------
# multiple choice


def test_loaders_parse_the_fixtures():
    hs = ev.load_mc(FIXTURES / "hellaswag_sample.jsonl")  # format detected from the fields
    assert [i["label"] for i in hs] == [2, 0, 1] and all(len(i["endings"]) == 4 for i in hs)
    assert hs[0]["context"] == "Making tea: A woman fills a kettle at the sink and sets it on the stove. She"
    # [title] -> sentence break, [header] / [step] dropped, double spaces closed, ctx_b capitalised
    assert hs[1]["context"] == ("Home and Garden: How to water a cactus. Check the soil first. Push a finger into "
                                "the soil up to the second knuckle. If the soil")
    assert hs[1]["endings"][1] == " is blue. paint it green again."
    arc = ev.load_mc(FIXTURES / "arc_sample.jsonl", "arc")
    assert [i["label"] for i in arc] == [1, 0, 2, 4] and [len(i["endings"]) for i in arc] == [4, 4, 3, 5]
    assert arc[0]["context"] == "Question: Which of these is a source of light?\nAnswer:"
    assert arc[0]["endings"][1] == " the Sun"
    generic = ev.load_mc(FIXTURES / "generic_mc.jsonl")
    assert len(generic) == 3 and generic[2] == {"context": "One, two, three,", "endings": [" banana", " four"],
                                                "label": 1}


def test_loaders_reject_bad_files(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"context": "a", "endings": ["b"], "label": 0}\nnot json\n')
    with pytest.raises(SystemExit, match="bad.jsonl:2: not JSON"):
        ev.load_mc(bad)
    bad.write_text('{"context": "a", "endings": [" b", " c"], "label": 2}\n')
    with pytest.raises(SystemExit, match="item 1 has label 2"):
        ev.load_mc(bad)
    with pytest.raises(SystemExit, match="not arc-format"):
        ev.load_mc(FIXTURES / "generic_mc.jsonl", "arc")


def test_scoring_sums_ending_log_likelihoods(tokenizer_dir):  # noqa: F811
    enc = load_tokenizer(tokenizer_dir)
    model = Unigram(enc.n_vocab, block_size=16)
    logp = model.table[0].detach().double().log_softmax(-1)
    context = enc.encode_ordinary(TEXT)[:100]  # longer than block_size: the rows are cropped from the left
    endings = [enc.encode_ordinary(e) for e in [" yes", " no way at all", " maybe"]]
    got = ev.ending_logprobs(model, context, endings)
    assert got == pytest.approx([logp[e].sum().item() for e in endings], abs=1e-4)
    # a model that likes the tokens of " yes" picks it wherever it stands
    with torch.no_grad():
        model.table[0] = 0
        model.table[0, enc.encode_ordinary(" yes")] = 8
    items = [{"context": "Answer:", "endings": [" no", " maybe", " never"], "label": k % 4} for k in range(8)]
    for item in items:
        item["endings"].insert(item["label"], " yes")
    assert ev.eval_mc(model, enc, items)["acc"] == 1.0
    # a uniform model: acc picks the ending with the fewest tokens, acc_norm the fewest tokens per character
    with torch.no_grad():
        model.table.zero_()
    endings = [" zq", " But soft, what light through yonder window breaks?", " qz zq"]
    n_tokens = [len(enc.encode_ordinary(e)) for e in endings]
    per_char = [n / len(e.lstrip(" ")) for n, e in zip(n_tokens, endings)]  # without the joining space
    fewest, fewest_per_char = int(np.argmin(n_tokens)), int(np.argmin(per_char))
    assert (fewest, fewest_per_char) == (0, 1)  # the long, well-compressed phrase costs least per character
    r = ev.eval_mc(model, enc, [{"context": "x", "endings": endings, "label": label} for label in (0, 1, 2)])
    assert (r["acc"], r["acc_norm"]) == (1 / 3, 1 / 3)
    r = ev.eval_mc(model, enc, [{"context": "x", "endings": endings, "label": 0}])
    assert (r["acc"], r["acc_norm"]) == (1.0, 0.0)


def test_a_random_model_scores_at_chance(run_and_enc):
    _, enc = run_and_enc
    from model import GPT, GPTConfig
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=32, vocab_size=enc.n_vocab, n_layer=2, n_head=2, n_kv_head=1, n_embd=32,
                          kernels="torch")).eval()
    rng = np.random.default_rng(0)
    words = TEXT.split()
    items = [{"context": " ".join(rng.choice(words, 6)),
              "endings": [" " + " ".join(rng.choice(words, rng.integers(1, 5))) for _ in range(4)],
              "label": int(rng.integers(4))} for _ in range(200)]
    r = ev.eval_mc(model, enc, items)
    # chance 1/4; the count of correct answers is binomial: sd = sqrt(0.25 * 0.75 / 200) = 0.031 -> 3 sd
    assert r["chance"] == 0.25 and r["items"] == 200
    assert abs(r["acc"] - 0.25) < 3 * 0.0306 and abs(r["acc_norm"] - 0.25) < 3 * 0.0306


def test_mc_cli_updates_eval_json(tmp_path, tokenizer_dir, capsys):  # noqa: F811
    make_run(tmp_path / "run", tokenizer_dir)
    ev.main(["--ckpt", str(tmp_path / "run"), "--mc", str(FIXTURES / "arc_sample.jsonl"), "--limit", "3"])
    r = json.loads((tmp_path / "run" / "eval.json").read_text())["mc:arc_sample.jsonl"]
    assert r["items"] == 3 and r["chance"] == pytest.approx((1 / 4 + 1 / 4 + 1 / 3) / 3)
    assert "acc_norm" in capsys.readouterr().out


# -----------------------------------------------------------------------------
# HuggingFace export


def llama_forward(weights, config, idx):
    """HF Llama's math written out from its own names and conventions (rotate_half RoPE, repeat_kv for
    GQA), independent of model.py: if the export mislaid a weight or a RoPE layout, logits would differ."""
    H, Hkv, C = config["num_attention_heads"], config["num_key_value_heads"], config["hidden_size"]
    D, T, eps = C // H, idx.shape[1], config["rms_norm_eps"]

    def norm(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w

    def rotate_half(x):
        return torch.cat([-x[..., D // 2:], x[..., :D // 2]], dim=-1)

    inv_freq = 1.0 / config["rope_theta"] ** (torch.arange(0, D, 2).float() / D)
    angles = torch.cat([torch.arange(T).float()[:, None] * inv_freq] * 2, dim=-1)  # (T, D)
    cos, sin = angles.cos(), angles.sin()
    x = weights["model.embed_tokens.weight"][idx]
    for i in range(config["num_hidden_layers"]):
        w = {k.split(f"layers.{i}.")[1]: v for k, v in weights.items() if f"layers.{i}." in k}
        h = norm(x, w["input_layernorm.weight"])
        q = (h @ w["self_attn.q_proj.weight"].T).view(1, T, H, D).transpose(1, 2)
        k = (h @ w["self_attn.k_proj.weight"].T).view(1, T, Hkv, D).transpose(1, 2)
        v = (h @ w["self_attn.v_proj.weight"].T).view(1, T, Hkv, D).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k, v = k.repeat_interleave(H // Hkv, dim=1), v.repeat_interleave(H // Hkv, dim=1)
        scores = (q @ k.transpose(-1, -2) / math.sqrt(D)).masked_fill(torch.ones(T, T).triu(1).bool(), -math.inf)
        x = x + (scores.softmax(-1) @ v).transpose(1, 2).reshape(1, T, C) @ w["self_attn.o_proj.weight"].T
        h = norm(x, w["post_attention_layernorm.weight"])
        up = torch.nn.functional.silu(h @ w["mlp.gate_proj.weight"].T) * (h @ w["mlp.up_proj.weight"].T)
        x = x + up @ w["mlp.down_proj.weight"].T
    head = weights["model.embed_tokens.weight" if config["tie_word_embeddings"] else "lm_head.weight"]
    return norm(x, weights["model.norm.weight"]) @ head.T


@pytest.mark.parametrize("tie", [True, False])
def test_export_hf_writes_weights_config_and_tokenizer(tmp_path, tokenizer_dir, tie):  # noqa: F811
    model = make_run(tmp_path / "run", tokenizer_dir, tie_embeddings=tie, ffn_hidden=48)
    enc = load_tokenizer(tokenizer_dir)
    out = ev.export_hf(tmp_path / "run", tmp_path / "hf")
    config = json.loads((out / "config.json").read_text())
    assert (config["num_attention_heads"], config["num_key_value_heads"], config["intermediate_size"]) == (4, 2, 48)
    assert config["tie_word_embeddings"] is tie and config["vocab_size"] == enc.n_vocab
    weights = ev.read_safetensors(out / "model.safetensors")
    assert len(weights) == 2 + 9 * 2 + (0 if tie else 1)
    assert torch.equal(weights["model.layers.1.self_attn.k_proj.weight"],
                       model.transformer.h[1].attn.c_attn.weight[32:48])  # rows after the 4 x 8 query rows
    assert torch.equal(weights["model.layers.0.mlp.up_proj.weight"], model.transformer.h[0].mlp.c_fc.weight[48:])
    idx = torch.tensor([[enc.eot_token] + enc.encode_ordinary("ROMEO: But soft, what light")])
    with torch.no_grad():
        assert torch.allclose(llama_forward(weights, config, idx), model(idx)[0], atol=1e-4)
    spec = json.loads((out / "tokenizer.json").read_text())
    assert len(spec["model"]["vocab"]) == enc.n_vocab - 1 and len(set(ev.bytes_to_unicode().values())) == 256
    assert spec["added_tokens"][0]["id"] == enc.eot_token
    assert load_tokenizer(out / "nanopretrain_tokenizer").encode_ordinary(TEXT) == enc.encode_ordinary(TEXT)


def test_safetensors_package_reads_our_file(tmp_path):
    st = pytest.importorskip("safetensors.torch", reason="the safetensors package is not installed (optional)")
    tensors = {"a": torch.randn(3, 5), "b": torch.randn(7).bfloat16(), "c": torch.arange(4)}
    ev.write_safetensors(tensors, tmp_path / "t.safetensors")
    loaded = st.load_file(str(tmp_path / "t.safetensors"))
    assert all(torch.equal(loaded[k], v) for k, v in tensors.items())


def test_transformers_logits_and_tokens_equal_ours(tmp_path, tokenizer_dir):  # noqa: F811
    transformers = pytest.importorskip("transformers", reason="transformers is not installed (optional): the "
                                       "export is checked against an independent Llama forward instead")
    model = make_run(tmp_path / "run", tokenizer_dir, block_size=64, n_kv_head=1)
    enc = load_tokenizer(tokenizer_dir)
    out = ev.export_hf(tmp_path / "run", tmp_path / "hf")
    hf = transformers.AutoModelForCausalLM.from_pretrained(out).float().eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(out)
    text = "ROMEO: But soft, what light?\n    return a + b  # café 你好"
    ids = hf_tok(text)["input_ids"]  # a document starts with <|endoftext|>, as every training document did
    assert ids == [enc.eot_token] + enc.encode_ordinary(text) and hf_tok.decode(ids[1:]) == text
    assert hf_tok(text, add_special_tokens=False)["input_ids"] == ids[1:]
    idx = torch.tensor([ids])
    with torch.no_grad():
        assert torch.allclose(hf(idx).logits, model(idx)[0], atol=1e-4)


# -----------------------------------------------------------------------------
# comparing runs


def write_run(run_dir, config, final_loss, event=None, status="finished"):
    """A run dir as train.py leaves it, with a loss curve falling to final_loss."""
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(config))
    lines = []
    for step in range(1, 51):
        loss = final_loss + 3 * math.exp(-step / 10)
        lines.append({"kind": "train", "step": step, "tokens": step * 1024, "time_s": step * 0.1, "loss": loss,
                      "lr": config["learning_rate"] * min(1, step / 10), "grad_norm": 1 + 1 / step,
                      "tokens_per_s": 10240.0 + step, "mfu": None, "step_ms": 100.0, "peak_mem_mb": 100.0})
        if step % 10 == 0:
            lines.append({"kind": "eval", "step": step, "tokens": step * 1024, "time_s": step * 0.1,
                          "val_loss": loss + 0.1, "val_bpb": (loss + 0.1) / 2, "per_source": {}})
        if event and step == 25:
            lines.append({"kind": "event", "step": 25, "tokens": 25 * 1024, "time_s": 2.5, "event": event,
                          "action": "warn", "detail": "loss 9 > mean + 6 sd"})
    lines.append({"kind": "end", "step": 50, "time_s": 5.0, "status": status})
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"kind": "tra')


def test_compare_report_lists_every_config_difference_and_writes_plots(tmp_path, capsys):
    base = {"dataset": "default", "n_layer": 4, "learning_rate": 1e-3, "warmup_iters": 10, "batch_size": 8}
    write_run(tmp_path / "a", {**base, "out_dir": "out/a"}, 2.0)
    write_run(tmp_path / "b", {**base, "out_dir": "out/b", "learning_rate": 3e-3}, 1.8, event="spike")
    write_run(tmp_path / "c", {**base, "out_dir": "out/c", "warmup_iters": 0, "grad_clip": 0.0}, 2.5,
              status="diverged")
    summary = ev.compare_runs([tmp_path / d for d in "abc"], tmp_path / "report", title="LR and warmup")
    assert set(summary["config_diff"]) == {"out_dir", "learning_rate", "warmup_iters", "grad_clip"}
    assert summary["config_diff"]["grad_clip"] == [None, None, 0.0]
    assert set(summary["held_fixed"]) == {"dataset", "n_layer", "batch_size"}
    report = (tmp_path / "report" / "report.md").read_text()
    for key, values in summary["config_diff"].items():
        assert f"| `{key}` | " + " | ".join(f"`{ev.fmt(v, None)}`" for v in values) + " |" in report
    b = summary["runs"][1]["outcomes"]
    assert b["final_val_loss"] == pytest.approx(1.8 + 3 * math.exp(-5) + 0.1) and b["tokens"] == 50 * 1024
    assert b["events"] == {"spike": 1} and b["tokens_per_s"] == 10240.0 + 26  # median of steps 2..50
    assert "**b**" in summary["conclusion"] and "c (diverged)" in summary["conclusion"]
    assert "spike x1" in report and "LR and warmup" in report
    for name in summary["plots"]:  # overview + one per panel + the outcome bars
        data = (tmp_path / "report" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert len(summary["plots"]) == 7
    ev.main(["--compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "r2"),
             "--names", "low", "high"])
    assert "| `learning_rate` | `0.001` | `0.003` |" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="config.json: missing"):
        ev.compare_runs([tmp_path / "a", tmp_path], tmp_path / "r3")
