"""
prepare.py: raw text -> clean, deduplicated, mixed, tokenized uint16 bins + meta.json + report.md.

    python prepare.py                                   # built-in corpus -> data/default (4096-token BPE)
    python prepare.py --mix shakespeare=0.95,code=0.05 --out data/mostly_plays
    python prepare.py --input mydocs/ crawl=dump.jsonl.zst --vocab-size 8192 --out data/mine
    python prepare.py --input web/ --workers 16 --shard-mb 64          # one big machine
    python prepare.py --input /shared/web/ --executor ray --ray-address auto --cache-dir /shared/cache

The inputs are cut into shards (sources.py); per-shard stages (shards.py) run in worker processes or as
Ray tasks, each shard's output cached on disk under a key of everything it depends on, so a killed run
resumes and an unchanged one is reused. Global steps run here, on compact per-document keys:
  1. read+clean  per shard: read, clean.py's rules (each counted), exact key, MinHash signature, line keys
  2. dedup       exact keys, then LSH one band at a time (dedup.py), union-find; the earliest copy stays
  3. lines       lines repeated across many documents (menus, banners, licences) are counted, per hash
                 partition, and removed where they occur (CCNet / FineWeb style)
  4. split       by document, per source, so no document (and no near duplicate) straddles train and val
  5. tokenizer   a byte-level BPE trained on a sample of train (tokenizer.py); per shard: encode
  6. mix         pick train documents per source to hit the asked token shares (mix.py)
  7. write       train.bin, val.bin, val_<source>.bin appended document by document (uint16, <|endoftext|>
                 first), tokenizer/, report.md, meta.json last, in a directory beside --out swapped in at
                 the end; 13-gram contamination per shard (contamination.py). Design and figures: docs/data.md
Expected (python prepare.py, 2 cores): 425 documents -> 419 after dedup; train.bin ~4.1M tokens, val.bin
~0.23M; 15-30 s without the cache, a few seconds with it.
"""
import argparse
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
import dedup
import language
import mix
import prepare_report as report
import shards
import sources
import tokenizer
from common import UserError, cli, publish_dir, release_lock, reset_peak_rss, rss_bytes, run_lock, write_atomic

DEFAULT_MIX = "shakespeare=0.7,code=0.3"

# ---------------------------------------------------------------------------------------------------------
# 2. Dedup across all shards: exact keys, then LSH one band at a time


