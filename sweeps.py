"""
sweeps.py: the controlled experiments of weeks 2-4, each written up as LEARNER.md's experiment record.

    python sweeps.py lr                  # config/sweeps/lr.py -> out/sweeps/lr/ and report/sweeps/lr/report.md
    python sweeps.py lr --report-only    # redo the report from the runs already there
    python sweeps.py lr --base config/124m.py --set max_iters=2000   # the same sweep from any config
    python sweeps.py lr_1b --nproc 8     # each run as torchrun --standalone --nproc_per_node=8 train.py ...
    make sweep-lr                        # the same; also mix batch warmup schedule ckpt seed, clean vocab
                                         # scaling, and the 1B files lr_1b batch_1b warmup_1b

A sweep file (config/sweeps/NAME.py) holds `title`, `question` and `runs` ({label: overrides of the base
config}); optionally `base` (the config the runs start from; default config/incidents/baseline.py, and
--base overrides both), `seeds` (every configuration once per seed, compared seed by seed), `datasets`
({name: prepare.py arguments}), `metric` ("val_bpb", or "per_source_bpb" when the runs' own val sets differ,
as in the mix sweep) and `kind` ("clean" and "vocab": sweeps_data.py builds their datasets; "scaling":
sweeps_scaling.py runs the whole study). The lesson, top to bottom:
  1. train.py runs every configuration (runs.train: a fresh run dir, one thread)
  2. runs.compare_runs writes the comparison (curves, outcomes table) for the first seed's runs
  3. sweep_record.summarize() reads each run's numbers from metrics.jsonl; several seeds become their mean
  4. the record: setup, results table, conclusion (winner and margin, judged against the seed band), then
     either the seed-by-seed margins or the seed sweep's spread, so a margin inside the noise is called that;
     results.json beside report.md holds the same numbers
  5. the schedule and ckpt sweeps add their own analysis (the late anneal; save cost vs lost work)

What it adds over its neighbours: runs.py runs train.py and compares any runs; incidents.py breaks one
thing at a time. This file varies one setting on purpose and writes the verdict as an experiment record:
a winner, its margin, and whether that margin is larger than the noise of the seed.
"""
import argparse
import ast
import datetime
import json
import math
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

import sweeps_data
import sweeps_scaling
from common import UserError, save_figure, write_atomic
from runs import PY, ROOT, changed_keys, compare_runs, data_dir, load_config, machine, read_metrics, run_command, series, train
from sweep_record import (conclusion, experiment_record, mean_summary, noise_note, paired_note, spread,  # noqa: F401
                          steps_to_converge, summarize, write_results)

# ---------------------------------------------------------------------------------------------------------
# 1. The headline plot, and the two sweeps that need their own analysis


def eval_series(run, metric):
    """(steps, values) of an eval metric; per_source_bpb is the mean of the per-source bits per byte."""
    if metric != "per_source_bpb":
        return series(run["eval"], metric)
    recs = [r for r in run["eval"] if r.get("per_source")]
    return (np.array([r["step"] for r in recs], dtype=float),
            np.array([np.mean([d["bpb"] for d in r["per_source"].values()]) for r in recs], dtype=float))


