""".parquet files above --shard-mb are cut between row groups (each one read alone): every row group in one
shard, in order; every document once, in the file's order, named by its row in the whole file; the bins
equal those of the file as one shard; a file of one row group stays one shard; a changed file, new stamps."""
import os

import pytest

import prepare
import sources
from test_prepare import prose

pa = pytest.importorskip("pyarrow", reason="pyarrow is in requirements.txt")
pq = pytest.importorskip("pyarrow.parquet")

TEXTS = [prose(300 + k) for k in range(60)]
TEXTS[7] = None                                     # a row without text: skipped, yet it still counts as a row
OPTS = {"text_field": "text", "max_doc_mb": 16}
BINS = ["train.bin", "val.bin", "val_web.bin"]


def write(path, texts, row_group_size):
    table = pa.table({"id": [f"doc{k}" for k in range(len(texts))], "text": texts})
    pq.write_table(table, path, row_group_size=row_group_size)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """web.parquet: 60 rows (~45 kB of text) in 10 row groups of 6 rows; one.parquet: the same in one."""
    root = tmp_path_factory.mktemp("parquet")
    write(root / "web.parquet", TEXTS, row_group_size=6)
    write(root / "one.parquet", TEXTS, row_group_size=len(TEXTS))
    return root


def plan(path, shard_mb=0.01):
    return sources.plan_shards(sources.parse_inputs([str(path)]), {"shard_mb": shard_mb, **OPTS})


def test_row_groups_are_cut_into_shards_each_once_in_order(root):
    shards = plan(root / "web.parquet")
    assert len(shards) >= 3 and all("row_groups" in s for s in shards)
    groups = [i for s in shards for i in range(*s["row_groups"])]
    assert groups == list(range(pq.ParquetFile(root / "web.parquet").num_row_groups))     # each once, in order
    assert all(s["bytes"] <= 10_000 for s in shards)                 # bounded by the estimate of its text
    assert len(plan(root / "web.parquet", shard_mb=8)) == 1          # under the limit: one shard, as before


def test_every_document_once_in_file_order_with_the_uncut_names(root):
    stats, whole_stats = {}, {}
    cut = [d for s in plan(root / "web.parquet") for d in sources.read_shard(s, stats, OPTS)]
    whole = list(sources.path_docs(root / "web.parquet", "web", whole_stats, OPTS))
    assert [d["text"] for d in cut] == [t for t in TEXTS if t is not None]
    assert [d["name"] for d in cut] == [d["name"] for d in whole]
    assert cut[7]["name"].endswith("web.parquet:8")                 # the global row, counting the empty one
    assert stats == whole_stats == {"files": 1, "no_text_lines": 1}


def test_a_file_of_one_row_group_stays_one_shard(root):
    shards = plan(root / "one.parquet")
    assert len(shards) == 1 and shards[0]["bytes"] > 10_000


def test_a_changed_file_changes_the_stamps(tmp_path):
    path = tmp_path / "web.parquet"
    write(path, TEXTS, row_group_size=6)
    before = [s["stamp"] for s in plan(path)]
    assert len({repr(s) for s in before}) == len(before)            # each shard its own cache key
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    after = [s["stamp"] for s in plan(path)]
    assert len(after) == len(before) and all(a != b for a, b in zip(after, before))


def run(root, out, *extra):
    return prepare.main(["--input", f"web={root / 'web.parquet'}", "--out", str(root / out),
                         "--cache-dir", str(root / "cache"), "--vocab-size", "300", "--val-frac", "0.25",
                         "--tokenizer-mb", "1", "--workers", "1", *extra])


def test_cut_file_gives_the_bins_of_one_shard(root):
    whole = run(root, "whole", "--shard-mb", "8")
    cut = run(root, "cut", "--shard-mb", "0.01")
    assert whole["shards"] == 1 and cut["shards"] >= 3 and cut["sources"]["web"]["docs"] == len(TEXTS) - 1
    for name in BINS:
        assert (root / "whole" / name).read_bytes() == (root / "cut" / name).read_bytes(), name
