"""
prepare.py: raw text -> clean, deduplicated, mixed, tokenized uint16 bins + meta.json + report.md.

    python prepare.py                                   # built-in corpus -> data/default (4096-token BPE)
    python prepare.py --mix shakespeare=0.95,code=0.05 --out data/mostly_plays
    python prepare.py --input mydocs/ crawl=dump.jsonl.zst --vocab-size 8192 --out data/mine
    python prepare.py --input web/ --workers 16 --shard-mb 64          # one big machine
    python prepare.py --input /shared/web/ --executor ray --ray-address auto --cache-dir /shared/cache

The inputs are cut into shards (sources.py); per-shard stages (shards.py) run in worker processes or as
Ray tasks, each shard's output cached on disk under a key of everything it depends on, so a killed run
resumes and an unchanged one is reused. Global steps run here, shard by shard, holding numbers per shard
(and the ids of removed copies), never a list of all documents:
  1. read+clean  per shard: read, clean.py's rules (each counted), exact key, MinHash signature, line keys
  2. dedup       exact keys, then LSH band by band, one hash partition at a time (dedup_shards.py);
                 union-find; the earliest copy stays
  3. lines       lines repeated across many documents (menus, banners, licences) are counted, per hash
                 partition, and removed where they occur (CCNet / FineWeb style)
  4. split       by document, per source, so no document (and no near duplicate) straddles train and val:
                 a random key per document, the smallest val_frac of them go to val
  5. tokenizer   a byte-level BPE trained on a sample of train (tokenizer.py); per shard: encode
  6. mix         per source, whole epochs plus the documents whose key is below a limit, to hit the
                 asked token shares (mix.py)
  7. write       train.bin, val.bin, val_<source>.bin appended shard by shard (uint16, <|endoftext|>
                 first), tokenizer/, report.md, meta.json last, in a directory beside --out swapped in at
                 the end; 13-gram contamination per shard (contamination.py). Design and figures: docs/data.md
Expected (python prepare.py, 2 cores): 425 documents -> 419 after dedup; train.bin ~4.1M tokens, val.bin
~0.23M; 15-30 s without the cache, a few seconds with it.
"""
import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import clean
import contamination
import dedup_shards
import language
import mix
import prepare_report as report
import shards
import sources
import tokenizer
from common import UserError, cli, publish_dir, release_lock, reset_peak_rss, rss_bytes, run_lock, write_atomic

DEFAULT_MIX = "shakespeare=0.7,code=0.3"

# ---------------------------------------------------------------------------------------------------------
# 4.-5. Split, tokenizer: per shard, from the removed ids and the val limits (dedup_shards.py did 2.-3.)


def kept_counts(index, removed):
    """(S,) documents dedup kept per shard (removed: sorted global ids)."""
    return np.diff(index["first"]) - np.diff(np.searchsorted(removed, index["first"]))


SPLIT_SALT, MIX_SALT = 0, 1  # shards.doc_random's salt per use (the tokenizer sample is 2, contamination's 3)


def split_keys(index, k, removed, seed):
    """Shard k's kept mask and every document's split key, (n_k,) each."""
    keep = shards.kept_mask(index, k, removed)
    return keep, shards.doc_random(seed, index["first"][k] + np.arange(len(keep)), SPLIT_SALT)


def shard_split(index, k, removed, val_limit, seed):
    """Shard k's (keep, is_val) masks, (n_k,) bool each: rebuilt when needed, never held for all shards.
    A kept document is val when its split key is at most its source's limit (mix.val_thresholds)."""
    keep, key = split_keys(index, k, removed, seed)
    return keep, keep & (key <= val_limit[index["source"][k]])


def train_tokenizer_on_sample(clean_dirs, index, is_train, boilerplate, args, folder):
    """Train the BPE on a random sample of train documents, up to --tokenizer-mb: enough to learn merges."""
    if args.tokenizer:
        return Path(args.tokenizer)
    if (folder / "tokenizer.json").exists() and not args.no_cache:
        print(f"tokenizer: reusing {folder}")
        return folder
    texts, total = [], 0
    for i in shards.sample_docs(clean_dirs, index, is_train, args.tokenizer_mb, args.seed, salt=2):
        if total >= args.tokenizer_mb * 1_000_000:
            break
        text = shards.final_text(clean_dirs, index, i, boilerplate)
        texts.append(text)
        total += len(text.encode("utf-8", "surrogatepass"))
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tokenizer-"))
    tokenizer.train_tokenizer(texts, args.vocab_size, tmp)
    publish_dir(tmp, folder)
    return folder


