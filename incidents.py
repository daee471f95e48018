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
The controlled comparisons (LR, batch, warmup, schedule, data mix, checkpoint interval) use the same
runner: sweeps.py.
"""
import argparse
import contextlib
import datetime
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

ROOT = Path(__file__).resolve().parent
PY = sys.executable

# ---------------------------------------------------------------------------------------------------------
# 1. Reading a run: metrics.jsonl -> lists of records by kind


def read_metrics(run_dir):
    """run_dir/metrics.jsonl -> {"train": [...], "eval": [...], "event": [...], "end": {...}}.
    A missing "end" line means the run was killed: end is then {}."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise SystemExit(f"{path}: no metrics.jsonl (did the run start?)")
    run = {"train": [], "eval": [], "event": [], "end": {}, "dir": str(run_dir)}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise SystemExit(f"{path}:{n}: not JSON ({e})")
        if rec.get("kind") == "end":
            run["end"] = rec
        elif rec.get("kind") in run:
            run[rec["kind"]].append(rec)
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
# 2. Detectors: one per phenomenon. Each takes the incident's run and the baseline's run and returns
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
# 3. The incidents. Each is config/incidents/NAME.py (what we changed); the prose says why it hurts and how
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

# A passage no corpus contains: if the model writes it back from its first few tokens, it memorised it.
PLANTED = ("The lighthouse keeper of Aldenmoor counted forty-two gulls every morning, wrote the number "
           "in a green ledger, and sent it by pigeon to a professor in Vienna who never once replied.")


def load_config(*paths):
    """The plain-value globals after executing the config files in order over one namespace, as train.py
    does (so a later file may say `learning_rate *= 10`)."""
    scope = {}
    for path in paths:
        exec(compile(Path(path).read_text(), str(path), "exec"), scope)
    return {k: v for k, v in scope.items()
            if not k.startswith("_") and isinstance(v, (int, float, bool, str, type(None)))}


def config_diff(config, base):
    """'key=value' for every value that differs from the baseline: the operation in code."""
    return ", ".join(f"{k}={config[k]!r}" for k in config if base.get(k, object()) != config[k])


# ---------------------------------------------------------------------------------------------------------
# 4. Running train.py, and the two things the incidents need besides it: a duplicated dataset and a probe
#    that asks the model to continue the planted passage.


def data_dir(dataset):
    """train.py's `dataset` key is a name under data/ or a path."""
    return Path(dataset) if os.sep in str(dataset) else ROOT / "data" / dataset


def train(out_dir, configs, overrides=None, in_process=False):
    """Run `train.py CONFIG... --out_dir=... --key=value ...` from scratch (later config files override
    earlier ones, as in nanoGPT); train.py's output goes to out_dir/train.log. One intra-op thread: on a
    shared, oversubscribed CPU, two OpenMP threads spinning on each other's barriers make a tiny model
    many times slower. in_process (the tests) calls train.main() here instead of starting a process."""
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
            rc = subprocess.run([PY, str(ROOT / "train.py"), *args], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT).returncode
            if not (out_dir / "metrics.jsonl").is_file():
                tail = (out_dir / "train.log").read_text()[-2000:]
                raise SystemExit(f"{out_dir}: train.py exited {rc} without metrics.jsonl:\n{tail}")
    run = read_metrics(out_dir)
    print(f"  {out_dir.name}: {time.time() - t0:.0f} s, ended '{run['end'].get('status', 'killed')}' "
          f"at step {run['end'].get('step', '?')}", flush=True)
    return run


