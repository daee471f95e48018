"""
runs.py: running train.py for an experiment, and reading and comparing the runs it leaves.

    python eval.py --compare out/lr_low out/lr_high --out report/lr    # compare_runs: report.md + plots

What it adds over its neighbours: train.py makes one run and writes its config.json and metrics.jsonl;
this file starts runs (train, from scratch, one thread) and reads those files back, for the scripts that
run many: incidents.py (the incident lab), sweeps.py (controlled experiments), bench_train.py (speed) and
eval.py --compare (any runs side by side). It holds no experiment of its own.

    1. reading a run       metrics.jsonl -> records, grouped by kind; series, smoothing, final losses
    2. configs             train.py's own config loading; what changed between two configs, or among many
    3. running train.py    a fresh run directory, a subprocess (torchrun's, for several processes; or in this
                           process, for the tests)
    4. comparing runs      outcomes table, curves, a one-sentence conclusion -> report.md and summary.json
"""
import contextlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from common import UserError, dataset_path, save_figure, write_atomic, write_json

ROOT = Path(__file__).resolve().parent
PY = sys.executable

# ---------------------------------------------------------------------------------------------------------
# 1. Reading a run: metrics.jsonl -> records


def read_records(path):
    """Every JSON line of a metrics.jsonl. A last line without its newline that is not JSON is a write
    cut short by a kill: dropped. Any other line that is not JSON is an error naming file and line."""
    text = Path(path).read_text()
    lines = text.splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            if number == len(lines) and not text.endswith("\n"):
                break
            raise UserError(f"{path}:{number}: not JSON ({e.msg})") from None
    return records


