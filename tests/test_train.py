"""train.py: LR schedules, config errors, exact resume, a kill -9 during a checkpoint write, gradient
accumulation = one big batch, 2-process DDP = 1 process, the stability monitor's rollback, divergence.

Runs train.main() in-process (no interpreter start-up) on a dataset built in tmp_path: a 300-token BPE
trained on a small repetitive text, so a 2-layer, 32-wide model learns it within a few dozen steps.
"""
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import train
from tokenizer import tokenizer_hash, train_tokenizer

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["--n_layer=2", "--n_head=2", "--n_kv_head=1", "--n_embd=32", "--block_size=32", "--batch_size=4",
         "--dtype='float32'", "--device='cpu'", "--kernels='torch'", "--warmup_iters=2", "--learning_rate=1e-2",
         "--min_lr=1e-3", "--eval_iters=2", "--log_interval=1"]


@pytest.fixture(autouse=True)
def one_thread():
    """These models are tiny: a second thread only adds synchronisation (and waits on a busy CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sentences(n, seed):
    rng = np.random.default_rng(seed)
    words = "the cat dog sat on a mat and ran to big red hat".split()
    return [" ".join(rng.choice(words, size=8)) + ".\n" for _ in range(n)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A prepare.py-style dataset directory: train/val/val_<source> bins, meta.json, tokenizer/."""
    root = tmp_path_factory.mktemp("data")
    enc = train_tokenizer(sentences(200, 0), 300, root / "tokenizer", verbose=False)
    bins = {"train.bin": sentences(400, 1), "val.bin": sentences(40, 2), "val_cats.bin": sentences(20, 3)}
    meta = {"vocab_size": enc.n_vocab, "dtype": "uint16", "eot_token": enc.eot_token, "tokenizer": "tokenizer",
            "tokenizer_hash": tokenizer_hash(root / "tokenizer"), "bins": {}}
    for name, docs in bins.items():
        ids = [t for doc in docs for t in [enc.eot_token] + enc.encode_ordinary(doc)]
        np.array(ids, dtype=np.uint16).tofile(root / name)
        meta["bins"][name] = {"tokens": len(ids), "bytes": sum(len(d.encode()) for d in docs), "docs": len(docs)}
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def run(out_dir, dataset, *args):
    """train.main in this process; returns the metrics.jsonl records."""
    train.main([*SMALL, f"--dataset={dataset}", f"--out_dir={out_dir}", *args])
    return [json.loads(line) for line in (Path(out_dir) / "metrics.jsonl").read_text().splitlines()]


def weights(path):
    return torch.load(path, weights_only=False)["model"]


# -----------------------------------------------------------------------------
# schedules and config


def test_lr_schedules_at_given_steps():
    cfg = train.get_config(["--learning_rate=1.0", "--min_lr=0.1", "--warmup_iters=10", "--max_iters=110",
                            "--decay_frac=0.2"])
    assert train.get_lr(0, cfg) == pytest.approx(1 / 11)  # warmup: (step + 1) / (warmup + 1)
    assert train.get_lr(9, cfg) == pytest.approx(10 / 11)
    assert train.get_lr(10, cfg) == pytest.approx(1.0)  # cosine starts at the peak
    assert train.get_lr(60, cfg) == pytest.approx(0.55)  # halfway: (1 + 0.1) / 2
    assert train.get_lr(110, cfg) == pytest.approx(0.1)  # the floor, and after it
    assert train.get_lr(500, cfg) == pytest.approx(0.1)
    cfg.lr_schedule = "wsd"  # decay over the last round(0.2 * 110) = 22 steps, from step 88
    assert train.get_lr(50, cfg) == pytest.approx(1.0)
    assert train.get_lr(88, cfg) == pytest.approx(1.0)
    assert train.get_lr(99, cfg) == pytest.approx(0.1 + (1 - math.sqrt(0.5)) * 0.9)
    assert train.get_lr(110, cfg) == pytest.approx(0.1)
    cfg.lr_schedule = "constant"
    assert train.get_lr(5, cfg) == pytest.approx(6 / 11) and train.get_lr(100, cfg) == 1.0


