"""prepare.py at scale, on a small corpus cut into many shards: the same bins from one worker, a process
pool and Ray; a killed run resumes; every option reaches its stage's cache key; --no-cache leaves the cache
alone; the lock; line dedup; linear contamination = the naive one; bad input; no import cycle."""
import ast
import gzip
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import contamination
import dedup_shards
import prepare
import shards
import sources
import tokenizer
from common import UserError, release_lock, run_lock
from test_prepare import CHINESE, build_corpus, prose, read_docs

ROOT = Path(__file__).resolve().parent.parent
COOKIE = "Accept all cookies to keep browsing our website."
NEWSLETTER = "Subscribe to the newsletter for weekly updates today."
BINS = ["train.bin", "val.bin", "val_notes.bin", "val_web.bin", "val_big.bin"]


def make_corpus(root):
    """test_prepare's corpus, plus big.jsonl (40 rows: cut into byte ranges at --shard-mb 0.004), where
    every row carries a cookie banner line and 5 rows a newsletter line."""
    build_corpus(root)
    rows = [{"text": prose(200 + k) + f"\n{COOKIE}" + (f"\n{NEWSLETTER}" if k < 5 else "")} for k in range(40)]
    (root / "big.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def run(root, *extra, out="out", cache="cache"):
    return prepare.main(["--input", str(root / "notes"), f"web={root / 'web.jsonl.gz'}", f"big={root / 'big.jsonl'}",
                         "--out", str(root / out), "--cache-dir", str(root / cache), "--vocab-size", "300",
                         "--val-frac", "0.25", "--tokenizer-mb", "1", "--shard-mb", "0.004",
                         "--line-dedup-docs", "20", *extra])


def same_bins(root, a, b):
    for name in BINS:
        assert (root / a / name).read_bytes() == (root / b / name).read_bytes(), name


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    make_corpus(root)
    return root, run(root, "--workers", "1")


def test_many_shards_and_a_byte_range_cut(single):
    root, meta = single
    plan = sources.plan_shards(sources.parse_inputs([str(root / "big.jsonl")]), {"shard_mb": 0.004})
    assert len(plan) > 3 and all("range" in s for s in plan)
    docs = [d for s in plan for d in sources.read_shard(s, {}, {"text_field": "text", "max_doc_mb": 16})]
    assert [d["text"] for d in docs] == [json.loads(line)["text"] for line in (root / "big.jsonl").open()]
    assert meta["shards"] > 8 and meta["sources"]["big"]["docs"] == 40
    enc = tokenizer.load_tokenizer(root / "out" / "tokenizer")
    got = [d for name in BINS if name != "val.bin" for d in read_docs(root / "out" / name, enc)]
    expected = {prose(k) for k in range(8)} | {prose(100 + k) for k in range(8)} | {CHINESE}
    expected |= {prose(20) + "\nwrite to <EMAIL>.", prose(21) + "\ncaf\ufffd."}
    expected |= {prose(200 + k) + (f"\n{NEWSLETTER}" if k < 5 else "") for k in range(40)}
    assert sorted(got) == sorted(expected)        # every document once, whole, across shards (empty ones too)


def test_hash_partitions_give_the_dataset_of_one_partition(single, monkeypatch):
    """Dedup and line counts read one hash partition at a time (dedup_shards.py): with a partition a few
    hundred bytes big (tens of partitions) the removed documents, the repeated lines and the bins are
    those of one partition."""
    root, meta = single
    monkeypatch.setattr(dedup_shards, "PART_MB", 0.0003)
    many = run(root, "--workers", "1", "--no-cache", out="partitioned")
    assert many["dedup"]["partitions"] > 10 and meta["dedup"]["partitions"] == 1
    assert many["dedup"]["clusters"] == meta["dedup"]["clusters"] and many["line_dedup"] == meta["line_dedup"]
    same_bins(root, "out", "partitioned")


def test_pool_gives_the_bins_of_a_single_worker(single):
    root, meta = single
    again = run(root, "--workers", "2", "--no-cache", out="pool")
    same_bins(root, "out", "pool")
    assert again["stages"]["tokenize"]["reused"] == 0                   # --no-cache really recomputed


def test_ray_gives_the_bins_of_the_pool(single):
    ray = pytest.importorskip("ray", reason="ray is in requirements.txt; without it the Ray path is untested")
    root, meta = single
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        again = run(root, "--executor", "ray", "--workers", "2", "--no-cache", out="ray")
    finally:
        ray.shutdown()
    same_bins(root, "out", "ray")
    assert again["executor"] == "ray" and again["stages"]["read+clean"]["reused"] == 0


def test_a_killed_run_resumes_with_the_shards_it_finished(single, monkeypatch):
    root, meta = single
    original, calls = shards.clean_shard, []

    def dies_on_the_fourth(*task):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt                                     # as a kill between shards
        return original(*task)

    monkeypatch.setattr(shards, "clean_shard", dies_on_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        run(root, "--workers", "1", out="resumed", cache="cache_resume")
    monkeypatch.setattr(shards, "clean_shard", original)
    assert not (root / "resumed").exists() and not (root / "resumed.lock").exists()
    again = run(root, "--workers", "1", out="resumed", cache="cache_resume")
    assert again["stages"]["read+clean"]["reused"] == 3                 # only the unfinished shards ran
    same_bins(root, "out", "resumed")


OPTIONS = [(["--text-field", "body"], "clean"), (["--max-doc-mb", "1"], "clean"), (["--skip-rule", "pii"], "clean"),
           (["--no-clean"], "clean"), (["--hf-docs", "5"], "clean"), (["--shard-mb", "1"], "clean"),
           (["--code-mb", "1"], "clean"), (["--no-dedup"], "dedup"), (["--dedup-threshold", "0.7"], "dedup"),
           (["--line-dedup-docs", "5"], "lines"), (["--val-frac", "0.1"], "tokenizer"),
           (["--seed", "1"], "tokenizer"), (["--vocab-size", "512"], "tokenizer"),
           (["--tokenizer-mb", "2"], "tokenizer")]
ORDER = ["clean", "dedup", "lines", "tokenizer"]


def keys_for(root, *extra):
    args = prepare.parse_args(["--input", str(root / "notes"), "code", "--shard-mb", "0.004", *extra])
    opts = {"shard_mb": args.shard_mb, "code_mb": args.code_mb, "hf_docs": args.hf_docs, "cache_dir": "unused"}
    return shards.stage_keys(args, sources.plan_shards(sources.parse_inputs(args.input), opts))


@pytest.mark.parametrize("change,stage", OPTIONS, ids=[" ".join(c) for c, _ in OPTIONS])
def test_each_option_changes_the_key_of_the_stage_that_reads_it(single, change, stage):
    """A changed key is a different cache entry, so the stage is recomputed; earlier stages are reused."""
    root, _ = single
    base, changed = keys_for(root), keys_for(root, *change)
    first = next(s for s in ORDER if base[s] != changed[s])
    assert first == stage
    assert all(base[s] != changed[s] for s in ORDER[ORDER.index(stage):])  # and every stage after it


def test_an_edited_input_file_changes_the_clean_key(single):
    root, _ = single
    before = keys_for(root)
    path = root / "notes" / "n0.md"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert keys_for(root)["clean"] != before["clean"]


def test_an_edited_global_step_changes_its_key_not_the_shards(single, tmp_path, monkeypatch):
    """Dedup, line counts, split and mix run in the driver (prepare.py, dedup_shards.py, mix.py): an edit
    there must not reuse their cached results, and need not recompute the shards' cleaning."""
    root, _ = single
    before = keys_for(root)
    for name in set(shards.GLOBAL_STEP_FILES) | {"sources.py", "clean.py", "tokenizer.py"}:
        shutil.copy(shards.ROOT / name, tmp_path / name)
    monkeypatch.setattr(shards, "ROOT", tmp_path)
    assert keys_for(root) == before
    with open(tmp_path / "mix.py", "a") as f:
        f.write("\n# an edit\n")
    after = keys_for(root)
    assert after["clean"] == before["clean"] and all(after[s] != before[s] for s in ("dedup", "lines", "tokenizer"))


def test_max_doc_mb_recomputes_the_documents(single):
    root, meta = single
    again = run(root, "--workers", "1", "--max-doc-mb", "0.0005", out="pieces")  # files above 500 bytes: pieces
    assert again["sources"]["notes"]["huge_pieces"] > 0 and "huge_pieces" not in meta["sources"]["notes"]


def test_no_cache_neither_reads_nor_writes_the_cache(single):
    root, _ = single
    listing = lambda: sorted((str(p), p.stat().st_mtime_ns) for p in (root / "cache").rglob("*"))  # noqa: E731
    before = listing()
    run(root, "--workers", "1", "--no-cache", "--seed", "3", out="private")
    assert listing() == before


def test_a_second_run_on_the_same_out_is_refused(single):
    root, _ = single
    lock = run_lock(root / "locked", "prepare.py")                        # this process: alive
    try:
        with pytest.raises(UserError, match="another prepare.py holds .*locked.lock"):
            run(root, "--workers", "1", out="locked")
    finally:
        release_lock(lock)
    assert not (root / "locked").exists()


def test_line_dedup_removes_planted_boilerplate_and_counts_it(single):
    root, meta = single
    enc = tokenizer.load_tokenizer(root / "out" / "tokenizer")
    docs = [d for name in ("train.bin", "val_big.bin") for d in read_docs(root / "out" / name, enc)]
    assert not any(COOKIE in d for d in docs)                            # in 40 documents: >= 20, removed
    assert sum(d.endswith(NEWSLETTER) for d in docs) == 5                # in 5: kept
    assert meta["line_dedup"]["lines_removed"] == 40 and meta["line_dedup"]["distinct_lines"] == 1
    assert {prose(200 + k) for k in range(5, 40)} <= set(docs)           # the rest of each document stays
    assert "40 lines removed" in (root / "out" / "report.md").read_text()


def test_contamination_is_linear_and_agrees_with_the_naive_check():
    """On the built-in code corpus: 150 stdlib files as train, 40 others and 20 copied windows as items."""
    docs = [d["text"] for d in sources.code_docs(None, {})][:190]
    train, held = docs[:150], docs[150:]
    items = [(f"held{k}", t) for k, t in enumerate(held)]
    items += [(f"copy{k}", " ".join(train[k].split()[10:60])) for k in range(20)]
    fast, naive = contamination.overlap(train, items), contamination.overlap_naive(train, items)
    assert fast == naive and fast["contaminated"] >= 20


def bad_cases(root):
    rows = "".join(json.dumps({"text": prose(k)}) + "\n" for k in range(50)).encode()
    zstd = pytest.importorskip("zstandard")
    data = zstd.ZstdCompressor().compress(rows)
    (root / "cut.jsonl.zst").write_bytes(data[:len(data) // 2])
    data = gzip.compress(rows)
    (root / "cut.jsonl.gz").write_bytes(data[:len(data) // 2])
    (root / "a_file").write_text("not a directory")
    two = ["--input", str(root / "notes"), f"web={root / 'web.jsonl.gz'}"]
    return [(["--input", str(root / "cut.jsonl.zst")], "cut.jsonl.zst: truncated .zst"),
            (["--input", str(root / "cut.jsonl.gz")], "cut.jsonl.gz: truncated"),
            (["--vocab-size", "256"], "--vocab-size 256: must be 257"),
            (["--vocab-size", "65537"], "--vocab-size 65537: must be 257"),
            (["--val-frac", "0"], "--val-frac 0.0: must be between 0 and 1"),
            (["--val-frac", "1"], "--val-frac 1.0: must be between 0 and 1"),
            (two + ["--mix", "notes=nan,web=1"], "share of notes must be a finite number >= 0"),
            (two + ["--mix", "notes=inf,web=1"], "share of notes must be a finite number >= 0"),
            (two + ["--mix", "notes=-1,web=1"], "share of notes must be a finite number >= 0"),
            (two + ["--mix", "notes=1"], "source web has no share"),
            (["--workers", "0"], "--workers 0: must be at least 1"),
            (["--out", str(root / "a_file")], "a_file: is a file")]


@pytest.mark.parametrize("case", range(12))
def test_bad_input_is_one_line_naming_the_problem(single, tmp_path, case):
    root, _ = single
    shutil.copytree(root / "notes", tmp_path / "notes")
    shutil.copy(root / "web.jsonl.gz", tmp_path)
    argv, error = bad_cases(tmp_path)[case]
    out = ["--out", str(tmp_path / "out")] if "--out" not in argv else []
    with pytest.raises(UserError, match=error) as e:                      # argparse: the last value wins
        prepare.main(["--vocab-size", "300", "--workers", "1", "--cache-dir", str(tmp_path / "cache")] + out + argv)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "out").exists() and (tmp_path / "a_file").read_text() == "not a directory"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_disk_full_is_named():
    with open("/dev/full", "wb", buffering=0) as f, pytest.raises(UserError, match="disk full while writing /dev/full"):
        prepare.append_docs(f, "/dev/full", np.arange(3, dtype=np.uint16), np.array([0]), np.array([3]), [0])


def test_val_follows_the_train_shares_or_the_report_says_why(single, capsys):
    root, _ = single
    meta = run(root, "--workers", "1", "--mix", "notes=3,web=1,big=1", out="mixed")
    assert "mix: shares normalized to notes=0.6, web=0.2, big=0.2" in capsys.readouterr().out
    val = meta["mix"]["val"]
    off = [s for s, v in val.items() if abs(v["achieved"] - v["asked"]) > 0.02]
    assert not off or all(s in meta["mix_note"] for s in off)
    assert all(v["tokens"] > 0 for v in val.values())                   # no source is left out of val


def imports_of(path):
    modules = {p.stem for p in ROOT.glob("*.py")}
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
        found |= {n.split(".")[0] for n in names} & modules
    return found


def test_no_import_cycle_among_the_data_modules():
    """Imports inside functions count too: a cycle hidden in a function is still a cycle."""
    data = ["prepare", "sources", "shards", "dedup", "dedup_shards", "dedup_benchmark", "contamination", "mix", "clean", "tokenizer",
            "prepare_report", "common"]
    graph = {m: imports_of(ROOT / f"{m}.py") for m in data}

    def reaches(a, b, seen=()):
        return any(n == b or (n in graph and n not in seen and reaches(n, b, seen + (n,))) for n in graph[a])
    assert not [m for m in data if reaches(m, m)]


def test_a_stage_keeps_only_what_its_fold_returns():
    # contamination's shards return up to a table's length of indices each: the driver folds them as they
    # arrive instead of holding one array per shard (1,874 shards at 10 GB held 1.2 GB that way)
    kept = []
    results, record = shards.run_stage("t", np.arange, [(3,), (5,)], [1, 1], {"executor": "pool", "workers": 1},
                                       lambda a: kept.append(a.sum()) or {"docs_in": len(a)})
    assert results == [{"docs_in": 3}, {"docs_in": 5}] and kept == [3, 10] and record["docs_in"] == 8


def test_contamination_checks_a_bounded_sample_of_val(single, monkeypatch):
    root, meta = single
    assert meta["contamination"]["val"]["items"] == meta["contamination"]["val"]["of"] > 3  # small val: all
    monkeypatch.setattr(contamination, "VAL_CHECK_MB", 0.002)                 # ~3 documents' worth
    small = run(root, "--workers", "1", out="sampled")["contamination"]["val"]
    assert 0 < small["items"] < small["of"] == meta["contamination"]["val"]["of"]
    assert "(a random sample of" in (root / "sampled" / "report.md").read_text()


def test_the_command_line_prints_one_line_and_exits_2(tmp_path):
    import subprocess
    import sys
    result = subprocess.run([sys.executable, str(ROOT / "prepare.py"), "--workers", "0", "--out", str(tmp_path / "o")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr == "error: --workers 0: must be at least 1\n"


def test_ray_missing_is_named(single, monkeypatch):
    root, _ = single
    monkeypatch.setitem(__import__("sys").modules, "ray", None)          # import ray now raises ImportError
    with pytest.raises(UserError, match="--executor ray needs the ray package"):
        run(root, "--executor", "ray", "--no-cache", out="no_ray")
    assert not (root / "no_ray").exists()
