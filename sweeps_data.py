"""
sweeps_data.py: the two sweeps whose configurations are datasets, not settings: clean vs raw data, and the
vocabulary size at equal compute. sweeps.py runs them like any sweep; this file builds what they compare
before the runs (plan) and measures what the runs' logs cannot show after them (analyse).

    python sweeps.py clean    # cleaned+deduplicated vs --no-dedup vs --no-clean --no-dedup, one held-out set
    python sweeps.py vocab    # 1k / 4k / 16k tokenizers, equal non-embedding parameters, equal FLOPs

What it adds over its neighbours: prepare.py builds one dataset; sweeps.py compares runs on their own val
bins. A data comparison needs more: every arm scored on ONE held-out set that none of them trained on and
that no arm's filter touched (clean), or the runs sized by FLOPs rather than steps because a bigger
vocabulary costs more per token (vocab). Bits per byte makes both comparable across tokenizers.
  1. clean: the raw corpus and its held-out part, split before any cleaning; passages repeated on purpose
  2. clean: the three arms (prepare.py), the shared held-out bins, one scored dataset per arm
  3. clean: what each arm kept, and how much of the repeated passages each model writes back verbatim
  4. vocab: the datasets, each run's steps from the FLOP budget, and compression against compute
"""
import json
import math
import re
import subprocess
from pathlib import Path

import numpy as np

from incident_probes import write_dataset
from runs import PY, ROOT, data_dir, load_config

KINDS = ("clean", "vocab")

# ---------------------------------------------------------------------------------------------------------
# 1. clean: the raw corpus, split before cleaning


def play_key(name):
    """Both editions of a play (hamlet_gut.txt, hamlet_gut_f.txt) share a key, so a held-out play has no
    twin in train: a near-copy on both sides would score memory, not modelling."""
    return re.sub(r"_gut(_f)?\.txt$", "", name)[:6]


def excerpt(text, rng, chars):
    """About `chars` characters of text, starting and ending at line breaks, from a random place."""
    start = text.find("\n", int(rng.integers(0, max(1, len(text) - 2 * chars)))) + 1
    end = text.find("\n", start + chars)
    return text[start:end if end > 0 else None].strip()


def split_raw_corpus(spec, folder):
    """The study's raw corpus, written before any cleaning: Shakespeare documents in train and held-out
    (whole plays, both editions together), held-out stdlib files that prepare.py's --code-mb sample does not
    contain, and `repeat` passages of train copied again and again as whole documents (a crawl's mirrors and
    reposts). Returns {"passages": repeated, "control": seen once, "heldout": {source: [texts]}}."""
    import dedup
    import sources
    rng, stats, c = np.random.default_rng(spec["corpus_seed"]), {}, spec["corpus"]
    plays = list(sources.shakespeare_docs(ROOT / "data/cache", stats))
    groups = {}
    for d in plays:
        groups.setdefault(play_key(d["name"]), []).append(d)
    held, train, held_chars, train_chars = set(), set(), 0, 0
    for key in sorted(groups, key=lambda k: rng.random()):  # held-out plays first, then train plays
        chars = sum(len(d["text"]) for d in groups[key])
        if held_chars < c["heldout_mb"] * 1e6:
            held.add(key)
            held_chars += chars
        elif train_chars < c["shakespeare_mb"] * 1e6:
            train.add(key)
            train_chars += chars
    train_docs = [d["text"] for d in plays if play_key(d["name"]) in train]
    repeated = [excerpt(train_docs[i % len(train_docs)], rng, c["passage_chars"]) for i in range(c["passages"])]
    control = [excerpt(train_docs[(i + 7) % len(train_docs)], rng, c["passage_chars"]) for i in range(c["passages"])]
    rows = [{"text": t} for t in train_docs] + [{"text": p} for p in repeated for _ in range(c["copies"])]
    rows = [rows[i] for i in rng.permutation(len(rows))]
    dedup.write_jsonl_atomic(folder / "shakespeare.jsonl", rows)
    # code: stdlib files outside the sample prepare.py takes (code_files' own order), minus near twins of it
    sampled = sources.code_files(c["code_mb"] * 1e6)
    others = sorted(set(sources.code_files(None)) - set(sampled))
    candidates = [others[i] for i in rng.permutation(len(others))[:4 * c["heldout_code_files"]]]
    texts = [p.read_text(errors="replace") for p in sampled + candidates]
    keep, report = dedup.dedup(texts, verbose=False)
    twins = {i for cluster in report["clusters"] for i in cluster if any(j < len(sampled) for j in cluster)}
    code = [texts[i] for i in range(len(sampled), len(texts)) if i not in twins and texts[i].strip()]
    heldout = {"shakespeare": [d["text"] for d in plays if play_key(d["name"]) in held],
               "code": code[:c["heldout_code_files"]]}
    return {"passages": repeated, "control": control, "heldout": heldout,
            "heldout_plays": sorted(held), "train_plays": sorted(train)}


