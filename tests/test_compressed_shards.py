"""A big .jsonl.zst or .jsonl.gz is cut into shards by byte ranges of its decompressed text, like a plain
.jsonl: every document in exactly one shard, in the file's order; the bins equal those of one shard on one
worker, and those of the same rows given as several files; a cut file is still a one-line error naming it."""
import gzip
import json

import pytest

import prepare
import sources
from common import UserError
from test_prepare import prose

ROWS = [{"text": prose(300 + k)} for k in range(60)]
OPTS = {"text_field": "text", "max_doc_mb": 16}
BINS = ["train.bin", "val.bin", "val_web.bin"]


def compress(rows, suffix):
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    if suffix == ".gz":
        return gzip.compress(data)
    return pytest.importorskip("zstandard").ZstdCompressor().compress(data)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """web.jsonl.zst and web.jsonl.gz (60 rows, ~45 kB of text), and parts/: the same rows in 3 .zst files."""
    root = tmp_path_factory.mktemp("compressed")
    for suffix in (".zst", ".gz"):
        (root / f"web.jsonl{suffix}").write_bytes(compress(ROWS, suffix))
    (root / "parts").mkdir()
    for k in range(3):
        (root / "parts" / f"p{k}.jsonl.zst").write_bytes(compress(ROWS[20 * k:20 * k + 20], ".zst"))
    return root


@pytest.mark.parametrize("suffix", [".zst", ".gz"])
def test_every_document_is_in_one_shard_in_the_files_order(inputs, suffix):
    plan = sources.plan_shards(sources.parse_inputs([str(inputs / f"web.jsonl{suffix}")]), {"shard_mb": 0.01})
    assert len(plan) >= 3 and all("range" in s for s in plan)
    assert [s["range"][0] for s in plan[1:]] == [s["range"][1] for s in plan[:-1]]   # ranges tile the text
    assert all(s["bytes"] <= 10_000 for s in plan)                                     # bounded: text bytes
    docs = [d["text"] for s in plan for d in sources.read_shard(s, {}, OPTS)]
    assert docs == [r["text"] for r in ROWS]


def test_a_compressed_file_is_cut_into_at_most_max_cuts_shards(inputs, monkeypatch):
    """Shard i of k decompresses (i + 1) / k of the file: the cap keeps that re-reading bounded."""
    monkeypatch.setitem(sources.MAX_CUTS, ".zst", 2)
    plan = sources.plan_shards(sources.parse_inputs([str(inputs / "web.jsonl.zst")]), {"shard_mb": 0.01})
    assert len(plan) == 2
    assert [d["text"] for s in plan for d in sources.read_shard(s, {}, OPTS)] == [r["text"] for r in ROWS]
    plain = inputs / "web.jsonl"
    plain.write_bytes(b"".join(sources.text_chunks(inputs / "web.jsonl.zst")))
    assert len(sources.plan_shards(sources.parse_inputs([str(plain)]), {"shard_mb": 0.01})) > 2  # no cap: seek


def test_a_line_belongs_to_the_range_it_starts_in(inputs):
    """Cuts on a line's first byte, inside it, and on its newline: the line is read once, by its range."""
    path = inputs / "web.jsonl.zst"
    first = len(json.dumps(ROWS[0])) + 1                                # the second line starts here
    for cut in (first - 1, first, first + 1):
        a = list(sources.jsonl_lines(path, 0, cut))
        b = list(sources.jsonl_lines(path, cut, None))
        assert len(a) + len(b) == len(ROWS) and len(a) == (1 if cut <= first else 2)


def run(root, name, out, *extra):
    return prepare.main(["--input", f"web={root / name}", "--out", str(root / out),
                         "--cache-dir", str(root / "cache"), "--vocab-size", "300", "--val-frac", "0.25",
                         "--tokenizer-mb", "1", *extra])


def same_bins(root, a, b):
    for name in BINS:
        assert (root / a / name).read_bytes() == (root / b / name).read_bytes(), name


def test_shards_and_workers_give_the_bins_of_one_shard(inputs):
    whole = run(inputs, "web.jsonl.zst", "whole", "--workers", "1", "--shard-mb", "8")
    cut = run(inputs, "web.jsonl.zst", "cut", "--workers", "2", "--shard-mb", "0.01")
    assert whole["shards"] == 1 and cut["shards"] >= 3 and cut["sources"]["web"]["docs"] == len(ROWS)
    same_bins(inputs, "whole", "cut")
    run(inputs, "web.jsonl.gz", "cut_gz", "--workers", "1", "--shard-mb", "0.01")
    same_bins(inputs, "whole", "cut_gz")
    run(inputs, "parts", "parts", "--workers", "1", "--shard-mb", "0.01")   # the same rows as 3 files
    same_bins(inputs, "whole", "parts")


@pytest.mark.parametrize("suffix,error", [(".zst", "truncated .zst"), (".gz", "truncated")])
def test_a_cut_file_is_one_line_naming_it(inputs, tmp_path, suffix, error):
    data = compress(ROWS, suffix)
    (tmp_path / f"cut.jsonl{suffix}").write_bytes(data[:len(data) // 2])
    with pytest.raises(UserError, match=f"cut.jsonl{suffix}: {error}") as e:
        run(tmp_path, f"cut.jsonl{suffix}", "out", "--workers", "1", "--shard-mb", "0.01")
    assert "\n" not in str(e.value) and not (tmp_path / "out").exists()