# ---------------------------------------------------------------------------------------------------------
# 6.-7. Mix and write: shard by shard, appending each shard's picked documents to every bin


def final_docs(tok_dir, index, k, removed, val_limit, seed):
    """Shard k's final documents (those with tokens): positions in the shard, tokens, is_val, mix keys."""
    local, tokens = np.load(tok_dir / "local.npy"), np.load(tok_dir / "tokens.npy")
    is_val = shard_split(index, k, removed, val_limit, seed)[1][local]
    return local, tokens, is_val, shards.doc_random(seed, index["first"][k] + local, MIX_SALT)


def plan_copies(tok_dirs, index, removed, val_limit, names, shares, args):
    """Pass 1, numbers only: per split and source, the tokens it has and their histogram by mix key ->
    ({split: {source: (full epochs, key limit)}}, {split: {source: asked share}}, {split: {source: tokens}})."""
    hist = {split: {s: np.zeros(mix.KEY_BINS) for s in names} for split in ("train", "val")}
    for k, d in enumerate(tok_dirs):
        _, tokens, is_val, key = final_docs(d, index, k, removed, val_limit, args.seed)
        source = names[index["source"][k]]
        for split, sel in (("train", ~is_val), ("val", is_val)):
            hist[split][source] += mix.key_histogram(key[sel], tokens[sel])
    has = {split: {s: int(round(h.sum())) for s, h in hist[split].items()} for split in hist}
    present = [s for s in names if has["train"][s] + has["val"][s] > 0]
    if shares is None:  # no --mix: every document once, so the shares are whatever the data has
        shares = {s: 1.0 for s in present} if len(present) == 1 else None
    plan, asked = {}, {}
    for split in ("train", "val"):
        mine = shares or {s: has[split][s] / max(1, sum(has[split][p] for p in present)) for s in present}
        asked[split] = {s: mine.get(s, 0.0) for s in present}
        want = mix.plan_mix({s: has[split][s] for s in present}, asked[split],
                            args.max_epochs if split == "train" else 1, args.train_tokens if split == "train" else None,
                            split)
        plan[split] = {s: mix.copies(want[s], has[split][s], hist[split][s]) for s in present}
    return plan, asked, has


def append_docs(f, path, data, starts, tokens, picked):
    """Documents `picked` of a shard (data: its whole tokens.bin) -> f, in ~8 MB writes. -> tokens written,
    a Python int (summed as the arrays' int32/int64 scalars, a count past 2^31 once wrapped negative)."""
    written, buffer, size = 0, [], 0
    try:
        for i in picked:
            a, n = int(starts[i]), int(tokens[i])
            buffer.append(data[a:a + n])
            size += n
            if size >= 1 << 22:
                f.write(np.concatenate(buffer).tobytes())
                written, buffer, size = written + size, [], 0
        if buffer:
            f.write(np.concatenate(buffer).tobytes())
    except OSError as e:
        raise shards.disk_error(e, path) from e
    return written + size


def shard_picks(tokens, is_val, key, source, plan, epoch):
    """{bin: positions among the shard's final documents} that pass `epoch` appends: train.bin a document's
    copy number `epoch` if it has one; val.bin (no repeats) and val_<source>.bin in pass 0 only."""
    full, limit = plan["train"].get(source, (0, 0.0))
    train = np.flatnonzero(~is_val & (full + (key < limit) > epoch))
    if epoch:
        return {"train.bin": train}
    full, limit = plan["val"].get(source, (0, 0.0))
    val = np.flatnonzero(is_val)
    return {"train.bin": train, "val.bin": val[full + (key[val] < limit) > 0], f"val_{source}.bin": val}


