"""The incident lab end to end, shortened: every incident of config/incidents/ trained through train.py
(in this process, one intra-op thread) on a tiny model and a dataset of stdlib .py files built here, and
each detector must find its phenomenon in the real metrics.jsonl. Then the suite's report and a tiny LR
sweep's report. About a minute on 2 shared cores.

The shrink (SMALL) is written to out/base_overrides.py and executed between baseline.py and the incident's
file, so `learning_rate *= 10` still means ten times the baseline's. The embedding is padded to 4096 rows (the
real dataset's vocabulary size): fp16's underflow and the poisoned batch's spike come from the many
tokens the model rates unlikely, which a 320-token vocabulary does not have."""
import glob
import os
import sysconfig

import numpy as np
import pytest
import torch

import incident_probes
import incidents
import runs
import sweeps
from tokenizer import train_tokenizer

SMALL = dict(vocab_size=4096, n_embd=64, n_layer=2, n_head=4, n_kv_head=4, block_size=32, batch_size=8,
             max_iters=150, lr_decay_iters=150, warmup_iters=15, eval_interval=50, eval_iters=2,
             checkpoint_interval=150, spike_window=20)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A dataset directory as prepare.py writes one: 60 stdlib modules, a 320-token BPE, 6 held out."""
    root = tmp_path_factory.mktemp("lab")
    files = sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py")))[:60]
    docs = [open(f, encoding="utf-8", errors="replace").read() for f in files]
    enc = train_tokenizer(docs[:20], 320, root / "tokenizer", verbose=False)

    def bin_of(ds):  # every document preceded by <|endoftext|>, as the contract says
        ids = np.concatenate([[enc.eot_token] + enc.encode_ordinary(d) for d in ds]).astype(np.uint16)
        return ids, sum(len(d.encode()) for d in ds), len(ds)

    return incident_probes.write_dataset(root / "data", root / "tokenizer",
                                   {"train.bin": bin_of(docs[:-6]), "val.bin": bin_of(docs[-6:])}, "test")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # two OpenMP threads on an oversubscribed CPU spin against each other
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def lab(dataset, tmp_path_factory):
    """Every incident except lr_x10/no_clip at the baseline's LR; their results and the report."""
    root = tmp_path_factory.mktemp("runs")
    names = ["no_warmup", "batch_1", "sgd", "fp16_no_scaler", "dup_data", "bad_batch"]
    saved = dict(incidents.DUP_DATA)
    incidents.DUP_DATA.update(unique_tokens=300)  # a 2-layer, 64-wide model memorises 300 tokens in 150 steps
    try:
        report, results = incidents.run_incidents(names, out_root=root / "out", report_dir=root / "report",
                                                  base_overrides={**SMALL, "dataset": str(dataset)}, in_process=True)
    finally:
        incidents.DUP_DATA.clear()
        incidents.DUP_DATA.update(saved)
    return report, results


@pytest.fixture(scope="module")
def high_lr(dataset, tmp_path_factory):
    """lr_x10 and no_clip from a baseline at 3e-2: at 1e-2 x10 this tiny model only wobbles."""
    root = tmp_path_factory.mktemp("high_lr")
    shrink = {**SMALL, "dataset": str(dataset), "max_iters": 100, "lr_decay_iters": 100, "warmup_iters": 10,
              "checkpoint_interval": 100, "learning_rate": 3e-2, "min_lr": 3e-3}
    _, results = incidents.run_incidents(["lr_x10", "no_clip"], out_root=root / "out", report_dir=root / "report",
                                         base_overrides=shrink, in_process=True)
    return results


def number_after(text, words):
    """The number that follows `words` in a measured sentence."""
    return float(text.split(words, 1)[1].split()[0].strip("x(),;%"))


def test_lr_x10_loss_explodes(high_lr):
    res = high_lr["lr_x10"]
    assert res["reproduced"], res["measured"]
    assert res["run"]["end"]["status"] in ("finished", "diverged")
    if "NaN" not in res["measured"]:
        jump, jump0 = incidents.biggest_jump(res["run"])[0], incidents.biggest_jump(res["base"])[0]
        assert jump >= 1.0 and jump >= 1.5 * jump0 or \
            runs.final_train(res["run"]) - runs.final_train(res["base"]) >= 0.5


