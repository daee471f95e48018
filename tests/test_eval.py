"""eval.py: loss / perplexity / bits per byte against hand computations, and the multiple-choice loaders
and scoring (a random model at chance). The export is tested in test_export_hf.py, the run comparison in
test_runs.py."""
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
    odd = tmp_path / "odd.bin"
    odd.write_bytes(b"\x01\x00\x02")  # a bin cut in the middle of a uint16
    with pytest.raises(SystemExit, match="odd.bin: 3 bytes, not a whole number of uint16"):
        ev.main(["--ckpt", str(tmp_path / "run"), "--bin", str(odd)])
    alien = tmp_path / "alien.bin"
    np.array([1, 2, 60000, 3], dtype=np.uint16).tofile(alien)  # ids from a bigger tokenizer
    with pytest.raises(SystemExit, match="alien.bin: token id 60000 >= the model's vocab_size"):
        ev.main(["--ckpt", str(tmp_path / "run"), "--bin", str(alien)])


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
