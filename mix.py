"""
mix.py: which documents go into train.bin and val.bin, so that each source gets its asked share of tokens.

    python prepare.py --mix shakespeare=0.7,code=0.3            # prepare.py calls these with its documents

Unlike prepare.py, which finds the documents, this file only sees numbers: documents per shard, a random
key per document (shards.doc_random: the same however the corpus is cut), tokens per source. A source
that must repeat takes whole epochs (at most --max-epochs); the last partial epoch is the documents
whose key falls below a limit. val.bin follows the same shares without repeats, or the report says why not.
"""
import math

import numpy as np

from common import UserError



def parse_mix(text, names):
    """'a=3,b=1' -> {a: 0.75, b: 0.25}. Every source must be named (0 leaves one out on purpose)."""
    shares = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        if name.strip() not in names:
            raise UserError(f"--mix {text}: unknown source '{name.strip()}' (sources: {', '.join(names)})")
        try:
            shares[name.strip()] = float(value)
        except ValueError:
            raise UserError(f"--mix {text}: '{part}' is not NAME=SHARE") from None
    bad = [n for n, v in shares.items() if not math.isfinite(v) or v < 0]
    if bad:
        raise UserError(f"--mix {text}: the share of {bad[0]} must be a finite number >= 0")
    missing = [n for n in names if n not in shares]
    if missing:
        raise UserError(f"--mix {text}: source {missing[0]} has no share; give it one (=0 leaves it out)")
    total = sum(shares.values())
    if total <= 0:
        raise UserError(f"--mix {text}: shares must not all be 0")
    if abs(total - 1) > 1e-9:
        print("mix: shares normalized to " + ", ".join(f"{n}={v / total:.4g}" for n, v in shares.items()))
    return {n: shares[n] / total for n in names}


def val_thresholds(kept, source_of_shard, names, val_frac, keys_of):
    """kept: (S,) documents dedup kept per shard; source_of_shard: (S,) positions in names; keys_of(k) ->
    random keys in [0, 1) of shard k's kept documents -> (len(names),) thresholds: a kept document goes to
    val when its key is at most its source's threshold (-1: no val). Per source that is the round(val_frac
    x its documents) smallest keys (at least one if it has two): a uniform random subset, found with one
    pass that keeps only the smallest keys so far, never a list of all documents."""
    kept, source_of_shard = np.asarray(kept, dtype=np.int64), np.asarray(source_of_shard)
    n_val, smallest = {}, {}
    for c, source in enumerate(names):
        total = int(kept[source_of_shard == c].sum())
        n_val[c] = max(1, round(val_frac * total)) if total >= 2 else 0
        if total == 1:
            print(f"warning: source {source} has one document, so no val_{source}.bin")
        smallest[c] = np.zeros(0)
    for k, c in enumerate(source_of_shard):
        if n_val[c]:
            both = np.concatenate([smallest[c], keys_of(k)])
            smallest[c] = np.partition(both, n_val[c] - 1)[:n_val[c]] if len(both) > n_val[c] else both
    return np.array([smallest[c].max() if n_val[c] else -1.0 for c in range(len(names))])


def plan_mix(avail, shares, max_epochs=4.0, total=None, label="train"):
    """avail: {source: tokens available}; shares: {source: fraction of tokens} -> {source: tokens to take}.
    The total defaults to the largest one no source must repeat for: min over sources of available/share.
    A source that must repeat is capped at max_epochs: Muennighoff et al. 2023 ("Scaling Data-Constrained
    Language Models") find up to ~4 epochs of repeated data almost as good as fresh data, and quickly
    diminishing returns beyond."""
    if total is None:
        total = min([avail[s] / shares[s] for s in avail if shares[s] > 0 and avail[s] > 0] or [0])
    want = {}
    for s in avail:
        want[s] = shares[s] * total if avail[s] else 0
        if want[s] > max_epochs * avail[s]:
            print(f"warning: {label}: {s} would need {want[s] / avail[s]:.1f} epochs for its share; capped at "
                  f"{max_epochs:g} (repeats beyond ~4 epochs add little: Muennighoff et al. 2023)")
            want[s] = max_epochs * avail[s]
    return want


KEY_BINS = 1 << 16  # the tokens of a source, by the random key of their document: 65,536 bins


def key_histogram(keys, tokens):
    """(KEY_BINS,) tokens per key bin: summed shard by shard, it tells how many tokens lie below any key."""
    return np.bincount(np.minimum((keys * KEY_BINS).astype(np.int64), KEY_BINS - 1), weights=tokens,
                       minlength=KEY_BINS)


def copies(want, avail, hist):
    """How a source gives `want` tokens out of `avail`: -> (full epochs, key limit). Every document goes in
    `full` times, and once more if its random key is below the limit: a uniform random subset for the
    partial epoch, chosen at the bin edge of hist where the tokens come closest to what is left (off by at
    most one bin's documents: one document on a small corpus, nothing visible on a large one)."""
    if avail <= 0 or want <= 0:
        return 0, 0.0
    full = int(want // avail)
    below = np.r_[0.0, np.cumsum(hist)]  # below[i]: tokens of documents with key < i / KEY_BINS
    return full, float(np.argmin(np.abs(below - (want - full * avail)))) / KEY_BINS


def achieved(info):
    """{source: {"asked", "tokens", "epochs"}} -> the same with "achieved": each source's share of the tokens."""
    grand = max(1, sum(v["tokens"] for v in info.values()))
    return {s: {**v, "achieved": v["tokens"] / grand} for s, v in info.items()}
