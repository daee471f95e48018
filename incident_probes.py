"""
incident_probes.py: the incident lab's instruments that need more than a run's metrics.jsonl: the dup_data
incident's dataset (a few thousand tokens repeated, with a planted passage), and two probes of a trained
model: does it write the planted passage back verbatim, and how much of its gradient does fp16 lose?

What it adds over its neighbours: incidents.py judges runs by what they logged (runs.read_metrics); these
functions load the run's final checkpoint (sample.load_run) to measure what no log line shows. Each probe
keeps its result in the run directory (probe.json, fp16_probe.json), so `incidents.py --report-only`
needs no model.
"""
import contextlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from common import write_atomic, write_json
from runs import data_dir

# ---------------------------------------------------------------------------------------------------------
# 1. The dup_data incident's dataset

# A passage no corpus contains: if the model writes it back from its first few tokens, it memorised it.
PLANTED = ("The lighthouse keeper of Aldenmoor counted forty-two gulls every morning, wrote the number "
           "in a green ledger, and sent it by pigeon to a professor in Vienna who never once replied.")


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
    write_json(out / "meta.json", meta)
    return out


def dataset_documents(src, limit_tokens):
    """The documents of a dataset's train.bin (split at <|endoftext|>) as text, until limit_tokens."""
    from tokenizer import load_tokenizer
    meta = json.loads((src / "meta.json").read_text())
    enc = load_tokenizer(src / meta["tokenizer"])
    ids = np.fromfile(src / "train.bin", dtype=np.uint16)[:limit_tokens]
    cuts = np.flatnonzero(ids == enc.eot_token).tolist() + [len(ids)]
    return [enc.decode(ids[a + 1:b].tolist()) for a, b in zip(cuts, cuts[1:]) if b - a > 1]


def build_dup_datasets(src, out_dup, out_dedup, unique_tokens, repeated_docs, copies, planted_copies,
                       in_process=False):
    """The dup_data incident's corpus, with the repeats a crawl has: the first `unique_tokens` of src's
    train documents, plus `repeated_docs` short ones copied `copies` times (mirrored pages) and PLANTED
    `planted_copies` times (a boilerplate paragraph on every page of a site). prepare.py turns it into two datasets with src's tokenizer: out_dup with
    --no-dedup (the accident) and out_dedup with its exact + MinHash dedup (the fix). Both get src's val
    bins, so their val loss compares with the baseline's. -> {"docs", "dup": meta, "dedup": meta}"""
    src = data_dir(src)
    docs = dataset_documents(src, unique_tokens)
    repeated = [d for d in docs if len(d) < 8000][:repeated_docs]  # short pages get mirrored
    corpus = docs + [d for _ in range(copies - 1) for d in repeated] + [PLANTED] * planted_copies
    order = np.random.default_rng(0).permutation(len(corpus))  # the copies spread over the whole file
    path = Path(out_dup).parent / "dup_corpus.jsonl"
    write_atomic(path, "".join(json.dumps({"text": corpus[i]}) + "\n" for i in order))
    tokenizer = src / json.loads((src / "meta.json").read_text())["tokenizer"]
    common = ["--input", f"corpus={path}", "--tokenizer", str(tokenizer), "--no-clean", "--val-frac", "0.01",
              "--no-cache", "--cache-dir", str(Path(out_dup).parent / "prepare_cache"), "--workers", "1"]
    metas = {}
    for name, out, extra in [("dup", out_dup, ["--no-dedup", "--line-dedup-docs", "0"]), ("dedup", out_dedup, [])]:
        run_prepare([*common, *extra, "--out", str(out)], in_process)
        metas[name] = use_val_bins_of(src, Path(out))
    return {"docs": len(corpus), "repeated": len(repeated) + 1, **metas}


def run_prepare(argv, in_process):
    """prepare.py ARGV, in a fresh process (the lab) or in this one (the tests)."""
    import subprocess
    import sys
    if in_process:
        import prepare
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            prepare.main(argv)
        return
    root = Path(__file__).resolve().parent
    done = subprocess.run([sys.executable, str(root / "prepare.py"), *argv], cwd=root, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"prepare.py {' '.join(argv)} failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}")