def plot_sweep(path, all_runs, metric="val_bpb"):
    """The metric over steps per configuration: the mean over its seeds, shaded between their min and max."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for label, runs in all_runs.items():
        curves = [eval_series(r, metric) for r in runs]
        n = min(len(c[0]) for c in curves)
        steps, values = curves[0][0][:n], np.array([c[1][:n] for c in curves])
        line, = ax.plot(steps, values.mean(0), "o-", ms=3, lw=1, label=label)
        if len(runs) > 1:
            ax.fill_between(steps, values.min(0), values.max(0), color=line.get_color(), alpha=0.15)
    ax.set(xlabel="step", ylabel=metric.replace("_", " ") + (f" (mean of {len(runs)} seeds)" if len(runs) > 1 else ""))
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def analyse_schedule(runs, frac=0.2):
    """Does the late anneal explain 'the loss stopped falling'? Per schedule, the val loss drop over the
    last `frac` of the run (WSD's anneal: train.py's decay_frac is 0.2) against the drop over the same
    number of steps just before. A plateau that an anneal breaks was the learning rate, not convergence."""
    out, final = [], {}
    for label, run in runs.items():
        es, v = series(run["eval"], "val_loss")
        es, v = es[np.isfinite(v)], v[np.isfinite(v)]
        if len(v) < 3:
            continue
        end = es[-1]
        span = frac * end
        at = lambda s: float(np.interp(s, es, v))
        late, before = at(end - span) - at(end), at(end - 2 * span) - at(end - span)
        steps, lr = series(run["train"], "lr")
        lr_then = float(np.interp(end - span, steps, lr))
        verdict = ("the decay bought most of it: the earlier flattening was the learning rate, not convergence"
                   if late > 2 * max(before, 1e-9) else
                   "still falling at the pace before: neither converged nor stuck" if late >= 0.5 * before else
                   "the gain is shrinking: converging at this learning rate")
        out.append(f"- {label}: over the last {span:.0f} steps (LR {lr_then:.2g} -> {lr[-1]:.2g}) val loss fell "
                   f"{late:.3f}, against {before:.3f} over the {span:.0f} steps before: {verdict}.")
        final[label] = v[-1]
    if "wsd" in final and "constant" in final:
        gain = final["constant"] - final["wsd"]
        out.append(f"- WSD ended {abs(gain):.3f} nats {'below' if gain >= 0 else 'above'} the constant LR it "
                   f"equals until its anneal: that is what the final decay was worth here.")
    return ["", "**Schedule: where the late gain comes from** (the first seed's runs).", *out]


def analyse_checkpoints(runs, mtbf_hours=24.0, plot_path=None):
    """Measure one checkpoint's save time (torch.save + fsync, as train.py writes it) and size, and set its
    cost per interval against the expected work lost on a crash (half an interval, on average). The runs'
    own wall time per step is the end-to-end check: the every-step run pays one save per step more."""
    import torch
    rows, lines = [], ["", "**Checkpoint interval: the cost of saving against the cost of losing work.**", "",
                       "| interval (steps) | saves | save s (measured) | MB each | save share of step time | "
                       "expected work lost per crash (s) | wall s per step (measured run) |", "|---|---|---|---|---|---|---|"]
    for label, run in runs.items():
        ckpts = sorted(Path(run["dir"]).glob("ckpt_*.pt"))
        cfg = json.loads((Path(run["dir"]) / "config.json").read_text())
        interval, step_s = cfg["checkpoint_interval"], summarize(run)["step_ms"] / 1000
        if not ckpts:
            continue
        state, times = torch.load(ckpts[-1], weights_only=False), []
        for _ in range(3):
            t0 = time.perf_counter()
            torch.save(state, ckpts[-1].with_suffix(".timing"))
            with open(ckpts[-1].with_suffix(".timing"), "rb+") as f:
                os.fsync(f.fileno())
            times.append(time.perf_counter() - t0)
        os.remove(ckpts[-1].with_suffix(".timing"))
        save_s, mb = float(np.median(times)), ckpts[-1].stat().st_size / 1e6
        wall = run["end"].get("time_s", float("nan")) / max(run["end"].get("step", 1), 1)
        rows.append((interval, save_s, step_s, wall))
        lines.append(f"| {interval} | {run['end'].get('step', 0) // interval} | {save_s:.3f} | {mb:.2f} | "
                     f"{100 * save_s / (interval * step_s):.1f}% | {interval * step_s / 2:.1f} | {wall:.3f} |")
    if not rows:
        return lines
    rows.sort()
    (k0, save_s, step_s, wall0), (k1, _, _, wall1) = rows[0], rows[-1]
    mtbf = mtbf_hours * 3600
    best = math.sqrt(2 * save_s * mtbf) / step_s  # Young (1974): the interval k that minimises the overhead
    per_save = (wall0 - wall1) / (1 / k0 - 1 / k1)  # the wall-time difference, per save
    lines += ["", f"In the runs themselves, saving every {k0} step(s) instead of every {k1} cost "
              f"{per_save:.3f} s of wall time per save (the re-save above: {save_s:.3f} s). With a crash every "
              f"{mtbf_hours:.0f} h on average, the expected overhead save_s/(k*step_s) + (k*step_s/2)/MTBF is "
              f"smallest at k = sqrt(2*save_s*MTBF)/step_s = **{best:.0f} steps** ({best * step_s / 60:.1f} min of "
              f"training) for this model on this machine; saving every step would cost "
              f"{100 * save_s / step_s:.0f}% of the step time. The optimal time between saves, sqrt(2*save_s*MTBF), "
              f"grows with the square root of the save time: a 1B model's checkpoint (weights + AdamW states, "
              f"16 bytes per parameter = 16 GB) written at 1 GB/s takes 16 s, so every "
              f"{math.sqrt(2 * 16 * mtbf) / 60:.0f} min of training by the same rule."]
    if plot_path:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        k = np.logspace(0, math.log10(max(10 * best, 10 * k1)), 200)
        fig, ax = plt.subplots(figsize=(6, 3.4))
        ax.plot(k, 100 * save_s / (k * step_s), label="saving (measured save / step time)")
        ax.plot(k, 100 * k * step_s / 2 / mtbf, label=f"work lost to crashes (MTBF {mtbf_hours:.0f} h)")
        ax.plot(k, 100 * (save_s / (k * step_s) + k * step_s / 2 / mtbf), "k", label="total")
        ax.axvline(best, color="0.5", ls=":")
        ax.plot([r[0] for r in rows], [100 * (r[3] - wall1) / r[2] for r in rows], "o", label="measured extra wall time")
        ax.set(xscale="log", yscale="log", xlabel="checkpoint every k steps", ylabel="% of training time")
        ax.legend(fontsize=7)
        fig.tight_layout()
        save_figure(fig, plot_path)
    return lines


# ---------------------------------------------------------------------------------------------------------
# 2. Running a sweep


def prepare_datasets(datasets):
    for name, args in (datasets or {}).items():
        if not (data_dir(name) / "meta.json").is_file():
            print(f"  preparing data/{name}: prepare.py {' '.join(args)}", flush=True)
            subprocess.run([PY, str(ROOT / "prepare.py"), "--out", str(data_dir(name)), *args], cwd=ROOT, check=True)


def load_sweep(sweep_dir, name):
    """config/sweeps/NAME.py's globals: title, question, runs, and the optional seeds, datasets, metric."""
    spec, path = {}, ROOT / sweep_dir / f"{name}.py"
    if not path.is_file():
        raise UserError(f"{path}: no such sweep (have: {', '.join(p.stem for p in (ROOT / sweep_dir).glob('*.py'))})")
    exec(compile(path.read_text(), str(path), "exec"), spec)
    return spec