def write_bins(out, tok_dirs, index, removed, val_limit, names, shares, args, picks_dir):
    """train.bin and val.bin follow the mix (val without repeats); val_<source>.bin holds all of a source's
    val documents. Pass e over the shards, in order, appends every document's copy number e, so copies of
    a document are a whole corpus apart (train.py reads random windows: the order needs no shuffle). The
    positions of shard k's train documents go to picks_dir/k.npy for the contamination check. -> (meta's
    "bins", mix info, per source {"val_docs", "bytes": a histogram of log10 document bytes})."""
    plan, asked, has = plan_copies(tok_dirs, index, removed, val_limit, names, shares, args)
    paths = {b: out / b for b in ["train.bin", "val.bin"] + [f"val_{s}.bin" for s in names]}
    files = {b: open(p, "wb") for b, p in paths.items()}
    meta_bins = {b: {"tokens": 0, "bytes": 0, "docs": 0} for b in paths}
    got = {split: {s: 0 for s in asked[split]} for split in asked}
    stats = {s: {"val_docs": 0, "bytes": np.zeros(len(report.LENGTH_BINS) - 1, np.int64)} for s in names}
    passes = max([full + (limit > 0) for full, limit in plan["train"].values()] + [1])
    for epoch in range(passes):
        for k in tqdm(range(len(tok_dirs)), desc=f"mix+write, pass {epoch + 1}/{passes}", leave=False):
            source = names[index["source"][k]]
            local, tokens, is_val, key = final_docs(tok_dirs[k], index, k, removed, val_limit, args.seed)
            nbytes = np.load(tok_dirs[k] / "bytes.npy")
            picks = shard_picks(tokens, is_val, key, source, plan, epoch)
            if epoch == 0:
                stats[source]["val_docs"] += int(is_val.sum())
                stats[source]["bytes"] += np.histogram(np.log10(np.maximum(nbytes, 1)), report.LENGTH_BINS)[0]
                np.save(picks_dir / f"{k}.npy", local[picks["train.bin"]])
            if not any(len(p) for p in picks.values()):
                continue
            data, starts = np.fromfile(tok_dirs[k] / "tokens.bin", dtype=np.uint16), np.cumsum(tokens) - tokens
            for b, picked in picks.items():
                n = append_docs(files[b], paths[b], data, starts, tokens, picked)
                meta_bins[b]["tokens"] += n
                meta_bins[b]["bytes"] += int(nbytes[picked].sum())
                meta_bins[b]["docs"] += len(picked)
                if b in ("train.bin", "val.bin") and source in got[b[:-4]]:
                    got[b[:-4]][source] += n
    for b, f in files.items():
        try:
            f.flush()
            os.fsync(f.fileno())
            f.close()
        except OSError as e:
            raise shards.disk_error(e, paths[b]) from e
        if not meta_bins[b]["docs"] and b.startswith("val_"):
            paths[b].unlink()  # a source without val documents has no val_<source>.bin
            del meta_bins[b]
        else:
            os.chmod(paths[b], 0o644)
    info = {split: mix.achieved({s: {"asked": asked[split][s], "tokens": got[split][s],
                                     "epochs": got[split][s] / max(1, has[split][s])} for s in asked[split]})
            for split in asked}
    off = [s for s, v in info["val"].items() if abs(v["achieved"] - v["asked"]) > 0.02]
    if off:  # val follows train's shares unless a source has too few val documents to reach its share
        info["val_note"] = (f"val.bin cannot follow the asked shares: {', '.join(off)} "
                            f"{'has' if len(off) == 1 else 'have'} too few val documents for an exact share")
    return meta_bins, info, stats


# ---------------------------------------------------------------------------------------------------------
# The pipeline


def lap(stages, name, record=None, **extra):
    """stages[name] = its record (shards.run_stage's, or the seconds since the last lap) + the driver's peak
    RSS and CPU seconds during the stage; then the clocks and the peak restart for the next stage."""
    since, cpu = stages.pop("_t")
    record = dict(record or {"seconds": round(time.perf_counter() - since, 2)})
    record["peak_rss_mb"] = round(rss_bytes("VmHWM") / 2**20, 1)
    record["driver_cpu_seconds"] = round(time.process_time() - cpu, 2)
    stages[name] = {**record, **extra}
    reset_peak_rss()
    stages["_t"] = time.perf_counter(), time.process_time()