def use_val_bins_of(src, out):
    """Replace out's val bins by src's (same tokenizer), in the files and in meta.json."""
    meta, src_meta = json.loads((out / "meta.json").read_text()), json.loads((src / "meta.json").read_text())
    for name in [n for n in meta["bins"] if n != "train.bin"]:
        (out / name).unlink(missing_ok=True)
        del meta["bins"][name]
    for name, info in src_meta["bins"].items():
        if name != "train.bin":
            shutil.copyfile(src / name, out / name)
            meta["bins"][name] = info
    write_json(out / "meta.json", meta)
    return meta


# ---------------------------------------------------------------------------------------------------------
# 2. Probes of the trained model (its final checkpoint)


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


def planted_loss(run_dir):
    """The model's mean loss (nats/token) on PLANTED, read in block_size pieces: how well it knows the
    passage. Memorised text scores far below text of the same kind the model never saw."""
    import torch
    from sample import load_run
    model, enc, ckpt = load_run(run_dir)
    ids, T, total = [enc.eot_token] + enc.encode_ordinary(PLANTED), ckpt["model_config"]["block_size"], 0.0
    for start in range(0, len(ids) - 1, T):
        piece = torch.tensor([ids[start:start + T + 1]])  # (1, <= T + 1)
        with torch.no_grad():
            total += model(piece[:, :-1], piece[:, 1:])[1].item() * (piece.shape[1] - 1)
    return total / (len(ids) - 1)


def probe_planted(run_dir, base_dir, cached=False):
    """{"verbatim": tokens the run repeats greedily, "asked", "loss": its loss on PLANTED, and the same for
    the baseline}, kept in probe.json so --report-only needs no model."""
    path = Path(run_dir) / "probe.json"
    if not cached:
        (same, n), (same0, _) = regurgitation(run_dir), regurgitation(base_dir)
        write_json(path, {"verbatim": same, "asked": n, "loss": planted_loss(run_dir), "base_verbatim": same0,
                          "base_loss": planted_loss(base_dir)})
    return json.loads(path.read_text())


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
    write_json(path, result)
    return result


# ---------------------------------------------------------------------------------------------------------
# 3. The memory surprise: what the planner predicted for the run that was planned, against the measured
#    peak of the run that was made


def memory_probe(config, out_dir, cached=False):
    """The config's model planned WITH activation checkpointing at its batch; measured (plan.measure_peak,
    peak RSS of a few AdamW steps in one fresh process, as `plan.py --validate`) without checkpointing and
    with the batch doubled. Each case also re-planned, the fix. -> {"planned": case, "cases": [case, case]},
    a case = {"label", "predicted_mib", "measured_mib"}; kept in out_dir/memory_probe.json."""
    path = Path(out_dir) / "memory_probe.json"
    if cached:
        return json.loads(path.read_text())
    import subprocess
    import sys
    import plan
    from model import GPTConfig
    meta = json.loads((data_dir(config["dataset"]) / "meta.json").read_text())
    keys = ("n_layer", "n_embd", "n_head", "n_kv_head", "block_size", "ffn_hidden", "tie_embeddings")
    fields = {**{k: config[k] for k in keys}, "vocab_size": config["vocab_size"] or meta["vocab_size"]}
    dtype, batch = ("float32" if config["dtype"] == "float32" else "bfloat16"), config["batch_size"]
    cases = [("planned: checkpointing on", True, batch), ("checkpointing off", False, batch),
             ("batch x2", True, 2 * batch)]
    jobs = [({**fields, "activation_checkpointing": ac}, b, 1, dtype) for _, ac, b in cases]
    code = "import json, sys, plan; print(json.dumps([plan.measure_peak(*c) for c in json.loads(sys.argv[1])]))"
    root = Path(__file__).resolve().parent
    done = subprocess.run([sys.executable, "-c", code, json.dumps(jobs)], capture_output=True, text=True, cwd=root,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode:
        raise SystemExit(f"memory_probe: the measuring process failed:\n{done.stderr[-2000:]}")
    measured = json.loads(done.stdout.splitlines()[-1])
    rows = []
    for (label, ac, b), peak in zip(cases, measured):
        c = GPTConfig(**fields, activation_checkpointing=ac, kernels="torch")
        predicted = plan.memory_plan(c, b, dtype_bytes=4 if dtype == "float32" else 2, fused_norm=False,
                                     checkpointing=ac, cpu=True)["peak"]
        rows.append({"label": label, "predicted_mib": predicted / 2**20, "measured_mib": peak / 2**20})
    result = {"planned": rows[0], "cases": rows[1:]}
    write_json(path, result)
    return result