def deduplicate(clean_dirs, index, args, work):
    """-> (keep: (n,) bool, report dict as dedup.dedup's, with names instead of indices)."""
    start, n = time.perf_counter(), len(index["shard"])
    if args.no_dedup:
        return np.ones(n, dtype=bool), {"docs": n, "exact_removed": 0, "near_removed": 0, "cluster_sizes": {},
                                        "clusters": [], "shown": [], "shown_near_misses": []}
    ids = np.flatnonzero(index["has_words"])                            # empty texts are never duplicates
    keys = np.concatenate([np.load(d / "exact.npy") for d in clean_dirs])[ids]
    exact = dedup.exact_duplicate_pairs(keys, ids)
    unique = np.setdiff1d(ids, exact[:, 1])                             # near dedup sees each text once
    bands, rows = dedup.choose_bands(args.dedup_threshold)
    band_dir = Path(tempfile.mkdtemp(dir=work, prefix=".bands-"))
    try:  # per shard, (bands, n) band keys to disk; then one band of all shards at a time in memory
        for k, d in enumerate(tqdm(clean_dirs, desc="dedup: band keys", leave=False)):
            sig = shards.signatures_in(d)  # in slices of 100k documents: bounded however big the shard
            np.save(band_dir / f"{k}.npy", np.concatenate(
                [dedup.band_keys(sig[a:a + 100_000].T, bands, rows) for a in range(0, len(sig), 100_000)]
                or [np.zeros((bands, 0), dtype=np.uint64)], axis=1))

        def band_columns():
            for b in range(bands):
                col = np.concatenate([np.load(band_dir / f"{k}.npy", mmap_mode="r")[b] for k in range(len(clean_dirs))])
                yield col[unique], unique
        def true_jaccard(i, j):  # for the few pairs the signature estimate cannot decide (dedup.is_duplicate)
            return dedup.exact_jaccard(shards.text_of(clean_dirs, index, i), shards.text_of(clean_dirs, index, j))
        near, n_cand = dedup.lsh_pairs(band_columns(), lambda i: shards.signatures_of(clean_dirs, index, i),
                                       args.dedup_threshold, true_jaccard)
    finally:
        shutil.rmtree(band_dir, ignore_errors=True)
    clusters = dedup.clusters_from_pairs(n, [tuple(p) for p in exact.tolist()] + [(i, j) for i, j, _ in near])
    removed = np.array(sorted({i for c in clusters for i in c[1:]}), dtype=np.int64)
    keep = np.ones(n, dtype=bool)
    keep[removed] = False
    clusters.sort(key=len, reverse=True)
    rep = {"docs": n, "exact_removed": len(exact), "near_removed": len(removed) - len(exact),
           "threshold": args.dedup_threshold, "num_perm": dedup.NUM_PERM, "bands": bands, "rows": rows,
           "candidates": n_cand, "verified": len(near), "seconds": round(time.perf_counter() - start, 2),
           "cluster_sizes": {int(k): int(v) for k, v in zip(*np.unique([len(c) for c in clusters], return_counts=True))}}
    show = sorted({i for c in clusters[:3] for i in c[:4]})
    texts = dict(zip(show, (shards.text_of(clean_dirs, index, i) for i in show)))
    names = dict(zip(show, shards.names_of(clean_dirs, index, show)))
    rep["shown"] = dedup.show_clusters(texts, names, clusters)
    rep["clusters"] = [shards.names_of(clean_dirs, index, c) for c in clusters[:20]]  # the largest 20, by name
    rep.update(near_misses(clean_dirs, index, unique[keep[unique]], args.dedup_threshold))
    return keep, rep


def near_misses(clean_dirs, index, ids, threshold, max_docs=2000):
    """The closest pairs left in per source (among the first max_docs kept documents): what dedup spared."""
    ids = ids[:max_docs]
    pairs = dedup.closest_pairs(shards.signatures_of(clean_dirs, index, ids).T, index["source"][ids].tolist(), threshold)
    show = sorted({ids[i] for i, j, _ in pairs} | {ids[j] for i, j, _ in pairs})
    texts = dict(zip(show, (shards.text_of(clean_dirs, index, i) for i in show)))
    names = dict(zip(show, shards.names_of(clean_dirs, index, show)))
    pairs = [(ids[i], ids[j], e) for i, j, e in pairs]
    return {"shown_near_misses": dedup.show_near_misses(texts, names, pairs),
            "near_misses": [(names[i], names[j], round(e, 4)) for i, j, e in pairs]}


# ---------------------------------------------------------------------------------------------------------
# 3. Line dedup: which lines occur in at least --line-dedup-docs kept documents


def boilerplate_lines(clean_dirs, index, keep, min_docs, part_mb=64):
    """-> sorted (m,) uint64 keys of lines found in >= min_docs kept documents (0: line dedup off).
    Every document's line keys are unique within it, so a key's count is its number of documents. The
    keys are counted one hash partition at a time (key mod P), P chosen so a partition fits in part_mb."""
    if min_docs <= 0:
        return np.zeros(0, dtype=np.uint64)
    total = sum(os.path.getsize(d / "lines.bin") for d in clean_dirs)
    parts = max(1, math.ceil(total / (part_mb * 1e6)))
    found = []
    for p in range(parts):
        chunk = []
        for k, d in enumerate(clean_dirs):
            lines, counts = shards.line_keys_in(d), np.load(d / "line_counts.npy")
            kept = np.repeat(keep[index["first"][k]:index["first"][k + 1]], counts)
            chunk.append(lines[kept][lines[kept] % np.uint64(parts) == np.uint64(p)])
        values, n = np.unique(np.concatenate(chunk), return_counts=True)
        found.append(values[n >= min_docs])
    return np.sort(np.concatenate(found))


# ---------------------------------------------------------------------------------------------------------
# 4.-5. Split, tokenizer


