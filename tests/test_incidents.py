"""The incident lab's measuring side, on synthetic metrics.jsonl files (read by runs.read_metrics): each
detector fires on the phenomenon it names and stays quiet on a healthy run, and the reports (incident
table, sweep record) say what their own numbers say. No training here; tests/test_incidents_runs.py trains."""
import json
import math

import numpy as np
import pytest

import incidents
import runs
import sweeps

STEPS = 200


def healthy(seed=0, noise=0.03, speed=40.0, floor=3.0, grad=0.8):
    """A loss that decays smoothly to `floor`, grad norms around `grad`."""
    rng = np.random.default_rng(seed)
    s = np.arange(STEPS)
    loss = floor + 5 * np.exp(-s / speed) + noise * rng.standard_normal(STEPS)
    gn = grad * (1 + 0.1 * rng.standard_normal(STEPS))
    return loss, gn


def write_run(path, loss, gn, val=None, events=(), status="finished", lr=None):
    """metrics.jsonl as train.py may write it (NaN as null, inf as Infinity); val: {step: val_loss} (defaults to smoothed loss)."""
    path.mkdir(parents=True, exist_ok=True)
    lr = np.full(len(loss), 1e-3) if lr is None else lr
    lines = []
    for i, (l, g) in enumerate(zip(loss, gn)):
        lines.append({"kind": "train", "step": i, "tokens": 1024 * (i + 1), "time_s": 0.05 * i,
                      "loss": None if l != l else float(l), "lr": float(lr[i]),
                      "grad_norm": None if g != g else float(g), "tokens_per_s": 20000.0,
                      "mfu": None, "step_ms": 50.0, "peak_mem_mb": 100.0})
    val = val if val is not None else {s: float(np.mean(loss[max(0, s - 5):s + 1])) + 0.1
                                       for s in range(0, len(loss), 25)}
    for s, v in val.items():
        lines.append({"kind": "eval", "step": s, "tokens": 1024 * (s + 1), "time_s": 0.05 * s, "val_loss": v,
                      "val_bpb": v / math.log(2) / 3.5,
                      "per_source": {"shakespeare": {"loss": v, "bpb": v / 2.4}, "code": {"loss": v, "bpb": v / 3}}})
    lines += [{"kind": "event", **e} for e in events]
    lines.append({"kind": "end", "step": len(loss), "time_s": 0.05 * len(loss), "status": status})
    (path / "metrics.jsonl").write_text("\n".join(json.dumps(l) for l in lines) + "\n")
    (path / "config.json").write_text(json.dumps({"checkpoint_interval": 50}))
    return runs.read_metrics(path)


@pytest.fixture
def base(tmp_path):
    return write_run(tmp_path / "baseline", *healthy())


def test_divergence_reports_the_first_nan_step(tmp_path, base):
    loss, gn = healthy()
    loss[37:] = np.nan
    run = write_run(tmp_path / "lr", loss[:40], gn[:40], status="diverged")
    ok, text = incidents.detect_divergence(run, base)
    assert ok and "loss NaN at step 37" in text and "diverged" in text
    assert not incidents.detect_divergence(write_run(tmp_path / "same", *healthy(1)), base)[0]


def test_early_instability_sees_first_steps_spikes(tmp_path, base):
    loss, gn = healthy()
    gn[:20] *= 12
    loss[:30] += np.tile([0.0, 1.5], 15)  # up and down every other step
    ok, text = incidents.detect_early_instability(write_run(tmp_path / "nw", loss, gn), base)
    assert ok and "grad norm x12" in text
    assert not incidents.detect_early_instability(write_run(tmp_path / "ok", *healthy(2)), base)[0]


def test_noise_ratio_is_measured_against_the_baseline(tmp_path, base):
    loss, gn = healthy(seed=3, noise=0.3, speed=120)
    ok, text = incidents.detect_noisy(write_run(tmp_path / "b1", loss, gn), base)
    ratio = float(text.split("x")[1].split()[0])
    assert ok and 5 < ratio < 15  # noise 0.3 vs 0.03, minus what the moving average absorbs
    assert not incidents.detect_noisy(write_run(tmp_path / "ok", *healthy(4)), base)[0]


def test_grad_explosion_needs_norms_far_above_the_reference(tmp_path, base):
    loss, gn = healthy()
    gn[120:125] = [50, 300, 900, 200, 60]
    ok, text = incidents.detect_grad_explosion(write_run(tmp_path / "nc", loss, gn), base)
    assert ok and "peaked at 900 at step 122" in text and "5 step(s) above x10" in text
    assert not incidents.detect_grad_explosion(write_run(tmp_path / "ok", *healthy(5)), base)[0]


