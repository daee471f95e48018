"""sample.py: loading a run (and refusing broken ones), greedy = argmax without the cache, top-k / top-p
stay inside their sets, UTF-8 characters split across tokens, the command line.

The runs are built here (a GPT + torch.save of a dict with the contract's keys + a tokenizer trained on a
small text), so these tests do not wait for train.py."""
import dataclasses
import json

import pytest
import torch

import sample
from model import GPT, GPTConfig, sample_next
from tokenizer import tokenizer_hash, train_tokenizer

TEXT = ("ROMEO: But soft, what light through yonder window breaks? It is the east, and Juliet is the sun.\n"
        "def add(a, b):\n    return a + b\n\nfor i in range(10):\n    print(add(i, i))\n"
        "Crème brûlée, naïve café: ünïcödé text with accents, and 你好世界 too.\n") * 3


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from a second thread, and on a busy 2-core machine two OpenMP threads wait
    on each other's barriers: a 32-wide model's step went from 1 ms to 200 ms. One thread, then restore."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tok")
    train_tokenizer([TEXT], 300, out, verbose=False)
    return out


def make_run(run_dir, tok_dir, seed=0, step=5, dataset="default", **fields):
    """A run dir as train.py leaves it: ckpt_{step}.pt, tokenizer/, config.json, metrics.jsonl."""
    from tokenizer import load_tokenizer
    import shutil
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(tok_dir, run_dir / "tokenizer", dirs_exist_ok=True)
    n_vocab = load_tokenizer(tok_dir).n_vocab
    config = GPTConfig(**{**dict(block_size=32, vocab_size=n_vocab, n_layer=2, n_head=4, n_kv_head=2, n_embd=32,
                                 kernels="torch"), **fields})
    torch.manual_seed(seed)
    model = GPT(config)
    with torch.no_grad():  # larger logits than the 0.02 init: clear argmaxes, text that is not uniform noise
        model.transformer.wte.weight.mul_(20)
    cfg = {"dataset": dataset, "learning_rate": 1e-3, "out_dir": str(run_dir)}
    ckpt = {"model": model.state_dict(), "model_config": dataclasses.asdict(config), "optimizer": {},
            "scaler": None, "step": step, "rng": None, "data_state": {}, "config": cfg,
            "tokenizer_hash": tokenizer_hash(tok_dir)}
    torch.save(ckpt, run_dir / f"ckpt_{step:07d}.pt")
    (run_dir / "config.json").write_text(json.dumps(cfg))
    (run_dir / "metrics.jsonl").write_text(json.dumps({"kind": "train", "step": step, "tokens": 320, "time_s": 1.0,
                                                       "loss": 5.0, "lr": 1e-3, "grad_norm": 1.0}) + "\n")
    return model.eval()


@pytest.fixture
def run(tmp_path, tokenizer_dir):
    model = make_run(tmp_path / "run", tokenizer_dir)
    return tmp_path / "run", model


def argmax_without_cache(model, idx, steps, eot):
    """The definition of greedy decoding: the whole (cropped) context through the model at every step."""
    out = []
    for _ in range(steps):
        logits, _ = model(idx[:, -model.config.block_size:])
        token = logits[0, -1].argmax().item()
        if token == eot:
            break
        out.append(token)
        idx = torch.cat([idx, torch.tensor([[token]])], dim=1)
    return out


def test_load_run_finds_the_newest_checkpoint_and_rebuilds_the_model(run, tokenizer_dir):
    run_dir, model = run
    make_run(run_dir, tokenizer_dir, seed=1, step=3)  # an older checkpoint with other weights
    loaded, enc, ckpt = sample.load_run(run_dir)
    assert ckpt["step"] == 5 and ckpt["path"].endswith("ckpt_0000005.pt")
    idx = torch.tensor([[enc.eot_token] + enc.encode_ordinary("ROMEO: what light")])
    assert torch.equal(loaded(idx)[0], model(idx)[0])
    assert sample.load_run(run_dir / "ckpt_0000003.pt")[2]["step"] == 3


def test_greedy_is_deterministic_and_equals_argmax_without_cache(run):
    run_dir, _ = run
    model, enc, _ = sample.load_run(run_dir)
    prompt = "ROMEO: But soft"
    idx = torch.tensor([sample.encode_prompt(enc, prompt)])
    steps = 45  # more than block_size (32) with the prompt: the cache is refilled from the cropped window
    expected = enc.decode(argmax_without_cache(model, idx, steps, enc.eot_token))
    first = sample.generate_text(model, enc, prompt, steps, temperature=0)
    assert first == sample.generate_text(model, enc, prompt, steps, temperature=0) == expected
    assert len(expected) > 20  # the test is not vacuous: a long continuation, no immediate <|endoftext|>
    # top_k = 1 at temperature 1 is greedy too
    assert sample.generate_text(model, enc, prompt, steps, temperature=1.0, top_k=1) == expected


