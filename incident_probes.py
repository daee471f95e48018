"""
incident_probes.py: the incident lab's instruments that need more than a run's metrics.jsonl: the dup_data
incident's dataset (a few thousand tokens repeated, with a planted passage), and two probes of a trained
model: does it write the planted passage back verbatim, and how much of its gradient does fp16 lose?

What it adds over its neighbours: incidents.py judges runs by what they logged (runs.read_metrics); these
functions load the run's final checkpoint (sample.load_run) to measure what no log line shows. Each probe
keeps its result in the run directory (probe.json, fp16_probe.json), so `incidents.py --report-only`
needs no model.
"""
import json
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


def probe_planted(run_dir, base_dir, cached=False):
    """(tokens repeated by the run, tokens asked, tokens repeated by the baseline), kept in probe.json so
    --report-only needs no model."""
    path = Path(run_dir) / "probe.json"
    if not cached:
        (same, n), (same0, _) = regurgitation(run_dir), regurgitation(base_dir)
        write_json(path, [same, n, same0])
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
    write_json(path, result)
    return result
