"""
retro.py — the plan's written retrospective, generated from what the runs left on disk.

    python retro.py --run out/course/main --data data/course --incidents report/course/incidents \
                    --sweeps report/course/sweeps --out report/course
    python retro.py --run out/tiny --data data/default                 # any run of yours, fewer sections

The template is the plan's (shared/LEARNER.md): basic facts; problems met, with cause and fix; findings,
one per experiment; the eight interview questions, each answered from this run's numbers; what to do
differently. Every number in the document is read from an artifact named beside it:

    data/NAME/meta.json                 prepare.py: documents in and out, dedup, cleaning, tokens, bytes
    RUN/config.json, metrics.jsonl      train.py: the config, every train/eval/event/end record
    RUN/eval.json                       eval.py: loss, perplexity and bits per byte per bin (optional)
    INCIDENTS/results.json              incidents.py: per incident the measured symptom, cause and fix
    SWEEPS/NAME/results.json            sweeps.py: per experiment its rows, winner and conclusion
    plan.py                             the planner's prediction for config/1b.py (labelled a prediction)

Unlike runs.py (which compares runs side by side) this tells the story of one course. A section whose
artifact is missing says so instead of inventing a sentence; nothing here types a number by hand.
"""
import argparse
import datetime
import json
import math
import sys
from pathlib import Path

from common import UserError, cli, write_atomic, write_json
from runs import machine, read_metrics

PPL_BAR = 20.0  # the plan's bar for a 1B run: validation perplexity below 20


# ---------------------------------------------------------------------------------------------------------
# 1. Reading the artifacts (each optional but the run)


def read_json(path):
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise UserError(f"{path}: not JSON ({error})") from None


def read_artifacts(run, data=None, incidents=None, sweeps=None):
    """Everything the retrospective reads, in one dict; missing optional artifacts are None / {}."""
    run = Path(run)
    config = read_json(run / "config.json")
    if config is None:
        raise UserError(f"{run}/config.json: missing (is {run} a train.py run directory?)")
    sweep_results = {}
    if sweeps and Path(sweeps).is_dir():
        for path in sorted(Path(sweeps).glob("*/results.json")):
            sweep_results[path.parent.name] = read_json(path)
    config = {k: v for k, v in config.items() if k != "measured"}  # train.py adds it at the end: a result
    return {"run_dir": str(run), "config": config, "metrics": read_metrics(run), "eval": read_json(run / "eval.json"),
            "meta": read_json(Path(data) / "meta.json") if data else None, "data_dir": str(data) if data else None,
            "incidents": read_json(Path(incidents) / "results.json") if incidents else None,
            "incidents_dir": str(incidents) if incidents else None, "sweeps": sweep_results,
            "sweeps_dir": str(sweeps) if sweeps else None}


# ---------------------------------------------------------------------------------------------------------
# 2. The numbers, each from one artifact


def train_records(a):
    return a["metrics"]["train"]


def final_eval(a):
    """The last eval record with a finite val loss (train.py's metrics.jsonl)."""
    evals = [r for r in a["metrics"]["eval"] if r.get("val_loss") is not None]
    return evals[-1] if evals else None