def run_clean_stage(shard_list, keys, work, args, opts, stages):
    shards.sweep_stale(work / "shards")
    clean_dirs = [work / "shards" / f"clean-{k}" for k in keys]
    tasks = [(s, opts, d) for s, d in zip(shard_list, clean_dirs)]
    # the bar counts file bytes (compressed ones too: their text size is unknown before reading them)
    results, record = shards.run_stage("read+clean", shards.clean_shard, tasks, [s["bytes"] for s in shard_list], opts)
    raw = sum(r["bytes"] for r in results)
    record["mb"], record["mb_per_s"] = round(raw / 1e6, 2), round(raw / 1e6 / max(record["seconds"], 1e-9), 2)
    print(f"read+clean: {record['shards']} shards ({record['reused']} reused from the cache), "
          f"{record['docs_in']:,} docs -> {record['docs_out']:,}")
    lap(stages, "read+clean", record)
    return clean_dirs, results, raw


def run_tokenize_stage(clean_dirs, index, removed, boilerplate, tok_dir, keys, work, opts, stages):
    """Every shard's kept documents -> token ids on disk. A shard's key: its clean key, which of its
    documents dedup removed, the repeated-line set, the tokenizer. -> (tokens dirs, lines removed, docs emptied)."""
    tok_dirs, tasks, code, lines = [], [], shards.code_version(), shards.key_of(boilerplate.tobytes().hex())
    for k, d in enumerate(clean_dirs):
        gone = shards.in_shard(index, k, removed)  # a task holds the shard's removed positions, not a mask
        key = shards.key_of("tokens", keys["clean"][k], hashlib.sha256(gone.tobytes()).hexdigest(), lines,
                            keys["tokenizer_hash"], code)
        tok_dirs.append(work / "shards" / f"tokens-{key}")
        tasks.append((d, gone, boilerplate, tok_dir, tok_dirs[-1]))
    results, record = shards.run_stage("tokenize", shards.tokenize_shard, tasks,
                                       [int(np.load(d / "offsets.npy")[-1]) for d in clean_dirs], opts)
    lines_removed = sum(r["lines_removed"] for r in results)
    docs_emptied = sum(r["docs_emptied"] for r in results)
    lap(stages, "tokenize", record, lines_removed=lines_removed, docs_emptied=docs_emptied)
    return tok_dirs, lines_removed, docs_emptied


def merge_counts(shard_list, results, names):
    """Per-shard read and clean counts -> per source, and the cleaning counters of the whole run."""
    read_stats, counters = {s: {"files": 0, "docs": 0, "bytes": 0, "kept_docs": 0, "scripts": {}} for s in names}, \
        clean.new_counters()
    for shard, r in zip(shard_list, results):
        st = read_stats[shard["source"]]
        for k, v in r["stats"].items():
            if k == "scripts":
                for script, n in v.items():
                    st["scripts"][script] = st["scripts"].get(script, 0) + n
            elif k == "languages":  # {lang: {docs, chars, kept}} from the --languages filter
                for lang, row in v.items():
                    mine = st.setdefault("languages", {}).setdefault(lang, {"docs": 0, "chars": 0, "kept": 0})
                    for field, n in row.items():
                        mine[field] += n
            else:
                st[k] = st.get(k, 0) + v
        c = r["counters"]
        for rule, v in c["rules"].items():  # + language_filter, quality_classifier when asked for
            row = counters["rules"].setdefault(rule, {"docs": 0, "chars": 0})
            row["docs"] += v["docs"]
            row["chars"] += v["chars"]
        for k, v in c["pii_matches"].items():  # email, ipv4, phone + phone_<format> (pii.py)
            counters["pii_matches"][k] = counters["pii_matches"].get(k, 0) + v
        for rule, examples in c["removed_examples"].items():
            mine = counters["removed_examples"].setdefault(rule, [])
            mine += examples[:3 - len(mine)]
    for st in read_stats.values():
        for script, n in st["scripts"].items():
            counters["scripts"][script] = counters["scripts"].get(script, 0) + n
    return read_stats, counters


