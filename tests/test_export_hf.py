"""export_hf.py: the HuggingFace export. Weights read back with the safetensors library and compared with
the model's own, logits of an independent Llama forward (and transformers' own when installed), and the
promise that an export is all or nothing: a failure leaves the old export, or none, and no temp directory."""
import errno
import json
import math
import os

import pytest
import torch
from safetensors.torch import load_file

import eval as ev
import export_hf as hf_export
from common import UserError, cli
from export_hf import bytes_to_unicode, export_hf, hf_state_dict
from test_sample import TEXT, make_run, one_thread, tokenizer_dir  # noqa: F401  (fixtures)
from tokenizer import load_tokenizer


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
    out = export_hf(tmp_path / "run", tmp_path / "hf")
    config = json.loads((out / "config.json").read_text())
    assert (config["num_attention_heads"], config["num_key_value_heads"], config["intermediate_size"]) == (4, 2, 48)
    assert config["tie_word_embeddings"] is tie and config["vocab_size"] == enc.n_vocab
    weights = load_file(out / "model.safetensors")
    assert len(weights) == 2 + 9 * 2 + (0 if tie else 1)
    assert torch.equal(weights["model.layers.1.self_attn.k_proj.weight"],
                       model.transformer.h[1].attn.c_attn.weight[32:48])  # rows after the 4 x 8 query rows
    assert torch.equal(weights["model.layers.0.mlp.up_proj.weight"], model.transformer.h[0].mlp.c_fc.weight[48:])
    idx = torch.tensor([[enc.eot_token] + enc.encode_ordinary("ROMEO: But soft, what light")])
    with torch.no_grad():
        assert torch.allclose(llama_forward(weights, config, idx), model(idx)[0], atol=1e-4)
    spec = json.loads((out / "tokenizer.json").read_text())
    assert len(spec["model"]["vocab"]) == enc.n_vocab - 1 and len(set(bytes_to_unicode().values())) == 256
    assert spec["added_tokens"][0]["id"] == enc.eot_token
    assert load_tokenizer(out / "nanopretrain_tokenizer").encode_ordinary(TEXT) == enc.encode_ordinary(TEXT)


def test_safetensors_round_trip_gives_back_every_tensor(tmp_path, tokenizer_dir):  # noqa: F811
    model = make_run(tmp_path / "run", tokenizer_dir, tie_embeddings=False)
    out = export_hf(tmp_path / "run", tmp_path / "hf")
    loaded, expected = load_file(out / "model.safetensors"), hf_state_dict(model)
    assert loaded.keys() == expected.keys()
    for name, tensor in expected.items():
        assert loaded[name].dtype == torch.float32 and torch.equal(loaded[name], tensor), name


def entries_beside(folder):
    """What lies in folder's parent: a temp directory left by an export would show here."""
    return sorted(p.name for p in folder.parent.iterdir())


def test_a_failed_export_leaves_the_old_export_and_no_temp_dir(tmp_path, tokenizer_dir, monkeypatch):  # noqa: F811
    make_run(tmp_path / "run", tokenizer_dir)
    out = export_hf(tmp_path / "run", tmp_path / "hf")
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def disk_full(*args):  # after config.json and model.safetensors are written
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(hf_export, "hf_tokenizer", disk_full)
    make_run(tmp_path / "run", tokenizer_dir, seed=1)  # other weights: a half export would show them
    with pytest.raises(UserError, match="hf: export failed \\(No space left on device\\)"):
        export_hf(tmp_path / "run", tmp_path / "hf")
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert entries_beside(out) == ["hf", "run"]


def test_a_failed_first_export_leaves_nothing(tmp_path, tokenizer_dir, monkeypatch):  # noqa: F811
    make_run(tmp_path / "run", tokenizer_dir)

    def crash(*args):
        raise RuntimeError("killed mid-export")
    monkeypatch.setattr(hf_export, "hf_tokenizer", crash)
    with pytest.raises(RuntimeError, match="killed mid-export"):
        export_hf(tmp_path / "run", tmp_path / "hf")
    assert entries_beside(tmp_path / "hf") == ["run"]


def test_an_unwritable_target_is_a_one_line_error(tmp_path, tokenizer_dir, capsys):  # noqa: F811
    make_run(tmp_path / "run", tokenizer_dir)
    (tmp_path / "file").write_text("not a directory")
    target = str(tmp_path / "file" / "hf")
    for main, argv in [(hf_export.main, [str(tmp_path / "run"), target]),    # python export_hf.py RUN DIR
                       (ev.main, ["--export-hf", str(tmp_path / "run"), target])]:  # python eval.py --export-hf
        assert cli(main, argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "cannot write there" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_target_is_a_user_error(tmp_path, tokenizer_dir):  # noqa: F811
    make_run(tmp_path / "run", tokenizer_dir)
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    try:
        with pytest.raises(UserError, match="cannot write there"):
            export_hf(tmp_path / "run", tmp_path / "ro" / "hf")
    finally:
        (tmp_path / "ro").chmod(0o755)


def test_eval_cli_exports_through_export_hf(tmp_path, tokenizer_dir, capsys):  # noqa: F811
    make_run(tmp_path / "run", tokenizer_dir)
    ev.main(["--export-hf", str(tmp_path / "run"), str(tmp_path / "hf")])
    assert "wrote" in capsys.readouterr().out
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in (tmp_path / "hf").iterdir()}


def test_tokenizers_library_encodes_our_tokenizer_json_as_we_do(tmp_path, tokenizer_dir):  # noqa: F811
    tokenizers = pytest.importorskip("tokenizers", reason="the tokenizers library is not installed (optional)")
    make_run(tmp_path / "run", tokenizer_dir)
    enc = load_tokenizer(tokenizer_dir)
    hf_tok = tokenizers.Tokenizer.from_file(str(export_hf(tmp_path / "run", tmp_path / "hf") / "tokenizer.json"))
    for text in [TEXT, "ROMEO: But soft, what light?\n    return a + b  # café 你好 🙂\t\r\n  x", " ", ""]:
        ids = hf_tok.encode(text).ids  # <|endoftext|> first, as every training document began
        assert ids == [enc.eot_token] + enc.encode_ordinary(text) and hf_tok.decode(ids) == text


def test_transformers_logits_and_tokens_equal_ours(tmp_path, tokenizer_dir):  # noqa: F811
    transformers = pytest.importorskip("transformers", reason="transformers is not installed (optional): the "
                                       "export is checked against an independent Llama forward instead")
    model = make_run(tmp_path / "run", tokenizer_dir, block_size=64, n_kv_head=1)
    enc = load_tokenizer(tokenizer_dir)
    out = export_hf(tmp_path / "run", tmp_path / "hf")
    hf = transformers.AutoModelForCausalLM.from_pretrained(out).float().eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(out)
    text = "ROMEO: But soft, what light?\n    return a + b  # café 你好"
    ids = hf_tok(text)["input_ids"]  # a document starts with <|endoftext|>, as every training document did
    assert ids == [enc.eot_token] + enc.encode_ordinary(text) and hf_tok.decode(ids[1:]) == text
    assert hf_tok(text, add_special_tokens=False)["input_ids"] == ids[1:]
    idx = torch.tensor([ids])
    with torch.no_grad():
        assert torch.allclose(hf(idx).logits, model(idx)[0], atol=1e-4)
