"""The incident lab's measuring side, on synthetic metrics.jsonl files (read by runs.read_metrics): each
detector fires on the phenomenon it names and stays quiet on a healthy run, and the reports (incident
table, sweep record) say what their own numbers say. No training here; tests/test_incidents_runs.py trains."""
import json
import math

import numpy as np
import pytest

import incident_detectors as detectors
import incidents
import lr_sensitivity
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


def write_run(path, loss, gn, val=None, events=(), status="finished", lr=None, layers=None, data_ms=0.0,
              step_ms=50.0):
    """metrics.jsonl as train.py may write it (NaN as null, inf as Infinity); val: {step: val_loss} (defaults
    to smoothed loss); layers: {key: per-block list} written as a layers record every 10 steps."""
    path.mkdir(parents=True, exist_ok=True)
    lr = np.full(len(loss), 1e-3) if lr is None else lr
    lines = []
    for i, (l, g) in enumerate(zip(loss, gn)):
        lines.append({"kind": "train", "step": i, "tokens": 1024 * (i + 1), "time_s": 0.05 * i,
                      "loss": None if l != l else float(l), "lr": float(lr[i]),
                      "grad_norm": None if g != g else float(g), "tokens_per_s": 1024 * 1000 / step_ms,
                      "mfu": None, "step_ms": step_ms, "data_ms": data_ms, "peak_mem_mb": 100.0})
        if layers and i % 10 == 0:
            lines.append({"kind": "layers", "step": i, "grad_norm": [1.0, 1.0], "act_rms": [1.0, 1.0],
                          "act_max": [5.0, 5.0], "attn_logit_max": [3.0, 3.0], **layers})
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
    ok, text = detectors.detect_divergence(run, base)
    assert ok and "loss NaN at step 37" in text and "diverged" in text
    assert not detectors.detect_divergence(write_run(tmp_path / "same", *healthy(1)), base)[0]


def test_divergence_without_nan_needs_a_nat_above_the_baseline_or_the_untrained_loss(tmp_path, base):
    far = write_run(tmp_path / "far", *healthy(1, floor=4.2))  # final val ~1.2 nats above the baseline's
    ok, text = detectors.detect_divergence(far, base)
    assert ok and "final val loss +1.1" in text
    near = write_run(tmp_path / "near", *healthy(1, floor=3.5))
    assert not detectors.detect_divergence(near, base)[0]
    loss, gn = healthy(2)
    loss[120:130] = 9.0  # back above the untrained model's loss (~8.1), then recovered
    ok, text = detectors.detect_divergence(write_run(tmp_path / "back", loss, gn), base)
    assert ok and "came back up to 9.00 at step 120" in text
    # the fix judged at the end: within the seed noise of the baseline, the early transient only reported
    ok, text = detectors.detect_recovered_at_the_end(write_run(tmp_path / "back2", loss, gn), base, band=0.1)
    assert ok and "came back up to 9.00" in text
    assert not detectors.detect_recovered_at_the_end(far, base, band=0.1)[0]


def test_early_instability_needs_early_bursts_and_a_worse_end_beyond_the_seed_noise(tmp_path, base):
    loss, gn = healthy(floor=3.5)
    gn[:20] *= 12
    loss[:30] += np.tile([0.0, 1.5], 15)  # up and down every other step
    ok, text = detectors.detect_early_instability(write_run(tmp_path / "nw", loss, gn), base, band=0.2)
    assert ok and "grad norm x12" in text
    assert not detectors.detect_early_instability(write_run(tmp_path / "nw2", loss, gn), base, band=0.8)[0]
    assert not detectors.detect_early_instability(write_run(tmp_path / "ok", *healthy(2)), base)[0]


def test_noise_ratio_is_measured_against_the_baseline(tmp_path, base):
    loss, gn = healthy(seed=3, noise=0.3, speed=120)
    ok, text = detectors.detect_noisy(write_run(tmp_path / "b1", loss, gn), base, band=5.0)
    ratio = float(text.split("x")[1].split()[0])
    assert ok and 5 < ratio < 15 and "inside the seed noise 5.00" in text  # the noise is the signature
    assert not detectors.detect_noisy(write_run(tmp_path / "ok", *healthy(4)), base)[0]


