"""
shards.py: the per-shard stages of prepare.py, and the two engines that map them over shards.

prepare.py is the driver: it plans, runs the global steps (dedup, line counts, split, mix) and writes the
dataset. What runs here touches one shard at a time, streaming, so a worker's memory is bounded by one
shard (datatrove's and NeMo Curator's design):

    clean_shard         read -> clean -> exact key, MinHash signature, line hashes   (documents on disk)
    tokenize_shard      kept documents, repeated lines removed -> uint16 token ids

Each writes its outputs into a temp directory and renames it when complete: the directory *is* the
completion marker, so a killed prepare.py resumes with the shards that are missing. (contamination.py's
stage, train documents against the val n-grams, runs on the same engines.) run_stage() maps a
stage over shards with a local process pool (--workers) or as Ray tasks (--executor ray): the same
functions, the same files, so the bins come out byte-identical.
"""
import hashlib
import json
import os
import pickle
import re
import shutil
import socket
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import clean
import dedup
import language
import quality
import sources
import tokenizer
from common import ROOT, UserError, peak_rss_mb, write_atomic

LINE_MIN_CHARS = 20  # shorter lines ("Exeunt.", "else:", "}") repeat for good reasons; never line-deduped


def code_version(files=("sources.py", "clean.py", "dedup.py", "tokenizer.py", "shards.py")):
    """The stages' code is part of every cache key: an edited rule must not reuse old results. The global
    steps add the driver's files (GLOBAL_STEP_FILES), which the per-shard stages do not read."""
    h = hashlib.sha256()
    for name in files:
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()[:16]


GLOBAL_STEP_FILES = ("dedup.py", "shards.py", "dedup_shards.py", "mix.py", "prepare.py")


def key_of(*parts):
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------------
# Per-shard output directories: written beside, renamed when complete


def finished(folder):
    """The stage's info dict if `folder` is complete (from this or an earlier run), else None."""
    done = Path(folder) / "done.json"
    return json.loads(done.read_text()) if done.is_file() else None