def build(args, argv, out, tmp_out, work):
    start = time.perf_counter()
    source_list = sources.parse_inputs(args.input, args.hf)
    names = [s[0] for s in source_list]
    shares = mix.parse_mix(args.mix, names) if args.mix else None
    opts = {"cache_dir": args.cache_dir, "shard_mb": args.shard_mb, "code_mb": args.code_mb, "hf_docs": args.hf_docs,
            "text_field": args.text_field, "max_doc_mb": args.max_doc_mb, "executor": args.executor,
            "ray_address": args.ray_address, "workers": args.workers,
            "skip": sorted(clean.RULE_NAMES) if args.no_clean else sorted(set(args.skip_rule)),
            "languages": sorted(language.parse_languages(args.languages) or []) if args.languages else None,
            "quality_model": str(args.quality_model) if args.quality_model else None,
            "quality_threshold": args.quality_threshold}
    shard_list = sources.plan_shards(source_list, opts)
    keys = shards.stage_keys(args, shard_list)
    stages = {"_t": (time.perf_counter(), time.process_time())}
    reset_peak_rss()

    clean_dirs, clean_results, raw_bytes = run_clean_stage(shard_list, keys["clean"], work, args, opts, stages)
    read_stats, counters = merge_counts(shard_list, clean_results, names)
    index = shards.corpus_index(shard_list, clean_dirs, names)
    if not index["first"][-1]:
        raise UserError(f"{', '.join(names)}: no documents left after reading and cleaning; nothing written")

    removed, dedup_report = shards.load_cached(work / "stages" / f"dedup-{keys['dedup']}.pkl",
                                               lambda: dedup_shards.deduplicate(clean_dirs, index, args, work),
                                               args.no_cache, "dedup")
    kept = kept_counts(index, removed)
    lap(stages, "dedup", docs_in=int(index["first"][-1]), docs_out=int(kept.sum()))
    boilerplate = shards.load_cached(work / "stages" / f"lines-{keys['lines']}.pkl",
                              lambda: dedup_shards.boilerplate_lines(clean_dirs, index, removed, args.line_dedup_docs),
                              args.no_cache, "lines")
    lap(stages, "line counts", distinct_lines_removed=int(len(boilerplate)))

    def kept_keys(k):
        keep, key = split_keys(index, k, removed, args.seed)
        return key[keep]
    val_limit = mix.val_thresholds(kept, index["source"], names, args.val_frac, kept_keys)
    if (val_limit < 0).all():  # by document: one document per source leaves nothing to validate on
        raise UserError(f"{', '.join(names)}: every source has a single document after cleaning and dedup, so "
                        f"there is nothing to hold out for val.bin; give several files (or a .jsonl of "
                        f"documents); nothing written")

    def is_train(k):
        keep, is_val = shard_split(index, k, removed, val_limit, args.seed)
        return keep & ~is_val
    tok_dir = train_tokenizer_on_sample(clean_dirs, index, is_train, boilerplate, args,
                                        work / "stages" / f"tokenizer-{keys['tokenizer']}")
    try:
        enc = tokenizer.load_tokenizer(tok_dir)
        tokenizer.check_fits_uint16(enc.n_vocab, str(tok_dir))
    except ValueError as e:
        raise UserError(str(e)) from None
    keys["tokenizer_hash"] = tok_hash = tokenizer.tokenizer_hash(tok_dir)
    lap(stages, "train tokenizer")

    tok_dirs, lines_removed, docs_emptied = run_tokenize_stage(clean_dirs, index, removed, boilerplate, tok_dir,
                                                               keys, work, opts, stages)
    picks_dir = Path(tempfile.mkdtemp(dir=work, prefix=".picks-"))
    try:
        meta_bins, mix_info, per_source = write_bins(tmp_out, tok_dirs, index, removed, val_limit, names, shares,
                                                     args, picks_dir)
        if not meta_bins["train.bin"]["docs"]:
            raise UserError(f"{', '.join(names)}: the mix selects no training documents; nothing written")
        shutil.copytree(tok_dir, tmp_out / "tokenizer")
        for f in [tmp_out / "tokenizer", *(tmp_out / "tokenizer").iterdir()]:
            os.chmod(f, 0o755 if f.is_dir() else 0o644)  # readable by all, as every file of a dataset
        lap(stages, "mix+write", mb=round(sum(b["bytes"] for b in meta_bins.values()) / 1e6, 2))

        def is_val(k):
            return shard_split(index, k, removed, val_limit, args.seed)[1]
        contam, record = contamination.check_train(clean_dirs, index, picks_dir, is_val, boilerplate, args, work, opts)
    finally:
        shutil.rmtree(picks_dir, ignore_errors=True)
    contam["val"]["of"] = sum(v["val_docs"] for v in per_source.values())  # more than "items" when val was sampled
    lap(stages, "contamination", record)
    seconds = time.perf_counter() - start
    after = {s: int(kept[index["source"] == c].sum()) for c, s in enumerate(names)}
    meta = {"vocab_size": enc.n_vocab, "dtype": "uint16", "eot_token": enc.eot_token, "tokenizer": "tokenizer",
            "tokenizer_hash": tok_hash, "bins": meta_bins,
            "sources": {s: {**read_stats[s], "after_dedup": after[s], "val_docs": per_source[s]["val_docs"]}
                        for s in names},
            "mix": {k: v for k, v in mix_info.items() if k != "val_note"}, "mix_note": mix_info.get("val_note"),
            "cleaning": {**counters, "skipped_rules": opts["skip"]},
            "dedup": {k: v for k, v in dedup_report.items() if not k.startswith("shown")},
            "line_dedup": {"min_docs": args.line_dedup_docs, "min_chars": shards.LINE_MIN_CHARS,
                           "distinct_lines": int(len(boilerplate)), "lines_removed": lines_removed,
                           "docs_emptied": docs_emptied},
            "contamination": contam, "command": " ".join(["python", "prepare.py"] + (argv or [])),
            "shards": len(shard_list), "executor": args.executor, "workers": args.workers,
            "seconds": round(seconds, 1), "stages": {k: v for k, v in stages.items() if k != "_t"},
            "stage_seconds": {k: v["seconds"] for k, v in stages.items() if k != "_t"},
            "raw_mb_per_s": round(raw_bytes / 1e6 / seconds, 2)}
    lengths = {s: v["bytes"] for s, v in per_source.items()}
    lines = report.summary(meta, dedup_report.get("shown", []), dedup_report.get("shown_near_misses", []), raw_bytes)
    report.write_report(tmp_out, meta, lengths, lines, out)
    write_atomic(tmp_out / "meta.json", json.dumps(meta, indent=1, default=int))  # last: the dataset is whole
    print("\n".join(lines))
    print(f"wrote {out}/ ({', '.join(meta_bins)}, tokenizer/, meta.json, report.md) in {seconds:.1f} s "
          f"= {raw_bytes / 1e6 / seconds:.2f} MB/s of raw text")
    return meta


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file, not a dataset directory")
    lock = run_lock(out, "prepare.py")
    tmp_out = work = None
    try:
        # assembled beside --out and swapped in at the end: a killed run leaves the old dataset as it was
        tmp_out = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
        work = Path(args.cache_dir)
        if args.no_cache:  # recompute everything in a private directory: never read or replace shared entries
            work.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(dir=work, prefix=".no-cache-"))
        meta = build(args, argv, out, tmp_out, work)
        publish_dir(tmp_out, out)
        return meta
    finally:
        if tmp_out is not None:
            shutil.rmtree(tmp_out, ignore_errors=True)
        if args.no_cache and work is not None:
            shutil.rmtree(work, ignore_errors=True)
        release_lock(lock)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--input", nargs="+", default=None, help="sources: 'shakespeare', 'code', PATH or NAME=PATH "
                   "(.txt/.md dirs, .jsonl[.gz|.zst], .parquet); default: shakespeare code, unless --hf is given")
    p.add_argument("--hf", action="append", default=[], help="a Hugging Face dataset streamed with `datasets`")
    p.add_argument("--hf-docs", type=int, default=10_000, help="documents to take from each --hf dataset")
    p.add_argument("--text-field", default="text", help="the field holding the text in .jsonl/.parquet")
    p.add_argument("--out", default="data/default", help="the dataset directory")
    p.add_argument("--cache-dir", default="data/cache", help="downloads and finished stages (shared storage "
                   "for --executor ray on several nodes)")
    p.add_argument("--no-cache", action="store_true", help="recompute every stage (in a private directory)")
    p.add_argument("--mix", default=None, help=f"token shares, e.g. {DEFAULT_MIX} (default for the built-in corpus)")
    p.add_argument("--train-tokens", type=int, default=None, help="train tokens (default: no source repeats)")
    p.add_argument("--max-epochs", type=float, default=4.0, help="most repeats of one source to meet its share")
    p.add_argument("--val-frac", type=float, default=0.05, help="fraction of each source's documents for val")
    p.add_argument("--vocab-size", type=int, default=4096, help="257 (bytes + <|endoftext|>) to 65,536 (uint16)")
    p.add_argument("--tokenizer", default=None, help="use this tokenizer directory instead of training one")
    p.add_argument("--tokenizer-mb", type=float, default=10, help="MB of train text sampled to train the tokenizer")
    p.add_argument("--code-mb", type=float, default=6, help="MB of stdlib .py files sampled for the code source "
                   "(0 = all ~1,800 files; 6 MB covers the default 30%% code share)")
    p.add_argument("--max-doc-mb", type=float, default=16, help="text files above this are split into pieces")
    p.add_argument("--no-clean", action="store_true", help="apply no cleaning rule")
    p.add_argument("--languages", help="keep only prose in these languages, e.g. zh,en (language.py)")
    p.add_argument("--quality-model", help="a quality.py classifier (.npz): drop prose it scores low")
    p.add_argument("--quality-threshold", type=float, help="the score to keep (default: the model's own)")
    p.add_argument("--skip-rule", action="append", default=[], choices=clean.RULE_NAMES, help="skip one rule")
    p.add_argument("--no-dedup", action="store_true")
    p.add_argument("--dedup-threshold", type=float, default=0.8, help="Jaccard of word 5-grams")
    p.add_argument("--line-dedup-docs", type=int, default=20, help="remove lines (of >= 20 normalised characters, "
                   "not in code) found in at least this many documents; 0 = off")
    p.add_argument("--contamination", nargs="*", default=[], help=".jsonl benchmark files to check train against")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes (or Ray CPUs)")
    p.add_argument("--shard-mb", type=float, default=8, help="input per shard, the unit of work and of resume")
    p.add_argument("--executor", choices=["pool", "ray"], default="pool", help="local processes, or Ray tasks")
    p.add_argument("--ray-address", default=None, help="Ray cluster: auto (from a node), HEAD:6379; default: a local one")
    p.add_argument("--seed", type=int, default=1337)
    args = p.parse_args(argv)
    check_args(args)
    return args