def test_grad_explosion_needs_norms_far_above_the_reference_and_a_loss_that_pays(tmp_path, base):
    loss, gn = healthy()
    gn[120:125] = [50, 300, 900, 200, 60]
    loss[123:126] += 2.0
    ok, text = detectors.detect_grad_explosion(write_run(tmp_path / "nc", loss, gn), base)
    assert ok and "peaked at 900 at step 122" in text and "5 step(s) above x10" in text
    absorbed = healthy()
    absorbed[1][120:125] = [50, 300, 900, 200, 60]  # the bursts, but the loss never noticed
    assert not detectors.detect_grad_explosion(write_run(tmp_path / "abs", *absorbed), base, band=0.1)[0]
    assert not detectors.detect_grad_explosion(write_run(tmp_path / "ok", *healthy(5)), base)[0]


def test_slow_convergence_counts_steps_to_the_baselines_early_loss(tmp_path, base):
    ok, text = detectors.detect_slow(write_run(tmp_path / "sgd", *healthy(speed=400, floor=3.5)), base)
    assert ok and ("never reached" in text or "slower" in text)
    assert not detectors.detect_slow(write_run(tmp_path / "ok", *healthy(6)), base)[0]


def test_precision_tells_overflow_from_underflow_in_the_training_run(tmp_path, base):
    loss, gn = healthy()
    gn[12] = math.inf
    ok, text = detectors.detect_precision(write_run(tmp_path / "inf", loss, gn), base)
    assert ok and "grad_norm inf at step 12" in text
    under = write_run(tmp_path / "under", *healthy(7), layers={"grad_zero_pct": [2.0, 3.0]})
    base0 = write_run(tmp_path / "b0", *healthy(), layers={"grad_zero_pct": [0.0, 0.001]})
    ok, text = detectors.detect_precision(under, base0)
    assert ok and "2.50% of the blocks' gradient entries were exactly 0" in text
    under["probe"] = {"step": 199, "max_activation": 600.0, "fp16": {"zeroed_pct": 6.5, "rel_err_pct": 5.0},
                      "fp16 x 65536": {"zeroed_pct": 0.0, "rel_err_pct": 0.07},
                      "bf16": {"zeroed_pct": 0.0, "rel_err_pct": 0.5}, "overflow_scale": 2 ** 21}
    assert "overflows to inf from the loss x 2^21" in detectors.detect_precision(under, base0)[1]
    scaled = write_run(tmp_path / "scaled", *healthy(7), layers={"grad_zero_pct": [0.0, 0.002]})
    assert not detectors.detect_precision(scaled, base0)[0]  # the cure: nothing lost
    assert not detectors.detect_precision(write_run(tmp_path / "none", *healthy(7)), base)[0]  # no layers records


def test_memorised_needs_the_passage_learnt_by_heart(tmp_path, base):
    run = write_run(tmp_path / "dup", *healthy(floor=1.0), val={s: 3.4 for s in range(0, STEPS, 25)})
    probe = {"verbatim": 3, "asked": 32, "loss": 3.6, "base_verbatim": 0, "base_loss": 6.5}
    run["regurgitation"] = probe
    ok, text = detectors.detect_memorised(run, base)
    assert ok and "costs 3.60 nats/token (baseline, who never saw it: 6.50)" in text and "repeats 3/32" in text
    run["regurgitation"] = {**probe, "loss": 6.2}
    assert not detectors.detect_memorised(run, base)[0]
    run["regurgitation"] = {**probe, "loss": 6.2, "verbatim": 30}
    assert detectors.detect_memorised(run, base)[0]


def test_a_poisoned_batch_spikes_and_the_rollback_recovers(tmp_path, base):
    loss, gn = healthy()
    loss[100] += 4.0
    ev = [{"step": 100, "event": "spike", "action": "update"}]
    ok, text = detectors.detect_spike(write_run(tmp_path / "warn", loss, gn, events=ev), base)
    assert ok and "monitor: spike at step 100" in text
    ev = [{"step": 150, "event": "spike", "action": "rollback"}]
    ok, text = detectors.detect_recovered(write_run(tmp_path / "bb", *healthy(), events=ev), base)
    assert ok and "'spike' at step 150 -> rollback" in text
    assert not detectors.detect_recovered(write_run(tmp_path / "no", *healthy()), base)[0]
    assert not detectors.detect_recovered(write_run(tmp_path / "dead", *healthy(), events=ev, status="diverged"), base)[0]


