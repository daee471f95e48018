"""prepare.py end to end on a tiny synthetic corpus (a directory of .txt/.md files and a .jsonl.gz file):
the bins decode back to the cleaned documents with <|endoftext|> before each, meta.json matches the bins,
per-source val bins, the mix, stage reuse, atomic writes, and every bad input's one-line error."""
import gzip
import json
import os
import sys

import numpy as np
import pytest

import mix
import prepare
import shards
import sources
import tokenizer
from common import UserError, write_atomic

WORDS = ("the of and to in that have with be it for not on as he she they we you this but his her from by "
         "king queen lord lady night day heart blood love death crown sword castle river forest winter "
         "summer letter answer promise honour fortune father mother brother daughter servant soldier "
         "speaks walks waits hears thinks fears sleeps remembers forgets returns departs arrives").split()


def prose(seed, n_words=120):
    """Random English-looking prose that passes every cleaning rule: 12-word sentences, one per line."""
    words = np.random.default_rng(seed).choice(WORDS, size=n_words).tolist()
    return "\n".join(" ".join(words[i:i + 12]) + "." for i in range(0, n_words, 12))


CHINESE = ("新华社北京一月一日电。今天，首都各界人士在人民大会堂举行新年联欢会，共同庆祝一九九八年的到来。"
           "国家领导人同大家一起观看了演出，并向全国各族人民致以新年的祝贺。会场气氛热烈，"
           "文艺工作者表演了歌舞、戏曲和杂技等精彩节目。\n许多群众表示，新的一年里要努力工作，为国家的发展作出贡献。")
# (real news prose: clean_cjk's character rules keep it; a repeated sentence would be removed as repetition)