def check_args(args):
    """Bad options are refused before any work, each with a one-line error."""
    if args.input is None:
        args.input = [] if args.hf else list(sources.BUILTIN)
    if args.mix is None and sorted(args.input) == sorted(sources.BUILTIN) and not args.hf:
        args.mix = DEFAULT_MIX
    if not 257 <= args.vocab_size <= 65_536:
        raise UserError(f"--vocab-size {args.vocab_size}: must be 257 (256 bytes + <|endoftext|>) to 65,536 "
                        "(ids must fit uint16 bins)")
    if not 0 < args.val_frac < 1:
        raise UserError(f"--val-frac {args.val_frac}: must be between 0 and 1 (exclusive)")
    if args.workers < 1:
        raise UserError(f"--workers {args.workers}: must be at least 1")
    for name in ("shard_mb", "max_doc_mb", "tokenizer_mb"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value > 0):
            raise UserError(f"--{name.replace('_', '-')} {value}: must be a number above 0")
    if not 0 < args.dedup_threshold < 1:
        raise UserError(f"--dedup-threshold {args.dedup_threshold}: must be between 0 and 1")
    if args.line_dedup_docs < 0 or args.code_mb < 0:
        raise UserError("--line-dedup-docs and --code-mb must be >= 0")
    if args.tokenizer and not (Path(args.tokenizer) / "tokenizer.json").is_file():
        # a published tiktoken name has no tokenizer.json to copy into the dataset (and from there into
        # every run), which is how sample.py and eval.py find and check a run's tokenizer
        raise UserError(f"{args.tokenizer}: not a tokenizer directory (tokenizer.py train --out DIR writes "
                        f"one); published encodings such as gpt2 cannot be stored with a dataset")
    for f in args.contamination:
        if not Path(f).is_file():
            raise UserError(f"{f}: no such file (--contamination)")
    language.parse_languages(args.languages)  # an unknown code is an error now, not after the first shard
    if args.quality_model and not Path(args.quality_model).is_file():
        raise UserError(f"{args.quality_model}: no such file (--quality-model; `python quality.py` trains one)")
    if args.quality_threshold is not None and (not args.quality_model or not 0 <= args.quality_threshold <= 1):
        raise UserError(f"--quality-threshold {args.quality_threshold}: needs --quality-model, and a score in [0, 1]")


if __name__ == "__main__":
    sys.exit(2 if cli(main) == 2 else 0)  # cli returns main's result (meta) or 2 after a one-line error