def test_stuck_loss_and_a_stalled_loader(tmp_path, base):
    ok, text = detectors.detect_stuck(write_run(tmp_path / "small", *healthy(speed=4000)), base)
    assert ok and "of the baseline's progress" in text
    assert not detectors.detect_stuck(write_run(tmp_path / "ok", *healthy(3)), base)[0]
    slow = write_run(tmp_path / "slow", *healthy(), data_ms=50.0, step_ms=100.0)
    ok, text = detectors.detect_stall(slow, base)
    assert ok and "waiting for data took 50% of the step time (baseline 0.0%)" in text and "x2.00 the tokens/s" in text


def test_memory_surprise_against_the_plan_and_the_re_plan():
    case = lambda label, p, m: {"label": label, "predicted_mib": p, "measured_mib": m}
    probe = {"planned": case("planned", 70, 69), "cases": [case("off", 84, 82), case("x2", 136, 134)]}
    surprise, text, cured, fix = detectors.detect_memory(probe)
    assert surprise and cured and "x2: measured 134 MiB = x1.91 the plan's 70 MiB" in text and "(x0.99)" in fix
    probe["cases"] = [case("off", 71, 72)]
    assert not detectors.detect_memory(probe)[0]


def test_lr_sensitivity_is_wortsmans_mean_gap_to_the_best_capped_at_the_start():
    base_config = {"learning_rate": 1e-2}
    losses = {"baseline": [5.0, 4.0, 3.0, 3.5, 9.0, math.nan], "no warmup": [5.0, 4.0, 3.0, 4.5, 8.0, 8.0],
              "qk_norm": [5.0, 4.0, 3.1, 3.2, 3.3, 3.6], "z_loss": [5.0, 4.0, 3.0, 3.5, 4.0, 5.0]}
    results = {}
    for variant, ls in losses.items():
        for mult, loss in zip(lr_sensitivity.LR_MULTS, ls):
            train = [{"step": 1, "loss": loss, "grad_norm": 1.0}]
            results[f"lrs_{variant.replace(' ', '_')}_x{mult:g}"] = {
                "eval": [{"step": 0, "val_loss": 8.0}, {"step": 10, "val_loss": loss}], "train": train}
    table = lr_sensitivity.sensitivity_table(results, base_config)
    # baseline: capped at l0 = 8: (5 + 4 + 3 + 3.5 + 8 + 8) / 6 - 3
    assert table["baseline"]["sensitivity"] == pytest.approx((5 + 4 + 3 + 3.5 + 8 + 8) / 6 - 3)
    assert table["baseline"]["first_diverging"] == pytest.approx(0.1)  # 9.0 >= 3 + 1; the 5.0 below is only slow
    assert table["no warmup"]["first_diverging"] == pytest.approx(0.03)
    assert table["qk_norm"]["first_diverging"] is None and table["qk_norm"]["best_lr"] == pytest.approx(0.01)
    assert table["qk_norm"]["sensitivity"] < table["baseline"]["sensitivity"]
    lines = lr_sensitivity.sensitivity_markdown(table)
    assert "| baseline | 5.000 | 4.000 | 3.000 | 3.500 | 9.000 | NaN/inf | 0.01 | 0.1 |" in lines[2]


def test_set_values_are_python_literals_or_words():
    assert incidents.parse_set(["max_iters=600", "device=cuda", "dtype='bfloat16'", "qk_norm=True"]) == \
        {"max_iters": 600, "device": "cuda", "dtype": "bfloat16", "qk_norm": True}