def build_corpus(root):
    """notes/: 8 prose files (+ an exact copy, one with an e-mail address, one with invalid UTF-8, an empty
    and a binary file); web.jsonl.gz: 8 prose rows, one Chinese row and one row without text."""
    notes = root / "notes"
    (notes / "sub").mkdir(parents=True)
    for k in range(8):
        (notes / ("sub" if k % 2 else "") / f"n{k}.{'md' if k % 3 == 0 else 'txt'}").write_text(prose(k))
    (notes / "z_copy.txt").write_text(prose(0).upper())                    # exact duplicate of n0.md: goes
    (notes / "pii.txt").write_text(prose(20) + "\nwrite to jane@example.com.")
    (notes / "latin1.txt").write_bytes(prose(21).encode() + b"\ncaf\xe9.")  # not UTF-8: one replaced byte
    (notes / "empty.txt").write_text("  \n")
    (notes / "blob.txt").write_bytes(b"\x00\x01binary" * 10)
    rows = [{"id": f"w{k}", "text": prose(100 + k), "url": "x"} for k in range(8)]
    rows += [{"id": "zh", "text": CHINESE}, {"id": "none", "title": "no text field"}]
    with gzip.open(root / "web.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    bench = [{"ctx": " ".join(prose(k).split()[20:40]), "endings": ["x", "y"]} for k in range(8)]  # 20 words
    (root / "bench.jsonl").write_text("".join(json.dumps(b) + "\n" for b in bench))
    return notes, root / "web.jsonl.gz"


def run(tmp_path, *extra, out="out"):
    notes, web = tmp_path / "notes", tmp_path / "web.jsonl.gz"
    return prepare.main(["--input", str(notes), f"web={web}", "--out", str(tmp_path / out), "--cache-dir",
                         str(tmp_path / "cache"), "--vocab-size", "300", "--workers", "1", "--val-frac", "0.25",
                         "--tokenizer-mb", "1", *extra])


def read_docs(path, enc):
    """A bin -> the decoded documents, checking that the bin starts with <|endoftext|>."""
    ids = np.fromfile(path, dtype=np.uint16)
    assert len(ids) and ids[0] == enc.eot_token, f"{path.name} does not start with <|endoftext|>"
    cuts = np.flatnonzero(ids == enc.eot_token).tolist() + [len(ids)]
    return [enc.decode(ids[a + 1:b].tolist()) for a, b in zip(cuts, cuts[1:])]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("prepare")
    build_corpus(tmp_path)
    meta = run(tmp_path, "--contamination", str(tmp_path / "bench.jsonl"))
    return tmp_path, tmp_path / "out", meta


def test_bins_decode_to_the_cleaned_documents(built):
    tmp_path, out, meta = built
    enc = tokenizer.load_tokenizer(out / "tokenizer")
    train, val = read_docs(out / "train.bin", enc), read_docs(out / "val.bin", enc)
    per_source = {s: read_docs(out / f"val_{s}.bin", enc) for s in ("notes", "web")}
    assert sorted(val) == sorted(per_source["notes"] + per_source["web"])  # mix of 1/1: every val doc once
    assert not set(train) & set(val)                                      # split by document
    expected = {prose(k) for k in range(8)} | {prose(100 + k) for k in range(8)} | {CHINESE}
    expected |= {prose(20) + "\nwrite to <EMAIL>.", prose(21) + "\ncaf\ufffd."}
    assert set(train) | set(val) == expected                              # cleaned text, nothing else
    assert prose(0).upper() not in train + val                            # the exact copy went
    assert all(doc in {prose(100 + k) for k in range(8)} | {CHINESE} for doc in per_source["web"])


def test_contamination_counts_benchmark_items_copied_from_train(built):
    tmp_path, out, meta = built
    train = set(read_docs(out / "train.bin", tokenizer.load_tokenizer(out / "tokenizer")))
    result = meta["contamination"][str(tmp_path / "bench.jsonl")]
    assert result["items"] == 8 and result["contaminated"] == sum(prose(k) in train for k in range(8)) > 0
    assert meta["contamination"]["val"]["contaminated"] == 0                 # random prose shares no 13-gram


def test_meta_json_matches_the_bins(built):
    tmp_path, out, meta = built
    assert json.loads((out / "meta.json").read_text()) == json.loads(json.dumps(meta, default=int))
    enc = tokenizer.load_tokenizer(out / meta["tokenizer"])
    assert (meta["vocab_size"], meta["eot_token"], meta["dtype"]) == (enc.n_vocab, enc.eot_token, "uint16")
    assert meta["vocab_size"] == 300
    assert meta["tokenizer_hash"] == tokenizer.tokenizer_hash(out / "tokenizer")
    assert set(meta["bins"]) == {"train.bin", "val.bin", "val_notes.bin", "val_web.bin"}
    for name, info in meta["bins"].items():
        docs = read_docs(out / name, enc)
        assert info["tokens"] == os.path.getsize(out / name) // 2
        assert info["docs"] == len(docs)
        assert info["bytes"] == sum(len(d.encode("utf-8")) for d in docs)
    for name in list(meta["bins"]) + ["meta.json", "report.md", "tokenizer/tokenizer.json", "tokenizer"]:
        assert oct((out / name).stat().st_mode & 0o777) in ("0o644", "0o755"), name
    assert not [p for p in out.iterdir() if p.name.startswith(".")]        # no temp files left behind


def test_counts_in_meta_and_report(built):
    tmp_path, out, meta = built
    notes, web = meta["sources"]["notes"], meta["sources"]["web"]
    assert (notes["skipped_empty"], notes["skipped_binary"], notes["invalid_utf8_docs"]) == (1, 1, 1)
    assert notes["replaced_chars"] == 1 and web["no_text_lines"] == 1
    assert meta["dedup"]["exact_removed"] == 1 and meta["dedup"]["near_removed"] == 0
    assert meta["cleaning"]["pii_matches"]["email"] == 1
    assert meta["cleaning"]["rules"]["pii"]["docs"] == 1
    assert meta["cleaning"]["scripts"]["cjk"] == web["scripts"]["cjk"] == len(CHINESE)  # recognised, reported
    assert set(notes["scripts"]) == {"latin"}
    report = (out / "report.md").read_text()
    assert "## Dedup" in report and "doc_lengths.png" in report and (out / "rules.png").exists()


def test_rerun_reuses_stages_and_gives_the_same_bins(built, capsys):
    tmp_path, out, meta = built
    run(tmp_path, out="again")
    printed = capsys.readouterr().out
    n = meta["shards"]
    assert f"{n} shards ({n} reused from the cache)" in printed
    assert "dedup: reusing" in printed and "tokenizer: reusing" in printed
    for name in meta["bins"]:
        assert (out / name).read_bytes() == (tmp_path / "again" / name).read_bytes()


def test_given_tokenizer_is_used(built):
    tmp_path, out, meta = built
    again = run(tmp_path, "--tokenizer", str(out / "tokenizer"), "--no-dedup", out="given")
    assert again["tokenizer_hash"] == meta["tokenizer_hash"]
    assert (tmp_path / "given" / "tokenizer" / "tokenizer.json").read_bytes() == \
        (out / "tokenizer" / "tokenizer.json").read_bytes()


def test_a_crash_before_the_end_leaves_the_old_dataset_intact(built, monkeypatch):
    tmp_path, out, meta = built
    run(tmp_path, out="crashed")
    before = {p.name: p.read_bytes() for p in (tmp_path / "crashed").iterdir() if p.is_file()}

    def crash(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(prepare.report, "write_report", crash)         # dies after the bins, before meta.json
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, "--seed", "7", out="crashed")                      # a different dataset, never published
    after = {p.name: p.read_bytes() for p in (tmp_path / "crashed").iterdir() if p.is_file()}
    assert after == before and "meta.json" in after
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".crashed") or p.name.endswith(".lock")]


