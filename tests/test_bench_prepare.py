"""bench_prepare.py end to end on a small generated input: every figure row present, dedup scored."""
import json

import bench_prepare


def test_bench_prepare_runs_and_scores_the_dedup(tmp_path):
    tables = bench_prepare.main(["--mb", "3,1", "--workers", "2", "--dir", str(tmp_path), "--keep"])
    rows = dict(tables[0])
    assert len(tables) == 2 and dict(tables[1])["input MB"] == "1"               # two sizes, one after the other
    assert float(rows["dedup precision"]) >= 0.95 and float(rows["dedup recall"]) >= 0.9
    assert float(rows["MB/s end to end"]) > 0 and int(rows["train tokens"].replace(",", "")) > 0
    truth = json.loads((tmp_path / "3mb" / "truth.json").read_text())
    assert truth["planted"] and truth["bytes"] >= 3_000_000


def test_reused_input_keeps_the_input_and_its_truth(tmp_path):
    """--reuse-input measures again on the same files without generating them (10 GB take ~25 min)."""
    args = ["--mb", "1", "--workers", "1", "--dir", str(tmp_path), "--keep"]
    first = dict(bench_prepare.main(args)[0])
    files = {p.name: p.stat().st_mtime for p in (tmp_path / "1mb" / "input").iterdir()}
    again = dict(bench_prepare.main(args + ["--reuse-input"])[0])
    assert files == {p.name: p.stat().st_mtime for p in (tmp_path / "1mb" / "input").iterdir()}
    assert again["dedup recall"] == first["dedup recall"] and again["train tokens"] == first["train tokens"]