def test_slow_convergence_counts_steps_to_the_baselines_early_loss(tmp_path, base):
    ok, text = incidents.detect_slow(write_run(tmp_path / "sgd", *healthy(speed=400, floor=3.5)), base)
    assert ok and ("never reached" in text or "slower" in text)
    assert not incidents.detect_slow(write_run(tmp_path / "ok", *healthy(6)), base)[0]


def test_precision_tells_overflow_from_underflow(tmp_path, base):
    loss, gn = healthy()
    gn[12] = math.inf
    ok, text = incidents.detect_precision(write_run(tmp_path / "inf", loss, gn), base)
    assert ok and "grad_norm inf at step 12" in text
    run = write_run(tmp_path / "under", *healthy(7))
    probe = {"step": 199, "max_activation": 600.0, "fp16": {"zeroed_pct": 6.5, "rel_err_pct": 5.0},
             "fp16 x 65536": {"zeroed_pct": 0.0, "rel_err_pct": 0.07}, "bf16": {"zeroed_pct": 0.0, "rel_err_pct": 0.5}}
    run["probe"] = probe
    ok, text = incidents.detect_precision(run, base)
    assert ok and "6.50% of the gradient entries underflowed" in text and "with the loss x 65,536: 0.00%" in text
    run["probe"] = {**probe, "overflow_scale": 2 ** 21, "overflow_pct": 0.00025}
    text = incidents.detect_precision(run, base)[1]
    assert "with the loss x 2^21 the gradient overflows to inf (0.00025% of entries" in text
    run["probe"] = {**probe, "fp16": {"zeroed_pct": 0.04, "rel_err_pct": 0.2}}  # nothing lost: not an incident
    assert not incidents.detect_precision(run, base)[0]
    del run["probe"]
    assert not incidents.detect_precision(run, base)[0]


def test_memorised_needs_lower_train_higher_val_and_regurgitation(tmp_path, base):
    loss, gn = healthy(floor=1.0)
    val = {s: 3.2 + (0.004 * (s - 50) if s > 50 else 0.02 * (50 - s)) for s in range(0, STEPS, 25)}
    run = write_run(tmp_path / "dup", loss, gn, val=val)
    run["regurgitation"] = (30, 32, 0)
    ok, text = incidents.detect_memorised(run, base)
    assert ok and "repeats 30/32" in text and "from its minimum at step 50" in text
    run["regurgitation"] = (2, 32, 0)
    assert not incidents.detect_memorised(run, base)[0]
    # worse than the baseline but still falling at the end: under-trained, not overfitting
    falling = write_run(tmp_path / "falling", loss, gn, val={s: 4.0 - 0.002 * s for s in range(0, STEPS, 25)})
    falling["regurgitation"] = (30, 32, 0)
    assert not incidents.detect_memorised(falling, base)[0]


def test_recovered_requires_rollback_and_a_finished_run(tmp_path, base):
    loss, gn = healthy()
    ev = [{"step": 150, "event": "spike", "action": "rollback to step 125, skip batch"}]
    ok, text = incidents.detect_recovered(write_run(tmp_path / "bb", loss, gn, events=ev), base)
    assert ok and "'spike' at step 150 -> rollback" in text
    assert not incidents.detect_recovered(write_run(tmp_path / "no", loss, gn), base)[0]
    assert not incidents.detect_recovered(write_run(tmp_path / "dead", loss, gn, events=ev, status="diverged"), base)[0]


def synthetic_suite(root):
    """A run per incident that shows its phenomenon, written where run_incidents(report_only) looks."""
    out = root / "out"
    write_run(out / "baseline", *healthy())
    loss, gn = healthy()
    runs = {"lr_x10": (np.r_[loss[:30], [np.nan] * 3], gn[:33]), "no_warmup": None, "batch_1": healthy(3, 0.3, 120),
            "no_clip": None, "sgd": healthy(speed=400, floor=3.5), "fp16_no_scaler": (loss, np.r_[gn[:50], np.inf, gn[51:]]),
            "dup_data": healthy(floor=1.0), "bad_batch": healthy(8)}
    nw = healthy()
    nw[1][:20] *= 12
    runs["no_warmup"] = nw
    nc = healthy()
    nc[1][100:103] = [100, 500, 100]
    runs["no_clip"] = nc
    rising_val = {s: 3.2 + abs(s - 50) * 0.01 for s in range(0, STEPS, 25)}
    for name, (l, g) in runs.items():
        ev = [{"step": 150, "event": "spike", "action": "rollback"}] if name == "bad_batch" else []
        write_run(out / name, l, g, events=ev, val=rising_val if name == "dup_data" else None)
    for name in ("no_warmup", "no_clip"):
        write_run(out / f"{name}_ref", *healthy(9))
    (out / "dup_data" / "probe.json").write_text("[31, 32, 0]")
    return out