def test_no_clean_and_skip_rule(built):
    tmp_path, out, meta = built
    meta = run(tmp_path, "--no-clean", "--no-dedup", out="raw")
    assert meta["dedup"]["exact_removed"] == 0 and meta["cleaning"]["pii_matches"]["email"] == 0
    assert all(r["docs"] == 0 for r in meta["cleaning"]["rules"].values())
    assert sum(b["docs"] for name, b in meta["bins"].items() if name in ("train.bin", "val.bin")) == 20
    meta = run(tmp_path, "--skip-rule", "pii", out="pii_kept")
    assert meta["cleaning"]["skipped_rules"] == ["pii"] and meta["cleaning"]["pii_matches"]["email"] == 0
    enc = tokenizer.load_tokenizer(tmp_path / "pii_kept" / "tokenizer")
    docs = read_docs(tmp_path / "pii_kept" / "train.bin", enc) + read_docs(tmp_path / "pii_kept" / "val.bin", enc)
    assert prose(20) + "\nwrite to jane@example.com." in docs and len(docs) == 19  # all but the exact copy


def taken(tokens, keys, want):
    """What prepare.write_bins takes of one source: each document `full` times, once more below the limit."""
    full, limit = mix.copies(want, int(tokens.sum()), mix.key_histogram(keys, tokens))
    return full + (keys < limit)


def test_plan_mix_and_copies_hit_the_asked_shares_within_one_percent():
    rng = np.random.default_rng(0)
    counts = {"a": rng.integers(50, 500, size=1000), "b": rng.integers(50, 500, size=300)}
    keys = {s: rng.random(len(c)) for s, c in counts.items()}
    avail = {s: int(c.sum()) for s, c in counts.items()}
    for shares in ({"a": 0.7, "b": 0.3}, {"a": 0.5, "b": 0.5}, {"a": 0.95, "b": 0.05}):
        want = mix.plan_mix(avail, shares)
        got = {s: int((counts[s] * taken(counts[s], keys[s], want[s])).sum()) for s in shares}
        for s in shares:
            assert abs(got[s] / sum(got.values()) - shares[s]) < 0.01, (shares, got)
            assert abs(got[s] - want[s]) <= counts[s].max()                    # within one document
    want = mix.plan_mix(avail, {"a": 0.1, "b": 0.9}, total=2_000_000)  # b must repeat
    assert want["b"] == 4 * avail["b"]                                    # capped at 4 epochs
    assert (taken(counts["b"], keys["b"], want["b"]) == 4).all()          # four whole epochs
    part = taken(counts["b"], keys["b"], 2.5 * avail["b"])                # two epochs and about half a third
    assert set(np.unique(part)) == {2, 3} and abs((counts["b"] * part).sum() / avail["b"] - 2.5) < 0.01


