"""
incident_detectors.py: the incident lab's detectors, one per phenomenon. Each reads runs as runs.read_metrics
returns them (train, eval, event and layers records) and returns (reproduced, one measured sentence); the
sentence is the "what happened" column of report/incidents/report.md, so nothing there is written in advance.

What it adds over its neighbours: incidents.py names the incidents, runs them and writes the report;
runs.py reads metrics.jsonl; these functions turn a run (and the run it is judged against: the baseline, or
the same run fixed) into a verdict. band is the seed noise (the spread of the baseline's final val loss over
seeds): a difference inside it is not evidence.
"""
import numpy as np

from runs import final_train, final_val, first_nonfinite, series, smooth, steps_to_reach

# ---------------------------------------------------------------------------------------------------------
# Detectors: one per phenomenon. Each takes the incident's run and the baseline's run and returns
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


def attention_growth(run, base):
    """' attention logits peaked at X (baseline Y)', from the layers records (Wortsman's attention-logit
    growth), or '' when the runs logged no layer statistics."""
    peak = lambda r: max((max(x["attn_logit_max"]) for x in r.get("layers", [])), default=None)
    if peak(run) is None or peak(base) is None:
        return ""
    return f"; attention logits peaked at {peak(run):.3g} (baseline {peak(base):.3g})"


def back_above_untrained(run):
    """(highest loss, its step) once the train loss has fallen 0.5 nat below the untrained model's
    (~ln vocab): a loss back at or above that level means the model unlearned everything. (nan, None)
    when it never fell that far."""
    steps, loss = series(run["train"], "loss")
    untrained = run["eval"][0]["val_loss"] if run["eval"] else float("inf")
    fell = np.flatnonzero(loss < untrained - 0.5)
    if not len(fell):
        return float("nan"), None
    i = fell[0] + int(np.nanargmax(loss[fell[0]:]))
    return float(loss[i]), int(steps[i])


def detect_divergence(run, base, band=0.0):
    """LR too high: NaN/inf, a train loss that comes back to the untrained model's (~ln vocab) after
    having fallen below it, or a final val loss >= 1 nat above the baseline's."""
    step, what = first_nonfinite(run)
    status = run["end"].get("status", "killed (no end line)")
    if step is not None:
        return True, f"{what} at step {step}; run ended '{status}'" + attention_growth(run, base)
    (jump, at, best), (jump0, _, _) = biggest_jump(run), biggest_jump(base)
    _, g = series(run["train"], "grad_norm")
    _, g0 = series(base["train"], "grad_norm")
    untrained = run["eval"][0]["val_loss"] if run["eval"] else float("inf")
    back, back_at = back_above_untrained(run)
    gap = final_val(run) - final_val(base)
    text = (f"no NaN; loss jumped {jump:.2f} nats above its best so far ({best:.2f}) at step {at} (baseline's "
            f"largest jump {jump0:.2f}); once below the untrained loss ({untrained:.2f}) it came back up to "
            f"{back:.2f} at step {back_at}; grad norm peaked at {np.nanmax(g):.3g} (x{np.nanmax(g) / np.nanmedian(g0):.0f} "
            f"the baseline's median); final val loss {gap:+.2f} nats vs baseline" + attention_growth(run, base))
    return bool(back >= untrained or gap >= 1.0), text


def detect_recovered_at_the_end(run, base, band=0.0):
    """A fix for a too-high LR (qk_norm, z_loss): no NaN and a final val loss within the seed noise of
    the baseline's, at ten times its LR; the early transient is reported, not judged."""
    step, what = first_nonfinite(run)
    back, back_at = back_above_untrained(run)
    gap = final_val(run) - final_val(base)
    text = (f"{what + ' at step ' + str(step) if step is not None else 'no NaN'}; final val loss {gap:+.2f} nats "
            f"vs baseline (seed noise {band:.2f}); early on the loss still came back up to {back:.2f} at step "
            f"{back_at}" + attention_growth(run, base))
    return bool(step is None and gap <= band), text


