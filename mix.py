"""
mix.py: which documents go into train.bin and val.bin, so that each source gets its asked share of tokens.

    python prepare.py --mix shakespeare=0.7,code=0.3            # prepare.py calls these with its documents

Unlike prepare.py, which finds the documents, this file only sees numbers: tokens per document, per
source. A source that must repeat takes whole shuffled epochs (at most --max-epochs); the last partial
epoch is filled greedily. val.bin follows the same shares without repeats, or the report says why not.
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


def plan_mix(counts, shares, rng, max_epochs=4.0, total=None, label="train"):
    """counts: {source: (n_docs,) tokens per document}; shares: {source: fraction of tokens}.
    Returns ({source: document indices, repeats allowed}, {source: asked, tokens, epochs, achieved}).
    The total defaults to the largest one no source must repeat for: min over sources of available/share.
    A source that must repeat takes whole shuffled epochs, capped at max_epochs: Muennighoff et al. 2023
    ("Scaling Data-Constrained Language Models") find up to ~4 epochs of repeated data almost as good as
    fresh data, and quickly diminishing returns beyond. The last partial epoch is filled greedily, one
    document at a time, with every document that brings the count closer to the target."""
    avail = {s: int(c.sum()) for s, c in counts.items()}
    if total is None:
        total = min([avail[s] / shares[s] for s in counts if shares[s] > 0 and avail[s] > 0] or [0])
    picks, info = {}, {}
    for s, c in counts.items():
        want = shares[s] * total
        if avail[s] == 0 or want == 0:
            picks[s], info[s] = [], {"asked": shares[s], "tokens": 0, "epochs": 0.0}
            continue
        if want > max_epochs * avail[s]:
            print(f"warning: {label}: {s} would need {want / avail[s]:.1f} epochs for its share; capped at "
                  f"{max_epochs:g} (repeats beyond ~4 epochs add little: Muennighoff et al. 2023)")
            want = max_epochs * avail[s]
        chosen, got = [], 0
        while want - got >= avail[s]:
            chosen += rng.permutation(len(c)).tolist()
            got += avail[s]
        for i in rng.permutation(len(c)):
            if abs(got + int(c[i]) - want) < abs(got - want):  # Python ints: totals pass 2^31 (10 GB of text)
                chosen.append(int(i))
                got += int(c[i])
        picks[s], info[s] = chosen, {"asked": shares[s], "tokens": got, "epochs": got / avail[s]}
    grand = max(1, sum(v["tokens"] for v in info.values()))
    for v in info.values():
        v["achieved"] = v["tokens"] / grand
    return picks, info


def choose_bins(source_codes, is_val, tokens, names, shares, args):
    """Final documents (source_codes: positions in names, is_val, tokens per document) -> ({bin file
    name: document indices, int32}, {"train"/"val": plan_mix info}). train.bin and val.bin follow the mix
    (val.bin without repeats); val_<source>.bin holds all of a source's val documents."""
    of = {s: source_codes == c for c, s in enumerate(names)}  # (n,) bool per source
    present = [s for s in names if of[s].any()]
    if shares is None:  # no --mix: every document once, so the shares are whatever the data has
        shares = {s: 1.0 for s in present} if len(present) == 1 else None
    rng = np.random.default_rng(args.seed)
    bins, mix_info = {}, {}
    for split_name, want_val in (("train", False), ("val", True)):
        idx = {s: np.flatnonzero(of[s] & (is_val == want_val)).astype(np.int32) for s in present}
        counts = {s: tokens[idx[s]] for s in present}
        asked = shares or {s: counts[s].sum() / max(1, sum(c.sum() for c in counts.values())) for s in present}
        asked = {s: asked.get(s, 0.0) for s in present}
        total = args.train_tokens if split_name == "train" else None
        picks, mix_info[split_name] = plan_mix(counts, asked, rng, args.max_epochs if split_name == "train" else 1,
                                               total, split_name)
        chosen = np.concatenate([idx[s][np.asarray(picks[s], dtype=np.int64)] for s in present]
                                or [np.zeros(0, np.int32)])
        if split_name == "train":  # shuffled, so that training does not read one source after the other
            chosen = chosen[rng.permutation(len(chosen))]
        bins[f"{split_name}.bin"] = chosen
    off = [s for s, v in mix_info["val"].items() if abs(v["achieved"] - v["asked"]) > 0.02]
    if off:  # val follows train's shares unless a source has too few val documents to reach its share
        mix_info["val_note"] = (f"val.bin cannot follow the asked shares: {', '.join(off)} "
                                f"{'has' if len(off) == 1 else 'have'} too few val documents for an exact share")
    bins.update({f"val_{s}.bin": np.flatnonzero(of[s] & is_val).astype(np.int32) for s in present if (of[s] & is_val).any()})
    return bins, mix_info
