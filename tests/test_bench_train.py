"""bench_train.py's pieces that decide its figures: nanoGPT's split and data, and the parsing of its log."""
import pickle

import numpy as np
import pytest

import bench_train


def test_nanogpt_split_is_its_90_10_cut(tmp_path, monkeypatch):
    """The train pieces, joined, are the first 90% of the characters and val.txt the last 10%, as
    nanoGPT's prepare.py cuts input.txt; pieces end at line ends."""
    text = "".join(f"line {i}: {'x' * (i % 37)}\n" for i in range(30_000))
    monkeypatch.setattr(bench_train, "nanogpt_input_text", lambda: text)
    parts, val_file = bench_train.nanogpt_split(tmp_path)
    pieces = [p.read_text() for p in sorted(parts.iterdir())]
    assert len(pieces) > 1 and all(piece.endswith("\n") for piece in pieces[:-1])
    assert "".join(pieces) == text[:int(0.9 * len(text))]
    assert val_file.read_text() == text[int(0.9 * len(text)):]


def test_nanogpt_dataset_as_its_prepare_writes_it(tmp_path):
    """Sorted characters -> ids, uint16, 90/10 split, meta.pkl with the vocabulary."""
    text = "hello world, hello nanoGPT\n" * 10
    bench_train.nanogpt_dataset(tmp_path / "d", text)
    meta = pickle.loads((tmp_path / "d" / "meta.pkl").read_bytes())
    ids = np.concatenate([np.fromfile(tmp_path / "d" / f, dtype=np.uint16) for f in ("train.bin", "val.bin")])
    assert meta["vocab_size"] == len(set(text)) and sorted(meta["stoi"]) == list(meta["stoi"])
    assert "".join(meta["itos"][int(i)] for i in ids) == text
    assert len(np.fromfile(tmp_path / "d" / "train.bin", dtype=np.uint16)) == int(0.9 * len(text))


def test_parse_nanogpt_log():
    """The median step time skips the first five steps; the val loss is the one at the last step."""
    lines = ["step 0: train loss 4.2000, val loss 4.2100"]
    lines += [f"iter {i}: loss 3.0000, time {1000.0 if i < 5 else 100.0 + i % 3:.2f}ms, mfu -100.00%" for i in range(20)]
    lines += ["step 20: train loss 2.5000, val loss 2.6000"]
    assert bench_train.parse_nanogpt_log("\n".join(lines), 20) == (101.0, 2.6)
    assert bench_train.parse_nanogpt_log("\n".join(lines[:-1]), 20)[1] is None
    with pytest.raises(SystemExit, match="too few"):
        bench_train.parse_nanogpt_log("\n".join(lines[:8]), 20)