def read_metrics(run_dir):
    """run_dir/metrics.jsonl -> {"train": [...], "eval": [...], "event": [...], "layers": [...], "end": {...},
    "dir": ...} ("layers": train.py's per-block statistics, when layer_stats_interval asked for them).
    A missing "end" line means the run was killed: end is then {}."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise UserError(f"{path}: no metrics.jsonl (did the run start?)")
    run = {"train": [], "eval": [], "event": [], "layers": [], "end": {}, "dir": str(run_dir)}
    for record in read_records(path):
        if record.get("kind") == "end":
            run["end"] = record
        elif record.get("kind") in ("train", "eval", "event", "layers"):
            run[record["kind"]].append(record)
    return run


def series(records, key):
    """(steps, values) as float arrays; a missing or null value (train.py's JSON for NaN) becomes NaN."""
    steps = np.array([r["step"] for r in records], dtype=float)
    vals = np.array([np.nan if r.get(key) is None else float(r[key]) for r in records], dtype=float)
    return steps, vals


def smooth(x, window=9):
    """Centred moving average; the ends use the part of the window that exists."""
    if len(x) == 0:
        return x
    kernel = np.ones(window)
    num = np.convolve(np.nan_to_num(x, nan=0.0), kernel, mode="same")
    den = np.convolve(np.isfinite(x).astype(float), kernel, mode="same")
    return num / np.maximum(den, 1)


def final_val(run):
    """The last finite val loss (NaN when the run never evaluated)."""
    _, v = series(run["eval"], "val_loss")
    v = v[np.isfinite(v)]
    return float(v[-1]) if len(v) else float("nan")


def final_train(run, last=20):
    """Mean train loss over the last `last` logged steps: one step is too noisy to compare."""
    _, loss = series(run["train"], "loss")
    return float(np.nanmean(loss[-last:])) if len(loss) else float("nan")


def first_nonfinite(run):
    """(step, what) of the first logged step with a NaN/inf loss or gradient norm, else (None, None)."""
    for r in run["train"]:
        for key in ("loss", "grad_norm"):
            v = r.get(key, 0.0)
            if v is None or not math.isfinite(v):
                return r["step"], f"{key} {'NaN' if v is None or v != v else v}"
    return None, None


def steps_to_reach(run, level):
    """First step whose smoothed train loss is at or below `level`, else None."""
    steps, loss = series(run["train"], "loss")
    hit = np.nonzero(smooth(loss) <= level)[0]
    return int(steps[hit[0]]) if len(hit) else None


# ---------------------------------------------------------------------------------------------------------
# 2. Configs


def load_config(*paths, overrides=None):
    """The config train.py would run with these files (in order) and {key: value} overrides, as a dict of
    every key: train.get_config's own rules, so an unknown key or a wrong type stops here too, and a later
    file may say `learning_rate *= 10`."""
    import train as trainer  # here, not at the top: reading and comparing runs needs no torch
    argv = [str(p) for p in paths] + [f"--{k}={v!r}" for k, v in (overrides or {}).items()]
    return vars(trainer.get_config(argv))


def changed_keys(config, base):
    """{key: value} of config wherever it differs from base (a key base lacks counts as changed)."""
    return {k: v for k, v in config.items() if base.get(k, object()) != v}


def change_text(config, base):
    """'key=value, ...' for what config changes from base: an incident's operation in code."""
    return ", ".join(f"{k}={v!r}" for k, v in changed_keys(config, base).items())


def varied_and_fixed(configs):
    """Among several runs' configs: ({key: [value per run]} where they differ (absent = None),
    {key: value} where all agree)."""
    keys = list(dict.fromkeys(k for c in configs for k in c))
    table = {k: [c.get(k) for c in configs] for k in keys}
    varied = {k: v for k, v in table.items() if any(json.dumps(x) != json.dumps(v[0]) for x in v)}
    return varied, {k: v[0] for k, v in table.items() if k not in varied}


# ---------------------------------------------------------------------------------------------------------
# 3. Running train.py


def data_dir(dataset):
    """train.py's `dataset` key (a name under data/, or a path) as an absolute path."""
    return ROOT / dataset_path(dataset)


def train_command(args, nproc=1):
    """The command line of one run: `python train.py ARGS`, or with nproc > 1 torchrun's
    `--standalone --nproc_per_node=N train.py ARGS` (one process per GPU on one node; gloo on a CPU), as
    `python -m torch.distributed.run`, i.e. torchrun from this interpreter's own torch."""
    torchrun = [PY, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    return [*(torchrun if nproc > 1 else [PY]), str(ROOT / "train.py"), *args]


def train(out_dir, configs, overrides=None, in_process=False, nproc=1):
    """Run `train.py CONFIG... --out_dir=... --key=value ...` from scratch (later config files override
    earlier ones, as in nanoGPT); train.py's output goes to out_dir/train.log. One intra-op thread: on a
    shared, oversubscribed CPU, two OpenMP threads spinning on each other's barriers make a tiny model
    many times slower. in_process (the tests) calls train.main() here instead of starting a process;
    nproc > 1 starts the run under torchrun (train_command)."""
    if in_process and nproc > 1:
        raise UserError("one run in this process cannot be several processes: in_process needs nproc=1")
    out_dir = Path(out_dir)
    shutil.rmtree(out_dir, ignore_errors=True)  # a fresh run, never a resume of an old one
    out_dir.mkdir(parents=True)
    args = [*map(str, configs), f"--out_dir={out_dir}"]
    args += [f"--{k}={v if isinstance(v, str) else repr(v)}" for k, v in (overrides or {}).items()]
    t0 = time.time()
    with open(out_dir / "train.log", "w") as log:
        if in_process:
            import train as trainer
            with contextlib.redirect_stdout(log):
                trainer.main(args)
        else:
            env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
            rc = subprocess.run(train_command(args, nproc), cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT).returncode
            if not (out_dir / "metrics.jsonl").is_file():
                tail = (out_dir / "train.log").read_text()[-2000:]
                raise UserError(f"{out_dir}: train.py exited {rc} without metrics.jsonl:\n{tail}")
    run = read_metrics(out_dir)
    print(f"  {out_dir.name}: {time.time() - t0:.0f} s, ended '{run['end'].get('status', 'killed')}' "
          f"at step {run['end'].get('step', '?')}", flush=True)
    return run


def machine():
    """'CPU model, N cores, OS': the line every report states its numbers on."""
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()}"


def run_command(args, work, figure, copy_as):
    """What incidents.py's and sweeps.py's command lines do around their work: build data/default if it
    is missing, then work() -> the report's path, then copy its headline figure to --figures."""
    if not (ROOT / "data/default/meta.json").is_file() and not args.report_only:
        print("data/default is missing: running prepare.py first", flush=True)
        subprocess.run([PY, str(ROOT / "prepare.py")], cwd=ROOT, check=True)
    t0 = time.time()
    report = work()
    if args.figures:
        Path(args.figures).mkdir(parents=True, exist_ok=True)
        shutil.copy(report.parent / figure, Path(args.figures) / copy_as)
    print(f"done in {time.time() - t0:.0f} s: {report}")


# ---------------------------------------------------------------------------------------------------------
# 4. Comparing runs: the retrospective's curves and tables, from each run's config.json and metrics.jsonl


def read_run(run_dir):
    """(config dict, metrics records) of a train.py run directory."""
    run_dir = Path(run_dir)
    for path in (run_dir / "config.json", run_dir / "metrics.jsonl"):
        if not path.is_file():
            raise UserError(f"{path}: missing (is {run_dir} a train.py run directory?)")
    return json.loads((run_dir / "config.json").read_text()), read_records(run_dir / "metrics.jsonl")


def outcomes(records):
    """The numbers a results table needs, each read straight off metrics.jsonl."""
    train = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval" and r.get("val_loss") is not None]
    end = next((r for r in reversed(records) if r["kind"] == "end"), None)
    steady = train[1:] or train  # the first logged interval includes start-up (compilation, caches)
    speeds = [r["tokens_per_s"] for r in steady if r.get("tokens_per_s")]
    mfus = [r["mfu"] for r in steady if r.get("mfu") is not None]
    events = {}
    for r in records:
        if r["kind"] == "event":
            events[r["event"]] = events.get(r["event"], 0) + 1
    return {"final_val_loss": evals[-1]["val_loss"] if evals else None,
            "final_val_bpb": evals[-1].get("val_bpb") if evals else None,
            "best_val_loss": min(r["val_loss"] for r in evals) if evals else None,
            "final_train_loss": train[-1]["loss"] if train else None,
            "steps": max((r.get("step", 0) for r in records), default=0),
            "tokens": max((r.get("tokens", 0) for r in records), default=0),
            "tokens_per_s": float(np.median(speeds)) if speeds else None,  # the median: robust to hiccups
            "mfu": float(np.median(mfus)) if mfus else None,
            "wall_s": end["time_s"] if end else max((r.get("time_s", 0) for r in records), default=0),
            "status": end["status"] if end else "no end record (still running, or killed)", "events": events}


def tokens_to_reach(records, target):
    """Tokens seen at the first evaluation whose val loss is <= target (None if never)."""
    return next((r["tokens"] for r in records if r["kind"] == "eval" and r.get("val_loss") is not None
                 and r["val_loss"] <= target), None)


PANELS = [  # (file, title, x key, y key, x label, y label)
    ("loss_vs_tokens", "loss vs tokens seen (thin: train, dots: val, red x: stability event)", "tokens", "loss",
     "tokens seen", "loss (nats/token)"),
    ("loss_vs_time", "loss vs wall-clock time (thin: train, dots: val)", "time_s", "loss", "seconds since start",
     "loss (nats/token)"),
    ("lr", "learning rate schedule", "step", "lr", "step", "learning rate"),
    ("grad_norm", "gradient norm before clipping (log scale)", "step", "grad_norm", "step", "global L2 norm"),
    ("tokens_per_s", "throughput", "step", "tokens_per_s", "step", "tokens / second"),
]


def draw_panel(ax, panel, runs):
    name, title, xkey, ykey, xlabel, ylabel = panel
    for color, run in zip(plt_colors(), runs):
        train = [r for r in run["records"] if r["kind"] == "train" and r.get(ykey) is not None]
        final = run["outcomes"]["final_val_loss"]
        ax.plot([r[xkey] for r in train], [r[ykey] for r in train], color=color, lw=1, alpha=0.6 if ykey == "loss" else 1,
                label=run["label"] + (f" -> val {final:.3f}" if ykey == "loss" and final is not None else ""))
        if ykey == "loss":
            evals = [r for r in run["records"] if r["kind"] == "eval" and r.get("val_loss") is not None]
            ax.plot([r[xkey] for r in evals], [r["val_loss"] for r in evals], "o-", color=color, lw=2, ms=4)
            for r in run["records"]:  # stability events (spike, nan, ...) as red crosses on the x axis
                if r["kind"] == "event" and r.get(xkey) is not None:
                    ax.plot(r[xkey], 0, "x", color="red", ms=8, transform=ax.get_xaxis_transform(), clip_on=False)
    if ykey == "grad_norm":
        ax.set_yscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def draw_outcome_bars(ax, runs):
    names = [r["name"] for r in runs]
    values = [r["outcomes"]["final_val_loss"] for r in runs]
    shown = [v if v is not None and math.isfinite(v) else 0 for v in values]
    bars = ax.bar(names, shown, color=plt_colors()[:len(runs)])
    for bar, v, run in zip(bars, values, runs):
        status = run["outcomes"]["status"]
        label = ("-" if v is None else f"{v:.3f}") + ("" if status == "finished" else f"\n({status.split()[0]})")
        ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom")
    ax.set(title="final val loss (lower is better)", ylabel="loss (nats/token)")
    ax.margins(y=0.15)
    ax.tick_params(axis="x", labelrotation=20)


def plt_colors():
    import matplotlib.pyplot as plt
    return plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4


def plot_runs(runs, out_dir, title):
    """overview.png (every panel: the picture to look at first), then one PNG per panel."""
    import matplotlib
    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt
    files = []

    def save(fig, name):
        fig.tight_layout()
        save_figure(fig, Path(out_dir) / f"{name}.png", dpi=90)
        files.append(f"{name}.png")

    fig, axes = plt.subplots(2, 3, figsize=(18, 9.5))
    for ax, panel in zip(axes.flat, PANELS):
        draw_panel(ax, panel, runs)
    draw_outcome_bars(axes.flat[-1], runs)
    fig.suptitle(title, fontsize=14)
    save(fig, "overview")
    for panel in PANELS:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        draw_panel(ax, panel, runs)
        save(fig, panel[0])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    draw_outcome_bars(ax, runs)
    save(fig, "final_val_loss")
    return files


def fmt(value, spec=".4f"):
    """Outcomes with fixed decimals (spec); config values (spec=None) exactly as config.json has them."""
    return "—" if value is None else format(value, spec) if spec and not isinstance(value, str) else str(value)


def write_report(summary, runs, out_dir):
    names = [r["name"] for r in runs]
    o = [r["outcomes"] for r in runs]
    target = summary["target_val_loss"]
    lines = [f"# {summary['title']}", "", "![overview](overview.png)", "",
             "## Setup", "", *[f"- **{r['name']}**: `{r['dir']}`" for r in runs], "",
             f"Held fixed ({len(summary['held_fixed'])} keys): " +
             ", ".join(f"`{k}={fmt(v, None)}`" for k, v in summary["held_fixed"].items()), "",
             "## What differs", "", "| config key | " + " | ".join(names) + " |", "|---" * (len(runs) + 1) + "|",
             *[f"| `{k}` | " + " | ".join(f"`{fmt(v, None)}`" for v in values) + " |" for k, values in summary["config_diff"].items()],
             "", "## Outcomes", "",
             "| run | final val loss | val bits/byte | best val loss | tokens to val loss "
             f"{fmt(target)} | tokens seen | tokens/s | MFU | wall time (s) | status | stability events |",
             "|---" * 11 + "|"]
    for r, x in zip(runs, o):
        events = ", ".join(f"{k} x{n}" for k, n in x["events"].items()) or "none"
        mfu = None if x["mfu"] is None else f"{100 * x['mfu']:.1f}%"
        lines.append(f"| {r['name']} | {fmt(x['final_val_loss'])} | {fmt(x['final_val_bpb'])} | {fmt(x['best_val_loss'])} | "
                     f"{fmt(r['tokens_to_target'], ',')} | {fmt(x['tokens'], ',')} | {fmt(x['tokens_per_s'], ',.0f')} | "
                     f"{fmt(mfu, None)} | {fmt(x['wall_s'], ',.1f')} | {x['status']} | {events} |")
    lines += ["", "## Conclusion", "", summary["conclusion"], "",
              "Tokens/s and MFU are medians over the logged intervals after the first; MFU is '—' on a CPU. "
              f"'Tokens to val loss {fmt(target)}': the first evaluation at or below the loss every finished run "
              "reached (the worst run's best), i.e. how fast each got to the same quality.", "",
              "Plots: " + ", ".join(f"[{f}]({f})" for f in summary["plots"]), ""]
    path = Path(out_dir) / "report.md"
    write_atomic(path, "\n".join(lines))
    return path


def conclude(runs):
    """One measured sentence or two: who won on val loss and by how much, who was fastest, what broke."""
    ok = [r for r in runs if r["outcomes"]["final_val_loss"] is not None and math.isfinite(r["outcomes"]["final_val_loss"])]
    if not ok:
        return "No run has a finite val loss: nothing to rank."
    ok.sort(key=lambda r: r["outcomes"]["final_val_loss"])
    best = ok[0]
    text = f"Lowest final val loss: **{best['name']}** ({best['outcomes']['final_val_loss']:.4f}"
    text += f", {best['outcomes']['final_val_bpb']:.4f} bits/byte)" if best["outcomes"]["final_val_bpb"] else ")"
    if len(ok) > 1:
        text += f", {ok[1]['outcomes']['final_val_loss'] - best['outcomes']['final_val_loss']:.4f} below the next ({ok[1]['name']})"
    fast = [r for r in runs if r["outcomes"]["tokens_per_s"]]
    if fast:
        top = max(fast, key=lambda r: r["outcomes"]["tokens_per_s"])
        text += f". Highest throughput: **{top['name']}** ({top['outcomes']['tokens_per_s']:,.0f} tokens/s)"
    broken = [f"{r['name']} ({r['outcomes']['status']})" for r in runs if r["outcomes"]["status"] != "finished"]
    return text + "." + (f" Did not finish normally: {', '.join(broken)}." if broken else "")


def compare_runs(run_dirs, out_dir, names=None, title=None):
    """Read each run, write out_dir/report.md + PNGs + summary.json; return the summary dict:
    {title, runs: [{name, dir, outcomes, tokens_to_target}], config_diff: {key: [values]}, held_fixed,
     target_val_loss, conclusion, plots, report}."""
    if names and len(names) != len(run_dirs):
        raise UserError(f"--names: {len(names)} names for {len(run_dirs)} runs")
    names = names or [Path(d).name for d in run_dirs]
    if len(set(names)) < len(names):
        names = [str(d) for d in run_dirs]
    runs = []
    for name, run_dir in zip(names, run_dirs):
        config, records = read_run(run_dir)
        runs.append({"name": name, "dir": str(run_dir), "config": config, "records": records,
                     "outcomes": outcomes(records)})
    varied, fixed = varied_and_fixed([r["config"] for r in runs])
    for i, r in enumerate(runs):  # legends say what differs: "b: learning_rate=0.003"
        shown = [f"{k}={v[i]}" for k, v in varied.items() if k != "out_dir"][:3]
        r["label"] = r["name"] + (": " + ", ".join(shown) if shown else "")
    bests = [r["outcomes"]["best_val_loss"] for r in runs if r["outcomes"]["status"] == "finished"
             and r["outcomes"]["best_val_loss"] is not None]
    target = max(bests) if bests else None
    for r in runs:
        r["tokens_to_target"] = tokens_to_reach(r["records"], target) if target is not None else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    title = title or "Comparison: " + " vs ".join(names)
    summary = {"title": title, "config_diff": varied, "held_fixed": fixed, "target_val_loss": target,
               "runs": [{k: r[k] for k in ("name", "dir", "outcomes", "tokens_to_target")} for r in runs],
               "conclusion": conclude(runs), "plots": plot_runs(runs, out, title)}
    summary["report"] = str(write_report(summary, runs, out))
    write_json(out / "summary.json", summary)
    return summary