def test_incident_report_has_a_row_and_a_plot_per_incident(tmp_path):
    out = synthetic_suite(tmp_path)
    report, results = incidents.run_incidents(list(incidents.INCIDENTS), out_root=out, report_dir=tmp_path / "rep",
                                               report_only=True)
    text = report.read_text()
    for name in incidents.INCIDENTS:
        assert sum(line.startswith(f"| [{name}]") for line in text.splitlines()) == 1
        assert (tmp_path / "rep" / f"{name}.png").stat().st_size > 5000
        assert f"![{name}]({name}.png)" in text
    assert "loss NaN at step 30" in text  # the measured cell, not prose
    assert (tmp_path / "rep" / "overview.png").stat().st_size > 5000
    assert all(r["reproduced"] for r in results.values()), {n: r["measured"] for n, r in results.items()}


def test_sweep_report_names_the_winner_of_its_own_table(tmp_path):
    (tmp_path / "sw").mkdir()
    (tmp_path / "sw" / "toy.py").write_text('title = "Toy"\nquestion = "Which?"\n'
                                            'runs = {"a": {"learning_rate": 1.0}, "b": {"learning_rate": 2.0}, '
                                            '"c": {"learning_rate": 3.0}}\n')
    floors = {"a": 3.4, "b": 3.0, "c": 3.2}
    for label, floor in floors.items():
        write_run(tmp_path / "out" / "toy" / label, *healthy(floor=floor))
    report, winner, rows = sweeps.run_sweep("toy", out_root=tmp_path / "out", report_dir=tmp_path / "rep",
                                               sweep_dir=tmp_path / "sw", report_only=True)
    text = report.read_text()
    table = [l for l in text.splitlines() if l[:4] in ("| a ", "| b ", "| c ")]
    bpb = {l.split(" | ")[0][2:]: float(l.split(" | ")[2]) for l in table}
    assert winner == "b" == min(bpb, key=bpb.get)
    assert f"**b** won with val bpb {bpb['b']:.3f}" in text
    margin = float(text.split(f"{bpb['c']:.3f} for c (+")[1].split(",")[0])
    assert margin == pytest.approx(bpb["c"] - bpb["b"], abs=0.0011)  # the table's numbers are rounded


def test_conclusion_ignores_runs_without_a_finite_metric():
    rows = {"x": {"val_bpb": float("nan")}, "y": {"val_bpb": 2.0}, "z": {"val_bpb": 2.5}}
    winner, text = sweeps.conclusion(rows, "val_bpb")
    assert winner == "y" and "no finite value for x" in text and "(+0.500, 25.0% worse)" in text


def test_steps_to_converge_is_first_eval_within_5_percent_of_best(tmp_path):
    loss, gn = healthy()
    run = write_run(tmp_path / "r", loss, gn, val={0: 8.0, 25: 4.0, 50: 3.1, 75: 3.0, 100: 3.05})
    assert sweeps.steps_to_converge(run) == 50  # 3.1 <= 3.0 * 1.05 = 3.15; 4.0 is not


def test_conclusion_names_no_winner_when_the_table_shows_a_tie():
    winner, text = sweeps.conclusion({"every 1": {"val_bpb": 2.9391}, "every 100": {"val_bpb": 2.9392}}, "val_bpb")
    assert winner is None and "no winner" in text and "2.939" in text


def test_sweep_over_seeds_averages_them_and_compares_seed_by_seed(tmp_path):
    (tmp_path / "sw").mkdir()
    (tmp_path / "sw" / "toy.py").write_text('title = "Toy"\nquestion = "Which?"\nseeds = (1, 2)\n'
                                            'runs = {"a": {"learning_rate": 1.0}, "b": {"learning_rate": 2.0}}\n')
    floors = {("a", 1): 3.0, ("a", 2): 3.4, ("b", 1): 3.1, ("b", 2): 3.2}  # a wins seed 1, b seed 2 and the mean
    for (label, seed), floor in floors.items():
        write_run(tmp_path / "out" / "toy" / label / f"seed{seed}", *healthy(seed=seed, floor=floor))
    report, winner, rows = sweeps.run_sweep("toy", out_root=tmp_path / "out", report_dir=tmp_path / "rep",
                                               sweep_dir=tmp_path / "sw", report_only=True)
    text = report.read_text()
    assert winner == "b"
    assert rows["b"]["val_bpb"] == pytest.approx(np.mean(rows["b"]["per_seed"]))
    margins = np.array(rows["a"]["per_seed"]) - np.array(rows["b"]["per_seed"])
    assert margins[0] < 0 < margins[1]  # the synthetic floors, through the whole pipeline
    assert f"b beat a on 1 of 2 seeds; margins {margins[0]:+.3f}, {margins[1]:+.3f}" in text
