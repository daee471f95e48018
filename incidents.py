"""
incidents.py: the incident lab. Break a tiny training run on purpose, one change at a time, and measure
what happened, the week-2 exercise of the plan.

    python incidents.py                      # baseline + every incident -> report/incidents/report.md
    python incidents.py --only lr_x10 sgd    # some incidents (the baseline always runs too)
    python incidents.py --report-only        # redo the report from the runs already in out/incidents/

The lesson, top to bottom:
  1. each incident is a config file in config/incidents/ that changes one thing in baseline.py (a few
     also raise the LR to show at this size; they are compared with the same run, fixed)
  2. train.py runs it and writes out/incidents/NAME/metrics.jsonl (train, eval, event and end lines)
  3. a detector per phenomenon turns those lines into one measured sentence ("loss NaN at step 37");
     nothing in the "what happened" column is written in advance
  4. a plot per incident draws its loss and gradient norm over the baseline's (and the fixed run's)
  5. report.md: operation | what happened | cause | fix, then the monitor's events per incident

What it adds over its neighbours: runs.py starts train.py and reads what a run logged; this file holds
the incidents themselves (their prose, a detector each) and their report; incident_probes.py builds the
duplicated dataset and probes the trained models. sweeps.py runs controlled comparisons (LR, batch,
warmup, schedule, data mix, checkpoint interval) through the same runs.py.
"""
import argparse
import datetime
import json
import math
from pathlib import Path

import numpy as np

from common import save_figure, write_atomic
from incident_probes import build_dup_dataset, fp16_probe, probe_planted
from runs import (ROOT, change_text, changed_keys, data_dir, final_train, final_val, first_nonfinite, load_config,
                  machine, read_metrics, run_command, series, smooth, steps_to_reach, train)

# ---------------------------------------------------------------------------------------------------------
# 1. Detectors: one per phenomenon. Each takes the incident's run and the baseline's run and returns
#    (reproduced, measured sentence). The sentence is the "what happened" column of the report.


def biggest_jump(run):
    """(nats, step, best before): the largest rise of the train loss above its lowest value so far."""
    steps, loss = series(run["train"], "loss")
    if len(loss) < 2:
        return 0.0, None, float("nan")
    best = np.fmin.accumulate(loss)[:-1]
    rise = loss[1:] - best
    i = int(np.nanargmax(rise))
    return float(rise[i]), int(steps[i + 1]), float(best[i])


def detect_divergence(run, base):
    """LR too high: NaN/inf, a loss that jumps far above its best so far, or one that ends far above."""
    step, what = first_nonfinite(run)
    status = run["end"].get("status", "killed (no end line)")
    if step is not None:
        return True, f"{what} at step {step}; run ended '{status}'"
    (jump, at, best), (jump0, _, _) = biggest_jump(run), biggest_jump(base)
    _, g = series(run["train"], "grad_norm")
    _, g0 = series(base["train"], "grad_norm")
    gap = final_train(run) - final_train(base)
    text = (f"no NaN; loss jumped {jump:.2f} nats above its best so far ({best:.2f}) at step {at} (baseline's "
            f"largest jump {jump0:.2f}); grad norm peaked at {np.nanmax(g):.3g} (x{np.nanmax(g) / np.nanmedian(g0):.0f} "
            f"the baseline's median); train loss {gap:+.2f} nats vs baseline at the end")
    return bool((jump >= 1.0 and jump >= 1.5 * jump0) or gap >= 0.5), text