def write_atomic(path, data):
    """Bytes to a temp name in the same directory, fsync, rename: a crash never leaves half a file."""
    tmp = Path(f"{path}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_figure(fig, path, dpi=80):
    """A matplotlib figure as a PNG, atomically; the figure is closed."""
    import io
    import matplotlib.pyplot as plt
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    write_atomic(path, buffer.getvalue())


def write_dataset(out, tokenizer_dir, bins, note):
    """bins: {"train.bin": (uint16 ids, utf8 bytes, docs), ...} -> a dataset directory as prepare.py
    writes one (meta.json per README's contract), so train.py cannot tell the difference."""
    from tokenizer import load_tokenizer, tokenizer_hash
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    enc = load_tokenizer(tokenizer_dir)
    for name, (ids, _, _) in bins.items():
        write_atomic(out / name, np.asarray(ids, dtype=np.uint16).tobytes())
    meta = {"vocab_size": enc.n_vocab, "dtype": "uint16", "eot_token": enc.eot_token,
            "tokenizer": str(Path(tokenizer_dir).resolve()), "tokenizer_hash": tokenizer_hash(tokenizer_dir),
            "bins": {name: {"tokens": len(ids), "bytes": int(nbytes), "docs": int(docs)}
                     for name, (ids, nbytes, docs) in bins.items()},
            "command": note}
    write_atomic(out / "meta.json", json.dumps(meta, indent=1).encode())
    return out


# dup_data's training set; the tests shrink it with their model
DUP_DATA = {"unique_tokens": 2000, "copies": 40, "planted_every": 2}


def build_dup_dataset(src, out, unique_tokens, copies, planted_every):
    """The dup_data incident's training set: the first `unique_tokens` of src's train.bin repeated `copies`
    times (what a crawl without dedup looks like at its worst), with PLANTED inserted every
    `planted_every` copies. Val bins are src's own, so val loss is comparable with the baseline."""
    from tokenizer import load_tokenizer
    src = data_dir(src)
    meta = json.loads((src / "meta.json").read_text())
    tok_dir = src / meta["tokenizer"]
    enc = load_tokenizer(tok_dir)
    piece = np.fromfile(src / "train.bin", dtype=np.uint16)[:unique_tokens]
    planted = np.array([enc.eot_token] + enc.encode_ordinary(PLANTED), dtype=np.uint16)
    chunks = []
    for i in range(copies):
        chunks.append(piece)
        if i % planted_every == 0:
            chunks.append(planted)
    train_ids = np.concatenate(chunks)
    n_planted = len(range(0, copies, planted_every))
    bins = {"train.bin": (train_ids, len(enc.decode(train_ids.tolist()).encode()), copies + n_planted)}
    for name, info in meta["bins"].items():
        if name != "train.bin":
            bins[name] = (np.fromfile(src / name, dtype=np.uint16), info["bytes"], info["docs"])
    note = (f"incidents.py: {unique_tokens} tokens of {src.name}/train.bin x{copies}, planted passage "
            f"x{n_planted}")
    return write_dataset(out, tok_dir, bins, note)


def regurgitation(run_dir, prompt_tokens=8):
    """Greedy-continue PLANTED from its first tokens: (how many next tokens match verbatim, how many asked)."""
    import torch
    from sample import load_run
    model, enc, ckpt = load_run(run_dir)
    ids = enc.encode_ordinary(PLANTED)
    n = min(len(ids), ckpt["model_config"]["block_size"] - 1) - prompt_tokens
    idx = torch.tensor([[enc.eot_token] + ids[:prompt_tokens]])
    with torch.no_grad():
        out = model.generate(idx, n, temperature=0)[0, -n:].tolist()
    same = 0
    while same < n and out[same] == ids[prompt_tokens + same]:
        same += 1
    return same, n


def probe_planted(run_dir, base_dir, cached=False):
    """(tokens repeated by the run, tokens asked, tokens repeated by the baseline), kept in probe.json so
    --report-only needs no model."""
    path = Path(run_dir) / "probe.json"
    if not cached:
        (same, n), (same0, _) = regurgitation(run_dir), regurgitation(base_dir)
        write_atomic(path, json.dumps([same, n, same0]).encode())
    return tuple(json.loads(path.read_text()))


def gradient(model, x, y, dtype, scale=1.0):
    """The flat gradient of the mean loss on (x, y) under autocast(dtype), the loss multiplied by `scale`
    before backward and the gradient divided by it after (what a GradScaler does)."""
    import torch
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
        _, loss = model(x, y)
    (loss * scale).backward()
    return torch.cat([p.grad.flatten() / scale for p in model.parameters() if p.grad is not None])


def fp16_probe(run_dir, cached=False):
    """fp16's range measured on the run's final weights and one training-sized batch: the gradient in
    fp32, in fp16 as is, in fp16 with the loss x 65,536 (a GradScaler's starting scale) and in bf16; for
    each, the % of entries that are nonzero in fp32 but exactly 0 here (underflow) and the relative error
    |g - g32| / |g32|. Also the largest |activation| any Linear layer produced in fp16 (overflow: > 65,504),
    and the smallest power-of-two loss scale at which the fp16 gradient overflows to inf: where a
    GradScaler, which doubles its scale every 2,000 clean steps, hits inf, skips the step and halves."""
    path = Path(run_dir) / "fp16_probe.json"
    if cached:
        return json.loads(path.read_text())
    import torch
    from sample import load_run
    model, _, ckpt = load_run(run_dir)
    model.train()
    cfg = ckpt["config"]
    data = np.memmap(data_dir(cfg["dataset"]) / "train.bin", dtype=np.uint16, mode="r")
    starts = np.random.default_rng([cfg["seed"], 3]).integers(0, len(data) - cfg["block_size"] - 1, cfg["batch_size"])
    xy = torch.from_numpy(np.stack([data[s:s + cfg["block_size"] + 1] for s in starts]).astype(np.int64))
    x, y = xy[:, :-1], xy[:, 1:]  # (B, T) each
    g32 = gradient(model, x, y, torch.float32)
    largest = []
    hooks = [m.register_forward_hook(lambda m, i, o: largest.append(o.detach().abs().max().item()))
             for m in model.modules() if isinstance(m, torch.nn.Linear)]
    result = {"step": ckpt["step"]}
    for name, dtype, scale in [("fp16", torch.float16, 1.0), ("fp16 x 65536", torch.float16, 65536.0),
                               ("bf16", torch.bfloat16, 1.0)]:
        g = gradient(model, x, y, dtype, scale)
        result[name] = {"zeroed_pct": 100 * ((g == 0) & (g32 != 0)).float().mean().item(),
                        "rel_err_pct": 100 * ((g - g32).norm() / g32.norm()).item()}
        if name == "fp16":
            result["max_activation"] = max(largest)
            for h in hooks:
                h.remove()
    for k in range(17, 64):  # 2^16 is the scaler's start, measured above
        g = gradient(model, x, y, torch.float16, 2.0 ** k)
        if not torch.isfinite(g).all():
            result["overflow_scale"] = 2 ** k
            result["overflow_pct"] = 100 * (~torch.isfinite(g)).float().mean().item()
            break
    write_atomic(path, json.dumps(result).encode())
    return result


# ---------------------------------------------------------------------------------------------------------
# 5. Plots and the report


def plot_runs(ax_loss, ax_gn, runs):
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
    plot_runs(a, b, runs)
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


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()}"