def run_configurations(spec, out_root, baseline, base_overrides, report_only, in_process, nproc=1):
    """{label: [one run per seed]}: trained from baseline.py + base_overrides + the label's overrides (each
    run under torchrun with nproc > 1), or read back from out_root with report_only."""
    all_runs = {}
    for label, overrides in spec["runs"].items():
        run_dir = out_root / re.sub(r"[^A-Za-z0-9.-]+", "_", label.replace("=", ""))
        all_runs[label] = []
        for seed in spec.get("seeds", (None,)):
            d, over = (run_dir, overrides) if seed is None else (run_dir / f"seed{seed}", {**overrides, "seed": seed})
            all_runs[label].append(read_metrics(d) if report_only else
                                   train(d, [baseline], {**(base_overrides or {}), **over}, in_process, nproc))
    return all_runs


def fixed_settings(spec, baseline, base_overrides):
    """What every run of the sweep shares, as the record's setup states it: the baseline's keys that differ
    from train.py's defaults, less the ones the sweep varies."""
    base = load_config(baseline, overrides=base_overrides)
    seeds = spec.get("seeds", (None,))
    varied = {k for o in spec["runs"].values() for k in o} | ({"seed"} if len(seeds) > 1 else set()) | {"out_dir"}
    fixed = ", ".join(f"{k}={v!r}" for k, v in changed_keys(base, load_config()).items() if k not in varied)
    return fixed + (f"; seeds {', '.join(map(str, seeds))} for every configuration" if len(seeds) > 1 else "")


def sweep_paths(name, spec, base, config_dir, out_root, report_dir):
    """(baseline config, out dir, report dir). The baseline is --base, else the sweep file's `base`, else
    the incident lab's baseline. Another base puts the sweep under out/sweeps/<its stem>/NAME, so one sweep
    at two scales never overwrites itself, and each finds the seed sweep of its own base."""
    baseline = ROOT / (base or spec.get("base") or Path(config_dir) / "baseline.py")
    scale = [] if baseline == ROOT / config_dir / "baseline.py" else [baseline.stem]
    return baseline, ROOT / out_root / Path(*scale, name), ROOT / report_dir / Path(*scale, name)


