"""
sweep_record.py: LEARNER.md's experiment record, computed from runs' metrics.jsonl: one row per configuration
(several seeds: their mean), the winner and its margin, the seed-noise notes, the markdown table and the
machine-readable results.json beside it.

What it adds over its neighbours: runs.py reads and compares any runs; this file turns a sweep's runs into
the plan's template (name; setup; final val loss, perplexity, bits per byte, steps to converge, tokens/s and
MFU, wall time per configuration; a conclusion judged against the seed noise). sweeps.py (the controlled
experiments), sweeps_data.py (clean vs raw data, vocabulary size) and sweeps_scaling.py (the Chinchilla
study) all write their records here, so every record has the same columns.
"""
import math
from pathlib import Path

import numpy as np

from common import write_json
from runs import final_val, read_metrics, series

# ---------------------------------------------------------------------------------------------------------
# One row per configuration (several seeds: their mean), the winner, and the record


def steps_to_converge(run, within=0.05):
    """Our definition of 'converged': the first eval whose val loss is within 5% of the run's best."""
    steps, v = series(run["eval"], "val_loss")
    ok = np.isfinite(v)
    if not ok.any():
        return None
    best = v[ok].min()
    return int(steps[ok & (v <= best * (1 + within))][0])


def summarize(run):
    """One row of an experiment record, every number read from metrics.jsonl. perplexity = exp(val loss);
    MFU is the median of the logged values, NaN where the device has no known peak (a CPU)."""
    last = next((e for e in reversed(run["eval"]) if e.get("val_loss") is not None), {})
    per_source = {src: d.get("bpb") for src, d in (last.get("per_source") or {}).items()}
    _, tps = series(run["train"], "tokens_per_s")
    _, ms = series(run["train"], "step_ms")
    _, mfu = series(run["train"], "mfu")
    val_loss = final_val(run)
    median = lambda x: float(np.nanmedian(x)) if np.isfinite(x).any() else float("nan")
    return {"val_loss": val_loss, "perplexity": math.exp(min(val_loss, 700)) if math.isfinite(val_loss) else val_loss,
            "val_bpb": last.get("val_bpb") or float("nan"),
            "per_source_bpb": float(np.mean(list(per_source.values()))) if per_source else float("nan"),
            "per_source": per_source, "converge": steps_to_converge(run), "steps": run["end"].get("step"),
            "tokens": last.get("tokens", 0), "tokens_per_s": median(tps), "mfu": median(mfu), "step_ms": median(ms),
            "wall_s": run["end"].get("time_s", float("nan")), "events": len(run["event"]),
            "status": run["end"].get("status", "killed")}


def mean_summary(summaries, metric):
    """One row from the same configuration's runs with several seeds: the mean of every number."""
    mean = lambda key: float(np.mean([r[key] for r in summaries]))
    row = {**summaries[0], **{k: mean(k) for k in ("val_loss", "perplexity", "val_bpb", "per_source_bpb",
                                                     "tokens_per_s", "mfu", "step_ms", "wall_s")}}
    row["per_source"] = {s: float(np.mean([r["per_source"][s] for r in summaries])) for s in summaries[0]["per_source"]}
    row["events"] = sum(r["events"] for r in summaries)
    row["status"] = "/".join(sorted({r["status"] for r in summaries}))
    row["per_seed"] = [r[metric] for r in summaries]
    return row


def conclusion(rows, metric):
    """The winner by the lowest `metric`, and by how much it beat each other configuration."""
    ranked = sorted((r[metric], label) for label, r in rows.items() if math.isfinite(r[metric]))
    if not ranked:
        return None, "no run produced a finite val metric: nothing won"
    (best, winner), others = ranked[0], ranked[1:]
    if len(ranked) > 1 and ranked[-1][0] - best < 5e-4:  # equal to the 3 decimals the table shows
        return None, (f"no winner: every configuration reached {metric.replace('_', ' ')} {best:.3f}; this setting "
                      f"does not change what the model learns, only what it costs.")
    versus = "; ".join(f"{v:.3f} for {label} (+{v - best:.3f}, {100 * (v - best) / best:.1f}% worse)"
                       for v, label in others)
    lost = [label for label, r in rows.items() if not math.isfinite(r[metric])]
    seeded = len(ranked) > 1 and all(len(r.get("per_seed", ())) > 1 for r in rows.values())
    return winner, (f"**{winner}** won with {metric.replace('_', ' ')} {best:.3f}; {versus}" +
                    (f"; no finite value for {', '.join(lost)}" if lost else "") + "." +
                    (" " + seed_band_note(rows, metric, winner)[0][2:] if seeded else ""))


def spread(rows, metric):
    """The seed sweep has no winner, only a spread: the noise floor of one-seed comparisons."""
    values = sorted((r[metric], label) for label, r in rows.items() if math.isfinite(r[metric]))
    (lo, a), (hi, b) = values[0], values[-1]
    return None, (f"only the seed changed, and {metric.replace('_', ' ')} moved by {hi - lo:.3f} ({lo:.3f} for {a} "
                  f"to {hi:.3f} for {b}): a single-seed margin smaller than that is noise.")