def test_top_k_and_top_p_never_pick_outside_their_set():
    generator = torch.Generator().manual_seed(0)
    probs = torch.tensor([0.05, 0.4, 0.02, 0.3, 0.2, 0.03])
    logits = probs.log().expand(4000, -1)
    top3 = sample_next(logits, 1.0, top_k=3, generator=generator).flatten()
    assert set(top3.tolist()) == {1, 3, 4}  # each of the three is drawn, nothing else
    # nucleus 0.6: 0.4 alone is short of 0.6, 0.4 + 0.3 reaches it -> {1, 3}
    nucleus = sample_next(logits, 1.0, top_p=0.6, generator=generator).flatten()
    assert set(nucleus.tolist()) == {1, 3}
    share = (nucleus == 1).float().mean().item()  # renormalised: 0.4 / 0.7 = 0.571, sd 0.008 at n = 4000
    assert abs(share - 0.4 / 0.7) < 0.04
    both = sample_next(logits, 0.5, top_k=3, top_p=0.9, generator=generator).flatten()
    assert set(both.tolist()) <= {1, 3, 4}


class FixedTokens(torch.nn.Module):
    """A stand-in model whose generate_tokens yields given ids: decoding is tested on its own."""

    def __init__(self, ids):
        super().__init__()
        self.ids, self.dummy = ids, torch.nn.Parameter(torch.zeros(1))

    def generate_tokens(self, idx, max_new_tokens, *args):
        for token in self.ids[:max_new_tokens]:
            yield torch.tensor([[token]])


def test_streaming_holds_back_a_character_split_across_tokens(tokenizer_dir):
    from tokenizer import load_tokenizer
    enc = load_tokenizer(tokenizer_dir)
    e_acute = list("é".encode())  # two bytes: byte tokens 0xC3, 0xA9 (ids = byte values)
    ids = enc.encode_ordinary("caf") + e_acute + enc.encode_ordinary(" ok") + [enc.eot_token, 65]
    pieces = list(sample.stream_text(FixedTokens(ids), enc, "", 50))
    assert "".join(pieces) == "café ok"  # stops at <|endoftext|>: the 65 ("A") after it never shows
    where = len(enc.encode_ordinary("caf"))
    assert pieces[where] == "" and pieces[where + 1] == "é"
    # a byte that never completes a character becomes U+FFFD at the end
    assert "".join(sample.stream_text(FixedTokens([0xE4, 0xBD]), enc, "", 5)) == "\ufffd"


def test_cli_streams_samples(run, capsys):
    run_dir, _ = run
    sample.main(["--ckpt", str(run_dir), "--prompt", "ROMEO:", "--num-samples", "2", "--max-new-tokens", "8",
                 "--temperature", "0"])
    out = capsys.readouterr()
    samples = out.out.split("\n")
    assert samples[0].startswith("ROMEO:") and len(samples[0]) > len("ROMEO:")
    assert out.out.count("ROMEO:") == 2 and "sample 2" in out.err and "ckpt_0000005.pt" in out.err
    # a sample that ends early says so: the greedy tokens tell whether and where <|endoftext|> comes
    model, enc, _ = sample.load_run(run_dir)
    prompt = torch.tensor([sample.encode_prompt(enc, "ROMEO:")])
    new = model.generate(prompt, 8, temperature=0)[0, prompt.shape[1]:].tolist()
    said = [line for line in out.err.splitlines() if line.startswith("[<|endoftext|> after ")]
    assert said == ([f"[<|endoftext|> after {new.index(enc.eot_token)} tokens]"] * 2 if enc.eot_token in new else [])


def test_clear_errors_for_missing_corrupt_and_mismatched(run, tokenizer_dir, tmp_path):
    run_dir, _ = run
    with pytest.raises(SystemExit, match="nothing_here.*no such"):
        sample.load_run(tmp_path / "nothing_here")
    corrupt = run_dir / "ckpt_0000009.pt"
    corrupt.write_bytes(b"\x80\x02 this is not a checkpoint")
    with pytest.raises(SystemExit, match="ckpt_0000009.pt: not a readable checkpoint"):
        sample.load_run(corrupt)
    assert sample.load_run(run_dir)[2]["step"] == 5  # a run dir falls back to the older intact one
    torch.save({"model": {}}, run_dir / "ckpt_0000010.pt")
    with pytest.raises(SystemExit, match="ckpt_0000010.pt: not a train.py checkpoint"):
        sample.load_run(run_dir / "ckpt_0000010.pt")
    (run_dir / "ckpt_0000010.pt").unlink()
    corrupt.unlink()
    other = tmp_path / "other_tok"  # another tokenizer in the run dir: the hashes differ
    train_tokenizer([TEXT], 290, other, verbose=False)
    import shutil
    shutil.rmtree(run_dir / "tokenizer")
    shutil.copytree(other, run_dir / "tokenizer")
    with pytest.raises(SystemExit, match="tokenizer hash .* another tokenizer"):
        sample.load_run(run_dir)
