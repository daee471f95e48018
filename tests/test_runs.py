"""runs.py: reading a run's metrics.jsonl (a write cut short by a kill is dropped, garbage is an error with
its line), configs loaded by train.py's own rules (a wrong key stops; a diff names only what changed), and
the run-comparison report that eval.py --compare prints."""
import json
import math

import pytest

import eval as ev
import runs


def test_a_cut_short_last_line_is_dropped_and_other_garbage_is_an_error(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"kind": "train", "step": 0}\n{"kind": "end", "sta')
    run = runs.read_metrics(tmp_path)
    assert [r["step"] for r in run["train"]] == [0] and run["end"] == {}  # killed mid-write: no end line
    (tmp_path / "metrics.jsonl").write_text('{"kind": "train", "step": 0}\nnot json\n{"kind": "end"}\n')
    with pytest.raises(SystemExit, match=r"metrics.jsonl:2: not JSON"):
        runs.read_metrics(tmp_path)


def test_load_config_uses_train_py_rules_and_the_diff_names_only_changes(tmp_path):
    (tmp_path / "base.py").write_text("learning_rate = 1e-2\nn_layer = 2\n")
    (tmp_path / "x10.py").write_text("learning_rate *= 10\n")
    base = runs.load_config(tmp_path / "base.py")
    changed = runs.load_config(tmp_path / "base.py", tmp_path / "x10.py", overrides={"batch_size": 3})
    assert runs.change_text(changed, base) == "batch_size=3, learning_rate=0.1"
    assert runs.changed_keys(base, runs.load_config()) == {"learning_rate": 1e-2, "n_layer": 2}
    (tmp_path / "typo.py").write_text("learnig_rate = 1e-3\n")
    with pytest.raises(SystemExit, match="unknown config key 'learnig_rate'"):
        runs.load_config(tmp_path / "typo.py")
    with pytest.raises(SystemExit, match="expected int"):
        runs.load_config(overrides={"n_layer": "two"})


def write_run(run_dir, config, final_loss, event=None, status="finished"):
    """A run dir as train.py leaves it, with a loss curve falling to final_loss."""
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(config))
    lines = []
    for step in range(1, 51):
        loss = final_loss + 3 * math.exp(-step / 10)
        lines.append({"kind": "train", "step": step, "tokens": step * 1024, "time_s": step * 0.1, "loss": loss,
                      "lr": config["learning_rate"] * min(1, step / 10), "grad_norm": 1 + 1 / step,
                      "tokens_per_s": 10240.0 + step, "mfu": None, "step_ms": 100.0, "peak_mem_mb": 100.0})
        if step % 10 == 0:
            lines.append({"kind": "eval", "step": step, "tokens": step * 1024, "time_s": step * 0.1,
                          "val_loss": loss + 0.1, "val_bpb": (loss + 0.1) / 2, "per_source": {}})
        if event and step == 25:
            lines.append({"kind": "event", "step": 25, "tokens": 25 * 1024, "time_s": 2.5, "event": event,
                          "action": "warn", "detail": "loss 9 > mean + 6 sd"})
    lines.append({"kind": "end", "step": 50, "time_s": 5.0, "status": status})
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"kind": "tra')


def test_compare_report_lists_every_config_difference_and_writes_plots(tmp_path, capsys):
    base = {"dataset": "default", "n_layer": 4, "learning_rate": 1e-3, "warmup_iters": 10, "batch_size": 8}
    write_run(tmp_path / "a", {**base, "out_dir": "out/a"}, 2.0)
    write_run(tmp_path / "b", {**base, "out_dir": "out/b", "learning_rate": 3e-3}, 1.8, event="spike")
    write_run(tmp_path / "c", {**base, "out_dir": "out/c", "warmup_iters": 0, "grad_clip": 0.0}, 2.5,
              status="diverged")
    summary = runs.compare_runs([tmp_path / d for d in "abc"], tmp_path / "report", title="LR and warmup")
    assert set(summary["config_diff"]) == {"out_dir", "learning_rate", "warmup_iters", "grad_clip"}
    assert summary["config_diff"]["grad_clip"] == [None, None, 0.0]
    assert set(summary["held_fixed"]) == {"dataset", "n_layer", "batch_size"}
    report = (tmp_path / "report" / "report.md").read_text()
    for key, values in summary["config_diff"].items():
        assert f"| `{key}` | " + " | ".join(f"`{runs.fmt(v, None)}`" for v in values) + " |" in report
    b = summary["runs"][1]["outcomes"]
    assert b["final_val_loss"] == pytest.approx(1.8 + 3 * math.exp(-5) + 0.1) and b["tokens"] == 50 * 1024
    assert b["events"] == {"spike": 1} and b["tokens_per_s"] == 10240.0 + 26  # median of steps 2..50
    assert "**b**" in summary["conclusion"] and "c (diverged)" in summary["conclusion"]
    assert "spike x1" in report and "LR and warmup" in report
    for name in summary["plots"]:  # overview + one per panel + the outcome bars
        data = (tmp_path / "report" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert len(summary["plots"]) == 7
    ev.main(["--compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "r2"),
             "--names", "low", "high"])
    assert "| `learning_rate` | `0.001` | `0.003` |" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="config.json: missing"):
        runs.compare_runs([tmp_path / "a", tmp_path], tmp_path / "r3")
