"""
dedup.py: remove exact and near-duplicate documents (exact hash, then MinHash + LSH), and show what went.

    python dedup.py IN.jsonl --out OUT.jsonl --threshold 0.8    # keeps every other field of the kept lines
    python dedup_benchmark.py                                    # precision / recall / speed on the built-in corpus

The lesson, top to bottom:
  1. normalise text (case, digits, punctuation, whitespace) and cut it into word 5-gram "shingles"
  2. exact duplicates: equal normalised text -> equal hash
  3. near duplicates: the Jaccard similarity |A & B| / |A | B| of two shingle sets is the probability that
     both sets have the same minimum under a random permutation of hash values. NUM_PERM = 256 permutations
     give a 256-number signature per document; the fraction of equal entries estimates the Jaccard.
     We compute all permutations of all shingles at once in numpy: (num_perm, n_shingles) -> min per doc.
  4. LSH: cut the signature into b bands of r rows; two documents become candidates if one whole band
     matches. P(candidate | Jaccard s) = 1 - (1 - s^r)^b, an S-curve whose step sits near the threshold.
  5. verify each candidate pair by its signature similarity, join pairs into clusters (union-find), and
     keep the first document of every cluster; 5b. the same over shards on disk, one LSH band at a time.
How well it works is measured in dedup_benchmark.py; the 13-gram contamination check is contamination.py.
datasketch holds the structures (MinHash with its "affine32" permutations, MinHashLSH); only the
signature arithmetic is ours, and it gives datasketch's signature bit for bit (tests/test_dedup.py).
"""
import argparse
import hashlib
import json
import os
import re
import time
from collections import Counter

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH
from tqdm import tqdm

from common import write_atomic

NGRAM = 5           # word 5-grams, as FineWeb (Penedo et al. 2024)
NUM_PERM = 256      # signature length: std of the Jaccard estimate is sqrt(J (1 - J) / 256) = 0.025 at J = 0.8
SEED = 1            # datasketch's default seed: the same permutations as MinHash(num_perm, seed=1)
BLOCK = 1 << 14    # shingles per (num_perm, block) array: 256 x 16,384 x 4 bytes = 16 MB, reused

# ---------------------------------------------------------------------------------------------------------
# 1. Normalise and shingle

CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"  # kana, Han, Hangul
WORD = re.compile(rf"[{CJK}]|[^\W_{CJK}]+")  # one CJK character, or a run of other letters/digits
DIGIT = re.compile(r"[1-9]")


def normalize(text):
    """'Hello, World 2024!' -> ['hello', 'world', '0000']: lower case, every digit 0, punctuation and
    whitespace dropped. Chinese/Japanese/Korean characters count as one word each, since those scripts
    put no spaces between words."""
    return WORD.findall(DIGIT.sub("0", text.lower()))


def word_hash(word):
    """A word's id: 63 bits of blake2b of its text. It depends on nothing but the word, so two shards
    cleaned by two processes (or two machines) give equal words equal ids; Python's own hash() is salted
    per process, and a counter (the next free id) depends on which words a process saw first."""
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little") >> 1


def word_ids(words, vocab):
    """Words -> (n,) int64 ids (word_hash). vocab memoises the hashes: a text repeats its words, so most
    lookups are a dict hit (map over the dict's own lookup: C speed) and only new words pay for blake2b."""
    try:
        return np.fromiter(map(vocab.__getitem__, words), dtype=np.int64, count=len(words))
    except KeyError:
        for w in set(words).difference(vocab):
            vocab[w] = word_hash(w)
        return np.fromiter(map(vocab.__getitem__, words), dtype=np.int64, count=len(words))


def local_ids(words):
    """Words -> (n,) int64 ids that are equal for equal words within this one call (0, 1, 2, ... in order
    of first appearance): all a rule inside one document needs, without hashing every word."""
    vocab = {}
    return np.fromiter((vocab.setdefault(w, len(vocab)) for w in words), dtype=np.int64, count=len(words))