def synthetic_suite(root):
    """A run per incident and fixed run that shows its phenomenon, written where run_incidents(report_only)
    looks, the baseline over 2 seeds, and the memory probe's json."""
    out = root / "out"
    write_run(out / "baseline", *healthy(), layers={"grad_zero_pct": [0.0, 0.0]})
    write_run(out / "baseline_seed1338", *healthy(1, floor=3.05))
    loss, gn = healthy()
    nw, nc = healthy(floor=3.6), healthy()
    nw[1][:20] *= 12
    nc[1][100:103] = [100, 500, 100]
    nc[0][101:104] += 3.0
    runs = {"lr_x10": (np.r_[loss[:30], [np.nan] * 3], gn[:33]), "no_warmup": nw, "batch_1": healthy(3, 0.3, 120),
            "no_clip": nc, "sgd": healthy(speed=400, floor=3.5), "fp16_no_scaler": (loss, np.r_[gn[:50], np.inf, gn[51:]]),
            "dup_data": healthy(floor=1.0), "bad_batch": healthy(8), "lr_small": healthy(speed=4000),
            "loader_stall": healthy()}
    runs["bad_batch"][0][100] += 4.0
    for name, (l, g) in runs.items():
        ev = [{"step": 100, "event": "spike", "action": "update"}] if name == "bad_batch" else []
        write_run(out / name, l, g, events=ev, val={s: 3.5 for s in range(0, STEPS, 25)} if name == "dup_data" else None,
                  data_ms=60.0 if name == "loader_stall" else 0.0)
    for name, fixes in [("lr_x10", 1), ("no_warmup", 1), ("no_clip", 1), ("fp16_no_scaler", 2), ("dup_data", 1)]:
        for i in range(fixes):
            write_run(out / f"{name}_fixed{i}", *healthy(9), layers={"grad_zero_pct": [0.0, 0.0]})
    write_run(out / "bad_batch_fixed0", *healthy(8), events=[{"step": 100, "event": "spike", "action": "rollback"}])
    for name in ("lr_x10", "no_warmup", "no_clip"):  # over_seeds: the incident at the second seed too ...
        write_run(out / f"{name}_seed1338", *runs[name])
    write_run(out / "no_warmup_fixed0_seed1338", *healthy(9))  # ... and the same run fixed (no_clip's is lr_x10)
    probe = {"verbatim": 31, "asked": 32, "loss": 2.0, "base_verbatim": 0, "base_loss": 6.0}
    (out / "dup_data" / "probe.json").write_text(json.dumps(probe))
    (out / "dup_data_fixed0" / "probe.json").write_text(json.dumps({**probe, "verbatim": 1, "loss": 5.8}))
    case = lambda label, p, m: {"label": label, "predicted_mib": p, "measured_mib": m}
    (out / "memory_surprise").mkdir()
    (out / "memory_surprise" / "memory_probe.json").write_text(json.dumps(
        {"planned": case("planned", 70, 69), "cases": [case("off", 84, 82), case("x2", 136, 134)]}))
    return out


def test_incident_report_has_a_row_a_fixed_run_and_a_plot_per_incident(tmp_path, monkeypatch):
    out = synthetic_suite(tmp_path)
    report, results = incidents.run_incidents(list(incidents.INCIDENTS), out_root=out, report_dir=tmp_path / "rep",
                                              report_only=True, seeds=2, sweep=False)
    text = report.read_text()
    for name in incidents.INCIDENTS:
        row = next(line for line in text.splitlines() if line.startswith(f"| [{name}]"))
        assert incidents.md_cell(results[name]["measured"]) in row and "seed noise" in text
        assert "cured" in row and "**not cured**" not in row, row
        if name != "memory_surprise":
            assert (tmp_path / "rep" / f"{name}.png").stat().st_size > 5000 and f"![{name}]({name}.png)" in text
    assert "loss NaN at step 30" in text  # the measured cell, not prose
    assert (tmp_path / "rep" / "overview.png").stat().st_size > 5000
    assert all(results[n]["reproduced"] for n in incidents.INCIDENTS), \
        {n: results[n]["measured"] for n in incidents.INCIDENTS if not results[n]["reproduced"]}


def test_a_near_threshold_incident_counts_only_if_it_manifests_at_every_seed(tmp_path):
    out = synthetic_suite(tmp_path)
    write_run(out / "no_warmup_seed1338", *healthy(9))  # seed 1338: as healthy as its warmed-up run
    report, results = incidents.run_incidents(["no_warmup", "sgd"], out_root=out, report_dir=tmp_path / "rep",
                                              report_only=True, seeds=2, sweep=False)
    res = results["no_warmup"]
    assert res["seeds"][1337][0] and not res["seeds"][1338][0] and not res["reproduced"]
    assert "manifested at 1 of 2 seeds (1337)" in res["measured"]
    assert "- seed 1338: did not manifest: grad norm x1.0" in report.read_text()
    assert "seeds" not in results["sgd"]  # judged at the lab's seed only (its margin is large)


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