def detect_early_instability(run, base, early=None):
    """No warmup: large gradient norms and a loss that goes up and down in the first steps, compared with
    the same run warmed up (base)."""
    early = early or max(10, len(base["train"]) // 10)
    _, g, _, g0 = *series(run["train"][:early], "grad_norm"), *series(base["train"][:early], "grad_norm")
    _, l, _, l0 = *series(run["train"][:early], "loss"), *series(base["train"][:early], "loss")
    gn_ratio = np.nanmax(g) / np.nanmax(g0)
    rise, rise0 = np.nansum(np.clip(np.diff(l), 0, None)), np.nansum(np.clip(np.diff(l0), 0, None))
    ups, ups0 = int(np.sum(np.diff(l) > 0)), int(np.sum(np.diff(l0) > 0))
    text = (f"grad norm x{gn_ratio:.1f} in the first {early} steps (max {np.nanmax(g):.2f} vs "
            f"{np.nanmax(g0):.2f} with warmup); loss rose on {ups} of {early - 1} steps ({ups0} with warmup), "
            f"total rise {rise:.2f} vs {rise0:.2f} nats; val loss {final_val(run) - final_val(base):+.2f} vs "
            f"the warmed-up run at the end")
    return bool(gn_ratio >= 2 or rise >= 2 * max(rise0, 0.05)), text


def loss_noise(run, skip=0.2):
    """Std of the train loss around its own trend (moving average), after the first 20% of steps."""
    _, loss = series(run["train"], "loss")
    loss = loss[int(len(loss) * skip):]
    return float(np.nanstd(loss - smooth(loss, 15)))


def detect_noisy(run, base):
    """Batch too small: a noisy loss, and less progress per step."""
    ratio = loss_noise(run) / loss_noise(base)
    gap = final_val(run) - final_val(base)
    text = (f"loss std around its trend x{ratio:.1f} vs baseline ({loss_noise(run):.3f} vs "
            f"{loss_noise(base):.3f}); val loss {gap:+.2f} at the end after the same number of steps")
    return bool(ratio >= 2 and gap > 0), text


def detect_grad_explosion(run, ref):
    """No clipping: gradient norms far above the clipped run's typical one go straight into the update.
    ref is the same run with clipping; its logged norms are pre-clip too, so the difference clipping made
    shows in what the loss did afterwards."""
    _, g = series(run["train"], "grad_norm")
    _, g0 = series(ref["train"], "grad_norm")
    step, what = first_nonfinite(run)
    typical = np.nanmedian(g0)
    finite = np.where(np.isfinite(g), g, np.nan)
    peak, peak_at = np.nanmax(finite), int(run["train"][int(np.nanargmax(finite))]["step"])
    above = int(np.sum(g > 10 * typical))
    text = (f"grad norm peaked at {peak:.3g} at step {peak_at} (x{peak / typical:.0f} the clipped run's median "
            f"{typical:.2g}); {above} step(s) above x10 reached the weights unclipped; train loss "
            f"{final_train(run) - final_train(ref):+.2f} nats vs the clipped run at the end")
    if step is not None:
        text += f"; {what} at step {step}"
    return bool(step is not None or (peak >= 10 * typical and above >= 1)), text


def detect_slow(run, base):
    """Wrong optimizer: reaching the same loss takes many more steps."""
    steps0, _ = series(base["train"], "loss")
    quarter = base["train"][len(base["train"]) // 4]["step"]
    level = float(smooth(series(base["train"], "loss")[1])[len(base["train"]) // 4])
    reached, gap = steps_to_reach(run, level), final_val(run) - final_val(base)
    if reached is None:
        first = f"never reached the baseline's step-{quarter} loss ({level:.2f}) in {int(steps0[-1])} steps"
    else:
        first = f"reached the baseline's step-{quarter} loss ({level:.2f}) at step {reached} " \
                f"(x{reached / max(quarter, 1):.1f} slower)"
    return bool((reached is None or reached >= 2 * quarter) and gap > 0), f"{first}; val loss {gap:+.2f} at the end"


def detect_precision(run, base):
    """fp16 without a scaler: overflow to inf/NaN, or gradients that underflow to 0. The underflow is
    measured by fp16_probe() (run["probe"]) on the run's final weights; the loss is compared with the
    fp32 baseline at the same step."""
    step, what = first_nonfinite(run)
    if step is not None:
        return True, f"{what} at step {step} (overflow); run ended '{run['end'].get('status', 'killed')}'"
    probe = run.get("probe") or {}
    at = run["train"][-1]["step"]
    loss, loss0 = final_train(run, 10), np.nanmean([r["loss"] for r in base["train"] if at - 10 < r["step"] <= at])
    if not probe:
        return False, f"no inf/NaN; loss {loss:.3f} vs fp32's {loss0:.3f} at step {at}; no gradient probe"
    fp16, scaled, bf16 = probe["fp16"], probe["fp16 x 65536"], probe["bf16"]
    text = (f"no inf/NaN; at step {probe['step']} {fp16['zeroed_pct']:.2f}% of the gradient entries underflowed "
            f"to exactly 0 (with the loss x 65,536: {scaled['zeroed_pct']:.2f}%; bf16: {bf16['zeroed_pct']:.2f}%), "
            f"gradient error vs fp32 {fp16['rel_err_pct']:.1f}% ({scaled['rel_err_pct']:.2f}% scaled, "
            f"{bf16['rel_err_pct']:.2f}% bf16); largest activation {probe['max_activation']:.3g} (fp16 max 65,504); "
            f"train loss {loss:.3f} vs fp32's {loss0:.3f} at step {at}")
    if probe.get("overflow_scale"):
        text += (f"; the other end: with the loss x 2^{probe['overflow_scale'].bit_length() - 1} the gradient "
                 f"overflows to inf ({probe['overflow_pct']:.2g}% of entries; one inf makes a GradScaler skip "
                 f"the step and halve its scale)")
    return bool(fp16["zeroed_pct"] >= 1.0 and scaled["zeroed_pct"] < 0.1 * fp16["zeroed_pct"]), text


def detect_memorised(run, base):
    """Duplicated data: train loss below the baseline's, val loss above it and risen from its own minimum
    (overfitting), and the planted passage comes back word for word (run["regurgitation"] is filled in by
    regurgitation() below)."""
    steps, v = series(run["eval"], "val_loss")
    rise = final_val(run) - np.nanmin(v)
    dtrain, dval = final_train(run) - final_train(base), final_val(run) - final_val(base)
    got, n, got0 = run.get("regurgitation", (0, 0, 0))
    text = (f"train loss {dtrain:+.2f} vs baseline, val loss {dval:+.2f}; val rose {rise:.2f} from its minimum "
            f"at step {int(steps[np.nanargmin(v)])}; greedy generation from the planted passage's first "
            f"tokens repeats {got}/{n} of the next tokens verbatim (baseline {got0}/{n})")
    return bool(dtrain < 0 and dval > 0 and rise > 0 and got >= 0.8 * n > 0), text


def detect_recovered(run, base):
    """A poisoned batch: the monitor flags the spike, rolls back, and the run ends where the baseline did."""
    rollbacks = [e for e in run["event"] if "rollback" in str(e.get("action", ""))]
    status = run["end"].get("status", "killed (no end line)")
    gap = final_val(run) - final_val(base)
    if not rollbacks:
        return False, f"no rollback event; run ended '{status}', val loss {gap:+.2f} vs baseline"
    e = rollbacks[0]
    text = (f"'{e.get('event')}' at step {e['step']} -> {e.get('action')}; run ended '{status}' at step "
            f"{run['end'].get('step')}; val loss {gap:+.3f} vs baseline")
    return bool(status == "finished" and abs(gap) < 0.1), text


# ---------------------------------------------------------------------------------------------------------
# 2. The incidents. Each is config/incidents/NAME.py (what we changed); the prose says why it hurts and how
#    to fix it. `reference` (optional) is a second run with the fix applied, for incidents that need a
#    harsher setting than the baseline to show themselves: the fair comparison is then "same run, fixed".
#    It names the keys that go back to the baseline's values.

INCIDENTS = {
    "lr_x10": dict(
        detect=detect_divergence, operation="learning rate x10",
        cause="Each AdamW step moves every weight by roughly the learning rate. Ten times that overshoots: "
              "the logits and the residual stream grow, the softmax saturates, and the loss climbs or "
              "turns NaN.",
        fix="Use the tuned LR (a short LR sweep finds the edge; back off ~3x from where loss blows up). A "
            "monitor with rollback plus a lower LR rescues a run that diverges late."),
    "no_warmup": dict(
        detect=detect_early_instability, operation="warmup off (full LR from step 0; LR x3, see config)",
        reference=("warmup_iters",),
        cause="At step 0 AdamW's second-moment estimate is built from a handful of gradients, so the first "
              "updates are full-size steps in poorly-estimated directions while the weights are random: "
              "the loss jumps around before it settles.",
        fix="Linear warmup over the first few % of steps (here the baseline's warmup_iters) lets the "
            "optimizer statistics settle before the LR is at full size."),
    "batch_1": dict(
        detect=detect_noisy, operation="batch size 1 (one sequence per step)",
        cause="The gradient is an average over the batch; with one sequence its noise is ~sqrt(B) times "
              "larger and each step sees B times fewer tokens, so the loss is noisy and falls slower per step.",
        fix="Raise the batch, or keep the micro-batch and use gradient_accumulation_steps to reach a few "
            "hundred thousand tokens per step (at 1B scale); lower the LR if the batch must stay small."),
    "no_clip": dict(
        detect=detect_grad_explosion, operation="gradient clipping off (at lr_x10's LR, see config)",
        reference=("grad_clip",),
        cause="Without a cap, one unlucky batch with a huge gradient produces a huge update; the next "
              "gradients are larger still, and the loss spikes or collapses. AdamW divides each update by "
              "a running RMS of the gradient, which absorbs a few isolated spikes (compare the final loss); "
              "SGD, or spikes that come in runs, are not forgiven.",
        fix="grad_clip=1.0 (clip the global norm); log the pre-clip norm, which is the early warning: "
            "a rising clip rate means the LR is too high."),
    "sgd": dict(
        detect=detect_slow, operation="SGD with momentum instead of AdamW (same LR schedule)",
        cause="Transformers have parameters whose gradients differ by orders of magnitude (embeddings vs "
              "deep layers). One global step size is too large for some and too small for most; AdamW "
              "rescales per parameter.",
        fix="AdamW (beta2 0.95, weight decay 0.1 on matrices only). If SGD it must be, it needs a far "
            "larger, separately tuned LR and still converges slower."),
    "fp16_no_scaler": dict(
        detect=detect_precision, operation="fp16 autocast without a loss scaler",
        cause="fp16 keeps 5 exponent bits: numbers above 65,504 become inf, and below ~6e-8 become 0. "
              "The gradient of a mean loss over N tokens carries a 1/N: for the thousands of tokens the "
              "model rates unlikely it is far below 6e-8 and falls into that hole. Activations stay far "
              "below 65,504 in a healthy small model; an overflow needs outliers a long or unstable run "
              "grows.",
        fix="bf16 (fp32's range, no scaler needed) where the hardware has it; otherwise fp16 with a "
            "dynamic loss scaler (GradScaler), which multiplies the loss up before backward, unscales "
            "before the step and skips steps that overflowed."),
    "dup_data": dict(
        detect=detect_memorised, operation="heavily duplicated training set + a planted passage",
        cause="The model sees the same few thousand tokens dozens of times: it memorises them instead of "
              "learning what generalises. Train loss keeps falling while val loss turns up, and the "
              "repeated passage is stored verbatim.",
        fix="Exact and near-duplicate removal (prepare.py's dedup) before the split; cap repeats of any "
            "source at ~4 epochs; watch the train/val gap and a verbatim-regurgitation probe."),
    "bad_batch": dict(
        detect=detect_recovered, operation="a poisoned batch injected mid-run (monitor: rollback)",
        cause="One batch of garbage (here injected on purpose; in real life a corrupt shard or a "
              "pathological document) gives a loss spike and a huge gradient that can wreck the weights.",
        fix="The PaLM recipe: detect the spike (loss above the running mean + k sigma), restore the last "
            "good checkpoint, skip the offending batches, continue. Dump the batch to find its source."),
}

# dup_data's training set (incident_probes.build_dup_dataset); the tests shrink it with their model
DUP_DATA = {"unique_tokens": 2000, "copies": 40, "planted_every": 2}


# ---------------------------------------------------------------------------------------------------------
# 3. Plots and the report


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


def plot_incident(path, name, run, base, ref=None):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    runs = [("baseline", "0.55", base)] + ([("reference (fixed)", "C0", ref)] if ref else []) + [(name, "C3", run)]
    draw_loss_and_grad_norm(a, b, runs)
    fig.suptitle(name, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def plot_overview(path, results):
    """All incidents on one page: the README's headline figure."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cols = 4
    rows = math.ceil(len(results) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.4 * rows), squeeze=False)
    for ax, (name, res) in zip(axes.flat, results.items()):
        other = ("same run, fixed", res["ref"]) if res.get("ref") else ("baseline", res["base"])
        for label, color, run in [(*other[:1], "0.55", other[1]), (name, "C3", res["run"])]:
            ax.plot(*series(run["train"], "loss"), color=color, lw=0.6, label=label)
        flagged = [e for e in res["run"]["event"] if e.get("loss") is not None]  # e.g. the rolled-back spike
        ax.plot([e["step"] for e in flagged], [e["loss"] for e in flagged], "kx", ms=5)
        ax.set_title(f"{name} vs {other[0]}" + ("" if res["reproduced"] else " (NOT reproduced)"), fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in axes.flat[len(results):]:
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
            for e in run["event"]]


def write_incident_report(report_dir, results, base, base_config):
    """report.md: the table (operation | what happened | cause | fix), then per incident its plot, what
    the monitor flagged, and the config difference; last, the baseline's keys that differ from train.py's
    defaults."""
    report_dir = Path(report_dir)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["# Incident lab report", "",
             f"{now}, {machine()}. Baseline: `config/incidents/baseline.py` "
             f"(final val loss {final_val(base):.3f}, {base['end'].get('time_s', float('nan')):.0f} s). "
             "Every 'what happened' cell is computed from the run's metrics.jsonl by the detector named "
             "in its row (incidents.py).", "",
             "| incident | operation | what happened (measured) | reproduced | cause | fix |",
             "|---|---|---|---|---|---|"]
    for name, res in results.items():
        inc = INCIDENTS[name]
        lines.append(f"| [{name}](#{name}) | {md_cell(inc['operation'])} (`{res['diff']}`) | "
                     f"{md_cell(res['measured'])} | {'yes' if res['reproduced'] else '**no**'} "
                     f"({inc['detect'].__name__}) | {md_cell(inc['cause'])} | {md_cell(inc['fix'])} |")
    for name, res in results.items():
        lines += ["", f"## {name}", "", f"![{name}]({name}.png)", "", f"Changed: `{res['diff']}`. "
                  f"Run ended '{res['run']['end'].get('status', 'killed')}' at step "
                  f"{res['run']['end'].get('step', '?')}.", "", f"Measured: {res['measured']}", ""]
        if res.get("ref"):
            lines += [f"Reference run (the same run fixed: `{res['ref_diff']}`, the baseline's value): ended "
                      f"'{res['ref']['end'].get('status', 'killed')}', final val loss {final_val(res['ref']):.3f}.", ""]
        lines += ["What the stability monitor flagged:"] + event_lines(res["run"])
    baseline = changed_keys(base_config, load_config())
    lines += ["", "## Baseline (train.py's defaults but these)", "", "```"] + \
        [f"{k} = {v!r}" for k, v in baseline.items()] + ["```"]
    write_atomic(report_dir / "report.md", "\n".join(lines) + "\n")
    return report_dir / "report.md"


def analyse_incident(name, run, base, ref=None):
    """Apply the incident's detector against its reference (the fixed run) or the baseline."""
    reproduced, measured = INCIDENTS[name]["detect"](run, ref or base)
    return {"run": run, "base": base, "ref": ref, "reproduced": reproduced, "measured": measured}


def run_incidents(names, out_root="out/incidents", report_dir="report/incidents", base_overrides=None,
                  config_dir="config/incidents", report_only=False, in_process=False):
    """Baseline + each incident (+ its reference run) -> report_dir/report.md and a PNG per incident.
    base_overrides ({key: value}) is written to out_root/base_overrides.py and executed after baseline.py,
    before the incident's file: the tests use it to shrink every run while `learning_rate *= 10` still
    means x10.
    A run whose resolved config equals one already run (no_clip's reference is lr_x10) is not run twice."""
    out_root, report_dir, config_dir = ROOT / out_root, ROOT / report_dir, ROOT / config_dir
    report_dir.mkdir(parents=True, exist_ok=True)
    out_root.mkdir(parents=True, exist_ok=True)
    base_files = [config_dir / "baseline.py"]
    if base_overrides:
        base_files.append(out_root / "base_overrides.py")
        write_atomic(base_files[-1], "".join(f"{k} = {v!r}\n" for k, v in base_overrides.items()))
    base_config = load_config(*base_files)
    done = {}  # resolved config -> run

    def go(run_dir, files, overrides):
        key = json.dumps(load_config(*files, overrides=overrides), sort_keys=True)
        if key not in done:
            done[key] = read_metrics(run_dir) if report_only else train(run_dir, files, overrides, in_process)
        return done[key]

    base = go(out_root / "baseline", base_files, {})
    results = {}
    for name in names:
        files = base_files + [config_dir / f"{name}.py"]
        config = load_config(*files)
        if name == "dup_data" and not report_only:
            build_dup_dataset(base_config["dataset"], data_dir(config["dataset"]), **DUP_DATA)
        run = go(out_root / name, files, {})
        fixed = {k: base_config[k] for k in INCIDENTS[name].get("reference", ())}
        ref = go(out_root / f"{name}_ref", files, fixed) if fixed else None
        if name == "dup_data":
            run["regurgitation"] = probe_planted(out_root / name, out_root / "baseline", report_only)
        if name == "fp16_no_scaler" and first_nonfinite(run)[0] is None:
            run["probe"] = fp16_probe(out_root / name, report_only)
        res = analyse_incident(name, run, base, ref)
        res["diff"] = change_text(config, base_config)
        res["ref_diff"] = ", ".join(f"{k}={v!r}" for k, v in fixed.items())
        plot_incident(report_dir / f"{name}.png", name, run, base, ref)
        results[name] = res
        print(f"  {name}: {'reproduced' if res['reproduced'] else 'NOT reproduced'}: {res['measured']}", flush=True)
    plot_overview(report_dir / "overview.png", results)
    return write_incident_report(report_dir, results, base, base_config), results


# ---------------------------------------------------------------------------------------------------------
# 4. Command line


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=list(INCIDENTS), help="incidents to run (default: all)")
    p.add_argument("--report-only", action="store_true", help="rebuild the report from existing runs")
    p.add_argument("--figures", help="also copy the overview figure to this folder as incidents.png")
    args = p.parse_args(argv)
    run_command(args, lambda: run_incidents(args.only or list(INCIDENTS), report_only=args.report_only)[0],
                "overview.png", "incidents.png")


if __name__ == "__main__":
    main()