def mix64(x):
    """splitmix64's finaliser: spreads consecutive ids over all 64 bits. (n,) uint64 -> (n,) uint64."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def ngram_hashes(ids, n=NGRAM):
    """(n_words,) word ids -> (n_words - n + 1,) uint64 hashes of every word n-gram, as one vector op per
    position in the n-gram: h = ((w0 * P + w1) * P + w2) ... with uint64 wrap-around. A document shorter
    than n words is one n-gram of all its words."""
    w = mix64(ids.astype(np.uint64))
    n = min(n, len(w))
    count = len(w) - n + 1
    h = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(n):
            h = h * np.uint64(0x100000001B3) + w[j:j + count]
    return h


def shingles32(ids, n=NGRAM):
    """The 32-bit shingle hashes datasketch's default scheme expects: the top half of the 64-bit hash."""
    return (ngram_hashes(ids, n) >> np.uint64(32)).astype(np.uint32)


# ---------------------------------------------------------------------------------------------------------
# 2./3. MinHash signatures, vectorised
#
# datasketch's "affine32" scheme: h -> fmix32(h) once (the MurmurHash3 finaliser, a bijection that spreads
# structured inputs), then permutation k is h -> (a_k * h + b_k) mod 2^32 with odd a_k. uint32 arithmetic
# wraps, which *is* the mod. The signature entry k of a document is the minimum over its shingles.

def fmix32(h):
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def signatures(shingle_lists, num_perm=NUM_PERM, seed=SEED):
    """[(n_i,) uint32 shingle hashes per document] -> (num_perm, n_docs) uint32 signatures.
    All shingles of all documents are concatenated and processed in blocks: each block is one
    (num_perm, block) array op, then np.minimum.reduceat takes the minimum per document segment."""
    a, b = MinHash(num_perm=num_perm, seed=seed).permutations            # (num_perm,) uint32 each
    sig = np.full((num_perm, len(shingle_lists)), np.iinfo(np.uint32).max, dtype=np.uint32)
    lengths = np.array([len(s) for s in shingle_lists])
    if lengths.sum() == 0:
        return sig
    hashes = fmix32(np.concatenate(shingle_lists))                       # (N,)
    doc_of = np.repeat(np.arange(len(shingle_lists)), lengths)           # (N,) document of each shingle
    buffer = np.empty((num_perm, BLOCK), dtype=np.uint32)  # one allocation: fresh 64 MB temporaries page-fault
    for start in range(0, len(hashes), BLOCK):
        h, d = hashes[start:start + BLOCK], doc_of[start:start + BLOCK]
        perm = buffer[:, :len(h)]                                        # (num_perm, block)
        np.multiply(a[:, None], h[None, :], out=perm)                    # uint32: wraps mod 2^32
        np.add(perm, b[:, None], out=perm)
        seg = np.flatnonzero(np.r_[True, d[1:] != d[:-1]])               # where each document's run starts
        docs = d[seg]
        sig[:, docs] = np.minimum(sig[:, docs], np.minimum.reduceat(perm, seg, axis=1))
    return sig


# ---------------------------------------------------------------------------------------------------------
# 4. LSH: bands x rows from the threshold

def s_curve(s, bands, rows):
    """Probability that two documents of Jaccard s share at least one whole band."""
    return 1.0 - (1.0 - np.asarray(s, dtype=float) ** rows) ** bands


def choose_bands(threshold, num_perm=NUM_PERM, fn_weight=0.9):
    """The (bands, rows) with bands * rows <= num_perm that minimise the weighted area of mistakes:
    fp = integral over s < threshold of P(candidate), fn = integral over s >= threshold of 1 - P(candidate).
    (datasketch's _optimal_param does the same with equal weights.) A missed pair is lost for good, while a
    false candidate only costs one signature comparison, so misses weigh 0.9 here."""
    s_lo, s_hi = np.linspace(0, threshold, 501), np.linspace(threshold, 1, 501)
    best = None
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            fp = np.trapezoid(s_curve(s_lo, bands, rows), s_lo)
            fn = np.trapezoid(1 - s_curve(s_hi, bands, rows), s_hi)
            cost = (1 - fn_weight) * fp + fn_weight * fn
            if best is None or cost < best[0]:
                best = (cost, bands, rows)
    return best[1], best[2]


