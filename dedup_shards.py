"""
dedup_shards.py: prepare.py's global dedup steps, across every shard of the corpus, in bounded memory.

    python prepare.py                   # calls deduplicate() after read+clean, boilerplate_lines() after it

dedup.py holds the algorithms (MinHash, LSH buckets, union-find) on arrays in memory. This file feeds
them a corpus too big for memory: each shard wrote its exact keys, signatures and line keys to disk
(shards.clean_shard), and here they are read back one *hash partition* at a time. A key's partition is
key mod P, so equal keys (the only ones that can match) always meet in the same partition, and P is
chosen so one partition fits in PART_MB. What the driver keeps grows with the duplicates found, never
with the documents: the result is the sorted global ids of the removed documents.
"""
import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import dedup
import shards

PART_MB = 64            # one partition's arrays in memory: its keys, ids, and the sort's work arrays
BYTES_PER_DOC = 64      # per document of a partition: 16-byte key + 8-byte id, sort order, sorted copies


def partitions(n_docs):
    return max(1, math.ceil(n_docs * BYTES_PER_DOC / (PART_MB * 1e6)))


def partitioned(index, n_parts, read):
    """Yield (keys, global ids) per hash partition p of the whole corpus. read(k) -> (keys (m,) or (m, c)
    uint64, positions (m,) in shard k, or None for keys alone) of the documents shard k takes part with;
    a key's first column decides its partition."""
    for p in range(n_parts):
        keys, ids = [], []
        for k in range(len(index["first"]) - 1):
            key, local = read(k)
            sel = (key if key.ndim == 1 else key[:, 0]) % np.uint64(n_parts) == np.uint64(p)
            keys.append(key[sel])
            ids.append(None if local is None else index["first"][k] + local[sel])
        yield np.concatenate(keys), None if any(i is None for i in ids) else np.concatenate(ids)


def with_words_kept(clean_dirs, index, k, removed):
    """(n_k,) bool: shard k's documents that have words (an empty text is nobody's copy) and are not removed."""
    return np.load(clean_dirs[k] / "has_words.npy") & shards.kept_mask(index, k, removed)


def exact_pairs(clean_dirs, index, n_parts):
    """(m, 2) (first, later) global ids of exact copies: the normalised-text keys, one partition at a time."""
    def read(k):
        local = np.flatnonzero(np.load(clean_dirs[k] / "has_words.npy"))  # an empty text is nobody's copy
        return np.load(clean_dirs[k] / "exact.npy")[local], local
    found = [dedup.exact_duplicate_pairs(keys, ids) for keys, ids in partitioned(index, n_parts, read)]
    return np.concatenate(found or [np.zeros((0, 2), np.int64)])


def write_band_keys(clean_dirs, index, band_dir, bands, rows, later):
    """Per shard, a raw (bands + 1, m) uint64 file over the m documents near dedup sees (with words, not an
    exact copy: `later`, sorted global ids): row 0 their positions in the shard, row 1 + b their key in
    band b. Reading one band of one shard is then two contiguous reads, with no mask to rebuild."""
    for k, d in enumerate(tqdm(clean_dirs, desc="dedup: band keys", leave=False)):
        local = np.flatnonzero(with_words_kept(clean_dirs, index, k, later))
        sig = shards.signatures_in(d)  # in slices of 100k documents: bounded however big the shard
        keys = [dedup.band_keys(sig[local[a:a + 100_000]].T, bands, rows) for a in range(0, len(local), 100_000)]
        np.vstack([local.astype(np.uint64), np.concatenate(keys or [np.zeros((bands, 0), np.uint64)], axis=1)]
                  ).tofile(band_dir / f"{k}.bin")


def band_columns(index, band_dir, bands, n_parts):
    """Yield (band keys, global ids) for each band and partition of the documents write_band_keys wrote."""
    for b in range(bands):
        def read(k):
            m = (band_dir / f"{k}.bin").stat().st_size // (8 * (bands + 1))
            local = np.fromfile(band_dir / f"{k}.bin", dtype=np.uint64, count=m).astype(np.int64)
            return np.fromfile(band_dir / f"{k}.bin", dtype=np.uint64, count=m, offset=8 * (b + 1) * m), local
        yield from partitioned(index, n_parts, read)