def test_val_thresholds_pick_round_val_frac_per_source_however_the_shards_are_cut():
    kept, source = np.array([10, 0, 7, 30, 1]), np.array([0, 0, 0, 1, 2])
    first = np.r_[0, np.cumsum(kept)]
    keys = shards.doc_random(7, np.arange(first[-1]), 0)
    limit = mix.val_thresholds(kept, source, ["a", "b", "c"], 0.25, lambda k: keys[first[k]:first[k + 1]])
    assert (keys[:17] <= limit[0]).sum() == round(0.25 * 17) and (keys[17:47] <= limit[1]).sum() == round(0.25 * 30)
    assert limit[2] == -1                                                  # one document: no val
    whole = mix.val_thresholds(np.array([17, 30, 1]), np.array([0, 1, 2]), ["a", "b", "c"], 0.25,
                               lambda k: keys[[0, 17, 47, 48][k]:[0, 17, 47, 48][k + 1]])
    assert (whole == limit).all()                                          # cut in 3 shards or in 1: the same


def test_copies_count_past_two_billion_tokens_from_int32_documents():
    """prepare keeps tokens per document as int32; the mix's totals must not be: the 10 GB benchmark's
    2.44B train tokens overflowed an int32 sum once (2026-12-07)."""
    tokens = np.full(5, 2 ** 30, dtype=np.int32)  # 5.4B tokens in five documents
    want = mix.plan_mix({"web": int(tokens.sum(dtype=np.int64))}, {"web": 1.0})
    assert want["web"] == 5 * 2 ** 30
    assert taken(tokens, np.linspace(0, 0.9, 5), want["web"]).tolist() == [1] * 5


def test_append_docs_counts_in_python_ints_whatever_the_arrays_dtype(tmp_path):
    """append_docs returns the tokens it wrote. Summed as int32 array scalars, as the per-document arrays are,
    the count wrapped negative at 10 GB (2.44B tokens); as Python ints it cannot wrap. Small here: the type
    is what would wrap."""
    data = np.arange(10, dtype=np.uint16)
    starts, tokens = np.array([0, 4], dtype=np.int64), np.array([4, 6], dtype=np.int32)
    with open(tmp_path / "train.bin", "wb") as f:
        written = prepare.append_docs(f, tmp_path / "train.bin", data, starts, tokens, np.array([1, 0]))
    assert type(written) is int and written == 10
    assert np.fromfile(tmp_path / "train.bin", dtype=np.uint16).tolist() == [4, 5, 6, 7, 8, 9, 0, 1, 2, 3]


def test_write_atomic_never_leaves_half_a_file(tmp_path):
    target = tmp_path / "train.bin"
    target.write_bytes(b"old")

    def crash(f):
        f.write(b"half of the new")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, crash)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["train.bin"]


def test_huge_text_file_is_streamed_in_pieces(tmp_path):
    text = "\n\n".join(prose(k) for k in range(6))
    (tmp_path / "big.txt").write_text(text)
    stats = {}
    pieces = list(sources.text_file_docs(tmp_path / "big.txt", "big", stats, max_doc_bytes=1500))
    assert len(pieces) > 1 and stats["huge_pieces"] == len(pieces)
    assert "".join(p["text"] for p in pieces) == text                    # cut at blank lines, nothing lost
    assert all(len(p["text"].encode()) <= 2 * 1500 for p in pieces)


