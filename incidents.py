"""
incidents.py: the incident lab. Break a tiny training run on purpose, one change at a time, measure what
happened, and measure the fix curing it: the week-2 exercise of the plan.

    python incidents.py                                  # everything -> report/incidents/report.md (make incidents)
    python incidents.py --only lr_x10 sgd --no-sweep     # some incidents (the baseline always runs too)
    python incidents.py --base config/124m.py --set device='cuda' dtype='bfloat16'   # the same lab, another scale
    python incidents.py --report-only                    # redo the report from the runs already in out/incidents/

The lesson, top to bottom:
  1. each incident is a config file in config/incidents/ executed over the base config (so lr_x10.py says
     `learning_rate *= 10`: ten times whatever the base's is); a few also raise the LR to show at this size
  2. each has fixed runs: the same run with the fix (qk_norm + z_loss, warmup, clipping, bf16 or a
     GradScaler, dedup, rollback...); a fixed run equal to the baseline is the baseline's run
  3. train.py runs them, two at a time, and writes out/incidents/NAME/metrics.jsonl; the baseline also
     runs over 3 seeds, whose spread is the seed noise every verdict is judged against, and so do the
     incidents that sit near their detector's threshold at this size (over_seeds: all seeds must manifest)
  4. a detector per phenomenon (incident_detectors.py) turns those lines into one measured sentence,
     for the incident and for each fixed run; nothing in the report is written in advance
  5. the LR-sensitivity sweep (lr_sensitivity.py, Wortsman et al. 2023): final loss vs LR for the
     baseline, no warmup, qk_norm and z_loss
  6. report.md: operation | what happened | judged against | fixed run | cause | fix, the LR-sensitivity
     table and figure, a loss/grad-norm plot per incident and a per-block plot (monitor's layers records)

What it adds over its neighbours: runs.py starts train.py and reads what a run logged; this file holds
the incidents themselves (their prose, fixes, detector) and their report; incident_probes.py builds the
duplicated datasets and probes the trained models (regurgitation, fp16's range, the memory peak).
sweeps.py runs controlled comparisons (LR, batch, warmup, schedule, data mix) through the same runs.py.
"""
import argparse
import datetime
import json
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from common import save_figure, write_atomic, write_json
from incident_detectors import (detect_divergence, detect_early_instability, detect_grad_explosion,
                                detect_memorised, detect_memory, detect_noisy, detect_precision, detect_recovered,
                                detect_recovered_at_the_end, detect_slow, detect_spike, detect_stall, detect_stuck)
from incident_probes import build_dup_datasets, fp16_probe, memory_probe, probe_planted
from lr_sensitivity import DIVERGED_NATS, plot_sensitivity, sensitivity_markdown, sensitivity_table, sweep_runs
from runs import (ROOT, change_text, changed_keys, data_dir, final_val, first_nonfinite, load_config, machine,
                  read_metrics, run_command, series, train)
from sweeps import parse_set  # --set key=value, the same as sweeps.py's

# ---------------------------------------------------------------------------------------------------------
# 1. The incidents. Each is config/incidents/NAME.py (what we changed); the prose says why it hurts and how
#    to fix it. `fixed` gives the runs with the fix applied: {label: function(base config) -> the keys it
#    sets over the incident's config}. A fixed run whose config is the baseline's is the baseline's run.
#    compare="fixed": the incident needs a harsher setting than the baseline to show (no_warmup, no_clip),
#    so the detector compares it with its first fixed run (same run, fixed), and that comparison is the cure.
#    over_seeds: at this scale the incident sits near its detector's threshold (one seed manifests, the next
#    does not), so it runs at every baseline seed and counts as reproduced only if it manifests at all of them.

