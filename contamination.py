"""
contamination.py: long word n-grams shared between training text and evaluation text (val documents,
benchmark items), counted per item.

    python prepare.py --contamination hellaswag.jsonl arc.jsonl    # prepare.py runs it on every dataset

A 13-word sequence almost never repeats by chance (GPT-3, Brown et al. 2020, used 13-grams to find test
sets leaked into training data), so a shared 13-gram means shared text. Naive first (overlap_naive: one
np.isin of every item against all train n-grams, cost items x train), then linear (overlap: the items'
n-grams, which are few, as one sorted table; train streamed through it once, per shard, in parallel).
Both give the same numbers (tests/test_prepare_shards.py). The n-grams are dedup.py's word hashes.
"""
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import shards
from common import UserError, peak_rss_mb
from dedup import ngram_hashes, normalize, word_ids

#
def ngram_set(texts, vocab, n=13):
    """Texts -> sorted unique uint64 hashes of all their normalised word n-grams."""
    parts = [ngram_hashes(word_ids(w, vocab), n) for w in map(normalize, texts) if len(w) >= n]
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.uint64)


def overlap_naive(train_texts, items, n=13, worst=3):
    """items: [(name, text)] -> {"items", "contaminated" (items sharing any n-gram with train),
    "ngram_overlap" (fraction of all item n-grams found in train), "worst": [(name, fraction)]}.
    Items shorter than n words are checked as one n-gram of all their words.
    The naive way: np.isin sorts the whole train set again for every item, so the cost is items x train.
    overlap() below gives the same numbers in one pass over train."""
    vocab = {}
    train = ngram_set(train_texts, vocab, n)
    fractions, hit, total = [], 0, 0
    for name, text in tqdm(items, desc=f"contamination: {n}-grams", unit=" items", leave=False):
        ids = word_ids(normalize(text), vocab)
        h = np.unique(ngram_hashes(ids, n)) if len(ids) else np.zeros(0, dtype=np.uint64)
        shared = int(np.isin(h, train, assume_unique=True).sum()) if len(h) else 0
        hit, total = hit + shared, total + len(h)
        fractions.append((name, shared / max(1, len(h))))
    worst_items = sorted(fractions, key=lambda x: -x[1])[:worst]
    return {"items": len(items), "contaminated": sum(f > 0 for _, f in fractions),
            "ngram_overlap": hit / max(1, total), "worst": [(nm, round(f, 4)) for nm, f in worst_items if f > 0]}


def item_ngrams(items, n=13):
    """items [(name, text)] -> (hashes, item_of): every item's unique n-gram hashes, concatenated, and the
    item each belongs to. The evaluation side is small, so it is held in memory."""
    parts, vocab = [], {}
    for text in (t for _, t in items):
        ids = word_ids(normalize(text), vocab)
        parts.append(np.unique(ngram_hashes(ids, n)) if len(ids) else np.zeros(0, dtype=np.uint64))
    item_of = np.repeat(np.arange(len(items)), [len(p) for p in parts])
    return (np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)), item_of


def found_ngrams(table, train_texts, n=13):
    """table: sorted unique (m,) uint64 -> sorted indices into it of the n-grams that occur in train_texts.
    Linear in the train text, whatever the number of items: a filter of 2^24 bits (the top 24 bits of the
    table's hashes) answers "certainly not in the table" for most n-grams in one lookup; only the rest pay
    for a binary search."""
    found, vocab = [], {}
    maybe = np.zeros(1 << 24, dtype=bool)
    maybe[(table >> np.uint64(40)).astype(np.intp)] = True
    for text in train_texts:
        if len(vocab) > 1_000_000:  # a memo of word hashes, not a vocabulary: keep it bounded
            vocab.clear()
        ids = word_ids(normalize(text), vocab)
        if not len(ids) or not len(table):
            continue
        h = ngram_hashes(ids, n)
        h = h[maybe[(h >> np.uint64(40)).astype(np.intp)]]
        pos = np.minimum(np.searchsorted(table, h), len(table) - 1)
        found.append(pos[table[pos] == h])
    return np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)


def overlap_report(items, hashes, item_of, table, found, worst=3):
    """The overlap dict (as overlap_naive's) from the items' n-grams and the found indices into table."""
    hit = np.zeros(len(table), dtype=bool)
    hit[found] = True
    shared = np.bincount(item_of, weights=hit[np.searchsorted(table, hashes)], minlength=len(items))
    total = np.bincount(item_of, minlength=len(items))
    fractions = [(name, s / max(1, t)) for (name, _), s, t in zip(items, shared, total)]
    worst_items = sorted(fractions, key=lambda x: -x[1])[:worst]
    return {"items": len(items), "contaminated": int(sum(f > 0 for _, f in fractions)),
            "ngram_overlap": float(shared.sum() / max(1, total.sum())),
            "worst": [(nm, round(float(f), 4)) for nm, f in worst_items if f > 0]}