def paired_note(rows, metric, seeds):
    """With the same seeds for every configuration, compare seed by seed (same init, same batches): the
    paired differences are far less noisy than the spread between seeds."""
    winner, _ = conclusion(rows, metric)
    if winner is None:
        return []
    w = np.array(rows[winner]["per_seed"])
    lines = ["", f"**Seed by seed** (seeds {', '.join(map(str, seeds))}; the same seed means the same init and "
             f"batches, so each difference compares like with like):"]
    for label, r in rows.items():
        if label != winner:
            d = np.array(r["per_seed"]) - w
            lines.append(f"- {winner} beat {label} on {int(np.sum(d > 0))} of {len(d)} seeds; margins "
                         f"{', '.join(f'{x:+.3f}' for x in d)} (mean {d.mean():+.3f}).")
    return lines


def seed_band_note(rows, metric, winner):
    """The seed band: the largest spread between the seeds of one configuration. A winning margin inside it
    is not a finding, however many seeds it won on (with two seeds, 2 of 2 happens by chance 1 time in 4)."""
    band = max(max(r["per_seed"]) - min(r["per_seed"]) for r in rows.values())
    ranked = sorted(r[metric] for r in rows.values() if math.isfinite(r[metric]))
    margin = ranked[1] - ranked[0]
    return [f"- Seed band: one configuration's seeds differ by up to {band:.3f}. The winner's margin over the "
            f"runner-up, {margin:.3f}, is " + (f"larger: {winner} wins." if margin > band else
                                               "inside it: no winner at this number of seeds.")]


def noise_note(rows, metric, seed_dir):
    """Set the winner's margin against the seed sweep's spread (make sweep-seed), if it has been run:
    a margin below what the seed alone moves is not a finding."""
    runs = [read_metrics(d) for d in sorted(Path(seed_dir).glob("*")) if (d / "metrics.jsonl").is_file()]
    finals = [summarize(r)[metric] for r in runs if r["end"].get("status") == "finished"]
    ranked = sorted(r[metric] for r in rows.values() if math.isfinite(r[metric]))
    if len(finals) < 2 or len(ranked) < 2:
        return ["", "**Noise.** One seed per configuration; run `make sweep-seed` to measure the spread the "
                "seed alone causes."]
    spread, margin = max(finals) - min(finals), ranked[1] - ranked[0]
    return ["", f"**Noise.** The baseline with {len(finals)} seeds spans {spread:.3f} in {metric.replace('_', ' ')} (make sweep-seed). "
            f"The winner's margin over the runner-up, {margin:.3f}, is "
            f"{'larger than that: a finding' if margin > spread else 'within it: not a finding with one seed each'}."]


def experiment_record(title, question, setup, rows, metric, extra=(), judge=conclusion):
    """LEARNER.md's template: name, setup, results table, conclusion (with numbers)."""
    winner, text = judge(rows, metric)
    sources = sorted({s for r in rows.values() for s in r["per_source"]})
    seeds = max(len(r.get("per_seed", ())) for r in rows.values())
    head = ["configuration", "final val loss", "final val bpb", "perplexity"] + [f"val bpb {s}" for s in sources] + \
           ([f"{metric.replace('_', ' ')} per seed"] if seeds > 1 else []) + \
           ["steps to converge*", "steps run", "tokens/s", "MFU", "step ms", "wall s", "monitor events", "status"]
    lines = [f"## Experiment record: {title}", "", f"**Question.** {question}", "", f"**Setup.** {setup}", "",
             "**Results.**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, r in rows.items():
        cells = [label, f"{r['val_loss']:.3f}", f"{r['val_bpb']:.3f}", f"{r['perplexity']:.2f}"] + \
                [f"{r['per_source'].get(s, float('nan')):.3f}" for s in sources] + \
                ([", ".join(f"{v:.3f}" for v in r["per_seed"])] if seeds > 1 else []) + \
                [str(r["converge"]), str(r["steps"]), f"{r['tokens_per_s']:.0f}",
                 "—" if not math.isfinite(r["mfu"]) else f"{100 * r['mfu']:.1f}%", f"{r['step_ms']:.1f}",
                 f"{r['wall_s']:.0f}", str(r["events"]), r["status"]]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "*steps to converge: the first eval step whose val loss is within 5% of that run's best. "
              "MFU: '—' where the device has no known peak (a CPU)." +
              (f" With {seeds} seeds a row is the mean over them (steps to converge: the first seed's)." if seeds > 1 else ""), "",
              f"**Conclusion.** {text}", *extra]
    return winner, lines


def write_results(path, name, setup, rows, winner, conclusion_text, **extra):
    """results.json beside report.md: the record's numbers for scripts (NaN becomes null)."""
    clean = lambda v: None if isinstance(v, float) and not math.isfinite(v) else \
        {k: clean(x) for k, x in v.items()} if isinstance(v, dict) else \
        [clean(x) for x in v] if isinstance(v, (list, tuple)) else v
    write_json(Path(path), clean({"name": name, "setup": setup, "rows": rows, "winner": winner,
                                  "conclusion": conclusion_text, **extra}))