def begin(folder):
    """A fresh temp directory beside `folder`, named after this process (so a dead run's is recognisable)."""
    tmp = Path(folder).with_name(f".{Path(folder).name}.tmp-{socket.gethostname()}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def sweep_stale(root):
    """Remove temp directories left by killed runs on this host (their pid is gone): a resumed run then
    starts those shards afresh and nothing half-written accumulates."""
    for tmp in Path(root).glob(".*.tmp-*"):
        host, _, pid = tmp.name.rpartition(".tmp-")[2].rpartition("-")
        if host == socket.gethostname() and pid.isdigit():
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                shutil.rmtree(tmp, ignore_errors=True)
            except PermissionError:  # alive, someone else's
                pass


def commit(tmp, folder, info):
    """done.json, then the rename that makes the shard visible. If another run finished the same shard
    first (same key, so the same content), keep theirs."""
    with open(tmp / "done.json", "w") as f:
        json.dump(info, f)
    try:
        os.rename(tmp, folder)
    except OSError:
        if finished(folder) is None:
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return info


def save(folder, name, array):
    """np.save, with a full disk as a one-line error naming the file."""
    try:
        np.save(folder / name, array)
    except OSError as e:
        raise disk_error(e, folder / name) from e


def disk_error(e, path):
    if getattr(e, "errno", None) == 28:  # ENOSPC
        return UserError(f"disk full while writing {path}")
    return UserError(f"{path}: cannot write ({e.strerror or e})")


def raw(folder, name, dtype, width=1):
    """A file of `dtype` values written in pieces (sig.bin, lines.bin) as a read-only (n, width) memory map."""
    path = Path(folder) / name
    if not path.stat().st_size:
        return np.zeros((0, width), dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r").reshape(-1, width)


def signatures_in(folder):
    return raw(folder, "sig.bin", np.uint32, dedup.NUM_PERM)


def line_keys_in(folder):
    """A shard's line keys, read (not mapped: the driver reads every shard's, and mapped pages stay resident)."""
    return np.fromfile(Path(folder) / "lines.bin", dtype=np.uint64)


def texts_of(folder, local):
    """The cleaned texts of documents `local` (indices within the shard) of a clean_shard directory."""
    offsets = np.load(Path(folder) / "offsets.npy")
    data = np.memmap(Path(folder) / "text.bin", dtype=np.uint8, mode="r") if offsets[-1] else b""
    return [bytes(data[offsets[i]:offsets[i + 1]]).decode("utf-8", "surrogatepass") for i in local]


# ---------------------------------------------------------------------------------------------------------
# Stage 1: read -> clean -> keys


WORD_OR_NEWLINE = re.compile(dedup.WORD.pattern + r"|\n")


def normal_lines(text):
    """text -> its normalised lines (strings of words, one per line of text, blank lines included), in one
    regex pass: dedup.normalize's words with the newlines kept. " ".join(words of a line) == the line's
    string, and all the lines' words are dedup.normalize(text)."""
    return " ".join(WORD_OR_NEWLINE.findall(dedup.DIGIT.sub("0", text.lower()))).split("\n")


def line_key(line):
    """A normalised line's 63-bit key for line dedup, or None if it is too short to count."""
    line = line.strip()
    return dedup.word_hash(line) if len(line) >= LINE_MIN_CHARS else None


QUALITY_MODELS = {}  # path -> loaded model: once per worker process, not once per document


def model_filters(text, opts, counters, stats):
    """The two filters that use a model rather than a rule, after clean.py's rules, prose only:
    --languages (language.py: py3langid, kept at probability >= 0.5) and --quality-threshold (quality.py's
    classifier). A removal is counted as a rule, so the report's rule table shows it; stats["languages"]
    holds documents and characters per detected language."""
    rules = counters["rules"]
    if opts.get("languages"):
        keep, _, _ = language.check_language(text, set(opts["languages"]), stats.setdefault("languages", {}))
        if not keep:
            row = rules.setdefault("language_filter", {"docs": 0, "chars": 0})
            row["docs"], row["chars"] = row["docs"] + 1, row["chars"] + len(text)
            return None
    if opts.get("quality_model"):
        path = opts["quality_model"]
        model = QUALITY_MODELS.get(path) or QUALITY_MODELS.setdefault(path, quality.load(path))
        if not quality.passes(model, text, opts.get("quality_threshold")):
            row = rules.setdefault("quality_classifier", {"docs": 0, "chars": 0})
            row["docs"], row["chars"] = row["docs"] + 1, row["chars"] + len(text)
            return None
    return text


def clean_shard(shard, opts, folder):
    """One shard -> folder/: text.bin (cleaned UTF-8 texts back to back), offsets.npy (n + 1,), exact.npy
    (n, 2) uint64, has_words.npy (n,), sig.bin (n, num_perm) uint32, lines.bin (each document's distinct
    line keys, uint64, concatenated) + line_counts.npy (n,), every_line.bin (every line's key, 0 if it has
    none) + line_starts.npy (n + 1,), names.json; done.json: the read/clean counts.
    Signatures and line keys go to disk every 1,000 documents: a 2 GB file in one shard stays in bounds."""
    if (info := finished(folder)) is not None:
        return {**info, "reused": True}
    start, cpu, tmp = time.perf_counter(), time.process_time(), begin(folder)
    stats = {"files": 0, "docs": 0, "bytes": 0, "kept_docs": 0}
    counters = clean.new_counters()
    counters["scripts"] = stats["scripts"] = {}  # characters per script, counted per source
    skip = set(opts["skip"])
    offsets, names, exact, has_words, lines, line_counts, shingles = [0], [], [], [], [], [], []
    every_line, line_starts = [], [0]  # each line's key (0: too short, or code), for removal without a regex
    vocab = {}
    try:
        with open(tmp / "text.bin", "wb") as f, open(tmp / "sig.bin", "wb") as f_sig, \
                open(tmp / "lines.bin", "wb") as f_lines, open(tmp / "every_line.bin", "wb") as f_every:
            def flush():  # the (num_perm, shingles) work array of 1,000 documents stays small
                if shingles:
                    np.ascontiguousarray(dedup.signatures(shingles).T).tofile(f_sig)
                np.array(lines, dtype=np.uint64).tofile(f_lines)
                np.array(every_line, dtype=np.uint64).tofile(f_every)
                shingles.clear()
                lines.clear()
                every_line.clear()

            for doc in sources.read_shard(shard, stats, opts):
                stats["docs"] += 1
                stats["bytes"] += len(doc["text"].encode("utf-8", "surrogatepass"))
                text = clean.clean_document(doc["text"], shard["is_code"], skip, counters,
                                            f"{shard['source']}/{doc['name']}")
                if text is not None and not shard["is_code"]:
                    text = model_filters(text, opts, counters, stats)
                if text is None or not text.strip():
                    continue
                data = text.encode("utf-8", "surrogatepass")
                f.write(data)
                offsets.append(offsets[-1] + len(data))
                names.append(doc["name"])
                lines_of_text = normal_lines(text)
                words = " ".join(lines_of_text).split()
                exact.append(dedup.exact_key(words))
                has_words.append(bool(words))
                shingles.append(dedup.shingles32(dedup.word_ids(words, vocab)) if words else
                                np.zeros(0, dtype=np.uint32))
                per_line = [None] * len(lines_of_text) if shard["is_code"] else list(map(line_key, lines_of_text))
                keys = set(per_line) - {None}
                lines.extend(sorted(keys))
                line_counts.append(len(keys))
                every_line.extend(k or 0 for k in per_line)
                line_starts.append(line_starts[-1] + len(per_line))
                if len(shingles) == 1000:
                    flush()
                if len(vocab) > 1_000_000:  # the memo is a cache, not a vocabulary: keep it bounded
                    vocab.clear()
            flush()
    except OSError as e:
        raise disk_error(e, tmp / "text.bin") from e
    stats["kept_docs"] = len(names)
    save(tmp, "offsets.npy", np.array(offsets, dtype=np.int64))
    save(tmp, "exact.npy", np.array(exact, dtype=np.uint64).reshape(-1, 2))
    save(tmp, "has_words.npy", np.array(has_words, dtype=bool))
    save(tmp, "line_counts.npy", np.array(line_counts, dtype=np.int64))
    save(tmp, "line_starts.npy", np.array(line_starts, dtype=np.int64))
    (tmp / "names.json").write_text(json.dumps(names))
    info = {"stats": stats, "counters": counters, "docs_in": stats["docs"], "docs_out": len(names),
            "bytes": stats["bytes"], "seconds": round(time.perf_counter() - start, 3),
            "cpu_seconds": round(time.process_time() - cpu, 3)}
    return {**commit(tmp, folder, info), "reused": False, "peak_rss_mb": peak_rss_mb()}


# ---------------------------------------------------------------------------------------------------------
# Stage 2: tokenize (and line dedup, which needs the global line counts)


def final_texts(folder, local, boilerplate, counts=None):
    """The texts as they go into the bins: cleaned, and without the lines whose key is in `boilerplate`
    (a sorted uint64 array). Each line's key was stored by clean_shard, so this is a lookup, not a second
    normalisation. Lines removed are counted into counts["lines_removed"]."""
    starts, keys = np.load(Path(folder) / "line_starts.npy"), raw(folder, "every_line.bin", np.uint64)[:, 0]
    for i, text in zip(local, texts_of(folder, local)):
        if len(boilerplate):
            k = keys[starts[i]:starts[i + 1]]
            drop = boilerplate[np.minimum(np.searchsorted(boilerplate, k), len(boilerplate) - 1)] == k
            if drop.any():
                text = "\n".join(line for line, d in zip(text.split("\n"), drop) if not d)
                if counts is not None:
                    counts["lines_removed"] = counts.get("lines_removed", 0) + int(drop.sum())
        yield text


def tokenize_shard(clean_dir, removed, boilerplate, tok_dir, folder):
    """The documents of a clean_shard directory that dedup kept (all but the positions `removed`) ->
    folder/: tokens.bin (for each document <|endoftext|> then its ids, uint16), and per document local.npy
    (its index in the shard), tokens.npy (tokens incl. <|endoftext|>), bytes.npy (UTF-8 bytes). A document
    that line dedup empties is dropped and counted."""
    if (info := finished(folder)) is not None:
        return {**info, "reused": True}
    keep = np.ones(len(np.load(Path(clean_dir) / "has_words.npy")), dtype=bool)
    keep[removed] = False
    start, cpu, tmp = time.perf_counter(), time.process_time(), begin(folder)
    enc = tokenizer.load_tokenizer(tok_dir)
    eot = np.array([enc.eot_token], dtype=np.uint16)
    local = np.flatnonzero(keep)
    counts, kept, n_tokens, n_bytes = {"lines_removed": 0, "docs_emptied": 0}, [], [], []
    try:
        with open(tmp / "tokens.bin", "wb") as f:
            for k in range(0, len(local), 256):  # batches of documents: bounded memory, tiktoken's threads
                idx = local[k:k + 256]
                texts = list(final_texts(clean_dir, idx, boilerplate, counts))
                for i, text, ids in zip(idx, texts, enc.encode_ordinary_batch(texts)):
                    if not text.strip():
                        counts["docs_emptied"] += 1
                        continue
                    eot.tofile(f)
                    np.array(ids, dtype=np.uint16).tofile(f)
                    kept.append(i)
                    n_tokens.append(len(ids) + 1)
                    n_bytes.append(len(text.encode("utf-8", "surrogatepass")))
    except OSError as e:
        raise disk_error(e, tmp / "tokens.bin") from e
    save(tmp, "local.npy", np.array(kept, dtype=np.int64))
    save(tmp, "tokens.npy", np.array(n_tokens, dtype=np.int64))
    save(tmp, "bytes.npy", np.array(n_bytes, dtype=np.int64))
    info = {**counts, "docs_in": len(local), "docs_out": len(kept), "bytes": int(sum(n_bytes)),
            "seconds": round(time.perf_counter() - start, 3), "cpu_seconds": round(time.process_time() - cpu, 3)}
    return {**commit(tmp, folder, info), "reused": False, "peak_rss_mb": peak_rss_mb()}


# ---------------------------------------------------------------------------------------------------------
# The shards read back (by prepare.py's global steps): where each global document id lives


def corpus_index(shard_list, clean_dirs, names):
    """-> {"first": (S + 1,) the global id of shard k's first document (first[-1]: all documents), "source":
    (S,) the position of shard k's source in names, "names"}. Per shard, never per document: a document's
    global id is first[k] + its position in shard k (locate), and per-document facts stay in the shard's
    files, so the driver's memory does not grow with the corpus."""
    counts = [len(np.load(d / "has_words.npy")) for d in clean_dirs]
    return {"first": np.r_[0, np.cumsum(counts)].astype(np.int64),
            "source": np.array([names.index(s["source"]) for s in shard_list], dtype=np.int16), "names": list(names)}


def locate(index, ids):
    """Global ids (n,) -> (shard (n,), position in the shard (n,))."""
    shard = np.searchsorted(index["first"], ids, side="right") - 1
    return shard, np.asarray(ids, dtype=np.int64) - index["first"][shard]


def in_shard(index, k, ids):
    """Sorted global ids -> the positions in shard k of those that fall in it."""
    a, b = np.searchsorted(ids, index["first"][k:k + 2])
    return ids[a:b] - index["first"][k]


def kept_mask(index, k, removed):
    """(n_k,) bool over shard k's documents: False where the document is among sorted global ids removed."""
    mask = np.ones(int(index["first"][k + 1] - index["first"][k]), dtype=bool)
    mask[in_shard(index, k, removed)] = False
    return mask


def doc_random(seed, ids, salt):
    """(n,) floats in [0, 1), one per global document id, from a hash of (seed, salt, id): the same number
    however the corpus is cut into shards and however many workers run (a Generator drawing shard by
    shard would follow the cuts). salt: one per use (the split, the mix, a sample) so uses are independent."""
    with np.errstate(over="ignore"):
        key = np.asarray(ids, dtype=np.uint64) + np.uint64(((seed * 1_000_003 + salt) << 32) % 2**64)
        h = dedup.mix64(dedup.mix64(key))
    return (h >> np.uint64(11)).astype(np.float64) / 2.0**53


def sample_docs(clean_dirs, index, select, mb, seed, salt):
    """Global ids, in random order, of a uniform random sample of the documents select(k) -> (n_k,) bool
    picks in shard k: each with the probability that gives ~1.5 x mb MB of text and at least ~32 documents
    (the caller stops at mb). Two passes over per-shard arrays; what is held is the sample, not the corpus."""
    total, n = 0, 0
    for k in range(len(clean_dirs)):
        chosen = select(k)
        total += int(np.diff(np.load(clean_dirs[k] / "offsets.npy"))[chosen].sum())
        n += int(chosen.sum())
    p = min(1.0, max(1.5 * mb * 1e6 / max(total, 1), 32 / max(n, 1)))
    ids, keys = [np.zeros(0, np.int64)], [np.zeros(0)]
    for k in range(len(clean_dirs)):
        gid = index["first"][k] + np.flatnonzero(select(k))
        u = doc_random(seed, gid, salt)
        ids.append(gid[u < p])
        keys.append(u[u < p])
    return np.concatenate(ids)[np.argsort(np.concatenate(keys), kind="stable")]


def signatures_of(clean_dirs, index, ids):
    """(len(ids), num_perm) signatures of global documents ids, read from the shards' sig.bin."""
    out = np.empty((len(ids), dedup.NUM_PERM), dtype=np.uint32)
    shard, local = locate(index, ids)
    for k in np.unique(shard):
        sel = np.flatnonzero(shard == k)
        out[sel] = signatures_in(clean_dirs[k])[local[sel]]
    return out


def names_of(clean_dirs, index, ids, with_source=True):
    cache, out = {}, []
    for k, i in zip(*locate(index, ids)):
        if k not in cache:
            cache[k] = json.loads((clean_dirs[k] / "names.json").read_text())
        source = index["names"][index["source"][k]]
        out.append(f"{source}/{cache[k][i]}" if with_source else cache[k][i])
    return out


def text_of(clean_dirs, index, i):
    (k,), (local,) = locate(index, [i])
    return texts_of(clean_dirs[k], [local])[0]


def final_text(clean_dirs, index, i, boilerplate):
    """Document i as the bins hold it: repeated lines removed."""
    (k,), (local,) = locate(index, [i])
    return next(final_texts(clean_dirs[k], [local], boilerplate))


# ---------------------------------------------------------------------------------------------------------
# The engines: a local process pool, or Ray tasks on a cluster


def call(job):
    """(k, fn, task) -> (k, fn(*task), None), or (k, None, message) for a UserError: a one-line error is
    sent back as a value, since an exception that is not an Exception (UserError may be a SystemExit)
    would kill a pool worker and leave the pool waiting for a result that never comes."""
    k, fn, task = job
    try:
        return k, fn(*task), None
    except UserError as e:
        return k, None, str(e)


def pool_map(fn, tasks, workers):
    """call() of every task, as they finish: (task index, result, error). Workers start from a fresh `forkserver` process, not
    a fork of the driver: their peak memory is then their own, and they inherit no driver state."""
    if workers == 1:
        yield from map(call, [(k, fn, t) for k, t in enumerate(tasks)])
        return
    import multiprocessing
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["shards"])
    with ctx.Pool(min(workers, len(tasks))) as pool:
        yield from pool.imap_unordered(call, [(k, fn, t) for k, t in enumerate(tasks)])


def ray_map(fn, tasks, address, workers):
    """The same, as Ray tasks. address None starts a local Ray instance with `workers` CPUs; otherwise
    it joins the cluster (`ray start --head` on one node, `ray start --address=HEAD:6379` on the others).
    Every node needs this repository at the same path, and the cache directory on shared storage."""
    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs the ray package (pip install ray)") from None
    if not ray.is_initialized():
        ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False,
                 log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    remote = ray.remote(num_cpus=1, max_retries=0)(call)
    pending = [remote.remote((k, fn, task)) for k, task in enumerate(tasks)]
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        try:
            yield ray.get(ready[0])
        except ray.exceptions.RayTaskError as e:  # the worker's own exception, not Ray's wrapper
            raise e.as_instanceof_cause() from None


def run_stage(name, fn, tasks, sizes, opts, fold=None):
    """fn(*task) for every task, on opts["executor"] ("pool" or "ray"), with a progress bar over the bytes
    (so tqdm shows MB/s and the ETA) and shards done. -> (results in task order, stage record).
    fold(result) -> what to keep of a result, called as each one arrives: a stage whose shards return
    arrays reduces them there, so the driver holds one result at a time, not one per shard."""
    start = time.perf_counter()
    results = [None] * len(tasks)
    if opts["executor"] == "ray":
        jobs = ray_map(fn, tasks, opts["ray_address"], opts["workers"])
    else:
        jobs = pool_map(fn, tasks, opts["workers"])
    with tqdm(total=sum(sizes), desc=name, unit="B", unit_scale=True, leave=False) as bar:
        for done, (k, result, error) in enumerate(jobs, 1):
            if error:
                raise UserError(error)
            results[k] = fold(result) if fold else result
            bar.update(sizes[k])
            bar.set_postfix_str(f"{done}/{len(tasks)} shards")
    seconds = time.perf_counter() - start
    mb = sum(sizes) / 1e6
    record = {"seconds": round(seconds, 2), "mb": round(mb, 2), "mb_per_s": round(mb / max(seconds, 1e-9), 2),
              "shards": len(tasks), "reused": sum(bool(r.get("reused")) for r in results),
              "docs_in": sum(r.get("docs_in", 0) for r in results),
              "docs_out": sum(r.get("docs_out", 0) for r in results),
              # CPU seconds the workers spent (this run's shards only): throughput that a busy machine cannot skew
              "cpu_seconds": round(sum(r.get("cpu_seconds", 0) for r in results if not r.get("reused")), 2),
              "worker_peak_rss_mb": round(max([r.get("peak_rss_mb") or 0 for r in results] or [0]), 1)}
    return results, record


# ---------------------------------------------------------------------------------------------------------
# Stage keys: everything a stage's output depends on, so a cached result is never the wrong one


def stage_keys(args, shard_list):
    """{"clean": [key per shard], "dedup", "lines", "tokenizer"}. Each key hashes the stage's inputs (the
    previous stage's key), every option the stage reads, and the code version. tests/test_prepare_shards.py
    changes each option in turn and checks that its stage's key changes."""
    code = code_version()
    skip = sorted(clean.RULE_NAMES) if args.no_clean else sorted(set(args.skip_rule))
    quality_model = sources.stamp(args.quality_model) if args.quality_model else None
    clean_opts = [skip, args.text_field, args.max_doc_mb, args.hf_docs, args.languages, quality_model,
                  args.quality_threshold]
    clean_keys = [key_of("clean", s["source"], s["kind"], s["stamp"], clean_opts, code) for s in shard_list]
    code = code_version(GLOBAL_STEP_FILES)
    dedup_key = key_of("dedup", clean_keys, args.no_dedup, args.dedup_threshold, code)
    lines_key = key_of("lines", dedup_key, args.line_dedup_docs, code)
    tok = tokenizer.tokenizer_hash(args.tokenizer) if args.tokenizer else None
    tok_key = key_of("tokenizer", lines_key, args.val_frac, args.seed, args.vocab_size, args.tokenizer_mb,
                            tok, code)
    return {"clean": clean_keys, "dedup": dedup_key, "lines": lines_key, "tokenizer": tok_key}


def load_cached(path, build, no_cache, label):
    """A global step's result, as a pickle under its key (a work dir of its own when --no-cache)."""
    if path.exists() and not no_cache:
        print(f"{label}: reusing {path}")
        with open(path, "rb") as f:
            return pickle.load(f)
    result = build()
    write_atomic(path, lambda f: pickle.dump(result, f, protocol=pickle.HIGHEST_PROTOCOL))
    return result