def prepare(name, args):
    """prepare.py --out data/NAME ARGS, unless data/NAME is already built."""
    if not (data_dir(name) / "meta.json").is_file():
        print(f"  preparing {data_dir(name)}: prepare.py {' '.join(map(str, args))}", flush=True)
        subprocess.run([PY, str(ROOT / "prepare.py"), "--out", str(data_dir(name)), *map(str, args)], cwd=ROOT, check=True)
    return json.loads((data_dir(name) / "meta.json").read_text())


# ---------------------------------------------------------------------------------------------------------
# 2. clean: the arms and the shared held-out set


def heldout_bins(heldout, tokenizer_dir):
    """{val.bin, val_<source>.bin: (ids, bytes, docs)}: each document after <|endoftext|>, as prepare.py
    writes them, tokenized by the shared tokenizer."""
    from tokenizer import load_tokenizer
    enc, bins, every = load_tokenizer(tokenizer_dir), {}, []
    for source, texts in heldout.items():
        ids = [t for text in texts for t in [enc.eot_token] + enc.encode_ordinary(text)]
        bins[f"val_{source}.bin"] = (np.array(ids, dtype=np.uint16), sum(len(t.encode()) for t in texts), len(texts))
        every.append(bins[f"val_{source}.bin"])
    bins["val.bin"] = (np.concatenate([b[0] for b in every]), sum(b[1] for b in every), sum(b[2] for b in every))
    return bins