def test_config_errors_are_clear(tmp_path):
    with pytest.raises(SystemExit, match="unknown config key 'learning_rte'.*did you mean 'learning_rate'"):
        train.get_config(["--learning_rte=1e-3"])
    with pytest.raises(SystemExit, match="max_iters='ten' is a str, expected int"):
        train.get_config(["--max_iters=ten"])
    with pytest.raises(SystemExit, match="lr_schedule='linear', expected one of"):
        train.get_config(["--lr_schedule=linear"])
    config = tmp_path / "c.py"
    config.write_text("batch_sise = 8\n")
    with pytest.raises(SystemExit, match=f"{config}: unknown config key 'batch_sise'.*'batch_size'"):
        train.get_config([str(config)])
    with pytest.raises(SystemExit, match="no such config file"):
        train.get_config([str(tmp_path / "missing.py")])
    cfg = train.get_config([str(ROOT / "config" / "tiny.py"), "--max_iters=7", "--learning_rate=1"])
    assert cfg.max_iters == 7 and cfg.learning_rate == 1.0 and isinstance(cfg.learning_rate, float)


def test_every_precision_trains_and_fp16_keeps_a_loss_scale(tmp_path, dataset):
    """bf16 and fp16 autocast learn like fp32; fp16 goes through a GradScaler whose scale is checkpointed;
    fp16 without one needs its explicit flag (the incident lab's accident), and only with float16."""
    finals = {}
    for dtype in ["float32", "bfloat16", "float16"]:
        records = run(tmp_path / dtype, dataset, "--max_iters=12", "--eval_interval=12", f"--dtype='{dtype}'")
        losses = [r["loss"] for r in records if r["kind"] == "train"]
        assert losses[-1] < losses[0] - 0.5, dtype
        finals[dtype] = [r for r in records if r["kind"] == "eval"][-1]["val_loss"]
    assert finals["bfloat16"] == pytest.approx(finals["float32"], rel=0.05)
    assert finals["float16"] == pytest.approx(finals["float32"], rel=0.05)
    assert torch.load(tmp_path / "float32" / "ckpt_0000012.pt", weights_only=False)["scaler"] == {}
    assert torch.load(tmp_path / "float16" / "ckpt_0000012.pt", weights_only=False)["scaler"]["scale"] > 1
    with pytest.raises(SystemExit, match="fp16_no_scaler=True needs dtype='float16'"):
        run(tmp_path / "unsafe", dataset, "--max_iters=1", "--fp16_no_scaler=True")


def test_lr_range_test_stops_at_the_blowup_and_brackets_the_lr(tmp_path, dataset, capsys):
    records = run(tmp_path, dataset, "--lr_schedule='range_test'", "--min_lr=1e-5", "--learning_rate=30.0",
                  "--max_iters=80", "--eval_interval=1000", "--checkpoint_interval=1000")
    lrs = [r["lr"] for r in records if r["kind"] == "train"]
    assert lrs[0] == pytest.approx(1e-5) and np.allclose(np.diff(np.log(lrs)), math.log(30 / 1e-5) / 79)
    assert records[-1]["status"] == "finished" and records[-1]["step"] < 80  # stopped once the loss blew up
    result = json.loads((tmp_path / "range_test.json").read_text())
    smoothed = [p["smoothed"] for p in result["points"]]
    assert smoothed[-1] > 4 * min(smoothed)
    lowest = result["points"][int(np.argmin(smoothed))]
    assert result["lr_at_min_loss"] == lowest["lr"] and 1e-5 < result["lr_steepest"] <= lowest["lr"] < 30
    assert result["suggested_range"] == pytest.approx(sorted([result["lr_steepest"], lowest["lr"] / 10]))
    assert "sweep learning_rate from " in capsys.readouterr().out


# -----------------------------------------------------------------------------
# checkpoints and resume