def early_stream_growth(run, ref):
    """(run's / ref's largest residual-stream RMS, step) in the first layers record after step 1: the
    first full-size updates of an unwarmed AdamW blow the stream up before its statistics settle."""
    a, b = run.get("layers", [])[1:2], ref.get("layers", [])[1:2]
    if not a or not b:
        return None, None
    return max(a[0]["act_rms"]) / max(b[0]["act_rms"]), a[0]["step"]


def detect_early_instability(run, base, band=0.0, early=None):
    """No warmup: large gradient norms and a loss that goes up and down in the first steps, compared with
    the same run warmed up (base), and a final val loss worse than it by more than the seed noise."""
    early = early or max(10, len(base["train"]) // 10)
    _, g, _, g0 = *series(run["train"][:early], "grad_norm"), *series(base["train"][:early], "grad_norm")
    _, l, _, l0 = *series(run["train"][:early], "loss"), *series(base["train"][:early], "loss")
    gn_ratio = np.nanmax(g) / np.nanmax(g0)
    rise, rise0 = np.nansum(np.clip(np.diff(l), 0, None)), np.nansum(np.clip(np.diff(l0), 0, None))
    ups, ups0 = int(np.sum(np.diff(l) > 0)), int(np.sum(np.diff(l0) > 0))
    text = (f"grad norm x{gn_ratio:.1f} in the first {early} steps (max {np.nanmax(g):.2f} vs "
            f"{np.nanmax(g0):.2f} with warmup); loss rose on {ups} of {early - 1} steps ({ups0} with warmup), "
            f"total rise {rise:.2f} vs {rise0:.2f} nats; val loss {final_val(run) - final_val(base):+.2f} vs "
            f"the warmed-up run at the end" + attention_growth(run, base))
    growth, at = early_stream_growth(run, base)
    if growth is not None:
        text += f"; residual stream RMS x{growth:.0f} the warmed run's at step {at}"
    early_burst = gn_ratio >= 2 or rise >= 2 * max(rise0, 0.05) or (growth or 0) >= 10
    return bool(early_burst and final_val(run) - final_val(base) > band), text


def loss_noise(run, skip=0.2):
    """Std of the train loss around its own trend (moving average), after the first 20% of steps."""
    _, loss = series(run["train"], "loss")
    loss = loss[int(len(loss) * skip):]
    return float(np.nanstd(loss - smooth(loss, 15)))


def detect_noisy(run, base, band=0.0):
    """Batch too small: a noisy loss (the signature: its margin is large at any length), and the final
    val loss, reported against the seed noise (at a few hundred steps it is often inside it)."""
    ratio = loss_noise(run) / loss_noise(base)
    gap = final_val(run) - final_val(base)
    text = (f"loss std around its trend x{ratio:.1f} vs baseline ({loss_noise(run):.3f} vs "
            f"{loss_noise(base):.3f}); val loss {gap:+.2f} at the end after the same number of steps "
            f"({'beyond' if gap > band else 'inside'} the seed noise {band:.2f})")
    return bool(ratio >= 2), text


def detect_grad_explosion(run, ref, band=0.0):
    """No clipping: gradient norms far above the clipped run's typical one go straight into the update,
    and the loss spikes or diverges where the clipped run does not. ref is the same run with clipping;
    its logged norms are pre-clip too, so the difference clipping made shows in what the loss did."""
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
    (jump, at, _), (jump0, _, _) = biggest_jump(run), biggest_jump(ref)
    text += f"; largest loss jump {jump:.2f} nats at step {at} (clipped run: {jump0:.2f})"
    if step is not None:
        text += f"; {what} at step {step}"
    hurt = jump >= max(1.0, 1.5 * jump0) or final_val(run) - final_val(ref) > band
    return bool(step is not None or (peak >= 10 * typical and above >= 1 and hurt)), text


def detect_slow(run, base, band=0.0):
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
    return bool((reached is None or reached >= 2 * quarter) and gap > band), f"{first}; val loss {gap:+.2f} at the end"


def underflow_pct(run):
    """The mean % of block gradient entries that were exactly 0 in the run's layers records (None: none)."""
    zeros = [np.mean(r["grad_zero_pct"]) for r in run.get("layers", []) if "grad_zero_pct" in r]
    return float(np.mean(zeros)) if zeros else None


def detect_precision(run, base, band=0.0):
    """fp16 without a scaler, in the training run itself: overflow to inf/NaN, or an update that collapses
    because the gradient underflows to 0 (the layers records' grad_zero_pct; fp32 has ~none). The probe
    (run["probe"], on the final weights) adds the error vs fp32 and where overflow starts."""
    step, what = first_nonfinite(run)
    if step is not None:
        return True, f"{what} at step {step} (overflow); run ended '{run['end'].get('status', 'killed')}'"
    zero, zero0 = underflow_pct(run), underflow_pct(base)
    at = run["train"][-1]["step"]
    loss, loss0 = final_train(run, 10), np.nanmean([r["loss"] for r in base["train"] if at - 10 < r["step"] <= at])
    text = f"no inf/NaN; train loss {loss:.3f} vs fp32's {loss0:.3f} at step {at}"
    if zero is not None:
        text += (f"; in training {zero:.2f}% of the blocks' gradient entries were exactly 0 (underflow; "
                 f"fp32 baseline {zero0 if zero0 is not None else float('nan'):.3f}%)")
    probe = run.get("probe")
    if probe:
        text += (f"; probe at step {probe['step']}: gradient error vs fp32 {probe['fp16']['rel_err_pct']:.1f}% "
                 f"({probe['fp16 x 65536']['rel_err_pct']:.2f}% with the loss x 65,536, "
                 f"{probe['bf16']['rel_err_pct']:.2f}% in bf16); largest activation {probe['max_activation']:.3g} "
                 f"(fp16 max 65,504)")
        if probe.get("overflow_scale"):
            text += f"; the gradient overflows to inf from the loss x 2^{probe['overflow_scale'].bit_length() - 1}"
    return bool(zero is not None and zero >= 0.1 and zero >= 10 * (zero0 or 0.0)), text


def detect_memorised(run, base, band=0.0):
    """Duplicated data: the repeated passage is learnt by heart: its loss (run["regurgitation"], filled in
    by incident_probes.probe_planted) >= 1 nat/token below the baseline's, who never saw it, or greedy
    generation repeats it word for word; the val - train gap against the baseline's is reported."""
    dtrain, dval = final_train(run) - final_train(base), final_val(run) - final_val(base)
    probe = run.get("regurgitation") or {"verbatim": 0, "asked": 0, "loss": float("nan"), "base_verbatim": 0,
                                         "base_loss": float("nan")}
    got, n = probe["verbatim"], probe["asked"]
    text = (f"the repeated passage costs {probe['loss']:.2f} nats/token (baseline, who never saw it: "
            f"{probe['base_loss']:.2f}); greedy generation from its first tokens repeats {got}/{n} of the next "
            f"tokens verbatim (baseline {probe['base_verbatim']}/{n}); train loss {dtrain:+.2f} vs baseline, val "
            f"loss {dval:+.2f}")
    return bool(probe["loss"] <= probe["base_loss"] - 1.0 or got >= 0.8 * n > 0), text


def detect_spike(run, base, band=0.0):
    """A poisoned batch with the monitor only warning: a loss spike at that batch, flagged, that the update
    then writes into the weights (the loss jumps, and takes steps to come back)."""
    spikes = [e for e in run["event"] if e.get("event") in ("spike", "nan", "grad_explosion")]
    flagged = ", ".join(f"{e['event']} at step {e['step']}" for e in spikes) or "no event"
    jump, at, best = biggest_jump(run)
    text = (f"largest loss jump {jump:.2f} nats above its best so far ({best:.2f}) at step {at}; monitor: {flagged}; "
            f"final val loss {final_val(run) - final_val(base):+.3f} vs baseline")
    return bool(spikes and jump >= 1.0), text


def detect_recovered(run, base, band=0.1):
    """A poisoned batch: the monitor flags the spike, rolls back, and the run ends where the baseline did."""
    rollbacks = [e for e in run["event"] if "rollback" in str(e.get("action", ""))]
    status = run["end"].get("status", "killed (no end line)")
    gap = final_val(run) - final_val(base)
    if not rollbacks:
        return False, f"no rollback event; run ended '{status}', val loss {gap:+.2f} vs baseline"
    e = rollbacks[0]
    text = (f"'{e.get('event')}' at step {e['step']} -> {e.get('action')}; run ended '{status}' at step "
            f"{run['end'].get('step')}; val loss {gap:+.3f} vs baseline")
    return bool(status == "finished" and abs(gap) <= max(band, 0.1)), text


def detect_stuck(run, base, band=0.0):
    """LR far too small: the loss makes less than half the baseline's progress from the untrained model's
    (~ln vocab) in the same steps, and ends beyond the seed noise (and 0.5 nat) above it."""
    drop = lambda r: r["eval"][0]["val_loss"] - final_val(r)
    frac = drop(run) / drop(base)
    text = (f"val loss fell {drop(run):.2f} nats in {run['end'].get('step', '?')} steps (baseline: {drop(base):.2f}), "
            f"{100 * frac:.0f}% of the baseline's progress; final val loss {final_val(run) - final_val(base):+.2f}")
    return bool(frac < 0.5 and final_val(run) - final_val(base) > max(band, 0.5)), text


def data_wait_share(run):
    """Fraction of the step time spent waiting for batches, over the logged steps (the first 10% aside)."""
    steady = run["train"][len(run["train"]) // 10:]
    return sum(r.get("data_ms", 0.0) for r in steady) / max(1e-9, sum(r["step_ms"] for r in steady))


def detect_stall(run, base, band=0.0):
    """A slow data reader: the log's data wait takes a large share of every step, and tokens/s drops."""
    speed = lambda r: float(np.median([x["tokens_per_s"] for x in r["train"][len(r["train"]) // 10:]]))
    share, share0 = data_wait_share(run), data_wait_share(base)
    text = (f"waiting for data took {100 * share:.0f}% of the step time (baseline {100 * share0:.1f}%): a reader "
            f"that keeps up would give x{1 / (1 - share):.2f} the tokens/s; measured {speed(run):,.0f} tokens/s vs "
            f"the baseline's {speed(base):,.0f} (a run beside others on a shared CPU: only the share is "
            f"comparable); final val loss {final_val(run) - final_val(base):+.3f} (the same steps, only slower)")
    return bool(share >= 0.3 and share0 < 0.1), text


def detect_memory(probe):
    """Memory surprise (run["probe"] of incident_probes.memory_probe): the measured peak of what was run
    against the planner's prediction for what was planned, and the re-plan of what was run."""
    plan, cases = probe["planned"], probe["cases"]
    parts = [f"{c['label']}: measured {c['measured_mib']:.0f} MiB = x{c['measured_mib'] / plan['predicted_mib']:.2f} "
             f"the plan's {plan['predicted_mib']:.0f} MiB" for c in cases]
    fixed = "; ".join(f"{c['label']}: re-planned {c['predicted_mib']:.0f} MiB, measured {c['measured_mib']:.0f} "
                      f"(x{c['measured_mib'] / c['predicted_mib']:.2f})" for c in cases)
    surprise = max(c["measured_mib"] for c in cases) >= 1.25 * plan["predicted_mib"]
    cured = all(abs(c["measured_mib"] / c["predicted_mib"] - 1) <= 0.15 for c in cases)
    text = (f"planned ({plan['label']}): predicted {plan['predicted_mib']:.0f} MiB, measured "
            f"{plan['measured_mib']:.0f}; " + "; ".join(parts))
    return surprise, text, cured, fixed