def deduplicate(clean_dirs, index, args, work):
    """-> (sorted global ids of the removed documents, report dict as dedup.dedup's, with names)."""
    start, n = time.perf_counter(), int(index["first"][-1])
    if args.no_dedup:
        return np.zeros(0, np.int64), {"docs": n, "exact_removed": 0, "near_removed": 0, "cluster_sizes": {},
                                       "clusters": [], "shown": [], "shown_near_misses": []}
    n_parts = partitions(n)
    exact = exact_pairs(clean_dirs, index, n_parts)
    later = np.unique(exact[:, 1])
    bands, rows = dedup.choose_bands(args.dedup_threshold)
    band_dir = Path(tempfile.mkdtemp(dir=work, prefix=".bands-"))
    try:
        write_band_keys(clean_dirs, index, band_dir, bands, rows, later)

        def true_jaccard(i, j):  # for the few pairs the signature estimate cannot decide (dedup.is_duplicate)
            return dedup.exact_jaccard(shards.text_of(clean_dirs, index, i), shards.text_of(clean_dirs, index, j))
        near, n_cand = dedup.lsh_pairs(band_columns(index, band_dir, bands, n_parts),
                                       lambda i: shards.signatures_of(clean_dirs, index, i),
                                       args.dedup_threshold, true_jaccard)
    finally:
        shutil.rmtree(band_dir, ignore_errors=True)
    nodes, root = dedup.cluster_roots(np.concatenate([exact, near]))
    removed = nodes[nodes != root]  # sorted: every copy but the earliest of its cluster
    roots, sizes = np.unique(root, return_counts=True)
    clusters = [nodes[root == r].tolist() for r in roots[np.argsort(-sizes, kind="stable")[:20]]]  # the largest
    rep = {"docs": n, "exact_removed": len(exact), "near_removed": len(removed) - len(exact),
           "threshold": args.dedup_threshold, "num_perm": dedup.NUM_PERM, "bands": bands, "rows": rows,
           "partitions": n_parts, "candidates": n_cand, "verified": len(near),
           "seconds": round(time.perf_counter() - start, 2),
           "cluster_sizes": {int(k): int(v) for k, v in zip(*np.unique(sizes, return_counts=True))}}
    show = sorted({i for c in clusters[:3] for i in c[:4]})
    texts = dict(zip(show, (shards.text_of(clean_dirs, index, i) for i in show)))
    names = dict(zip(show, shards.names_of(clean_dirs, index, show)))
    rep["shown"] = dedup.show_clusters(texts, names, clusters)
    rep["clusters"] = [shards.names_of(clean_dirs, index, c) for c in clusters]  # the largest 20, by name
    rep.update(near_misses(clean_dirs, index, removed, args.dedup_threshold))  # removed: the exact copies too
    return removed, rep


def near_misses(clean_dirs, index, removed, threshold, max_docs=2000):
    """The closest pairs left in per source among the first max_docs kept documents: what dedup spared."""
    ids = []
    for k in range(len(clean_dirs)):
        if sum(map(len, ids)) >= max_docs:
            break
        ids.append(index["first"][k] + np.flatnonzero(with_words_kept(clean_dirs, index, k, removed)))
    ids = np.concatenate(ids or [np.zeros(0, np.int64)])[:max_docs]
    source = index["source"][shards.locate(index, ids)[0]]
    pairs = dedup.closest_pairs(shards.signatures_of(clean_dirs, index, ids).T, source.tolist(), threshold)
    show = sorted({ids[i] for i, j, _ in pairs} | {ids[j] for i, j, _ in pairs})
    texts = dict(zip(show, (shards.text_of(clean_dirs, index, i) for i in show)))
    names = dict(zip(show, shards.names_of(clean_dirs, index, show)))
    pairs = [(ids[i], ids[j], e) for i, j, e in pairs]
    return {"shown_near_misses": dedup.show_near_misses(texts, names, pairs),
            "near_misses": [(names[i], names[j], round(e, 4)) for i, j, e in pairs]}


def boilerplate_lines(clean_dirs, index, removed, min_docs):
    """-> sorted (m,) uint64 keys of lines found in >= min_docs kept documents (0: line dedup off).
    Every document's line keys are unique within it, so a key's count is its number of documents. The
    keys are counted one hash partition at a time, P chosen so a partition fits in PART_MB."""
    if min_docs <= 0:
        return np.zeros(0, dtype=np.uint64)
    n_parts = max(1, math.ceil(sum((d / "lines.bin").stat().st_size for d in clean_dirs) / (PART_MB * 1e6)))

    def read(k):  # the line keys of shard k's kept documents
        lines, counts = shards.line_keys_in(clean_dirs[k]), np.load(clean_dirs[k] / "line_counts.npy")
        return lines[np.repeat(shards.kept_mask(index, k, removed), counts)], None
    found = []
    for keys, _ in partitioned(index, n_parts, read):
        values, n = np.unique(keys, return_counts=True)
        found.append(values[n >= min_docs])
    return np.sort(np.concatenate(found))