def bad_inputs(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"text": "fine"}\n{"text": "cut off\n')
    (tmp_path / "x.jsonl.gz").write_bytes(b"not gzip at all")
    (tmp_path / "x.jsonl.zst").write_bytes(b"")
    (tmp_path / "x.parquet").write_bytes(b"")
    (tmp_path / "blank").mkdir()
    (tmp_path / "blank" / "empty.txt").write_text("\n")
    (tmp_path / "one.txt").write_text(prose(0))
    (tmp_path / "two").mkdir()
    for k in range(2):
        (tmp_path / "two" / f"{k}.txt").write_text(prose(k))
    return [(["--input", str(tmp_path / "missing")], "missing: no such file or directory"),
            (["--input", str(tmp_path / "bad.jsonl")], "bad.jsonl:2: not valid JSON"),
            (["--input", str(tmp_path / "x.jsonl.gz")], "x.jsonl.gz: cannot read it"),
            (["--input", str(tmp_path / "blank")], "blank: no documents left"),
            (["--input", "shakespeare", "code", "--mix", "poems=1"], "unknown source 'poems'"),
            (["--contamination", str(tmp_path / "nope.jsonl")], "nope.jsonl: no such file"),
            (["--input", str(tmp_path / "one.txt")], "single document .* nothing to hold out for val.bin"),
            (["--input", str(tmp_path / "two"), "--tokenizer", "gpt2"], "gpt2: not a tokenizer directory")]


@pytest.mark.parametrize("case", range(8))
def test_bad_input_gives_a_one_line_error_and_writes_nothing(tmp_path, case):
    argv, error = bad_inputs(tmp_path)[case]
    with pytest.raises(UserError, match=error) as e:
        prepare.main(argv + ["--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")])
    assert "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("module,file", [("zstandard", "x.jsonl.zst"), ("pyarrow", "x.parquet"),
                                         ("datasets", None)])
def test_missing_optional_package_is_named(tmp_path, monkeypatch, module, file):
    bad_inputs(tmp_path)
    for name in [module, f"{module}.parquet"]:
        monkeypatch.setitem(sys.modules, name, None)                      # import now raises ImportError
    argv = ["--input", str(tmp_path / file)] if file else ["--hf", "some/dataset"]
    with pytest.raises(UserError, match=f"needs the {module} package"):                # --workers 1: in this
        prepare.main(argv + ["--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"),  # process,
                             "--workers", "1"])                                            # where the patch holds


@pytest.mark.parametrize("file", ["a.jsonl.zst", "b.parquet"])
def test_compressed_jsonl_and_parquet(tmp_path, file):
    """zstandard and pyarrow are in requirements.txt: dumps ship as .jsonl.zst and .parquet."""
    texts = [prose(k) for k in range(3)]
    if file.endswith(".zst"):
        zstd = pytest.importorskip("zstandard")
        with zstd.open(tmp_path / file, "wt", encoding="utf-8") as f:
            f.writelines(json.dumps({"text": t}) + "\n" for t in texts)
        (tmp_path / "bad.jsonl.zst").write_bytes(b"not zstd")
    else:
        pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is in requirements.txt")
        import pyarrow
        pq.write_table(pyarrow.table({"text": texts, "n": [1, 2, 3]}), tmp_path / file)
        (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    stats = {}
    opts = {"max_doc_mb": 16, "text_field": "text"}
    docs = list(sources.path_docs(tmp_path / file, "s", stats, opts))
    assert [d["text"] for d in docs] == texts and stats["files"] == 1
    assert len({d["name"] for d in docs}) == len(texts)
    bad = "bad." + file.split(".", 1)[1]
    with pytest.raises(UserError, match=f"{bad}: cannot read it"):
        list(sources.path_docs(tmp_path / bad, "s", {}, opts))
