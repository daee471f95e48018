"""
bench_prepare.py: prepare.py at scale on generated web-like text: throughput, memory, disk, dedup quality.

    python bench_prepare.py --mb 250                 # ~250 MB of .jsonl.zst -> prepare -> a table of figures
    python bench_prepare.py --mb 1000 --workers 2 --keep   # keep data/bench/ to look at
    python bench_prepare.py --mb 250,1000,10000      # the issue's three sizes, figures side by side (~1 h)
    python bench_prepare.py --mb 10000 --reuse-input       # again on the input a run before generated
    python bench_prepare.py --mb 10000 --reuse-input --reuse-cache --keep   # after a crash: the late stages only

Unlike dedup_benchmark.py (the MinHash algorithm on the built-in corpus, every pair checked exactly), this
measures the whole pipeline on input of a chosen size, with duplicates and boilerplate planted at known
rates so the dedup can be scored:
  base documents  windows of 150-1,500 words of the built-in Shakespeare, in lines of 12 words, 15% of
                  the words replaced at random: two bases share almost no 5-gram (Jaccard ~0.1)
  exact copies    3% of documents: a base repeated verbatim (case and spacing changed)
  near copies     3%: a base with 1% of its words replaced (Jaccard ~0.9, above the 0.8 threshold)
  boilerplate     10 banner lines (cookies, newsletter, licence...), each appended to ~20% of the base
                  documents (a copy keeps its base's banners, as a page copied within a site does)
Figures: MB/s end to end and per stage, peak RSS of the driver and of the largest worker, disk used by the
cache and the dataset, dedup precision/recall against the planted copies, boilerplate lines removed, tokens.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

import dedup
import prepare
import shards
import sources

FILE_MB = 16  # one .jsonl.zst per 16 MB of text, as dumps come in many files (prepare cuts each in 2 shards)
BANNERS = ["We use cookies to improve your experience on our website. Accept all cookies?",
           "Subscribe to our newsletter and never miss an update from the team.",
           "Copyright 2024 Example Media Group. All rights reserved worldwide.",
           "Click here to share this article on your favourite social network.",
           "This page was last edited by our editorial staff and may change.",
           "Terms of Service | Privacy Policy | Contact Us | Advertise With Us",
           "Sign in to your account to leave a comment on this story today.",
           "Related articles you might also enjoy reading this weekend at home.",
           "Download our free mobile application for the latest breaking news.",
           "Licensed under the Creative Commons Attribution ShareAlike licence."]
NORMAL_BANNERS = {" ".join(dedup.normalize(b)) for b in BANNERS}


def corpus_words(cache_dir):
    """The built-in Shakespeare as one long array of words (prose-like lines pass the cleaning rules)."""
    return np.array(" ".join(d["text"] for d in sources.shakespeare_docs(cache_dir, {})).split())


def edit(words, rate, rng, vocab):
    """Replace a `rate` fraction of the words by random corpus words."""
    words = words.copy()
    k = rng.random(len(words)) < rate
    words[k] = vocab[rng.integers(0, len(vocab), k.sum())]
    return words


def generate(folder, mb, cache_dir, seed=0):
    """-> {"docs", "bytes", "planted": ids of planted copies, "banner_lines": banners planted}. Writes
    folder/part-NNNNN.jsonl.zst, each ~FILE_MB of text, rows {"id", "text"}."""
    import zstandard
    rng = np.random.default_rng(seed)
    words = corpus_words(cache_dir)
    vocab = words[rng.integers(0, len(words), 100_000)]
    folder.mkdir(parents=True, exist_ok=True)
    total, part, rows, size, planted, banners, bases, n_docs = 0, 0, [], 0, [], 0, [], 0

    def flush():
        nonlocal part, rows, size
        with zstandard.open(folder / f"part-{part:05d}.jsonl.zst", "wt", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        part, rows, size = part + 1, [], 0

    while total < mb * 1_000_000:
        doc_id, r = f"d{n_docs}", rng.random()
        n_docs += 1
        if r < 0.03 and bases:                                          # an exact copy, banners and all
            text = bases[rng.integers(len(bases))]
            text = text.upper() if rng.random() < 0.5 else text.replace(" ", "  ")
            planted.append(doc_id)
        elif r < 0.06 and bases:                                        # a near copy: 1% of words replaced
            text = " ".join(edit(np.array(bases[rng.integers(len(bases))].split(" ")), 0.01, rng, vocab))
            planted.append(doc_id)
        else:
            n = int(rng.integers(150, 1500))
            start = int(rng.integers(0, len(words) - n))
            w = edit(words[start:start + n], 0.15, rng, vocab)
            lines = [" ".join(w[i:i + 12]) for i in range(0, n, 12)]   # prose-like lines of 12 words
            text = "\n".join(lines + [b for b in BANNERS if rng.random() < 0.2])
            bases = (bases + [text])[-2000:]                           # copies come from recent bases
        banners += sum(" ".join(dedup.normalize(line)) in NORMAL_BANNERS for line in text.split("\n"))
        rows.append({"id": doc_id, "text": text})
        size += len(text)
        total += len(text.encode())
        if size >= FILE_MB * 1_000_000:
            flush()
    if rows:
        flush()
    return {"bytes": total, "docs": n_docs, "planted": planted, "banner_lines": banners}


def removed_ids(cache_dir, keys):
    """The ids of the documents the dedup removed: its cached global ids + the shards' document names.
    keys: prepare.stage_keys from before the run (an edit of the code during the run changes them)."""
    import pickle
    removed, _ = pickle.loads((Path(cache_dir) / "stages" / f"dedup-{keys['dedup']}.pkl").read_bytes())
    names = [n for k in keys["clean"] for n in json.loads((Path(cache_dir) / "shards" / f"clean-{k}" /
                                                          "names.json").read_text())]
    return {names[i] for i in removed}


def reused_input(root, mb):
    """The truth of an input generated before (truth.json beside it), or {"bytes"} alone for an input
    whose truth was not kept (dedup then goes unscored; generate() stops one document past mb of text, so
    mb is its size); None when there is no input to reuse."""
    files = sorted((root / "input").glob("part-*.jsonl.zst"))
    if not files:
        return None
    if (root / "truth.json").is_file():
        return json.loads((root / "truth.json").read_text())
    print(f"reusing {len(files)} input files without their planted list: dedup precision/recall not scored")
    return {"bytes": mb * 1_000_000}


def du(path):
    return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True).stdout.split()[0])


def main(argv=None):
    """-> one list of (figure, value) rows per size, also printed side by side, one column per size."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--mb", default="250", help="MB of text to generate; several sizes comma-separated "
                   "(250,1000,10000: one after another, the figures side by side)")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--executor", default="pool", choices=["pool", "ray"])
    p.add_argument("--dir", default="data/bench", help="input, cache and dataset go here")
    p.add_argument("--keep", action="store_true", help="keep the generated input and the cache")
    p.add_argument("--reuse-input", action="store_true", help="keep an input generated before (10 GB: ~25 min)")
    p.add_argument("--reuse-cache", action="store_true", help="keep the stage cache of a run before: only the "
                   "stages it lacks are recomputed (their rows say 'reused'), e.g. after a crash in a late stage")
    a = p.parse_args(argv)
    sizes = [float(mb) for mb in a.mb.split(",")]
    tables = [measure(mb, a) for mb in sizes]
    print("\n".join(f"{label:<40} " + "  ".join(f"{str(t[i][1]):>22}" for t in tables)
                    for i, (label, _) in enumerate(tables[0])))
    return tables