def s_curve_table(bands, rows):
    """Lines of text: P(candidate) against Jaccard, ours next to FineWeb's 14 bands x 8 rows."""
    lines = [f"  Jaccard  P(candidate) ours {bands}x{rows}   FineWeb 14x8"]
    for s in (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95):
        lines.append(f"   {s:4.2f}        {s_curve(s, bands, rows):6.3f}              {s_curve(s, 14, 8):6.3f}")
    return lines


# ---------------------------------------------------------------------------------------------------------
# 5. Dedup: exact, then near; clusters with union-find

def cluster_roots(pairs):
    """(m, 2) int64 pairs of duplicate documents -> (nodes (k,) sorted, root (k,)): every document in a
    pair and the smallest id of its cluster (the copy that is kept). Union-find as array operations: each
    round gives both ends of every pair the smaller of their labels, then jumps every label to its label's
    label; labels only fall and stay inside a cluster, so they settle on its smallest member in about
    log(cluster diameter) rounds. 94 bytes a pair at the peak, where a dict of Python ints and the pairs
    as tuples took ~290 (tracemalloc, 1M random pairs)."""
    nodes, ends = np.unique(np.asarray(pairs, dtype=np.int64).reshape(-1, 2), return_inverse=True)
    ends = ends.reshape(-1, 2)
    label = np.arange(len(nodes))
    while True:
        low = np.minimum(label[ends[:, 0]], label[ends[:, 1]])
        new = label.copy()
        np.minimum.at(new, ends[:, 0], low)
        np.minimum.at(new, ends[:, 1], low)
        new = new[new]
        if (new == label).all():
            return nodes, nodes[label]
        label = new


def clusters_from_pairs(n, pairs):
    """(i, j) pairs -> list of clusters (sorted index lists) with more than one member, by smallest member.
    Only documents that occur in a pair take part, so the cost follows the duplicates, not n."""
    nodes, root = cluster_roots(pairs)
    order = np.lexsort((nodes, root))
    groups = np.split(nodes[order], np.flatnonzero(np.diff(root[order])) + 1)
    return [g.tolist() for g in groups if len(g) > 1]


def candidate_pairs(sig, bands, rows, threshold):
    """Insert every signature into a MinHashLSH index, query each one -> set of (i, j) pairs, i < j."""
    lsh = MinHashLSH(threshold=threshold, num_perm=sig.shape[0], params=(bands, rows))
    minhashes = [LeanMinHash(seed=SEED, hashvalues=sig[:, i], scheme="affine32") for i in range(sig.shape[1])]
    with lsh.insertion_session() as session:
        for i, m in enumerate(minhashes):
            session.insert(i, m, check_duplication=False)
    return {(min(i, j), max(i, j)) for i, m in enumerate(minhashes) for j in lsh.query(m) if j != i}


def is_duplicate(i, j, estimate, threshold, num_perm, exact):
    """A candidate pair is a duplicate if its signature estimate says so clearly. Within 3 standard
    deviations of the threshold (sqrt(t (1 - t) / num_perm) = 0.025 at t = 0.8, 256 permutations) the
    estimate is close to a coin toss, so exact(i, j), the true Jaccard, decides: few pairs sit there, and
    without it pairs of J = 0.77 pass as duplicates (precision 0.94 on the benchmark instead of 1.0)."""
    if exact is None or abs(estimate - threshold) > 3 * np.sqrt(threshold * (1 - threshold) / num_perm):
        return estimate >= threshold
    return exact(i, j) >= threshold


def set_jaccard(a, b):
    """Jaccard of two shingle arrays as sets."""
    a, b = np.unique(a), np.unique(b)
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / max(1, len(a) + len(b) - inter)


def near_duplicate_pairs(shingle_lists, threshold=0.8, num_perm=NUM_PERM, bands=None, rows=None):
    """Shingle hashes per document -> (verified pairs [(i, j, estimated Jaccard)], info dict, signatures)."""
    if bands is None:
        bands, rows = choose_bands(threshold, num_perm)
    sig = signatures(shingle_lists, num_perm)
    cand = sorted(candidate_pairs(sig, bands, rows, threshold))
    est = np.array([]) if not cand else (sig[:, [i for i, _ in cand]] == sig[:, [j for _, j in cand]]).mean(0)
    exact = lambda i, j: set_jaccard(shingle_lists[i], shingle_lists[j])  # noqa: E731
    pairs = [(i, j, float(e)) for (i, j), e in zip(cand, est) if is_duplicate(i, j, e, threshold, num_perm, exact)]
    return pairs, {"bands": bands, "rows": rows, "candidates": len(cand), "verified": len(pairs)}, sig