def median(values):
    values = sorted(v for v in values if v is not None)
    return values[len(values) // 2] if values else None


def facts(a):
    """Basic facts: dates, hardware, tokens, parameters, compute, cost, final perplexity, convergence."""
    metrics, config = a["metrics"], a["config"]
    end, last_eval, trains = metrics["end"], final_eval(a), train_records(a)
    # metrics.jsonl's last write is the end; its records count seconds from the start (resumes included)
    ended_ts = (Path(a["run_dir"]) / "metrics.jsonl").stat().st_mtime
    started_ts = ended_ts - (end.get("time_s") or (trains[-1]["time_s"] if trains else 0))
    started, ended = (datetime.datetime.fromtimestamp(t, datetime.timezone.utc) for t in (started_ts, ended_ts))
    tokens = trains[-1]["tokens"] if trains else 0
    ppl = math.exp(last_eval["val_loss"]) if last_eval else None
    evals = [r for r in metrics["eval"] if r.get("val_loss") is not None]
    tail = [r["val_loss"] for r in evals[-max(2, len(evals) // 5):]]
    late_gain = (tail[0] - tail[-1]) if len(tail) >= 2 else None  # nats gained over the last ~20% of evals
    return {"started": started.strftime("%Y-%m-%d %H:%M UTC"), "ended": ended.strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(), "device": config.get("device"), "dtype": config.get("dtype"),
            "steps": end.get("step"), "status": end.get("status", "killed (no end record)"),
            "wall_s": end.get("time_s"), "tokens": tokens, "params": end.get("params"),
            "flops": end.get("flops"), "device_hours": end.get("device_hours"), "cost": end.get("cost"),
            "price_per_hour": config.get("price_per_hour"), "planned": end.get("planned"),
            "val_loss": last_eval["val_loss"] if last_eval else None,
            "val_bpb": last_eval.get("val_bpb") if last_eval else None, "ppl": ppl, "late_gain": late_gain,
            "tokens_per_s": median([r.get("tokens_per_s") for r in trains]),
            "mfu": median([r.get("mfu") for r in trains]),
            "peak_mem_mb": max([r.get("peak_mem_mb") or 0 for r in trains], default=None)}


def fmt(value, spec=",.4g", none="not measured"):
    return none if value is None else format(value, spec)


def sweep_line(name, result):
    """One finding: the experiment, its winner and its measured numbers (sweeps.py's results.json)."""
    rows = result.get("rows", {})
    metric = result.get("metric", "val_loss")
    cells = ", ".join(f"{label} {row[metric]:.3f}" for label, row in rows.items()
                      if isinstance(row.get(metric), (int, float)))
    winner = result.get("winner") or "no winner"
    if "no winner" in result.get("conclusion", ""):  # sweeps.py names the best row, then judges its margin
        winner = f"best row {winner}, but no winner beyond the seed band"
    return f"**{result.get('title', name)}** ({metric.replace('_', ' ')}: {cells}): {winner}. {result.get('conclusion', '')}"


def section_facts(f, a):
    source = f"`{a['run_dir']}/metrics.jsonl`, `config.json`"
    lines = ["## Basic facts", "", "| | |", "|---|---|",
             f"| dates | {f['started']} to {f['ended']} |",
             f"| hardware | {f['machine']}; device `{f['device']}`, {f['dtype']} |",
             f"| training | {fmt(f['steps'], 'd')} steps, {fmt(f['tokens'], ',d')} tokens, {fmt(f['wall_s'], '.0f')} s, "
             f"ended '{f['status']}' |",
             f"| model | {fmt(f['params'], ',d')} parameters; {fmt(f['flops'], '.3g')} training FLOPs |",
             f"| compute and cost | {fmt(f['device_hours'], '.4f')} device-hours" +
             (f", ${f['cost']:.4f} at ${f['price_per_hour']:.2f}/hour" if f["cost"] is not None else
              " (no price_per_hour in the config: cost not computed)") + " |"]
    if f["planned"]:
        p = f["planned"]
        lines.append(f"| predicted vs measured | the planner predicted {p['hours']:.4f} h / ${p['cost']:.4f} "
                     f"(at MFU {p['mfu']:.2f}); the run took {f['device_hours']:.4f} device-hours |")
    lines += [f"| throughput | median {fmt(f['tokens_per_s'], ',.0f')} tokens/s; MFU "
              f"{fmt(f['mfu'], '.3f', 'not reported (no peak FLOP/s for this device)')} |",
              f"| final validation | loss {fmt(f['val_loss'], '.4f')}, perplexity {fmt(f['ppl'], '.2f')}, "
              f"{fmt(f['val_bpb'], '.4f')} bits per byte |"]
    if f["ppl"] is not None:
        verdict = "below" if f["ppl"] < PPL_BAR else "not below"
        lines.append(f"| the plan's bar | perplexity {f['ppl']:.2f} is {verdict} {PPL_BAR:g} (the bar the plan "
                     f"sets for a 1B run); over the last evaluations the val loss still fell "
                     f"{fmt(f['late_gain'], '.4f')} nats |")
    return lines + ["", f"Source: {source}."]


def section_problems(a):
    lines = ["## Problems met", "", "| problem | measured symptom | cause | fix | source |", "|---|---|---|---|---|"]
    for name, r in (a["incidents"] or {}).items():
        verdict = "" if r.get("reproduced", True) else " (**did not reproduce** here)"
        lines.append(f"| {name}: {cell(r.get('operation', ''))} | {cell(r.get('measured', ''))}{verdict} | "
                     f"{cell(r.get('cause', ''))} | {cell(r.get('fix', ''))} | `{a['incidents_dir']}/results.json` |")
    for e in a["metrics"]["event"]:
        if e.get("event") == "resume":
            continue
        lines.append(f"| step {e['step']}: {e.get('event')} in the main run | {cell(e.get('detail', ''))} | "
                     f"see the batch dump `{e.get('batch_file') or '-'}` | action taken: {e.get('action')} | "
                     f"`{a['run_dir']}/metrics.jsonl` |")
    resumes = [e for e in a["metrics"]["event"] if e.get("event") == "resume"]
    for e in resumes:
        lines.append(f"| the run was stopped and resumed at step {e['step']} | {cell(e.get('detail', ''))} | "
                     f"a kill or a preemption | `--resume` from the newest intact checkpoint | "
                     f"`{a['run_dir']}/metrics.jsonl` |")
    if len(lines) == 4:
        lines.append("| none recorded | no incident results given, no monitor events | | | |")
    return lines


def cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def section_findings(a):
    lines = ["## Findings", ""]
    if not a["sweeps"]:
        return lines + ["No experiment results were given (`--sweeps`): nothing to report here."]
    for name, result in a["sweeps"].items():
        lines.append(f"- {sweep_line(name, result)} (`{a['sweeps_dir']}/{name}/results.json`)")
    return lines


# ---------------------------------------------------------------------------------------------------------
# 3. The eight interview questions, each answered from this run's numbers (LEARNER.md's list)


def sweep_rows(a, name):
    result = a["sweeps"].get(name)
    if not result:
        return None, f"(no `{name}` experiment in this course)"
    return result, f"The `{name}` experiment: {sweep_line(name, result)} (`{a['sweeps_dir']}/{name}/results.json`)"


def incident(a, name):
    r = (a["incidents"] or {}).get(name)
    if not r:
        return f"(the `{name}` incident was not run in this course)"
    did = "reproduced" if r.get("reproduced", True) else "did NOT reproduce"
    return f"The `{name}` incident {did}: {r.get('measured', '')} Fix: {r.get('fix', '')}"


def answer_lr(a, f):
    c = a["config"]
    share = c["warmup_iters"] / max(1, c["max_iters"])
    text = (f"The main run used a peak learning rate of {c['learning_rate']:g} on a {c['lr_schedule']} schedule "
            f"down to {c['min_lr']:g}, after {c['warmup_iters']} warmup steps ({100 * share:.1f}% of "
            f"{c['max_iters']} steps). ")
    return text + sweep_rows(a, "lr")[1] + " " + sweep_rows(a, "warmup")[1] + " " + incident(a, "no_warmup")


def answer_throughput(a, f):
    text = (f"Median {fmt(f['tokens_per_s'], ',.0f')} tokens/s over the logged steps of the main run, "
            f"peak memory {fmt(f['peak_mem_mb'], ',.0f')} MiB. ")
    if f["mfu"] is None:
        return text + ("No MFU is reported on this device: train.py computes MFU only against a known peak "
                       "(common.PEAK_FLOPS, GPUs). bench_train.py measures the CPU's matmul ceiling instead.")
    return text + f"MFU {f['mfu']:.3f} of the device's bf16 dense peak; the planner assumes 0.4 for a tuned GPU run."


def answer_data(a, f):
    meta = a["meta"]
    if not meta:
        return "No dataset meta.json was given (`--data`)."
    parts = []
    for name, s in meta.get("sources", {}).items():
        parts.append(f"{name}: {s.get('docs', '?')} documents read, {s.get('after_dedup', '?')} after cleaning and dedup")
    rules = sorted(((r["docs"], name) for name, r in meta.get("cleaning", {}).get("rules", {}).items() if r["docs"]),
                   reverse=True)[:3]
    top = ", ".join(f"{name} ({docs} documents)" for docs, name in rules) or "none"
    train_mix = meta.get("mix", {}).get("train", {})
    mix = ", ".join(f"{name} {m['achieved']:.3f} of train tokens (asked {m['asked']:g}, {m['epochs']:.2f} epochs)"
                    for name, m in train_mix.items() if "achieved" in m)
    return (f"{'; '.join(parts)} (`{a['data_dir']}/meta.json`). The rules that acted most: {top}. Mix: {mix or 'n/a'}. "
            + sweep_rows(a, "mix")[1] + " " + sweep_rows(a, "clean")[1])


def answer_checkpoints(a, f):
    c, run = a["config"], Path(a["run_dir"])
    sizes = [p.stat().st_size for p in run.glob("ckpt_*.pt")]
    size = f"{max(sizes) / 2**20:.1f} MiB each" if sizes else "sharded (see the directory)"
    return (f"Every {c['checkpoint_interval']} steps"
            + (f" and every {c['checkpoint_every_s']:g} s" if c.get("checkpoint_every_s") else "")
            + f", the newest {c['keep_last']} kept, {size}. " + sweep_rows(a, "ckpt")[1])


def answer_late_loss(a, f):
    trains = train_records(a)
    end_lr = trains[-1]["lr"] if trains else None
    return (f"Over the last evaluations of the main run the val loss fell {fmt(f['late_gain'], '.4f')} nats; "
            f"the LR at the end was {fmt(end_lr, '.3g')} (peak {a['config']['learning_rate']:g}). "
            + sweep_rows(a, "schedule")[1])


def answer_precision(a, f):
    return (f"The main run trained in {a['config']['dtype']}. " + incident(a, "fp16_no_scaler"))


def answer_duplicates(a, f):
    d = (a["meta"] or {}).get("dedup")
    text = (f"Dedup removed {d.get('exact_removed', '?')} exact and {d.get('near_removed', '?')} near duplicates of "
            f"{d.get('docs', '?')} documents (`{a['data_dir']}/meta.json`). ") if d else "No dedup figures given. "
    return text + incident(a, "dup_data")


def answer_memory(a, f):
    """The planner's prediction for config/1b.py: a computed prediction, labelled as one."""
    from plan import counts, memory_plan, read_config
    c = read_config(str(Path(__file__).resolve().parent / "config" / "1b.py"))[0]  # the config itself, not a copy
    n = counts(c)[0]
    p = memory_plan(c, 1)
    GiB = 2**30
    return (f"For a {n / 1e9:.2f} B-parameter model (config/1b.py's shape) the planner (plan.py) predicts "
            f"{p['weights'] / GiB:.1f} GiB of fp32 weights, {p['grads'] / GiB:.1f} of gradients, "
            f"{p['optimizer'] / GiB:.1f} of AdamW states (16 bytes per parameter together) and a peak of "
            f"{p['peak'] / GiB:.1f} GiB at micro-batch 1 x 2048 in bf16. `python plan.py --fit` gives the largest "
            f"model per GPU; `python plan.py --validate` checks the formulas against measured peaks on this CPU.")


QUESTIONS = [
    ("How did you set the learning rate and the warmup length, and why?", answer_lr),
    ("What was your throughput in tokens per second, and your MFU?", answer_throughput),
    ("How did the data mix change the model? How did you judge the quality of the cleaned data?", answer_data),
    ("When do you save checkpoints, and what does it cost?", answer_checkpoints),
    ("Late in training the loss falls slowly: convergence, stuck, or time to decay?", answer_late_loss),
    ("bf16 vs fp16: what goes wrong with each, and what did you do about it?", answer_precision),
    ("How do duplicates hurt, and how did you find and remove them?", answer_duplicates),
    ("How much memory does training a 1B model take?", answer_memory),
]


def differently(a, f):
    """What to do differently next time, each derived from a measurement."""
    items = []
    lr = a["sweeps"].get("lr")
    if lr and lr.get("winner_value") is not None and lr["winner_value"] != a["config"]["learning_rate"]:
        items.append(f"Train at learning_rate {lr['winner_value']:g}, the LR sweep's winner, not "
                     f"{a['config']['learning_rate']:g}.")
    if f["status"] != "finished":
        items.append(f"The main run ended '{f['status']}': find why before scaling up.")
    if f["late_gain"] is not None and f["late_gain"] > 0.05:
        items.append(f"The val loss still fell {f['late_gain']:.3f} nats at the end: more tokens would pay.")
    missed = [name for name, r in (a["incidents"] or {}).items() if not r.get("reproduced", True)]
    if missed:
        items.append(f"Incidents that did not reproduce at this scale ({', '.join(missed)}): rerun them larger.")
    if f["cost"] is None:
        items.append("Set price_per_hour in the config, so the cost is recorded next to the time.")
    return items or ["Nothing the measurements point at."]


# ---------------------------------------------------------------------------------------------------------
# 4. The document


def plot_main_run(a, path):
    """The main run's train and val loss against tokens, with its monitor events marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from common import save_figure
    fig, ax = plt.subplots(figsize=(7, 3.5))
    trains, evals = train_records(a), [r for r in a["metrics"]["eval"] if r.get("val_loss") is not None]
    ax.plot([r["tokens"] for r in trains], [r["loss"] for r in trains], lw=0.8, label="train loss")
    ax.plot([r["tokens"] for r in evals], [r["val_loss"] for r in evals], "o-", ms=3, label="val loss")
    for e in a["metrics"]["event"]:
        ax.axvline(e["step"] * (trains[-1]["tokens"] / max(1, trains[-1]["step"])) if trains else 0,
                   color="red" if e.get("event") != "resume" else "gray", lw=0.6, ls="--")
    ax.set_xlabel("tokens")
    ax.set_ylabel("loss (nats)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def write_retrospective(a, out_dir):
    """report/retrospective.md (+ main_run.png) and retrospective.json (the numbers it states)."""
    out_dir = Path(out_dir)
    f = facts(a)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["# Retrospective", "", f"Written {now} by retro.py from the artifacts named in each section; "
             "no number in it was typed by hand.", ""]
    lines += section_facts(f, a) + [""]
    if train_records(a):
        plot_main_run(a, out_dir / "main_run.png")
        lines += ["![the main run](main_run.png)", ""]
    lines += section_problems(a) + [""] + section_findings(a) + ["", "## The interview questions", ""]
    for n, (question, answer) in enumerate(QUESTIONS, 1):
        lines += [f"**{n}. {question}**", "", answer(a, f), ""]
    lines += ["## What to do differently next time", ""] + [f"- {item}" for item in differently(a, f)]
    lines += ["", "## The stories worth telling", ""] + stories(a, f)
    write_atomic(out_dir / "retrospective.md", "\n".join(lines) + "\n")
    write_json(out_dir / "retrospective.json", f)
    return out_dir / "retrospective.md"


def stories(a, f):
    """The interview stories: each reproduced incident and each monitor event, in one line."""
    told = [f"- {name}: {r.get('measured', '')}" for name, r in (a["incidents"] or {}).items() if r.get("reproduced")]
    told += [f"- step {e['step']} of the main run: {e.get('event')} -> {e.get('action')} ({e.get('detail', '')})"
             for e in a["metrics"]["event"]]
    return told or ["- None yet: run the incident lab (`make incidents`)."]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--run", required=True, help="the main training run's directory")
    parser.add_argument("--data", help="its dataset directory (meta.json)")
    parser.add_argument("--incidents", help="the incident lab's report folder (results.json)")
    parser.add_argument("--sweeps", help="the folder of sweep reports (NAME/results.json)")
    parser.add_argument("--out", default="report", help="where retrospective.md goes")
    args = parser.parse_args(argv)
    path = write_retrospective(read_artifacts(args.run, args.data, args.incidents, args.sweeps), args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(cli(main))