def overlap(train_texts, items, n=13, worst=3):
    """overlap_naive's result, linear in train: hold the items' n-grams as one sorted table, stream train
    through found_ngrams (prepare.py does that per shard, in parallel), then count per item."""
    hashes, item_of = item_ngrams(items, n)
    table = np.unique(hashes)
    return overlap_report(items, hashes, item_of, table, found_ngrams(table, train_texts, n), worst)


def contamination_shard(clean_dir, local_path, boilerplate, table_path, n):
    """Per shard, in a worker: indices into the sorted n-gram table (a .npy, memory-mapped) that the
    documents of a clean_shard directory at the positions in local_path (a .npy) contain, as the bins
    hold them."""
    cpu = time.process_time()
    local = np.load(local_path)
    table = np.load(table_path, mmap_mode="r")
    found = found_ngrams(table, shards.final_texts(clean_dir, local, boilerplate), n)
    return {"found": found, "docs_in": len(local), "docs_out": len(local), "peak_rss_mb": peak_rss_mb(),
            "bytes": 0, "reused": False, "cpu_seconds": round(time.process_time() - cpu, 3)}


def strings_in(value):
    """All strings inside a JSON value, in order: a HellaSwag line's ctx and endings, an ARC question..."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return []


def benchmark_items(path):
    """A benchmark .jsonl -> [(file:line, all its strings joined)]: one item per line."""
    items = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    items.append((f"{Path(path).name}:{lineno}", " ".join(strings_in(json.loads(line)))))
                except json.JSONDecodeError:
                    raise UserError(f"{path}:{lineno}: not valid JSON (--contamination)") from None
    return items




VAL_CHECK_MB = 20  # the val documents checked for contamination, at most: their n-grams stay in memory


def check_train(clean_dirs, index, picks_dir, is_val, boilerplate, args, work, opts, n=13):
    """13-gram overlap of val (a random sample of at most VAL_CHECK_MB; is_val(k) -> (n_k,) bool, shard k's
    val documents) and of each --contamination file with the documents of train.bin (picks_dir/k.npy:
    shard k's, written by prepare.write_bins). prepare.py's last stage. -> ({"n", "val", file:
    overlap_report's dict}, stage record)."""
    val, total = [], 0
    for g in shards.sample_docs(clean_dirs, index, is_val, VAL_CHECK_MB, args.seed, salt=3):
        if total >= VAL_CHECK_MB * 1e6:  # ~8 bytes of table per word: keep it bounded
            break
        val.append((g, shards.final_text(clean_dirs, index, g, boilerplate)))
        total += len(val[-1][1].encode("utf-8", "surrogatepass"))
    val.sort()
    val_names = shards.names_of(clean_dirs, index, [g for g, _ in val], with_source=False)
    groups = {"val": [(nm, text) for nm, (_, text) in zip(val_names, val) if text.strip()]}
    for path in args.contamination:
        groups[str(path)] = benchmark_items(path)
    per_group = {g: item_ngrams(items, n) for g, items in groups.items()}
    table = np.unique(np.concatenate([h for h, _ in per_group.values()] or [np.zeros(0, np.uint64)]))
    table_path = Path(tempfile.mkdtemp(dir=work, prefix=".contamination-")) / "table.npy"
    try:
        np.save(table_path, table)
        tasks, sizes = [], []
        for k, d in enumerate(clean_dirs):
            picks = picks_dir / f"{k}.npy"  # prepare.write_bins wrote one per shard
            if len(np.load(picks, mmap_mode="r")):
                tasks.append((d, str(picks), boilerplate, table_path, n))
                sizes.append(int(np.load(d / "offsets.npy")[-1]))
        hit = np.zeros(len(table), dtype=bool)  # which table n-grams train contains, ORed in shard by shard

        def fold(result):  # a shard's found indices are up to len(table) long: never hold one per shard
            hit[result.pop("found")] = True
            return result
        _, record = shards.run_stage("contamination", contamination_shard, tasks, sizes, opts, fold)
    finally:
        shutil.rmtree(table_path.parent, ignore_errors=True)
    found = np.flatnonzero(hit)
    out = {"n": n}
    for g, items in groups.items():
        hashes, item_of = per_group[g]
        out[g] = overlap_report(items, hashes, item_of, table, found)
    return out, record