def closest_pairs(sig, groups, threshold, k=3, max_docs=2000, block=16):
    """The k most similar pairs per group that stay *below* the threshold, by signature estimate over all
    pairs: what the dedup leaves in. groups: (n_docs,) label per document (pairs never cross groups).
    All pairs is n^2 / 2 * num_perm comparisons, so above max_docs documents only the first max_docs."""
    n = min(sig.shape[1], max_docs)
    sig, groups = sig[:, :n], np.asarray(groups[:n])
    found = []                                                           # (estimate, i, j)
    for start in range(0, n, block):
        rows = np.arange(start, min(start + block, n))
        est = (sig[:, rows, None] == sig[:, None, :]).sum(0) / sig.shape[0]  # (block, n)
        est[(np.arange(n)[None, :] <= rows[:, None]) | (groups[rows, None] != groups[None, :])] = -1
        est[est >= threshold] = -1                                       # those are duplicates, gone
        for g in set(groups[rows].tolist()):                             # top k of each group in this block
            part = np.where((groups[rows] == g)[:, None], est, -1)
            for r, j in zip(*np.unravel_index(np.argsort(part, axis=None)[-k:], part.shape)):
                if part[r, j] > 0:
                    found.append((float(part[r, j]), int(rows[r]), int(j)))
    out = []
    for g in dict.fromkeys(groups.tolist()):
        out += sorted((f for f in found if groups[f[1]] == g), reverse=True)[:k]
    return [(i, j, e) for e, i, j in out]


def dedup(texts, threshold=0.8, num_perm=NUM_PERM, near=True, verbose=True, groups=None):
    """Documents -> (keep: sorted indices of kept documents, report dict).
    Report: docs, exact_removed, near_removed, bands, rows, candidates, verified, clusters (lists of
    indices, first = kept), est_jaccard {(i, j): signature estimate} for the verified pairs, and
    near_misses [(i, j, estimate)]: the closest pairs below the threshold within each of `groups`
    (one label per text, e.g. its source; default one group)."""
    start = time.perf_counter()
    vocab, first_of, exact_pairs = {}, {}, []
    unique, shingle_lists = [], []               # near dedup sees each distinct, non-empty text once
    for i, text in enumerate(tqdm(texts, desc="dedup: shingles", unit=" docs", disable=not verbose, leave=False)):
        words = normalize(text)
        key = hashlib.sha1(" ".join(words).encode()).digest()
        if key in first_of and words:                # exact duplicate of an earlier document
            exact_pairs.append((first_of[key], i))
        else:
            first_of[key] = i
            if words:
                unique.append(i)
                shingle_lists.append(shingles32(word_ids(words, vocab)))
    info, near_pairs, near_misses = {"bands": None, "rows": None, "candidates": 0, "verified": 0}, [], []
    if near and unique:
        pairs, info, sig = near_duplicate_pairs(shingle_lists, threshold, num_perm)
        near_pairs = [(unique[i], unique[j], e) for i, j, e in pairs]
        labels = [0 if groups is None else groups[i] for i in unique]
        near_misses = [(unique[i], unique[j], e) for i, j, e in closest_pairs(sig, labels, threshold)]
    clusters = clusters_from_pairs(len(texts), exact_pairs + [(i, j) for i, j, _ in near_pairs])
    removed = {i for c in clusters for i in c[1:]}
    keep = [i for i in range(len(texts)) if i not in removed]
    near_misses = [(i, j, e) for i, j, e in near_misses if i not in removed and j not in removed]
    exact_removed = len(exact_pairs)
    report = dict(docs=len(texts), exact_removed=exact_removed, near_removed=len(removed) - exact_removed,
                  threshold=threshold, num_perm=num_perm, **info, seconds=time.perf_counter() - start,
                  clusters=sorted(clusters, key=len, reverse=True),
                  est_jaccard={(i, j): e for i, j, e in near_pairs}, near_misses=near_misses)
    if verbose:
        print_summary(report)
    return keep, report


