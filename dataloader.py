"""
dataloader.py — what train.py reads: a prepare.py dataset directory, and batches of random windows from its bins.

    data/NAME/  meta.json  train.bin  val.bin  val_<source>.bin  tokenizer/     (uint16 token ids)

Random, not sequential: the global batch of optimizer step d is rows = batch_size x accumulation x ranks
windows whose offsets come from a numpy Generator seeded by (seed, 0, d). Micro-step m of rank r takes
rows [(m * world_size + r) * batch_size, ... + batch_size). Nothing to save but d, so a resumed run draws
exactly the batches it would have drawn, and 1 rank x 4 rows x 2 micro-steps, 2 ranks x 4 rows x 1,
and 1 rank x 8 rows x 1 all train on the same 8 windows. The price: windows overlap and repeat, and some
tokens are never seen in an epoch, which is harmless at our few-epoch scale.

The memmap is re-opened per batch (as nanoGPT does): a long-lived one keeps every page it touched
mapped, which inflates the RSS we report as peak memory; opening a mmap costs ~20 us.

Unlike prepare.py (which writes the bins), this only reads them; train.py adds what is the loop's own:
which rows this rank and micro-step take, and the fault injection.
"""
import hashlib
import json

import numpy as np
import torch

from common import UserError, dataset_path


def read_dataset(dataset, block_size):
    """(data_dir, meta.json, the val bins present) after checking the bins are long enough."""
    data_dir = dataset_path(dataset)
    meta_path = data_dir / "meta.json"
    if not meta_path.is_file():
        raise UserError(f"{meta_path}: no such file (build the dataset with `python prepare.py`)")
    try:
        meta = json.loads(meta_path.read_text())
        bins = ["train.bin"] + sorted(b for b in meta["bins"] if b.startswith("val") and b.endswith(".bin"))
    except (ValueError, KeyError, TypeError) as error:
        raise UserError(f"{meta_path}: not a prepare.py meta.json ({type(error).__name__}: {error})") from None
    for name in bins:
        path = data_dir / name
        if not path.is_file() or path.stat().st_size // 2 <= block_size + 1:
            raise UserError(f"{path}: missing or shorter than block_size + 1 = {block_size + 1} tokens")
    return data_dir, meta, bins[1:]


def dataset_hash(meta):
    """What a resume must find unchanged besides the tokenizer: every bin's tokens, bytes and documents.
    (Another dataset with the same tokenizer would silently change the data and the val loss.)"""
    bins = {name: [info.get("tokens"), info.get("bytes"), info.get("docs")] for name, info in meta["bins"].items()}
    return hashlib.sha256(json.dumps(bins, sort_keys=True).encode()).hexdigest()[:16]


def batch_shape(cfg, world_size):
    """(micro-batches per step, rows per global batch): tokens_per_step, if set, decides the accumulation."""
    accum = cfg.gradient_accumulation_steps
    if cfg.tokens_per_step:  # accumulate micro-batches until one step sees tokens_per_step tokens
        per_micro = cfg.batch_size * cfg.block_size * world_size
        if cfg.tokens_per_step % per_micro:
            raise UserError(f"config: tokens_per_step={cfg.tokens_per_step} is not a multiple of batch_size x "
                            f"block_size x processes = {per_micro}")
        accum = cfg.tokens_per_step // per_micro
    return accum, cfg.batch_size * accum * world_size


def window_starts(n_tokens, block_size, rows, key):
    """(rows,) offsets of windows of block_size + 1 tokens in a bin of n_tokens: 0 .. n_tokens - block_size - 1,
    both ends included (integers' high is exclusive), so the bin's last token can be a target too."""
    return np.random.default_rng(key).integers(0, n_tokens - block_size, size=rows)


def read_windows(path, starts, length):
    """(len(starts), length) int64: the windows of a uint16 bin at those offsets."""
    data = np.memmap(path, dtype=np.uint16, mode="r")
    return torch.from_numpy(np.stack([data[s:s + length] for s in starts]).astype(np.int64))


def bin_length(path):
    return len(np.memmap(path, dtype=np.uint16, mode="r"))


def to_device(xy, device):
    """xy (B, T + 1) -> x, y (B, T): inputs and next-token targets. Pinned + non_blocking lets the copy
    overlap GPU work."""
    if device.type == "cuda":
        xy = xy.pin_memory().to(device, non_blocking=True)
    return xy[:, :-1], xy[:, 1:]
