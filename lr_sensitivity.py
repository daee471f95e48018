"""
lr_sensitivity.py: the incident lab's LR-sensitivity curves (Wortsman et al. 2023, "Small-scale proxies for
large-scale Transformer training instabilities", arXiv:2309.14322): final val loss against the learning
rate, for the baseline and for each change that moves the edge (no warmup, qk_norm, z_loss).

Their tool, and why: a big run cannot afford to find its LR edge by diverging, but a small model trained
over a wide LR range shows the same instabilities (attention-logit growth, output-logit divergence) at
its own edge. A fix is judged by how flat it makes the curve, not by one lucky LR. Their measure,
for an LR range [a, b] and the loss at initialisation l0:

    LR sensitivity = mean over LRs in [a, b] of ( min(loss(lr), l0) - min over lr' of loss(lr') )

0 means every LR tried is as good as the best; a run that diverges counts as l0 (its cap). We also give
the first diverging LR: the smallest above the best LR whose run went non-finite or ended >= 1 nat above
the best LR's final loss.

What it adds over its neighbours: incidents.py runs these runs beside the incidents (runs.py starts them)
and puts the table and figure in its report; this file only names the runs and turns their final losses
into the table. sweeps.py's LR sweep is a 3-value controlled experiment; this is the instability curve.
"""
import math

import numpy as np

from common import save_figure
from runs import final_val, first_nonfinite

# the LR grid: the base LR times these, 2.5 decades around it
LR_MULTS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
# each curve: the base config changed by these keys (z_loss at PaLM's and Wortsman's 1e-4)
VARIANTS = {"baseline": {}, "no warmup": {"warmup_iters": 0}, "qk_norm": {"qk_norm": True},
            "z_loss": {"z_loss": 1e-4}}
DIVERGED_NATS = 1.0  # a run this far above the best LR's final loss counts as diverged


def sweep_runs(base_config, steps_frac=1 / 3):
    """{run name: overrides} for every (variant, LR): shorter runs than the lab's (steps_frac of its
    steps, the schedule scaled with them), evaluated at the end only."""
    steps = max(10, int(base_config["max_iters"] * steps_frac))
    shorter = {"max_iters": steps, "lr_decay_iters": steps, "eval_interval": steps, "checkpoint_interval": steps,
               "warmup_iters": int(base_config["warmup_iters"] * steps_frac), "layer_stats_interval": 0}
    runs = {}
    for variant, keys in VARIANTS.items():
        for mult in LR_MULTS:
            lrs = {"learning_rate": base_config["learning_rate"] * mult, "min_lr": base_config["min_lr"] * mult}
            runs[f"lrs_{variant.replace(' ', '_')}_x{mult:g}"] = {**shorter, **lrs, **keys}
    return runs


def final_loss(run):
    """The final val loss, inf when the run went non-finite (a diverged run has no loss worth the name)."""
    return math.inf if first_nonfinite(run)[0] is not None else final_val(run)


def sensitivity_table(results, base_config):
    """results {run name: run} of sweep_runs -> {variant: {"lrs", "losses", "first_diverging", "sensitivity",
    "best_lr"}}. l0 is each run's own step-0 val loss (about ln(vocab))."""
    table = {}
    for variant in VARIANTS:
        names = [f"lrs_{variant.replace(' ', '_')}_x{m:g}" for m in LR_MULTS]
        lrs = [base_config["learning_rate"] * m for m in LR_MULTS]
        losses = [final_loss(results[n]) for n in names]
        l0 = float(np.nanmedian([results[n]["eval"][0]["val_loss"] for n in names if results[n]["eval"]]))
        best = min(losses)
        capped = [min(x, l0) if math.isfinite(x) else l0 for x in losses]
        best_lr = lrs[losses.index(best)]  # below it a run is slow, not diverging
        failing = [lr for lr, x in zip(lrs, losses) if lr > best_lr and (not math.isfinite(x) or x >= best + DIVERGED_NATS)]
        table[variant] = {"lrs": lrs, "losses": losses, "l0": l0, "best_lr": best_lr,
                          "first_diverging": failing[0] if failing else None,
                          "sensitivity": float(np.mean(capped) - min(capped))}
    return table


def sensitivity_markdown(table):
    """The report's table: one row per variant, the final val loss at each LR, then Wortsman's numbers."""
    lrs = next(iter(table.values()))["lrs"]
    lines = ["| variant | " + " | ".join(f"LR {lr:.3g}" for lr in lrs) + " | best LR | first diverging LR | "
             "LR sensitivity (nats) |", "|---|" + "---:|" * (len(lrs) + 3)]
    for variant, row in table.items():
        cells = ["NaN/inf" if not math.isfinite(x) else f"{x:.3f}" for x in row["losses"]]
        first = "none in range" if row["first_diverging"] is None else f"{row['first_diverging']:.3g}"
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {row['best_lr']:.3g} | {first} | "
                     f"{row['sensitivity']:.3f} |")
    return lines


def plot_sensitivity(path, table):
    """Final val loss vs LR (log x), one curve per variant; a diverged run is drawn at l0 with an x."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for variant, row in table.items():
        y = [min(x, row["l0"]) if math.isfinite(x) else row["l0"] for x in row["losses"]]
        line, = ax.plot(row["lrs"], y, "o-", ms=4, lw=1, label=f"{variant} (sensitivity {row['sensitivity']:.2f})")
        bad = [(lr, row["l0"]) for lr, x in zip(row["lrs"], row["losses"]) if not math.isfinite(x)]
        if bad:
            ax.plot(*zip(*bad), "x", color=line.get_color(), ms=9)
    ax.set(xscale="log", xlabel="peak learning rate", ylabel="final val loss (capped at step 0's)",
           title="LR sensitivity (Wortsman et al. 2023)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