# ---------------------------------------------------------------------------------------------------------
# 5b. The same at scale (prepare.py): the documents live in shards on disk, only compact keys come here.
#
# dedup() above holds every text and a datasketch index in memory. prepare.py keeps, per document, a
# 16-byte exact key and a signature on disk, and finds pairs one LSH band at a time: a band is one
# (n_docs,) array of 64-bit band keys, sorted; equal keys are a bucket. Memory: one band, not the corpus.

def exact_key(words):
    """The normalised text's sha1, first 16 bytes, as 2 uint64: equal keys <=> exact duplicates."""
    return np.frombuffer(hashlib.sha1(" ".join(words).encode()).digest()[:16], dtype=np.uint64)


def exact_duplicate_pairs(keys, ids):
    """keys: (n, 2) uint64 exact keys of documents ids (n,) -> (m, 2) pairs (first, later): every later
    document with the key of an earlier one, paired with the earliest (the one kept)."""
    order = np.lexsort((ids, keys[:, 1], keys[:, 0]))                   # by key, then by id
    k, d = keys[order], ids[order]
    same = np.r_[False, (k[1:] == k[:-1]).all(1)]                       # equal to the previous one
    first = d[np.maximum.accumulate(np.where(same, 0, np.arange(len(d))))]  # the first id of each run
    return np.stack([first[same], d[same]], axis=1)