def split(source_codes, val_frac, seed, names):
    """Per source, a random val_frac of the documents (at least one if the source has two) -> val.
    source_codes: (n,) each document's position in names, -1 for a document dedup removed."""
    rng = np.random.default_rng(seed)
    is_val = np.zeros(len(source_codes), dtype=bool)
    for source in sorted(set(names)):
        idx = np.flatnonzero(source_codes == names.index(source))
        n_val = max(1, round(val_frac * len(idx))) if len(idx) >= 2 else 0
        if n_val == 0 and len(idx):
            print(f"warning: source {source} has one document, so no val_{source}.bin")
        is_val[idx[rng.permutation(len(idx))[:n_val]]] = True
    return is_val


def train_tokenizer_on_sample(clean_dirs, index, candidates, boilerplate, args, folder):
    """Train the BPE on a random sample of train documents, up to --tokenizer-mb: enough to learn merges."""
    if args.tokenizer:
        return Path(args.tokenizer)
    if (folder / "tokenizer.json").exists() and not args.no_cache:
        print(f"tokenizer: reusing {folder}")
        return folder
    texts, total = [], 0
    for i in np.random.default_rng(args.seed).permutation(candidates):
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
# 7. Write: bins appended document by document, in a directory beside --out


def write_bin(path, docs, files, final, chunk=1 << 22):
    """Final documents `docs` -> path, each one's [<|endoftext|>, ids...] read from its shard's tokens.bin
    (files: one open file per shard; read, not mapped: mapped pages stay resident), in ~8 MB writes."""
    written, buffer, size = 0, [], 0
    try:
        with open(path, "wb") as f:
            for i in docs:
                a, n = int(final["start"][i]), int(final["tokens"][i])  # Python ints: the total passes 2^31
                source = files[final["shard"][i]]
                source.seek(2 * a)
                buffer.append(np.frombuffer(source.read(2 * n), dtype=np.uint16))
                size += n
                if size >= chunk:
                    f.write(np.concatenate(buffer).tobytes())
                    written, buffer, size = written + size, [], 0
            if buffer:
                f.write(np.concatenate(buffer).tobytes())
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise shards.disk_error(e, path) from e
    return written + size


def shard_arrays(tok_dirs, index):
    """The final documents (those with tokens) as arrays: global id, shard, tokens, bytes, start in tokens.bin."""
    glob, shard_of, tokens, nbytes, starts = [], [], [], [], []
    for k, d in enumerate(tok_dirs):
        local, t = np.load(d / "local.npy"), np.load(d / "tokens.npy")
        glob.append(index["first"][k] + local)
        shard_of.append(np.full(len(local), k))
        tokens.append(t)
        nbytes.append(np.load(d / "bytes.npy"))
        starts.append(np.cumsum(t) - t)  # where each document starts in its shard's tokens.bin
    cat = lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt)  # noqa: E731
    return {"gid": cat(glob, np.int32), "shard": cat(shard_of, np.int32), "tokens": cat(tokens, np.int32),
            "bytes": cat(nbytes, np.int32), "start": cat(starts, np.int64)}


def write_bins(out, bins, final, tok_dirs):
    """bins: {file name: final document indices} -> the files in out/; returns meta's "bins"."""
    files = [open(d / "tokens.bin", "rb") for d in tok_dirs]
    meta_bins = {}
    for name, docs in tqdm(bins.items(), desc="write bins", leave=False):
        tokens = write_bin(out / name, docs, files, final)
        os.chmod(out / name, 0o644)
        meta_bins[name] = {"tokens": int(tokens), "bytes": int(final["bytes"][docs].sum()), "docs": int(len(docs))}
    [f.close() for f in files]
    return meta_bins


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