def measure(mb, a):
    """Generate (or reuse) mb MB of input, run prepare.py on it from an empty cache -> the figure rows."""
    root = Path(a.dir) / f"{mb:g}mb"
    truth = reused_input(root, mb) if a.reuse_input else None
    if truth is None:
        shutil.rmtree(root, ignore_errors=True)
        t0 = time.perf_counter()
        truth = generate(root / "input", mb, "data/cache")
        (root / "truth.json").write_text(json.dumps(truth))
        print(f"generated {truth['bytes'] / 1e6:.0f} MB in {time.perf_counter() - t0:.0f} s: "
              f"{len(truth['planted']):,} planted copies, {truth['banner_lines']:,} banner lines")
    shutil.rmtree(root / "out", ignore_errors=True)
    if not a.reuse_cache:
        shutil.rmtree(root / "cache", ignore_errors=True)  # a measurement starts from an empty stage cache
    argv = ["--input", f"web={root / 'input'}", "--out", str(root / "out"), "--cache-dir", str(root / "cache"),
            "--executor", a.executor, "--vocab-size", "8192"] + (["--workers", str(a.workers)] if a.workers else [])
    args = prepare.parse_args(argv)
    keys = shards.stage_keys(args, sources.plan_shards(sources.parse_inputs(args.input), vars(args)))
    meta = prepare.main(argv)
    removed, planted = removed_ids(root / "cache", keys), set(truth.get("planted", []))
    tp = len(removed & planted) if planted else math.nan  # nan: the input's planted list was not kept
    rows = [("input MB", f"{truth['bytes'] / 1e6:.0f}"), ("seconds", meta["seconds"]),
            ("MB/s end to end", meta["raw_mb_per_s"]),
            ("peak RSS driver MB", max(v["peak_rss_mb"] for v in meta["stages"].values())),
            ("peak RSS driver MB, stage by stage", " ".join(f"{v['peak_rss_mb']:.0f}" for v in meta["stages"].values())),
            ("peak RSS largest worker MB", max(v.get("worker_peak_rss_mb", 0) for v in meta["stages"].values())),
            ("disk: cache MB", du(root / "cache") // 10**6), ("disk: dataset MB", du(root / "out") // 10**6),
            ("dedup precision", f"{tp / max(1, len(removed)):.4f}"), ("dedup recall", f"{tp / max(1, len(planted)):.4f}"),
            ("boilerplate lines planted / removed", f"{truth.get('banner_lines', math.nan):,} / "
                                                     f"{meta['line_dedup']['lines_removed']:,}"),
            ("train tokens", f"{meta['bins']['train.bin']['tokens']:,}"),
            ("load average (1 min) at the end", f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")]
    cpu = {k: v.get("cpu_seconds", 0) + v["driver_cpu_seconds"] for k, v in meta["stages"].items()}
    mb = truth["bytes"] / 1e6
    rows += [(f"stage {k}: s, MB/s, CPU s", f"{v['seconds']}, {v.get('mb_per_s', '-')}, {cpu[k]:.1f}")
             for k, v in meta["stages"].items()]
    # CPU seconds do not grow when other processes share the cores: what an idle machine would take is
    # about the driver's CPU time plus the workers' divided among the cores
    driver = sum(v["driver_cpu_seconds"] for v in meta["stages"].values())
    workers = sum(v.get("cpu_seconds", 0) for v in meta["stages"].values())
    idle = driver + workers / (a.workers or os.cpu_count())
    rows += [("CPU seconds: driver + workers", f"{driver:.0f} + {workers:.0f} = {mb / (driver + workers):.2f} MB per CPU-second"),
             ("projected on idle cores: s, MB/s", f"{idle:.0f}, {mb / idle:.2f}")]
    if not a.keep:
        shutil.rmtree(root, ignore_errors=True)
    return rows


if __name__ == "__main__":
    main()