def test_resume_is_bit_identical(tmp_path, dataset):
    # the first half stops at max_iters=4 as if killed; lr_decay_iters pins the schedule to 8 steps
    common = ["--max_iters=8", "--lr_decay_iters=8", "--checkpoint_interval=4", "--eval_interval=4"]
    straight = run(tmp_path / "a", dataset, *common)
    run(tmp_path / "b", dataset, *common, "--max_iters=4")
    resumed = run(tmp_path / "b", dataset, *common, "--resume")
    a, b = weights(tmp_path / "a" / "ckpt_0000008.pt"), weights(tmp_path / "b" / "ckpt_0000008.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    losses = lambda records: [(r["step"], r["loss"]) for r in records if r["kind"] == "train"]
    assert losses(straight) == losses(resumed) and len(losses(straight)) == 8
    val = lambda records: [(r["step"], r["val_loss"]) for r in records if r["kind"] == "eval"]
    assert val(straight) == val(resumed)
    assert straight[-1] == {**straight[-1], "kind": "end", "status": "finished", "step": 8}
    ckpt = torch.load(tmp_path / "b" / "ckpt_0000008.pt", weights_only=False)
    assert {"model", "model_config", "optimizer", "scaler", "step", "rng", "data_state", "config",
            "tokenizer_hash"} <= set(ckpt)
    assert (tmp_path / "b" / "tokenizer" / "tokenizer.json").is_file()
    assert json.loads((tmp_path / "b" / "config.json").read_text())["max_iters"] == 8


def test_resume_refuses_another_model_or_tokenizer(tmp_path, dataset):
    run(tmp_path, dataset, "--max_iters=2", "--eval_interval=100")
    with pytest.raises(SystemExit, match=r"checkpoint model differs.*n_embd=32 \(now 48\)"):
        run(tmp_path, dataset, "--max_iters=4", "--resume", "--n_embd=48")
    ckpt_path = tmp_path / "ckpt_0000002.pt"
    ckpt = torch.load(ckpt_path, weights_only=False)
    torch.save({**ckpt, "tokenizer_hash": "0123"}, ckpt_path)
    with pytest.raises(SystemExit, match="tokenizer hash 0123 != the dataset's"):
        run(tmp_path, dataset, "--max_iters=4", "--resume")


def test_kill_during_checkpoint_write_keeps_the_previous(tmp_path, dataset):
    """kill -9 while ckpt_0000004.pt.tmp is written: ckpt_0000002.pt still loads and --resume finishes
    with the same weights as a run that was never killed."""
    args = [*SMALL, f"--dataset={dataset}", "--checkpoint_interval=2", "--eval_interval=100", "--lr_decay_iters=4"]
    run(tmp_path / "killed", dataset, "--max_iters=2", "--lr_decay_iters=4", "--checkpoint_interval=2",
        "--eval_interval=100")
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args, f"--out_dir={tmp_path / 'killed'}",
                             "--max_iters=4", "--resume", "--inject_slow_save=60"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    temps = lambda: list((tmp_path / "killed").glob(".ckpt_0000004.pt.*.tmp"))  # common.write_atomic's name
    deadline = time.time() + 90
    while not temps() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert temps(), "the checkpoint write never started"
    time.sleep(0.5)  # well inside the 60 s sleep between the write and the rename
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "ckpt_0000004.pt").exists()
    assert torch.load(tmp_path / "killed" / "ckpt_0000002.pt", weights_only=False)["step"] == 2
    run(tmp_path / "killed", dataset, "--max_iters=4", "--checkpoint_interval=2", "--eval_interval=100", "--resume")
    run(tmp_path / "straight", dataset, "--max_iters=4", "--checkpoint_interval=2", "--eval_interval=100")
    a, b = weights(tmp_path / "killed" / "ckpt_0000004.pt"), weights(tmp_path / "straight" / "ckpt_0000004.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not temps()  # cleaned up by the resumed run


# -----------------------------------------------------------------------------
# batches: accumulation and DDP see the same global batch


def test_grad_accumulation_equals_a_big_batch(tmp_path, dataset):
    # SGD: AdamW's g / sqrt(v) magnifies the rounding differences of elements whose gradients are ~0
    common = ["--max_iters=3", "--eval_interval=100", "--grad_clip=0.0", "--optimizer='sgd'", "--learning_rate=0.3"]
    run(tmp_path / "big", dataset, *common, "--batch_size=4")
    run(tmp_path / "accum", dataset, *common, "--batch_size=2", "--gradient_accumulation_steps=2")
    run(tmp_path / "target", dataset, *common, "--batch_size=1", "--tokens_per_step=128")  # 4 x 32 tokens
    big = weights(tmp_path / "big" / "ckpt_0000003.pt")
    for other in ("accum", "target"):
        small = weights(tmp_path / other / "ckpt_0000003.pt")
        for k in big:  # the same sum in another order: float32 rounding only
            torch.testing.assert_close(small[k], big[k], rtol=1e-5, atol=1e-6)


def test_two_process_ddp_matches_one_process(tmp_path, dataset):
    """2 ranks x 2 rows under torch.distributed.run (gloo) = 1 process x 2 rows x 2 micro-steps."""
    common = [*SMALL, f"--dataset={dataset}", "--max_iters=3", "--eval_interval=3", "--batch_size=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                    str(ROOT / "train.py"), *common, f"--out_dir={tmp_path / 'ddp'}"], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=300)
    single = run(tmp_path / "one", dataset, "--max_iters=3", "--eval_interval=3", "--batch_size=2",
                 "--gradient_accumulation_steps=2")
    ddp = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    for a, b in zip([r for r in ddp if r["kind"] != "end"], [r for r in single if r["kind"] != "end"]):
        assert a["kind"] == b["kind"] and a["step"] == b["step"]
        for key in ("loss", "val_loss", "grad_norm"):
            if key in a:
                assert a[key] == pytest.approx(b[key], rel=1e-5)
    a, b = weights(tmp_path / "ddp" / "ckpt_0000003.pt"), weights(tmp_path / "one" / "ckpt_0000003.pt")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


# -----------------------------------------------------------------------------
# the stability monitor


def test_rollback_recovers_from_a_poisoned_batch(tmp_path, dataset):
    records = run(tmp_path, dataset, "--max_iters=40", "--checkpoint_interval=10", "--eval_interval=100",
                  "--inject_bad_batch_step=30", "--spike_policy='rollback'", "--spike_burnin=10",
                  "--spike_window=10", "--spike_sigma=4.0", "--rollback_lr_steps=5")
    events = [r for r in records if r["kind"] == "event"]
    assert [(e["event"], e["action"], e["data_step"]) for e in events][:1] == [("spike", "rollback", 30)]
    assert events[0]["restored"] == "ckpt_0000030.pt" and events[0]["step"] == 31
    dump = json.loads(Path(events[0]["batch_file"]).read_text())
    assert dump["data_step"] == 30 and dump["rows"][0]["loss"] >= dump["rows"][-1]["loss"]
    assert records[-1]["kind"] == "end" and records[-1]["status"] == "finished" and records[-1]["step"] == 40
    # after the rollback: step 31 again, on data step 31, at rollback_lr_mult x the schedule's LR
    after = [r for r in records if r["kind"] == "train"][30]
    cfg = train.get_config([*SMALL, "--max_iters=40"])
    assert after["step"] == 31 and after["lr"] == pytest.approx(0.5 * train.get_lr(30, cfg))
    # ... ramping back linearly over rollback_lr_steps=5: 0.5, 0.6, 0.7, 0.8, 0.9, then the schedule itself
    ramp = [r["lr"] / train.get_lr(r["step"] - 1, cfg) for r in records if r["kind"] == "train"][30:37]
    assert ramp == pytest.approx([0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.0])
    ckpt = torch.load(tmp_path / "ckpt_0000040.pt", weights_only=False)
    assert ckpt["data_state"] == {"data_step": 41, "lr_cut_until": 35, "rollbacks": 1}


def test_skip_drops_a_poisoned_batch_and_rollback_undoes_an_lr_blowup(tmp_path, dataset):
    monitor = ["--eval_interval=100", "--spike_burnin=10", "--spike_window=10", "--spike_sigma=4.0"]
    records = run(tmp_path / "skip", dataset, *monitor, "--max_iters=30", "--checkpoint_interval=100",
                  "--spike_policy='skip'", "--inject_bad_batch_step=20")
    events = [r for r in records if r["kind"] == "event"]
    assert [(e["event"], e["action"], e["step"], e["data_step"]) for e in events] == [("spike", "skip", 21, 20)]
    assert records[-1]["status"] == "finished"
    # a x1000 LR at data step 20 wrecks the weights: the NEXT loss spikes; skipping cannot repair that,
    # going back to ckpt_0000020.pt can
    records = run(tmp_path / "lr", dataset, *monitor, "--max_iters=30", "--checkpoint_interval=10",
                  "--spike_policy='rollback'", "--inject_lr_start=20", "--inject_lr_steps=1",
                  "--inject_lr_mult=1000.0")
    events = [r for r in records if r["kind"] == "event"]
    assert events[0]["action"] == "rollback" and events[0]["restored"] == "ckpt_0000020.pt"
    assert records[-1]["status"] == "finished"


def test_a_run_that_stays_nan_stops_as_diverged(tmp_path, dataset):
    records = run(tmp_path, dataset, "--max_iters=30", "--eval_interval=100", "--inject_lr_start=5",
                  "--inject_lr_steps=30", "--inject_lr_mult=1e30", "--grad_clip=0.0", "--diverge_patience=3")
    assert records[-1]["status"] == "diverged" and records[-1]["step"] < 30
    assert [r["event"] for r in records if r["kind"] == "event"][-3:] == ["nan"] * 3


def test_the_first_nonfinite_layer_is_named_in_the_event_and_the_batch_dump(tmp_path, dataset):
    import monitor
    torch.manual_seed(0)
    model = train.GPT(train.GPTConfig(n_layer=2, n_head=2, n_kv_head=1, n_embd=32, vocab_size=50, kernels="torch"))
    with torch.no_grad():
        model.transformer.h[1].mlp.c_fc.weight[0, 0] = math.inf
    found = []
    hooks = monitor.first_nonfinite_hooks(model, found)
    model(torch.randint(0, 50, (2, 8)))
    assert found[:3] == ["transformer.h.1.mlp.c_fc", "transformer.h.1.mlp.c_proj", "transformer.h.1.mlp"]
    [h.remove() for h in hooks]
    # in a run: an LR x 1e30 at data step 5 wrecks the weights; the next step's forward is where it shows
    records = run(tmp_path, dataset, "--max_iters=12", "--eval_interval=100", "--inject_lr_start=5",
                  "--inject_lr_steps=1", "--inject_lr_mult=1e30", "--grad_clip=0.0", "--diverge_patience=3")
    nan = next(r for r in records if r["kind"] == "event" and r["event"] == "nan")
    assert nan["first_nonfinite_layer"].startswith(("forward: transformer.", "forward: lm_head", "backward: "))
    assert json.loads(Path(nan["batch_file"]).read_text())["first_nonfinite_layer"] == nan["first_nonfinite_layer"]


def test_layer_stats_every_n_steps_and_the_data_wait_of_a_slow_reader(tmp_path, dataset):
    records = run(tmp_path / "stats", dataset, "--max_iters=10", "--eval_interval=100", "--layer_stats_interval=5",
                  "--qk_norm=True", "--z_loss=1e-4")
    layers = [r for r in records if r["kind"] == "layers"]
    assert [r["step"] for r in layers] == [1, 6]
    for r in layers:
        assert all(len(r[k]) == 2 and all(0 < v < 1e3 for v in r[k])
                   for k in ("grad_norm", "act_rms", "act_max", "attn_logit_max"))
        assert max(r["attn_logit_max"]) <= 4.01  # qk_norm: |q.k| / sqrt(D) <= sqrt(D) = 4 while the gains are ~1
    plain = [r for r in records if r["kind"] == "train"]
    slow = [r for r in run(tmp_path / "slow", dataset, "--max_iters=10", "--eval_interval=100",
                           "--inject_slow_reader=1.0") if r["kind"] == "train"]
    share = [sum(r["data_ms"] for r in rs[2:]) / sum(r["step_ms"] for r in rs[2:]) for rs in (plain, slow)]
    assert share[0] < 0.2 and 0.3 < share[1] < 0.7  # the reader sleeps as long as the last step computed
    assert all(r["compute_ms"] == pytest.approx(r["step_ms"] - r["data_ms"], abs=0.02) for r in slow)


# -----------------------------------------------------------------------------
# a run is never lost


def test_a_rejected_rerun_leaves_the_old_run_untouched(tmp_path, dataset):
    """Bad config values and a rejected --resume fail before out_dir changes: checkpoints, metrics.jsonl,
    config.json and the tokenizer copy of the earlier run all stay."""
    run(tmp_path, dataset, "--max_iters=2", "--eval_interval=100")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    for bad in (["--n_head=3"], ["--eval_iters=0"], ["--log_interval=0"], ["--batch_size=0"],
                ["--resume", "--n_embd=48"]):
        with pytest.raises(SystemExit):
            run(tmp_path, dataset, "--max_iters=4", *bad)
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before, bad


def test_a_second_run_on_the_same_out_dir_is_refused(tmp_path, dataset):
    lock = tmp_path.with_name(tmp_path.name + ".lock")
    lock.write_text(f"{os.getppid()} {__import__('socket').gethostname()}\n")  # a live process holds it
    try:
        with pytest.raises(SystemExit, match="another train.py holds"):
            run(tmp_path, dataset, "--max_iters=2")
    finally:
        lock.unlink()
    run(tmp_path, dataset, "--max_iters=2", "--eval_interval=100")  # free again: it runs
    assert not lock.exists()  # and releases the lock at the end


def test_resume_on_another_dataset_is_refused(tmp_path, dataset, tmp_path_factory):
    run(tmp_path / "run", dataset, "--max_iters=2", "--eval_interval=100")
    other = tmp_path_factory.mktemp("other")
    for path in dataset.iterdir():  # the same tokenizer and val bins, a shorter train.bin
        if path.is_dir():
            __import__("shutil").copytree(path, other / path.name)
        else:
            (other / path.name).write_bytes(path.read_bytes())
    meta = json.loads((other / "meta.json").read_text())
    ids = np.fromfile(other / "train.bin", dtype=np.uint16)[:2000]
    ids.tofile(other / "train.bin")
    meta["bins"]["train.bin"]["tokens"] = len(ids)
    (other / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(SystemExit, match="trained on another dataset"):
        train.main([*SMALL, f"--dataset={other}", f"--out_dir={tmp_path / 'run'}", "--max_iters=4", "--resume"])


def test_a_cut_last_metrics_line_does_not_block_resume(tmp_path, dataset):
    run(tmp_path, dataset, "--max_iters=2", "--eval_interval=100", "--checkpoint_interval=2")
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"kind": "train", "step": 3, "lo')  # a kill in the middle of a line
    records = run(tmp_path, dataset, "--max_iters=4", "--eval_interval=100", "--checkpoint_interval=2", "--resume")
    assert records[-1]["status"] == "finished" and [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3, 4]


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stop_signal_saves_a_checkpoint_and_the_run_resumes(tmp_path, dataset, sig, code):
    """SIGTERM (a preempted cloud GPU) or SIGINT (Ctrl-C): the step finishes, a checkpoint is written, the end
    record says "preempted", the exit code is 128 + the signal; --resume then finishes the run."""
    args = [*SMALL, f"--dataset={dataset}", f"--out_dir={tmp_path}", "--max_iters=100000", "--eval_interval=100000",
            "--checkpoint_interval=100000"]
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    for line in proc.stdout:  # wait until it trains
        if line.startswith("step") and int(line.split()[1]) >= 3:
            break
    proc.send_signal(sig)
    proc.stdout.read()
    assert proc.wait(timeout=120) == code
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["kind"] == "end" and records[-1]["status"] == "preempted"
    saved = sorted(tmp_path.glob("ckpt_*.pt"))
    assert len(saved) == 1 and torch.load(saved[0], weights_only=False)["step"] == records[-1]["step"]
    records = run(tmp_path, dataset, f"--max_iters={records[-1]['step'] + 2}", "--eval_interval=100000", "--resume")
    assert records[-1]["status"] == "finished"


def test_divergence_exits_non_zero_and_an_error_with_one_line(tmp_path, dataset):
    """Schedulers and scripts read the exit code: a diverged run is not a success."""
    args = [sys.executable, str(ROOT / "train.py"), *SMALL, f"--dataset={dataset}", f"--out_dir={tmp_path}",
            "--max_iters=30", "--eval_interval=100", "--inject_lr_start=5", "--inject_lr_steps=30",
            "--inject_lr_mult=1e30", "--grad_clip=0.0", "--diverge_patience=3"]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 1 and "diverged at step" in done.stdout
    done = subprocess.run(args + ["--n_head=3"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and done.stderr.startswith("error: config:")


def test_windows_reach_the_last_token():
    """Offsets 0 .. n - T - 1 inclusive: a window of T + 1 tokens may end on the bin's last token, never past it."""
    from dataloader import window_starts
    starts = window_starts(40, 32, 5000, [0, 0, 0])
    assert starts.min() == 0 and starts.max() == 40 - 32 - 1


def test_a_full_disk_during_a_checkpoint_is_one_line_and_keeps_the_previous(tmp_path, dataset, monkeypatch):
    run(tmp_path, dataset, "--max_iters=2", "--eval_interval=100", "--checkpoint_interval=2")
    import checkpoint

    def no_space(obj, f):
        f.write(b"x" * 1000)
        raise OSError(__import__("errno").ENOSPC, "No space left on device")
    monkeypatch.setattr(checkpoint.torch, "save", no_space)
    with pytest.raises(SystemExit, match="disk full while writing .*ckpt_0000004.pt"):
        run(tmp_path, dataset, "--max_iters=4", "--eval_interval=100", "--checkpoint_interval=2", "--resume")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.glob("*ckpt*")) == ["ckpt_0000002.pt"]  # no temp file left
    assert torch.load(tmp_path / "ckpt_0000002.pt", weights_only=False)["step"] == 2


def test_checkpoint_every_s_saves_by_the_clock(tmp_path, dataset):
    records = run(tmp_path, dataset, "--max_iters=6", "--eval_interval=100", "--checkpoint_interval=100",
                  "--checkpoint_every_s=0.000001", "--keep_last=10")
    assert records[-1]["status"] == "finished"
    # every step is "due" at this interval: a save before each of the 6 steps, and the last step's
    assert [p.name for p in sorted(tmp_path.glob("ckpt_*.pt"))] == [f"ckpt_{s:07d}.pt" for s in range(7)]


def test_allow_new_dataset_switches_and_logs_it(tmp_path, dataset, tmp_path_factory):
    run(tmp_path / "run", dataset, "--max_iters=2", "--eval_interval=100")
    other = tmp_path_factory.mktemp("other")
    __import__("shutil").copytree(dataset, other, dirs_exist_ok=True)
    meta = json.loads((other / "meta.json").read_text())
    meta["bins"]["train.bin"]["docs"] += 1  # a different dataset, as far as the hash can tell
    (other / "meta.json").write_text(json.dumps(meta))
    train.main([*SMALL, f"--dataset={other}", f"--out_dir={tmp_path / 'run'}", "--max_iters=4", "--resume",
                "--allow_new_dataset=True", "--eval_interval=100"])
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    events = [r["event"] for r in records if r["kind"] == "event"]
    assert events == ["resume", "dataset_switch"] and records[-1]["status"] == "finished"


def test_torture_kills_and_sigterms_end_bit_identical(tmp_path):
    """tests/torture.py shortened: 3 SIGKILLs at random moments (some mid-checkpoint) and a SIGTERM."""
    from torture import torture
    identical, loadable, events = torture(tmp_path, kills=3, terms=1, max_iters=30, log=lambda line: None)
    assert identical and loadable, events


def test_an_unwritable_out_dir_is_one_line(tmp_path, dataset):
    (tmp_path / "a_file").write_text("")  # a file where a folder should be: fails even for root
    with pytest.raises(SystemExit, match="cannot create the run directory"):
        run(tmp_path / "a_file" / "run", dataset, "--max_iters=1")


KEPT_PAGES = """
import sys, torch, common
getattr(common, sys.argv[1])()
before = common.rss_bytes()
x = torch.ones(16 << 20, dtype=torch.uint8)  # 16 MiB, every page touched
del x
print((common.rss_bytes() - before) >> 20)
"""


def test_keep_freed_memory_keeps_a_freed_tensors_pages_and_release_returns_them():
    """train.py on a CPU calls common.keep_freed_memory: a freed 16 MiB activation stays mapped (the next
    step reuses its pages instead of faulting in fresh zeroed ones); release_freed_memory (plan.py's
    measurements) hands them back. Each in a fresh process: glibc's settings are per process."""
    kept = {name: int(subprocess.run([sys.executable, "-c", KEPT_PAGES, name], capture_output=True, text=True,
                                     check=True, cwd=Path(__file__).resolve().parents[1]).stdout)
            for name in ("keep_freed_memory", "release_freed_memory")}
    assert kept["keep_freed_memory"] >= 15 and kept["release_freed_memory"] <= 1, kept