def band_keys(sig, bands, rows):
    """(num_perm, n) signatures -> (bands, n) uint64: one hash per band; equal band rows -> equal keys."""
    part = sig[:bands * rows].reshape(bands, rows, -1).astype(np.uint64)
    keys = np.zeros((bands, sig.shape[1]), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for r in range(rows):
            keys = keys * np.uint64(0x100000001B3) + mix64(part[:, r] + np.uint64(r))
    return keys


def bucket_pairs(keys, ids, max_bucket=50):
    """One band: keys (n,) uint64 of documents ids (n,) -> (m, 2) candidate pairs (i < j) of documents in
    the same bucket. A bucket above max_bucket (a template copied 10,000 times) gives each member paired
    with the bucket's first document, not all k^2/2 pairs: union-find joins them all the same."""
    order = np.argsort(keys, kind="stable")
    k, d = keys[order], ids[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    sizes = np.diff(np.r_[starts, len(k)])
    pairs = [np.zeros((0, 2), dtype=np.int64)]
    for start, size in zip(starts[sizes > 1], sizes[sizes > 1]):
        members = np.sort(d[start:start + size])
        if size <= max_bucket:
            a, b = np.triu_indices(size, 1)
            pairs.append(np.stack([members[a], members[b]], axis=1))
        else:
            pairs.append(np.stack([np.full(size - 1, members[0]), members[1:]], axis=1))
    return np.concatenate(pairs)


def lsh_pairs(band_columns, signatures_of, threshold, exact=None):
    """band_columns: iterable of (keys, ids) per band; signatures_of(ids) -> (len(ids), num_perm);
    exact(i, j): the true Jaccard, for the pairs is_duplicate cannot decide by estimate.
    -> (verified pairs (m, 2) int64, number of candidates): an array, since on web data a third of the
    documents may be near copies."""
    cand = np.unique(np.concatenate([bucket_pairs(k, d) for k, d in band_columns] or [np.zeros((0, 2), np.int64)]),
                     axis=0)
    pairs = [np.zeros((0, 2), np.int64)]
    for start in range(0, len(cand), 100_000):                          # bounded: 100k pairs at a time
        c = cand[start:start + 100_000]
        a = signatures_of(c[:, 0])
        est = (a == signatures_of(c[:, 1])).mean(1)
        ok = [is_duplicate(i, j, e, threshold, a.shape[1], exact) for (i, j), e in zip(c.tolist(), est.tolist())]
        pairs.append(c[np.array(ok, dtype=bool)])
    return np.concatenate(pairs), len(cand)


def exact_jaccard(a, b, n=NGRAM):
    """True Jaccard of two texts' word n-gram sets (what the signatures estimate)."""
    vocab = {}
    sa, sb = (set(shingles32(word_ids(normalize(t), vocab), n).tolist()) for t in (a, b))
    return len(sa & sb) / max(1, len(sa | sb))


def print_summary(r):
    if r["bands"]:
        print(f"dedup: LSH {r['bands']} bands x {r['rows']} rows of a {r['num_perm']}-permutation signature "
              f"for threshold {r['threshold']}:")
        print("\n".join(s_curve_table(r["bands"], r["rows"])))
    n_removed = r["exact_removed"] + r["near_removed"]
    sizes = Counter(len(c) for c in r["clusters"])
    print(f"dedup: {r['docs']:,} docs -> {r['docs'] - n_removed:,} kept; removed {r['exact_removed']:,} exact "
          f"+ {r['near_removed']:,} near duplicates ({n_removed / max(1, r['docs']):.1%}); "
          f"{r['candidates']:,} LSH candidates, {r['verified']:,} verified; cluster sizes "
          f"{dict(sorted(sizes.items()))}; {r['seconds']:.1f} s")


def side_by_side(texts, names, i, j, width=38):
    """One line: the starts of documents i and j, their exact word-5-gram Jaccard, j's name."""
    left, right = (" ".join(texts[k].split())[:width].ljust(width) for k in (i, j))
    return f"  {left} | {right} | J={exact_jaccard(texts[i], texts[j]):.3f} {names[j]}"


def show_clusters(texts, names, clusters, k=3):
    """The k largest clusters side by side: kept document | removed one, with their exact 5-gram Jaccard."""
    lines = []
    for c in clusters[:k]:
        lines.append(f"cluster of {len(c)} (kept: {names[c[0]]})")
        lines += [side_by_side(texts, names, c[0], j) for j in c[1:4]]
    return lines


def show_near_misses(texts, names, near_misses):
    """The closest pairs that stayed, with the signature estimate and the exact Jaccard."""
    return [f"{names[i]} ~ {names[j]}: estimated J={e:.3f}, exact J={exact_jaccard(texts[i], texts[j]):.3f}"
            for i, j, e in near_misses]


# ---------------------------------------------------------------------------------------------------------
# 6. The command line: jsonl in, jsonl out

def read_jsonl(path, field):
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise SystemExit(f"{path}:{lineno}: not valid JSON") from None
            if not isinstance(row, dict) or not isinstance(row.get(field), str):
                raise SystemExit(f"{path}:{lineno}: no string field '{field}'")
            rows.append(row)
    return rows


def write_jsonl_atomic(path, rows):
    write_atomic(path, lambda f: f.writelines((json.dumps(row, ensure_ascii=False) + "\n").encode() for row in rows))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("input", nargs="?", help="a .jsonl file, one document per line")
    p.add_argument("--out", help="where to write the kept lines (.jsonl)")
    p.add_argument("--threshold", type=float, default=0.8, help="Jaccard above which two documents are duplicates")
    p.add_argument("--field", default="text", help="the JSON field holding the text")
    args = p.parse_args(argv)
    if not 0 < args.threshold < 1:
        raise SystemExit(f"--threshold {args.threshold}: must be between 0 and 1")
    if not args.input or not args.out:
        p.error("give IN.jsonl and --out OUT.jsonl (the benchmark is dedup_benchmark.py)")
    if not os.path.isfile(args.input):
        raise SystemExit(f"{args.input}: no such file")
    rows = read_jsonl(args.input, args.field)
    if not rows:
        raise SystemExit(f"{args.input}: no documents")
    texts = [r[args.field] for r in rows]
    keep, report = dedup(texts, args.threshold)
    names = [str(r.get("id", f"line {i + 1}")) for i, r in enumerate(rows)]
    print("\n".join(show_clusters(texts, names, report["clusters"])))
    if report["near_misses"]:
        print("closest pairs left in:\n" + "\n".join(show_near_misses(texts, names, report["near_misses"])))
    write_jsonl_atomic(args.out, [rows[i] for i in keep])
    print(f"wrote {len(keep):,} of {len(rows):,} lines -> {args.out}")


if __name__ == "__main__":
    main()