def plan_clean(spec):
    """The raw corpus and held-out set, the arms, and one dataset per arm = the arm's train.bin + the shared
    held-out bins, so every run's evaluations (and bits per byte) are on the same text."""
    folder = data_dir(spec["data_prefix"] + "_corpus")  # not _raw: that is an arm's name
    if not (folder / "corpus.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "corpus.json").write_text(json.dumps(split_raw_corpus(spec, folder)))
    corpus = json.loads((folder / "corpus.json").read_text())
    inputs = ["--input", f"shakespeare={folder / 'shakespeare.jsonl'}", "code", "--code-mb", spec["corpus"]["code_mb"]]
    runs, tokenizer = {}, None
    for label, flags in spec["arms"].items():  # the first arm trains the tokenizer every arm then uses
        arm = f"{spec['data_prefix']}_{re.sub(r'[^a-z0-9]+', '_', label.lower()).strip('_')}"
        meta = prepare(arm, inputs + ["--vocab-size", spec["vocab_size"], *flags, *spec.get("prepare_args", ())] +
                       (["--tokenizer", tokenizer] if tokenizer else []))
        tokenizer = tokenizer or str(data_dir(arm) / "tokenizer")
        scored = data_dir(arm + "_scored")
        if not (scored / "meta.json").is_file():
            train = meta["bins"]["train.bin"]
            bins = {"train.bin": (np.fromfile(data_dir(arm) / "train.bin", dtype=np.uint16), train["bytes"], train["docs"]),
                    **heldout_bins(corpus["heldout"], tokenizer)}
            write_dataset(scored, tokenizer, bins, f"sweeps_data.py: data/{arm}/train.bin + the held-out set of "
                                                   f"data/{spec['data_prefix']}_corpus (split before cleaning)")
        runs[label] = {**spec.get("fixed", {}), "dataset": arm + "_scored"}  # a name under data/, or a path
    return {**spec, "runs": runs, "corpus_data": corpus}


# ---------------------------------------------------------------------------------------------------------
# 3. clean: what each arm kept, and regurgitation


def verbatim_tokens(model, enc, text, prompt_tokens, continue_tokens):
    """Greedy-continue the first prompt_tokens of text: how many of the next continue_tokens match it
    verbatim before the first difference (Carlini et al. 2022's extraction test, at a fixed prompt)."""
    import torch
    ids = enc.encode_ordinary(text)[:prompt_tokens + continue_tokens]
    if len(ids) < prompt_tokens + continue_tokens:
        return None
    with torch.no_grad():
        out = model.generate(torch.tensor([ids[:prompt_tokens]]), continue_tokens, temperature=0)[0, prompt_tokens:]
    same = 0
    while same < continue_tokens and out[same] == ids[prompt_tokens + same]:
        same += 1
    return same


def regurgitation(run_dir, passages, prompt_tokens=16, continue_tokens=32):
    """Mean verbatim continuation (tokens of continue_tokens) over passages, kept in regurgitation.json."""
    path = Path(run_dir) / f"regurgitation_{prompt_tokens}_{continue_tokens}.json"
    if not path.is_file():
        from sample import load_run
        model, enc, _ = load_run(run_dir)
        found = {kind: [verbatim_tokens(model, enc, t, prompt_tokens, continue_tokens) for t in texts]
                 for kind, texts in passages.items()}
        path.write_text(json.dumps({k: float(np.mean([x for x in v if x is not None])) for k, v in found.items()}))
    return json.loads(path.read_text())


def kept_table(spec, runs):
    """Per arm: documents in and out of each stage, train tokens, and how many copies of the repeated
    passages survived into train.bin (decoded and counted)."""
    from tokenizer import load_tokenizer
    corpus = spec["corpus_data"]
    lines = ["| arm | Shakespeare docs read / after cleaning / after dedup | code docs read / cleaned / dedup | "
             "what cleaning changed | train tokens | train MB | copies of each repeated passage in train (mean) |",
             "|---|---|---|---|---|---|---|"]
    kept = {}
    for label, overrides in runs.items():
        meta = json.loads((data_dir(overrides["dataset"].removesuffix("_scored")) / "meta.json").read_text())
        scored = data_dir(overrides["dataset"])
        tokenizer = json.loads((scored / "meta.json").read_text())["tokenizer"]  # the shared one, by its path
        text = load_tokenizer(tokenizer).decode(np.fromfile(scored / "train.bin", dtype=np.uint16).tolist())
        copies = float(np.mean([text.count(p[:300]) for p in corpus["passages"]]))
        s, c, t = meta["sources"]["shakespeare"], meta["sources"]["code"], meta["bins"]["train.bin"]
        kept[label] = {"train_tokens": t["tokens"], "train_bytes": t["bytes"], "passage_copies": copies}
        rules = ", ".join(f"{rule} {v['docs']} docs" for rule, v in meta["cleaning"]["rules"].items() if v.get("docs"))
        lines.append(f"| {label} | {s['docs']} / {s['kept_docs']} / {s['after_dedup']} | {c['docs']} / "
                     f"{c['kept_docs']} / {c['after_dedup']} | {rules or 'nothing'}; repeated lines removed: "
                     f"{meta['line_dedup']['lines_removed']} | {t['tokens']:,} | {t['bytes'] / 1e6:.2f} | {copies:.1f} |")
    return lines, kept


def analyse_clean(spec, all_runs, rows):
    corpus, c = spec["corpus_data"], spec["corpus"]
    passages = {"repeated": corpus["passages"], "control": corpus["control"]}
    table, kept = kept_table(spec, spec["runs"])
    lines = ["", f"**The data.** Raw corpus: {len(corpus['train_plays'])} Shakespeare play groups "
             f"(~{c['shakespeare_mb']} MB) plus {c['passages']} passages of them (~{c['passage_chars']} characters "
             f"each) repeated {c['copies']} times as whole documents, as a crawl's mirrors repeat pages; stdlib code "
             f"(--code-mb {c['code_mb']}). Held out before any cleaning: {len(corpus['heldout_plays'])} play groups "
             f"({', '.join(corpus['heldout_plays'])}) and {len(corpus['heldout']['code'])} stdlib files outside the "
             f"code sample with no near-duplicate in it. One tokenizer (the first arm's) for all. What each arm kept:",
             "", *table, "", "**Regurgitation** (greedy continuation of a passage's first 16 tokens: how many of the "
             "next 32 tokens the model writes verbatim; mean over passages and seeds). 'repeated': the passages "
             f"copied {c['copies']} times in the raw corpus; 'seen once': passages of the same plays that occur once.",
             "", "| arm | repeated passages | seen once | difference |", "|---|---|---|---|"]
    found = {}
    for label, runs in all_runs.items():
        per_seed = [regurgitation(r["dir"], passages) for r in runs]
        rep, once = (float(np.mean([p[k] for p in per_seed])) for k in ("repeated", "control"))
        found[label] = {**kept[label], "regurgitated_repeated": rep, "regurgitated_once": once}
        lines.append(f"| {label} | {rep:.1f} / 32 | {once:.1f} / 32 | {rep - once:+.1f} |")
    return lines, {"data": found}


# ---------------------------------------------------------------------------------------------------------
# 4. vocab: equal FLOPs, compression against compute


def flops_per_token(base_configs, overrides):
    """model.py's training FLOPs per token for the model these configs build on their dataset's vocabulary."""
    from model import GPT, GPTConfig
    from train import MODEL_KEYS
    config = load_config(*base_configs, overrides=overrides)
    vocab = json.loads((data_dir(config["dataset"]) / "meta.json").read_text())["vocab_size"]
    model = GPT(GPTConfig(**{**{k: config[k] for k in MODEL_KEYS}, "vocab_size": vocab}))
    return model.flops_per_token(), model.num_params(non_embedding=True), config


def plan_vocab(spec, base_configs, base_overrides):
    """Each arm's steps from the FLOP budget: steps = flops / (FLOPs per token x tokens per step). A bigger
    vocabulary's output layer costs more per token, so it gets fewer tokens; the blocks stay the same."""
    runs, sizing = {}, {}
    for label, arm in spec["runs"].items():
        prepare(arm["dataset"], [*spec["datasets"][arm["dataset"]], *spec.get("prepare_args", ())])
        over = {**(base_overrides or {}), **arm}
        fpt, n, config = flops_per_token(base_configs, over)
        steps = max(10, round(spec["flops"] / (fpt * config["batch_size"] * config["block_size"])))
        runs[label] = {**arm, "max_iters": steps, "lr_decay_iters": steps, "warmup_iters": max(1, steps // 10),
                       "eval_interval": max(1, steps // 6), "checkpoint_interval": steps}
        sizing[label] = {"flops_per_token": fpt, "non_embedding_params": n, "steps": steps,
                         "tokens": steps * config["batch_size"] * config["block_size"]}
    return {**spec, "runs": runs, "sizing": sizing}


def eval_metric(record, metric):
    """val_bpb of an eval record, or per_source_bpb: the mean of its per-source bits per byte."""
    if metric != "per_source_bpb":
        return record.get(metric)
    values = [d["bpb"] for d in (record.get("per_source") or {}).values() if d.get("bpb") is not None]
    return float(np.mean(values)) if values else None


def analyse_vocab(spec, all_runs, rows):
    """Bytes per token of each tokenizer on the same val text, and the compute each run needed to reach the
    worst run's final bits per byte: 'does better compression save compute?' as one number per arm.
    The per-source val bins hold the same documents whatever the tokenizer; val.bin does not (prepare.py
    mixes it to token shares, and token counts depend on the tokenizer), hence metric per_source_bpb."""
    metric = spec.get("metric", "val_bpb")
    target = max(r[metric] for r in rows.values() if math.isfinite(r[metric]))
    lines = ["", f"**Compression against compute** (budget {spec['flops']:.2g} training FLOPs per run, "
             "model.py's count: 6 x (non-embedding + output-layer parameters) + attention, per token):", "",
             "| vocabulary | val bytes per token | non-embedding params | FLOPs per token | steps | tokens trained | "
             f"FLOPs to reach {target:.3f} {metric.replace('_', ' ')} (first seed) |", "|---|---|---|---|---|---|---|"]
    found, texts = {}, set()
    for label, runs in all_runs.items():
        size, run = spec["sizing"][label], runs[0]
        bins = json.loads((data_dir(spec["runs"][label]["dataset"]) / "meta.json").read_text())["bins"]
        scored = {k: v for k, v in bins.items() if k.startswith("val_")} if metric == "per_source_bpb" else \
            {"val.bin": bins["val.bin"]}
        texts.add(tuple(sorted((k, v["bytes"], v["docs"]) for k, v in scored.items())))
        per_token = sum(v["bytes"] for v in scored.values()) / sum(v["tokens"] for v in scored.values())
        reach = next((e["tokens"] * size["flops_per_token"] for e in run["eval"]
                      if (eval_metric(e, metric) or math.inf) <= target + 1e-9), None)
        found[label] = {**size, "bytes_per_token": per_token, "flops_to_target": reach}
        lines.append(f"| {label} | {per_token:.2f} | {size['non_embedding_params']:,} | "
                     f"{size['flops_per_token'] / 1e6:.2f}M | {size['steps']} | {size['tokens']:,} | "
                     f"{'—' if reach is None else f'{reach:.2g}'} |")
    lines += ["", f"Scored on {', '.join(k for k, _, _ in next(iter(texts)))}: " +
              ("the same documents and bytes for every tokenizer." if len(texts) == 1 else
               f"WARNING: the bins differ between tokenizers ({sorted(texts)}), so they are not the same text."),
              "FLOPs to reach: evaluations are every sixth of a run, so this is an upper bound at that resolution."]
    return lines, {"compression": found, "target": target}


# ---------------------------------------------------------------------------------------------------------
# what sweeps.py calls


def plan(kind, spec, base_configs, base_overrides, report_only):
    """Before the runs: build the datasets and fill in spec["runs"]."""
    return plan_clean(spec) if kind == "clean" else plan_vocab(spec, base_configs, base_overrides)


def analyse(kind, spec, all_runs, rows, report_only):
    """After the runs: (extra record lines, extra results.json entries)."""
    return analyse_clean(spec, all_runs, rows) if kind == "clean" else analyse_vocab(spec, all_runs, rows)