def md_cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def event_lines(run):
    if not run["event"]:
        return ["- monitor: no events"]
    return [f"- step {e['step']}: **{e.get('event')}** -> {e.get('action', '')}  {md_cell(e.get('detail', ''))}"
            for e in run["event"]]


def write_incident_report(report_dir, results, base, base_config):
    """report.md: the table (operation | what happened | cause | fix), then per incident its plot, what
    the monitor flagged, and the config difference."""
    report_dir = Path(report_dir)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# Incident lab report", "",
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
    lines += ["", "## Baseline", "", "```"] + [f"{k} = {v!r}" for k, v in base_config.items()] + ["```"]
    write_atomic(report_dir / "report.md", ("\n".join(lines) + "\n").encode())
    return report_dir / "report.md"


def analyse_incident(name, run, base, ref=None):
    """Apply the incident's detector against its reference (the fixed run) or the baseline."""
    reproduced, measured = INCIDENTS[name]["detect"](run, ref or base)
    return {"run": run, "base": base, "ref": ref, "reproduced": reproduced, "measured": measured}


def run_incidents(names, out_root="out/incidents", report_dir="report/incidents", common=None,
                  config_dir="config/incidents", report_only=False, in_process=False):
    """Baseline + each incident (+ its reference run) -> report_dir/report.md and a PNG per incident.
    `common` ({key: value}) is written to out_root/common.py and executed after baseline.py, before the
    incident's file: the tests use it to shrink every run while `learning_rate *= 10` still means x10.
    A run whose resolved config equals one already run (no_clip's reference is lr_x10) is not run twice."""
    out_root, report_dir, config_dir = ROOT / out_root, ROOT / report_dir, ROOT / config_dir
    report_dir.mkdir(parents=True, exist_ok=True)
    out_root.mkdir(parents=True, exist_ok=True)
    base_files = [config_dir / "baseline.py"]
    if common:
        base_files.append(out_root / "common.py")
        write_atomic(out_root / "common.py", "".join(f"{k} = {v!r}\n" for k, v in common.items()).encode())
    base_config = load_config(*base_files)
    done = {}  # resolved config -> run

    def go(run_dir, files, overrides):
        key = json.dumps({**load_config(*files), **overrides}, sort_keys=True)
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
        res["diff"] = config_diff(config, base_config)
        res["ref_diff"] = ", ".join(f"{k}={v!r}" for k, v in fixed.items())
        plot_incident(report_dir / f"{name}.png", name, run, base, ref)
        results[name] = res
        print(f"  {name}: {'reproduced' if res['reproduced'] else 'NOT reproduced'}: {res['measured']}", flush=True)
    plot_overview(report_dir / "overview.png", results)
    return write_incident_report(report_dir, results, base, base_config), results


# ---------------------------------------------------------------------------------------------------------
# 6. Command line


def run_command(args, work, figure, copy_as):
    """What both command lines (this one and sweeps.py's) do around their work: build data/default if it
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