def run_sweep(name, out_root="out/sweeps", report_dir="report/sweeps", base_overrides=None,
              config_dir="config/incidents", sweep_dir="config/sweeps", report_only=False, in_process=False,
              base=None, jobs=None, nproc=1):
    """Every run of config/sweeps/NAME.py -> runs.compare_runs' comparison report + our experiment record
    (report.md) + results.json. nproc > 1: every run under torchrun with that many processes (runs.train).
    Returns (report path, winner, rows)."""
    spec = load_sweep(sweep_dir, name)
    baseline, out_root, report_dir = sweep_paths(name, spec, base, config_dir, out_root, report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    kind = spec.get("kind", "compare")
    if kind == "scaling":  # its own grid, fit and record: sweeps_scaling.py (on data/vocab_1k, built if missing)
        if not report_only:
            prepare_datasets(spec.get("datasets"))
        report, check = sweeps_scaling.run_scaling(spec, out_root, report_dir, [baseline], base_overrides,
                                                   report_only, in_process, jobs, nproc)
        return report, None, check
    if kind in sweeps_data.KINDS:  # build the datasets (and the shared held-out set), size the runs
        spec = sweeps_data.plan(kind, spec, [baseline], base_overrides, report_only)
    elif not report_only:
        prepare_datasets(spec.get("datasets"))
    seeds, metric = spec.get("seeds", (None,)), spec.get("metric", "val_bpb")
    all_runs = run_configurations(spec, out_root, baseline, base_overrides, report_only, in_process, nproc)
    runs = {label: rs[0] for label, rs in all_runs.items()}  # the first seed's: the comparison, the curves
    summary = compare_runs([r["dir"] for r in runs.values()], str(report_dir), names=list(runs),
                           title=spec["title"] + (f" (seed {seeds[0]})" if len(seeds) > 1 else ""))
    rows = {label: mean_summary([summarize(r) for r in rs], metric) for label, rs in all_runs.items()}
    extra, found = [], {}
    if kind in sweeps_data.KINDS:
        extra, found = sweeps_data.analyse(kind, spec, all_runs, rows, report_only)
    extra += analyse_schedule(runs) if name == "schedule" else \
        analyse_checkpoints(runs, plot_path=report_dir / "ckpt_cost.png") if name == "ckpt" else []
    if len(seeds) > 1:
        extra += paired_note(rows, metric, seeds)
    elif name not in ("seed", "ckpt"):
        extra += noise_note(rows, metric, out_root.parent / "seed")
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    setup = f"{now}, {machine()}. Base config {baseline.relative_to(ROOT) if baseline.is_relative_to(ROOT) else baseline}. " \
            f"Fixed: {fixed_settings(spec, baseline, base_overrides)}."
    winner, record = experiment_record(spec["title"], spec["question"], setup, rows, metric, extra,
                                       spread if name == "seed" else conclusion)
    if name == "ckpt":  # identical learning curves: the cost plot is the headline
        shutil.copy(report_dir / "ckpt_cost.png", report_dir / "headline.png")
    else:
        plot_sweep(report_dir / "headline.png", all_runs, metric)
    head = Path(summary["report"]).read_text()
    write_atomic(report_dir / "report.md", head.rstrip() + "\n\n" + "\n".join(record) + "\n")
    write_results(report_dir / "results.json", name, setup, rows, winner,
                  (spread if name == "seed" else conclusion)(rows, metric)[1], metric=metric, **found)
    print(f"  {name}: winner {winner}; report {report_dir / 'report.md'}", flush=True)
    return report_dir / "report.md", winner, rows


# ---------------------------------------------------------------------------------------------------------
# 3. Command line


def parse_set(items):
    """--set key=value ... -> {key: value}; the value read as a Python literal (3e-4, 512, True), else a string."""
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set {item}: want key=value")
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[key] = text
    return out


def main(argv=None):
    sweeps = sorted(p.stem for p in (ROOT / "config/sweeps").glob("*.py"))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=sweeps, help="config/sweeps/NAME.py")
    p.add_argument("--base", help="the config every run starts from (default: the sweep file's `base`, else "
                   "config/incidents/baseline.py), e.g. config/124m.py")
    p.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="override a config key in every run, e.g. --set max_iters=2000 dtype=bfloat16")
    p.add_argument("--jobs", type=int, help="runs at once, one thread each (the scaling study; default: its file's)")
    p.add_argument("--nproc", type=int, default=1, help="processes per run: each run as `torchrun --standalone "
                   "--nproc_per_node=N train.py ...` (one per GPU; e.g. 8 for the 1B sweeps on one 8-GPU node)")
    p.add_argument("--report-only", action="store_true", help="rebuild the report from existing runs")
    p.add_argument("--figures", help="also copy the headline figure to this folder as sweep_NAME.png")
    args = p.parse_args(argv)
    overrides = parse_set(args.set)
    load_config(ROOT / (args.base or "config/incidents/baseline.py"), overrides=overrides)  # a bad key stops here
    if args.nproc < 1:
        p.error(f"--nproc {args.nproc}: want 1 or more processes per run")
    sweep = lambda: run_sweep(args.name, report_only=args.report_only, base=args.base, base_overrides=overrides,
                              jobs=args.jobs, nproc=args.nproc)[0]
    run_command(args, sweep, "headline.png", f"sweep_{args.name}.png")


if __name__ == "__main__":
    main()