def test_no_clip_lets_exploding_gradients_through(high_lr):
    res = high_lr["no_clip"]
    assert res["reproduced"], res["measured"]
    # its reference is the clipped run with the same LR, which is lr_x10's run: not trained twice
    assert res["ref"] is high_lr["lr_x10"]["run"]
    assert number_after(res["measured"], "grad norm peaked at") > 10 * number_after(res["measured"], "median")


def test_no_warmup_is_unstable_in_the_first_steps(lab):
    res = lab[1]["no_warmup"]
    assert res["reproduced"], res["measured"]
    assert res["ref"]["train"][0]["lr"] < res["run"]["train"][0]["lr"]  # the reference warms up


def test_batch_1_is_noisier_and_behind(lab):
    res = lab[1]["batch_1"]
    assert res["reproduced"], res["measured"]
    assert incidents.loss_noise(res["run"]) > 2 * incidents.loss_noise(res["base"])


def test_sgd_is_slower(lab):
    res = lab[1]["sgd"]
    assert res["reproduced"], res["measured"]
    assert runs.final_val(res["run"]) > runs.final_val(res["base"]) + 0.2


def test_fp16_without_scaler_underflows(lab):
    res = lab[1]["fp16_no_scaler"]
    assert res["reproduced"], res["measured"]
    probe = res["run"]["probe"]
    assert probe["fp16"]["zeroed_pct"] >= 1.0 and probe["fp16 x 65536"]["zeroed_pct"] < 0.1
    assert probe["max_activation"] < 65504  # underflow, not overflow, at this size ...
    # ... until the loss is scaled: overflow to inf at some power of two above a GradScaler's 2^16 start
    assert probe["overflow_scale"] > 65536 and probe["overflow_scale"] & (probe["overflow_scale"] - 1) == 0
    assert "overflows to inf" in res["measured"]


def test_dup_data_memorises_the_planted_passage(lab):
    res = lab[1]["dup_data"]
    assert res["reproduced"], res["measured"]
    same, n, same0 = res["run"]["regurgitation"]
    assert same >= 0.8 * n and same0 < 0.5 * n


def test_bad_batch_is_rolled_back_and_the_run_recovers(lab):
    res = lab[1]["bad_batch"]
    assert res["reproduced"], res["measured"]
    events = [e for e in res["run"]["event"] if e["action"] == "rollback"]
    assert events and events[0]["data_step"] == SMALL["max_iters"] // 2  # the poisoned batch itself
    assert res["run"]["end"] == {**res["run"]["end"], "status": "finished", "step": SMALL["max_iters"]}


def test_report_has_a_measured_row_and_a_plot_per_incident(lab):
    report, results = lab
    text = report.read_text()
    for name, res in results.items():
        row = next(line for line in text.splitlines() if line.startswith(f"| [{name}]"))
        assert incidents.md_cell(res["measured"]) in row
        assert (report.parent / f"{name}.png").stat().st_size > 5000
    assert (report.parent / "overview.png").is_file()


def test_lr_sweep_names_the_winner_of_its_own_table(dataset, tmp_path):
    (tmp_path / "sw").mkdir()
    (tmp_path / "sw" / "lr.py").write_text(
        'title = "LR"\nquestion = "Which LR?"\n'
        'runs = {"lr=1e-4": {"learning_rate": 1e-4, "min_lr": 1e-5}, "lr=1e-2": {"learning_rate": 1e-2, "min_lr": 1e-3}}\n')
    shrink = {**SMALL, "dataset": str(dataset), "max_iters": 40, "lr_decay_iters": 40, "warmup_iters": 4,
              "eval_interval": 20, "checkpoint_interval": 40}
    report, winner, rows = sweeps.run_sweep("lr", out_root=tmp_path / "out", report_dir=tmp_path / "rep",
                                               base_overrides=shrink, sweep_dir=tmp_path / "sw", in_process=True)
    text = report.read_text()
    assert winner == min(rows, key=lambda label: rows[label]["val_bpb"]) == "lr=1e-2"  # 1e-4 barely moves
    assert f"**lr=1e-2** won with val bpb {rows['lr=1e-2']['val_bpb']:.3f}" in text
    assert f"(+{rows['lr=1e-4']['val_bpb'] - rows['lr=1e-2']['val_bpb']:.3f}," in text