def run_tokenize_stage(clean_dirs, index, keep, boilerplate, tok_dir, keys, work, opts, stages):
    """Every shard's kept documents -> token ids on disk. A shard's key: its clean key, which of its
    documents dedup kept, the repeated-line set, the tokenizer. -> (tokens dirs, lines removed, docs emptied)."""
    tok_dirs, tasks, code, lines = [], [], shards.code_version(), shards.key_of(boilerplate.tobytes().hex())
    for k, d in enumerate(clean_dirs):
        mask = keep[index["first"][k]:index["first"][k + 1]]
        key = shards.key_of("tokens", keys["clean"][k], np.packbits(mask).tobytes().hex(), lines,
                            keys["tokenizer_hash"], code)
        tok_dirs.append(work / "shards" / f"tokens-{key}")
        tasks.append((d, mask, boilerplate, tok_dir, tok_dirs[-1]))
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
    if not len(index["shard"]):
        raise UserError(f"{', '.join(names)}: no documents left after reading and cleaning; nothing written")

    keep, dedup_report = shards.load_cached(work / "stages" / f"dedup-{keys['dedup']}.pkl",
                                     lambda: deduplicate(clean_dirs, index, args, work), args.no_cache, "dedup")
    lap(stages, "dedup", docs_in=int(len(keep)), docs_out=int(keep.sum()))
    boilerplate = shards.load_cached(work / "stages" / f"lines-{keys['lines']}.pkl",
                              lambda: boilerplate_lines(clean_dirs, index, keep, args.line_dedup_docs),
                              args.no_cache, "lines")
    lap(stages, "line counts", distinct_lines_removed=int(len(boilerplate)))

    is_val = split(np.where(keep, index["source"], -1), args.val_frac, args.seed, names)
    if not is_val.any():  # the split is by document: one document per source leaves nothing to validate on
        raise UserError(f"{', '.join(names)}: every source has a single document after cleaning and dedup, so "
                        f"there is nothing to hold out for val.bin; give several files (or a .jsonl of "
                        f"documents); nothing written")
    tok_dir = train_tokenizer_on_sample(clean_dirs, index, np.flatnonzero(keep & ~is_val), boilerplate, args,
                                        work / "stages" / f"tokenizer-{keys['tokenizer']}")
    try:
        enc = tokenizer.load_tokenizer(tok_dir)
        tokenizer.check_fits_uint16(enc.n_vocab, str(tok_dir))
    except ValueError as e:
        raise UserError(str(e)) from None
    keys["tokenizer_hash"] = tok_hash = tokenizer.tokenizer_hash(tok_dir)
    lap(stages, "train tokenizer")

    tok_dirs, lines_removed, docs_emptied = run_tokenize_stage(clean_dirs, index, keep, boilerplate, tok_dir,
                                                               keys, work, opts, stages)

    final = shard_arrays(tok_dirs, index)
    source_final, is_val_final = index["source"][final["gid"]], is_val[final["gid"]]
    bins, mix_info = mix.choose_bins(source_final, is_val_final, final["tokens"], names, shares, args)
    if not len(bins["train.bin"]):
        raise UserError(f"{', '.join(names)}: the mix selects no training documents; nothing written")
    meta_bins = write_bins(tmp_out, bins, final, tok_dirs)
    shutil.copytree(tok_dir, tmp_out / "tokenizer")
    for f in [tmp_out / "tokenizer", *(tmp_out / "tokenizer").iterdir()]:
        os.chmod(f, 0o755 if f.is_dir() else 0o644)  # readable by all, as every file of a dataset
    lap(stages, "mix+write", mb=round(sum(b["bytes"] for b in meta_bins.values()) / 1e6, 2))

    contam, record = contamination.check_train(clean_dirs, index, final, bins["train.bin"], is_val_final, boilerplate, args,
                                   work, opts)
    lap(stages, "contamination", record)
    seconds = time.perf_counter() - start
    after = {s: int(((index["source"] == c) & keep).sum()) for c, s in enumerate(names)}
    meta = {"vocab_size": enc.n_vocab, "dtype": "uint16", "eot_token": enc.eot_token, "tokenizer": "tokenizer",
            "tokenizer_hash": tok_hash, "bins": meta_bins,
            "sources": {s: {**read_stats[s], "after_dedup": after[s],
                            "val_docs": int(((source_final == c) & is_val_final).sum())} for c, s in enumerate(names)},
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
    lengths = {s: final["bytes"][source_final == c] for c, s in enumerate(names)}
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