INCIDENTS = {
    "lr_x10": dict(
        detect=detect_divergence, operation="learning rate x10", over_seeds=True,
        fixed={"qk_norm + z_loss 1e-4, same LR": lambda base: {"qk_norm": True, "z_loss": 1e-4}},
        cure=detect_recovered_at_the_end,
        cause="Each AdamW step moves every weight by roughly the learning rate. Ten times that overshoots: "
              "the logits and the residual stream grow, the softmax saturates, and the loss climbs or "
              "turns NaN.",
        fix="Use the tuned LR (a short LR sweep finds the edge; back off ~3x from where loss blows up). A "
            "monitor with rollback plus a lower LR rescues a run that diverges late."),
    "no_warmup": dict(
        detect=detect_early_instability, operation="warmup off (full LR from step 0; LR x3, see config)",
        fixed={"warmup back": lambda base: {"warmup_iters": base["warmup_iters"]}}, compare="fixed", over_seeds=True,
        cause="At step 0 AdamW's second-moment estimate is built from a handful of gradients, so the first "
              "updates are full-size steps in poorly-estimated directions while the weights are random: "
              "the loss jumps around before it settles.",
        fix="Linear warmup over the first few % of steps (here the baseline's warmup_iters) lets the "
            "optimizer statistics settle before the LR is at full size."),
    "batch_1": dict(
        detect=detect_noisy, operation="batch size 1 (one sequence per step)",
        fixed={"the baseline's batch": lambda base: {k: base[k] for k in ("batch_size", "eval_iters")}},
        cause="The gradient is an average over the batch; with one sequence its noise is ~sqrt(B) times "
              "larger and each step sees B times fewer tokens, so the loss is noisy and falls slower per step.",
        fix="Raise the batch, or keep the micro-batch and use gradient_accumulation_steps to reach a few "
            "hundred thousand tokens per step (at 1B scale); lower the LR if the batch must stay small."),
    "no_clip": dict(
        detect=detect_grad_explosion, operation="gradient clipping off (at lr_x10's LR, see config)",
        fixed={"clipped at 1.0": lambda base: {"grad_clip": base["grad_clip"]}}, compare="fixed", over_seeds=True,
        cause="Without a cap, one unlucky batch with a huge gradient produces a huge update; the next "
              "gradients are larger still, and the loss spikes or collapses. AdamW divides each update by "
              "a running RMS of the gradient, which absorbs a few isolated spikes (compare the final loss); "
              "SGD, or spikes that come in runs, are not forgiven.",
        fix="grad_clip=1.0 (clip the global norm); log the pre-clip norm, which is the early warning: "
            "a rising clip rate means the LR is too high."),
    "sgd": dict(
        detect=detect_slow, operation="SGD with momentum instead of AdamW (same LR schedule)",
        fixed={"AdamW (the baseline)": lambda base: {"optimizer": "adamw"}},
        cause="Transformers have parameters whose gradients differ by orders of magnitude (embeddings vs "
              "deep layers). One global step size is too large for some and too small for most; AdamW "
              "rescales per parameter.",
        fix="AdamW (beta2 0.95, weight decay 0.1 on matrices only). If SGD it must be, it needs a far "
            "larger, separately tuned LR and still converges slower."),
    "fp16_no_scaler": dict(
        detect=detect_precision, operation="fp16 autocast without a loss scaler",
        fixed={"bf16": lambda base: {"dtype": "bfloat16", "fp16_no_scaler": False},
               "fp16 + GradScaler": lambda base: {"fp16_no_scaler": False}},
        cause="fp16 keeps 5 exponent bits: numbers above 65,504 become inf, and below ~6e-8 become 0. "
              "The gradient of a mean loss over N tokens carries a 1/N: for the thousands of tokens the "
              "model rates unlikely it is far below 6e-8 and falls into that hole. Activations stay far "
              "below 65,504 in a healthy small model; an overflow needs outliers a long or unstable run "
              "grows.",
        fix="bf16 (fp32's range, no scaler needed) where the hardware has it; otherwise fp16 with a "
            "dynamic loss scaler (GradScaler), which multiplies the loss up before backward, unscales "
            "before the step and skips steps that overflowed."),
    "dup_data": dict(
        detect=detect_memorised, operation="a corpus with real repeats, prepared with --no-dedup",
        fixed={"prepare.py's dedup": lambda base: {"dataset": base["dataset"] + "_dedup"}},
        cause="The model sees the same few thousand tokens dozens of times: it memorises them instead of "
              "learning what generalises. Train loss keeps falling while val loss turns up, and the "
              "repeated passage is stored verbatim.",
        fix="Exact and near-duplicate removal (prepare.py's dedup) before the split; cap repeats of any "
            "source at ~4 epochs; watch the train/val gap and a verbatim-regurgitation probe."),
    "bad_batch": dict(
        detect=detect_spike, operation="a poisoned batch injected mid-run (monitor: warn only)",
        fixed={"monitor: rollback": lambda base: {"spike_policy": "rollback",
                                                  "checkpoint_interval": base["max_iters"] // 12}},
        cure=detect_recovered,
        cause="One batch of garbage (here injected on purpose; in real life a corrupt shard or a "
              "pathological document) gives a loss spike and a huge gradient that can wreck the weights.",
        fix="The PaLM recipe: detect the spike (loss above the running mean + k sigma), restore the last "
            "good checkpoint, skip the offending batches, continue. Dump the batch to find its source."),
    "lr_small": dict(
        detect=detect_stuck, operation="learning rate / 100 (the loss does not fall)",
        fixed={"the baseline's LR": lambda base: {k: base[k] for k in ("learning_rate", "min_lr")}},
        cause="Each step moves the weights by ~the LR: a hundred times too little and the run spends its "
              "budget where it started. Nothing breaks and nothing is flagged; only the curve says so.",
        fix="An LR range test (lr_schedule='range_test') or a 3-point sweep before the real run; a loss "
            "that has not left ln(vocab) after the warmup is the alarm."),
    "memory_surprise": dict(
        detect=None, operation="planned with activation checkpointing, run without it; or the batch doubled",
        cause="Activations grow with micro-batch x tokens x layers; checkpointing keeps only each block's "
              "input. Turning it off, or doubling the batch, multiplies the largest term of the peak.",
        fix="Re-plan every change of batch, context or checkpointing (python plan.py CONFIG); the planner "
            "matches the measured peak when it is asked about the run that is actually made."),
    "loader_stall": dict(
        detect=detect_stall, operation="a slow data reader (each batch waits as long as a step computes)",
        fixed={"a reader that keeps up": lambda base: {"inject_slow_reader": 0.0}},
        cause="The GPU (here the CPU) waits for the next batch: a network disk, tokenising in the loop, too "
              "few loader workers. Nothing in the loss shows it; tokens/s and the log's data wait do.",
        fix="Pre-tokenised memory-mapped bins (as dataloader.py reads), prefetching in background workers, "
            "local copies of remote shards; watch data_ms vs compute_ms in every log line."),
}

# dup_data's corpus (incident_probes.build_dup_datasets); the tests shrink it with their model
DUP_DATA = {"unique_tokens": 300_000, "repeated_docs": 10, "copies": 30, "planted_copies": 100}


# ---------------------------------------------------------------------------------------------------------
# 2. Plots and the report


def draw_loss_and_grad_norm(ax_loss, ax_gn, runs):
    """Train loss (line), val loss (dots) and pre-clip gradient norm (log scale) of [(label, color, run)];
    monitor events as dotted lines, the first NaN/inf as an x."""
    for label, color, run in runs:
        s, loss = series(run["train"], "loss")
        ax_loss.plot(s, loss, color=color, lw=0.7, label=label)
        ax_loss.plot(*series(run["eval"], "val_loss"), "o--", color=color, ms=3, lw=0.7)
        s, g = series(run["train"], "grad_norm")
        ax_gn.plot(s, np.where(g > 0, g, np.nan), color=color, lw=0.7)
        for e in run["event"]:
            ax_loss.axvline(e["step"], color=color, ls=":", lw=0.8)
            if e.get("loss") is not None:  # a step the monitor rolled back or skipped is not in "train"
                ax_loss.plot([e["step"]], [e["loss"]], "x", color=color, ms=7)
        step, _ = first_nonfinite(run)
        if step is not None:
            ax_loss.plot([step], [np.nanmax(loss) if np.isfinite(loss).any() else 1], "x", color=color, ms=9)
    ax_loss.set(xlabel="step", ylabel="loss (nats/token; dots: val)")
    ax_gn.set(xlabel="step", ylabel="grad norm (pre-clip)", yscale="log")
    ax_loss.legend(fontsize=7)


def plot_incident(path, name, run, base, fixed=()):
    """Loss and grad norm of the incident over the baseline and its fixed runs [(label, run)]."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    runs = [("baseline", "0.55", base)] + [(f"fixed: {label}", f"C{i}", r) for i, (label, r) in enumerate(fixed)
                                           if r is not base] + [(name, "C3", run)]
    draw_loss_and_grad_norm(a, b, runs)
    fig.suptitle(name, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def plot_layers(path, name, runs):
    """Where it breaks, per block: attention's largest logit and the block's gradient norm over the steps,
    from the layers records of [(label, run)], one line per block (darker = deeper)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for (label, run), cmap in zip(runs, ["Greys", "Blues", "Reds", "Greens"]):
        steps = [r["step"] for r in run.get("layers", [])]
        if not steps:
            continue
        n = len(run["layers"][0]["grad_norm"])
        for key, ax in zip(("attn_logit_max", "grad_norm", "act_max"), axes):
            for i in range(n):
                ax.plot(steps, [r[key][i] for r in run["layers"]], lw=0.8, color=plt.get_cmap(cmap)(0.4 + 0.6 * i / n),
                        label=f"{label} block {i}" if key == "attn_logit_max" else None)
    for key, ax in zip(("attention logit max (q.k/sqrt(D))", "block grad norm (pre-clip)",
                        "residual stream max |x|"), axes):
        ax.set(xlabel="step", ylabel=key, yscale="log")
    axes[0].legend(fontsize=6)
    fig.suptitle(f"{name}: per block", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def plot_overview(path, results):
    """All incidents on one page: the README's headline figure."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    shown = {name: res for name, res in results.items() if res.get("run")}
    cols = 4
    rows = math.ceil(len(shown) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.4 * rows), squeeze=False)
    for ax, (name, res) in zip(axes.flat, shown.items()):
        label, other = res["fixed"][0] if res["fixed"] else ("baseline", res["base"])
        for lab, color, run in [(f"fixed: {label}", "C0", other), (name, "C3", res["run"])]:
            ax.plot(*series(run["train"], "loss"), color=color, lw=0.6, label=lab)
        flagged = [e for e in res["run"]["event"] if e.get("loss") is not None]  # e.g. the rolled-back spike
        ax.plot([e["step"] for e in flagged], [e["loss"] for e in flagged], "kx", ms=5)
        ax.set_title(f"{name}" + ("" if res["reproduced"] else " (NOT reproduced)"), fontsize=8)
        ax.legend(fontsize=5)
        ax.tick_params(labelsize=6)
    for ax in axes.flat[len(shown):]:
        ax.axis("off")
    fig.supxlabel("step", fontsize=8)
    fig.supylabel("train loss", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=70)


def md_cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def event_lines(run):
    if not run["event"]:
        return ["- monitor: no events"]
    return [f"- step {e['step']}: **{e.get('event')}** -> {e.get('action', '')}  {md_cell(e.get('detail', ''))}"
            + (f" (first non-finite: {e['first_nonfinite_layer']})" if e.get("first_nonfinite_layer") else "")
            for e in run["event"]]


def write_incident_report(report_dir, results, base, base_config, seeds, sensitivity=None):
    """report.md: the table (operation | what happened | judged against | fixed run | cause | fix), the
    LR-sensitivity table and figure, then per incident its plots, the monitor's events and the config
    difference; last, the baseline's keys that differ from train.py's defaults."""
    report_dir = Path(report_dir)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    band = seed_band(seeds)
    lines = ["# Incident lab report", "",
             f"{now}, {machine()}. Baseline: {base_config.get('_base', 'config/incidents/baseline.py')} "
             f"(final val loss {final_val(base):.3f}, {base['end'].get('time_s', float('nan')):.0f} s). Seed noise: "
             f"the baseline's final val loss over seeds {', '.join(str(s) for s in seeds)} spans {band:.3f} nats "
             f"({', '.join(f'{final_val(r):.3f}' for r in seeds.values())}). Every 'what happened' and 'fixed "
             "run' cell is computed from the runs' metrics.jsonl by the detector named in its row (incidents.py).",
             "", "| incident | operation | what happened (measured) | reproduced | judged against | fixed run "
             "(measured) | cause | fix |", "|---|---|---|---|---|---|---|---|"]
    for name, res in results.items():
        inc = INCIDENTS[name]
        detector = inc["detect"].__name__ if inc["detect"] else "detect_memory"
        lines.append(f"| [{name}](#{name}) | {md_cell(inc['operation'])} (`{res['diff']}`) | "
                     f"{md_cell(res['measured'])} | {'yes' if res['reproduced'] else '**no**'} ({detector}) | "
                     f"{md_cell(res['against'])} | {md_cell(res['cure_text'])} | {md_cell(inc['cause'])} | "
                     f"{md_cell(inc['fix'])} |")
    if sensitivity:
        lines += ["", "## LR sensitivity (Wortsman et al. 2023)", "", "![lr sensitivity](lr_sensitivity.png)", "",
                  *sensitivity_markdown(sensitivity), "", "LR sensitivity = mean over the LRs of (min(final val "
                  "loss, step-0 val loss) - the best final val loss); first diverging LR = the smallest whose run "
                  f"went non-finite or ended >= {DIVERGED_NATS:g} nat above the best LR's (lr_sensitivity.py)."]
    for name, res in results.items():
        lines += ["", f"## {name}", ""]
        if res.get("run"):
            lines += [f"![{name}]({name}.png)", ""]
            if any(r.get("layers") for _, r in [("", res["run"])] + res["fixed"]):
                lines += [f"![{name} per block]({name}_layers.png)", ""]
            lines += [f"Changed: `{res['diff']}`. Run ended '{res['run']['end'].get('status', 'killed')}' at step "
                      f"{res['run']['end'].get('step', '?')}.", ""]
        lines += [f"Measured: {res['measured']}", ""]
        lines += [f"- seed {s}: {'**manifested**' if ok else 'did not manifest'}: {text}"
                  for s, (ok, text) in res.get("seeds", {}).items()] + [""] * bool(res.get("seeds"))
        lines += [f"Fixed run: {res['cure_text']}", ""]
        if res.get("run"):
            lines += ["What the stability monitor flagged:"] + event_lines(res["run"])
    baseline = changed_keys({k: v for k, v in base_config.items() if k != "_base"}, load_config())
    lines += ["", "## Baseline (train.py's defaults but these)", "", "```"] + \
        [f"{k} = {v!r}" for k, v in baseline.items()] + ["```"]
    write_atomic(report_dir / "report.md", "\n".join(lines) + "\n")
    return report_dir / "report.md"


def seed_band(seeds):
    """The spread (max - min) of the baseline's final val loss over its seeds: the seed noise."""
    vals = [final_val(r) for r in seeds.values()]
    return float(max(vals) - min(vals)) if len(vals) > 1 else 0.0


def analyse_incident(name, run, base, fixed, band):
    """The incident's detector against its first fixed run (compare="fixed") or the baseline, and the cure:
    the same detector no longer firing on each fixed run (or the incident's own cure detector)."""
    inc = INCIDENTS[name]
    ref = fixed[0][1] if inc.get("compare") == "fixed" else base
    reproduced, measured = inc["detect"](run, ref, band)
    against = f"{'the same run fixed' if ref is not base else 'the baseline'}; seed noise {band:.3f} nats"
    cures = []
    for label, f in fixed:
        if inc.get("compare") == "fixed" and f is ref:
            ok, text = reproduced, f"ended '{f['end'].get('status')}', final val loss {final_val(f):.3f} " \
                                   f"(the incident's {final_val(run):.3f}); the difference is the row's measurement"
        elif inc.get("cure"):
            ok, text = inc["cure"](f, base, band)
        else:
            fired, text = inc["detect"](f, base, band)
            ok = not fired
        same = " (the baseline's run)" if f is base else ""
        verdict = "cured" if ok else "**not cured**" if f is not ref else "no difference to cure (not reproduced)"
        cures.append(f"{label}{same}: {verdict}: {text}")
    return {"run": run, "base": base, "fixed": fixed, "reproduced": reproduced, "measured": measured,
            "against": against, "cure_text": " / ".join(cures)}


def judge_over_seeds(name, res, runs, seeds_runs, band):
    """An over_seeds incident: its detector at every baseline seed (against that seed's baseline, or that
    seed's fixed run). Reproduced only if it manifests at all of them: one lucky seed is no demonstration.
    res["seeds"] = {seed: (manifested, measured sentence)}; the row's sentence says how many manifested."""
    inc = INCIDENTS[name]
    first, *others = seeds_runs
    res["seeds"] = {first: (res["reproduced"], res["measured"])}
    for s in others:
        ref = runs[f"{name}_fixed0_seed{s}"] if inc.get("compare") == "fixed" else seeds_runs[s]
        manifested, text = inc["detect"](runs[f"{name}_seed{s}"], ref, band)
        res["seeds"][s] = (bool(manifested), text)
    hits = [s for s, (ok, _) in res["seeds"].items() if ok]
    res["reproduced"] = len(hits) == len(res["seeds"])
    res["measured"] += (f" [seed {first}; manifested at {len(hits)} of {len(res['seeds'])} seeds"
                        f"{' (' + ', '.join(map(str, hits)) + ')' if hits else ''}: see the seeds below]")


# ---------------------------------------------------------------------------------------------------------
# 3. Running the lab: every run the report needs, each config once, `workers` at a time


def run_many(specs, out_root, workers, report_only, in_process):
    """specs {run name: (config files, overrides)} -> {run name: run}. Runs with the same resolved config
    are one run (no_clip's fixed run is lr_x10). workers > 1 runs train.py processes side by side (one
    thread each: a 2-core machine trains two small models at once at almost twice the throughput)."""
    canonical, unique = {}, {}
    for name, (files, overrides) in specs.items():
        key = json.dumps(load_config(*files, overrides=overrides), sort_keys=True)
        canonical[name] = unique.setdefault(key, name)
    todo = [n for n in specs if canonical[n] == n]
    go = lambda n: read_metrics(out_root / n) if report_only else train(out_root / n, *specs[n], in_process)
    if workers > 1 and not in_process and not report_only:
        with ThreadPoolExecutor(workers) as pool:
            done = dict(zip(todo, pool.map(go, todo)))
    else:
        done = {n: go(n) for n in todo}
    return {name: done[canonical[name]] for name in specs}


def lab_specs(names, base_files, base_config, config_dir, seeds, sweep):
    """Every run of the lab: {run name: (config files, overrides)} and {incident: [(label, run name)]}."""
    specs = {f"baseline_seed{s}" if s != base_config["seed"] else "baseline": (base_files, {"seed": s})
             for s in seeds}
    fixed = {}
    for name in names:
        files = base_files + [config_dir / f"{name}.py"]
        if INCIDENTS[name]["detect"] is None:  # memory_surprise: a probe, no training run
            continue
        specs[name] = (files, {})
        fixed[name] = []
        for i, (label, change) in enumerate(INCIDENTS[name].get("fixed", {}).items()):
            specs[f"{name}_fixed{i}"] = (files, change(base_config))
            fixed[name].append((label, f"{name}_fixed{i}"))
        if INCIDENTS[name].get("over_seeds"):  # the other seeds: the incident, and the run it is judged against
            for s in seeds[1:]:
                specs[f"{name}_seed{s}"] = (files, {"seed": s})
                if INCIDENTS[name].get("compare") == "fixed":
                    first_fix = next(iter(INCIDENTS[name]["fixed"].values()))
                    specs[f"{name}_fixed0_seed{s}"] = (files, {**first_fix(base_config), "seed": s})
    if sweep:
        specs.update({n: (base_files, o) for n, o in sweep_runs(base_config).items()})
    return specs, fixed


def run_incidents(names, out_root="out/incidents", report_dir="report/incidents", base_overrides=None,
                  config_dir="config/incidents", report_only=False, in_process=False, base="config/incidents/baseline.py",
                  seeds=3, sweep=True, workers=2):
    """Baseline (over `seeds` seeds) + each incident + its fixed runs + the LR-sensitivity sweep ->
    report_dir/report.md and its figures. base_overrides ({key: value}, --set) is written to
    out_root/base_overrides.py and executed after the base config, before the incident's file: the tests
    use it to shrink every run while `learning_rate *= 10` still means x10."""
    out_root, report_dir, config_dir, base_name = ROOT / out_root, ROOT / report_dir, ROOT / config_dir, base
    report_dir.mkdir(parents=True, exist_ok=True)
    out_root.mkdir(parents=True, exist_ok=True)
    base_files = [ROOT / base]
    if base_overrides:
        base_files.append(out_root / "base_overrides.py")
        write_atomic(base_files[-1], "".join(f"{k} = {v!r}\n" for k, v in base_overrides.items()))
    base_config = load_config(*base_files)
    if "dup_data" in names and not report_only:
        build_dup_datasets(base_config["dataset"], data_dir(base_config["dataset"] + "_dup"),
                           data_dir(base_config["dataset"] + "_dedup"), **DUP_DATA, in_process=in_process)
    seed_list = [base_config["seed"] + k for k in range(seeds)]
    specs, fixed_names = lab_specs(names, base_files, base_config, config_dir, seed_list, sweep)
    runs = run_many(specs, out_root, workers, report_only, in_process)
    base = runs["baseline"]
    seeds_runs = {s: runs[f"baseline_seed{s}" if s != base_config["seed"] else "baseline"] for s in seed_list}
    band = seed_band(seeds_runs)
    results = {}
    for name in names:
        if INCIDENTS[name]["detect"] is None:
            config = load_config(*base_files, config_dir / f"{name}.py")
            surprise, measured, cured, cure_text = detect_memory(memory_probe(config, out_root / name, report_only))
            results[name] = {"run": None, "fixed": [], "reproduced": surprise, "measured": measured,
                             "against": "the plan (plan.memory_plan) of the planned run", "diff": "see operation",
                             "cure_text": f"{'cured' if cured else '**not cured**'}: {cure_text}"}
            print(f"  {name}: {'reproduced' if surprise else 'NOT reproduced'}: {measured}", flush=True)
            continue
        run, fixed = runs[name], [(label, runs[n]) for label, n in fixed_names[name]]
        if name == "dup_data":
            for r in [run] + [f for _, f in fixed]:
                r["regurgitation"] = probe_planted(r["dir"], out_root / "baseline", report_only)
        if name == "fp16_no_scaler" and first_nonfinite(run)[0] is None:
            run["probe"] = fp16_probe(out_root / name, report_only)
        res = analyse_incident(name, run, base, fixed, band)
        if INCIDENTS[name].get("over_seeds") and len(seed_list) > 1:
            judge_over_seeds(name, res, runs, seeds_runs, band)
        res["diff"] = change_text(load_config(*specs[name][0]), base_config)
        plot_incident(report_dir / f"{name}.png", name, run, base, fixed)
        if run.get("layers"):
            plot_layers(report_dir / f"{name}_layers.png", name, [("baseline", base), (name, run)] + fixed[:2])
        results[name] = res
        print(f"  {name}: {'reproduced' if res['reproduced'] else 'NOT reproduced'}: {res['measured']}\n"
              f"    fixed: {res['cure_text']}", flush=True)
    sensitivity = None
    if sweep:
        sensitivity = sensitivity_table(runs, base_config)
        plot_sensitivity(report_dir / "lr_sensitivity.png", sensitivity)
    plot_overview(report_dir / "overview.png", results)
    base_config["_base"] = base_name + "".join(f" --set {k}={v!r}" for k, v in (base_overrides or {}).items())
    report = write_incident_report(report_dir, results, base, base_config, seeds_runs, sensitivity)
    write_results(report_dir, results)
    return report, {**results, "_sensitivity": sensitivity, "_runs": runs}


def write_results(report_dir, results):
    """results.json beside report.md: per incident what was done, what was measured, cause and fix, for
    scripts (retro.py's problems table); the runs themselves stay in their metrics.jsonl."""
    rows = {name: {"operation": INCIDENTS[name]["operation"], "measured": r["measured"],
                   "reproduced": bool(r["reproduced"]), "against": r.get("against"), "fixed": r.get("cure_text"),
                   "seeds": {str(s): ok for s, (ok, _) in r.get("seeds", {}).items()} or None,
                   "cause": INCIDENTS[name]["cause"], "fix": INCIDENTS[name]["fix"]} for name, r in results.items()}
    write_json(Path(report_dir) / "results.json", rows)


# ---------------------------------------------------------------------------------------------------------
# 4. Command line


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=list(INCIDENTS), help="incidents to run (default: all)")
    p.add_argument("--base", default="config/incidents/baseline.py", help="the config every incident changes")
    p.add_argument("--set", nargs="+", metavar="KEY=VALUE", help="override keys of the base (e.g. max_iters=600)")
    p.add_argument("--seeds", type=int, default=3, help="baseline seeds for the seed-noise band")
    p.add_argument("--no-sweep", action="store_true", help="skip the LR-sensitivity sweep (24 short runs)")
    p.add_argument("--workers", type=int, default=2, help="training processes side by side")
    p.add_argument("--report-only", action="store_true", help="rebuild the report from existing runs")
    p.add_argument("--figures", help="also copy the overview figure to this folder as incidents.png")
    args = p.parse_args(argv)
    work = lambda: run_incidents(args.only or list(INCIDENTS), report_only=args.report_only, base=args.base,
                                 base_overrides=parse_set(args.set or []), seeds=args.seeds, sweep=not args.no_sweep,
                                 workers=args.workers)[0]
    run_command(args, work, "overview.png", "incidents.png")


if __name__ == "__main__":
    main()
