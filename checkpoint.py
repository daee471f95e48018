"""
checkpoint.py — everything about checkpoints, in one place: train.py saves, resumes and rolls back with
it; sample.py and eval.py load with it; `python checkpoint.py consolidate` merges a sharded one.

    python checkpoint.py consolidate out/RUN/ckpt_0001000 out/RUN/ckpt_0001000.pt   # for sample.py/eval.py
    python checkpoint.py list out/RUN                                             # what a run has

What a checkpoint holds (nanochat's habit: weights + readable metadata + the loop's and data's state):
    model, optimizer           the weights and AdamW's m, v (what a resume needs to be bit-identical)
    model_config               GPTConfig as a dict: sample.py rebuilds the model from it alone
    tokenizer_hash, dataset_hash  the same ids with another tokenizer or val set would mean something else
    step, data_state, rng      where the loop and the batch sampler stand, the RNG of every rank
    monitor, scaler, config, time_s

Two layouts. One file out_dir/NAME.pt written by rank 0 (one process, or DDP: every rank holds the same
weights). Or, when the state is sharded over ranks (ZeRO-1, FSDP), a directory out_dir/NAME/ that every
rank writes its shards into (torch.distributed.checkpoint), loadable at any world size.

Both are atomic: written under a temporary name and renamed when complete, so a kill, a crash or a full
disk at any moment leaves the previous checkpoint intact, and listing a run never sees half of one.
"""
import argparse
import dataclasses
import os
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (get_model_state_dict, get_optimizer_state_dict,
                                                     set_model_state_dict, set_optimizer_state_dict)

from common import UserError, cli, fsync_dir, write_atomic
from parallel import barrier, local_optimizer, rank_and_world_size

# -----------------------------------------------------------------------------
# 1. One file: rank 0 writes the whole state


def save_file(obj, path, slow_s=0.0):
    """torch.save, atomically. slow_s (fault injection) sleeps while the temp file is half-way: the
    window in which the tests kill -9 the run."""
    def write(f):
        torch.save(obj, f)
        time.sleep(slow_s)
    write_atomic(path, write)


def save(out_dir, name, model, ddp_model, optimizer, meta, sharded, slow_s=0.0):
    """out_dir/NAME.pt, or the directory out_dir/NAME when sharded. Every rank calls it.
    model: the GPT itself; ddp_model: it as wrapped for several processes (DCP reads either layout)."""
    out_dir = Path(out_dir)
    if sharded:
        save_sharded(out_dir / name, ddp_model, optimizer, meta)
    elif rank_and_world_size()[0] == 0:
        save_file({**meta, "model": model.state_dict(), "optimizer": optimizer.state_dict()},
                  out_dir / f"{name}.pt", slow_s)
    barrier()  # nobody reads it (a rollback) before the rename


def load_into(path, model, ddp_model, optimizer, meta):
    """Fill model and optimizer from the checkpoint at path (meta: what newest() returned for it); returns
    the checkpoint's metadata for this rank."""
    if Path(path).is_dir():
        return load_sharded(path, ddp_model, optimizer)
    model.load_state_dict(meta["model"])
    optimizer.load_state_dict(meta["optimizer"])
    return meta


def rng_states():
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_states(state):
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def gather_rng_states():
    """Every rank's RNG states, in rank order (each rank draws its own dropout/sampling streams)."""
    _, world_size = rank_and_world_size()
    if world_size == 1:
        return [rng_states()]
    states = [None] * world_size
    dist.all_gather_object(states, rng_states())
    return states


# -----------------------------------------------------------------------------
# 2. Sharded checkpoints that load at any world size (torch.distributed.checkpoint)
#
# A checkpoint is a directory: DCP's .distcp files (each rank writes the shards it owns; replicated DDP
# tensors are written once), DCP's .metadata (which byte range of which file holds which slice of which
# tensor), and extra_rank{R}.pt (step, config, RNG... of rank R). Tensors are keyed by the plain
# parameter names ("transformer.h.0.attn.c_attn.weight") whatever the wrapper, so a checkpoint written by
# FSDP on 2 ranks loads into DDP, ZeRO-1 or FSDP on 1, 4 or 8 ranks: DCP reads each rank's new slice.
# Optimizer states are saved per parameter name ("state" only); hyperparameters and param groups come
# from the config of the resuming run (ZeRO-1 on another world size has different local groups).


def _state(model, optimizer, with_optimizer):
    """What DCP saves or fills: {"model": ..., "optimizer": ...}, and the optimizer's param groups.

    Asked for the state of an optimizer that has not stepped yet, torch creates it by running one step
    with zero grads and lr 0: the weights stay, but Adam's step count becomes 1 and every later bias
    correction shifts. So a save before the first step (best.pt at step 0) leaves the optimizer out.
    """
    state = {"model": get_model_state_dict(model)}
    if not with_optimizer:
        return state, None
    optim_state = get_optimizer_state_dict(model, local_optimizer(optimizer))
    state["optimizer"] = optim_state["state"]
    return state, optim_state["param_groups"]


def save_sharded(ckpt_dir, model, optimizer, extra):
    """Collective: every rank calls it. Atomic: written to .NAME.tmp beside it, renamed by rank 0 when
    complete (a leading dot, so a half-written one never matches a run's ckpt_* listing).

    extra: this rank's small state (step, config, rng, data position...), a torch.save-able dict.
    """
    rank, world_size = rank_and_world_size()
    parent, name = os.path.split(os.path.abspath(ckpt_dir))
    tmp, old = os.path.join(parent, f".{name}.tmp"), os.path.join(parent, f".{name}.old")
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)  # left by a run killed mid-save
    barrier()
    state, _ = _state(model, optimizer, with_optimizer=bool(local_optimizer(optimizer).state))
    # without a process group (plain `python train.py`) DCP reads and writes as a single process
    dcp.save(state, checkpoint_id=tmp, no_dist=not dist.is_initialized())  # fsyncs every file it writes
    write_atomic(os.path.join(tmp, f"extra_rank{rank}.pt"),
                 lambda f: torch.save({**extra, "world_size": world_size}, f))
    barrier()  # every rank's files are in tmp
    if rank == 0:
        if os.path.exists(ckpt_dir):  # saving the same step twice: keep the old one until the swap
            os.replace(ckpt_dir, old)
        os.replace(tmp, ckpt_dir)
        shutil.rmtree(old, ignore_errors=True)
        fsync_dir(parent)
    barrier()  # nobody goes on (or prunes old checkpoints) before the rename


def load_sharded(ckpt_dir, model, optimizer):
    """Collective. Fills model and optimizer in place from ckpt_dir (any saving world size); returns extra.

    extra is this rank's own when the world size is unchanged, otherwise rank 0's, with
    extra["world_size"] telling which: per-rank state such as RNG streams must then be re-derived.
    """
    if not os.path.isfile(os.path.join(ckpt_dir, ".metadata")):
        raise UserError(f"{ckpt_dir}: not a sharded checkpoint (no .metadata)")
    saved = dcp.FileSystemReader(ckpt_dir).read_metadata().state_dict_metadata
    with_optimizer = any(key.startswith("optimizer.") for key in saved)
    state, param_groups = _state(model, optimizer, with_optimizer)  # the shapes and shards THIS run wants
    dcp.load(state, checkpoint_id=ckpt_dir, no_dist=not dist.is_initialized())  # each rank: its slices
    set_model_state_dict(model, state["model"])
    if with_optimizer:
        set_optimizer_state_dict(model, local_optimizer(optimizer),
                                 {"state": state["optimizer"], "param_groups": param_groups})
    else:  # saved before the first step: the optimizer starts afresh, as it did then
        local_optimizer(optimizer).state.clear()
    rank, world_size = rank_and_world_size()
    extra = torch.load(os.path.join(ckpt_dir, "extra_rank0.pt"), weights_only=False)
    if extra["world_size"] == world_size:
        extra = torch.load(os.path.join(ckpt_dir, f"extra_rank{rank}.pt"), weights_only=False)
    return extra


def consolidate(ckpt_dir, out_file):
    """One process, no GPU: gather the sharded weights into a single run-dir checkpoint file.

    The file has the keys sample.py/eval.py read (model, model_config, config, tokenizer_hash, step, ...:
    everything rank 0 put in extra); the optimizer states stay in the directory (resume from there).
    """
    metadata = dcp.FileSystemReader(ckpt_dir).read_metadata()
    # an empty tensor of the saved full shape for every model entry; DCP fills them from all the shards
    model_state = {key.removeprefix("model."): torch.empty(meta.size, dtype=meta.properties.dtype)
                   for key, meta in metadata.state_dict_metadata.items() if key.startswith("model.")}
    dcp.load({"model": model_state}, checkpoint_id=ckpt_dir, no_dist=True)
    extra = torch.load(os.path.join(ckpt_dir, "extra_rank0.pt"), weights_only=False)
    checkpoint = {**extra, "model": model_state}
    write_atomic(out_file, lambda f: torch.save(checkpoint, f))
    return checkpoint


# -----------------------------------------------------------------------------
# 3. A run's checkpoints: list, prune, the newest that loads


def list_checkpoints(out_dir):
    """A run's complete ckpt_* checkpoints (files and sharded directories), oldest first. Names carry a
    zero-padded step (ckpt_0000500.pt), so sorting by name sorts by step; temp names start with a dot."""
    out_dir = Path(out_dir)
    files = [p for p in out_dir.glob("ckpt_*.pt") if p.is_file()]
    dirs = [p for p in out_dir.glob("ckpt_*") if (p / ".metadata").is_file()]
    return sorted(files + dirs, key=lambda p: p.name)


def prune(out_dir, keep_last):
    """Rank 0: delete all but the newest keep_last checkpoints (best.pt is not among them)."""
    if rank_and_world_size()[0] == 0:
        for path in list_checkpoints(out_dir)[:-keep_last]:
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def read_meta(path):
    """The metadata of a checkpoint: for a .pt file the whole checkpoint; for a directory, rank 0's extra."""
    path = Path(path)
    return torch.load(path / "extra_rank0.pt" if path.is_dir() else path, map_location="cpu", weights_only=False)


def newest(out_dir, with_best=False):
    """(path, metadata) of the newest checkpoint that loads, or (None, None); a broken one (a disk error,
    a file from before atomic writes) is reported and skipped. with_best: best.pt is the last resort."""
    candidates = list_checkpoints(out_dir)
    if with_best:
        candidates = [Path(out_dir) / "best.pt", Path(out_dir) / "best"] + candidates
    for path in reversed([p for p in candidates if p.exists()]):
        try:
            return path, read_meta(path)
        except Exception as error:
            print(f"{path}: unreadable ({type(error).__name__}), trying an older checkpoint", file=sys.stderr)
    return None, None


def check_compatible(meta, model_config, tok_hash, path):
    """Resuming with another model shape or tokenizer is an error, not a silent mess."""
    theirs, ours = meta["model_config"], dataclasses.asdict(model_config)
    diff = [f"{k}={theirs.get(k)!r} (now {ours[k]!r})" for k in ours
            if k not in ("activation_checkpointing", "kernels") and theirs.get(k) != ours[k]]
    if diff:
        raise UserError(f"{path}: checkpoint model differs from the config: {', '.join(diff)}")
    if meta["tokenizer_hash"] != tok_hash:
        raise UserError(f"{path}: checkpoint tokenizer hash {meta['tokenizer_hash']} != the dataset's "
                        f"{tok_hash}: this run was trained with another tokenizer")


# -----------------------------------------------------------------------------
# 4. Loading for inference (sample.py, eval.py): a file or a run directory, weights on the CPU


def find_checkpoint(path):
    """A checkpoint file or directory, or a run dir -> (its newest readable checkpoint, the loaded dict).
    In a run dir: the newest ckpt_* first, best.pt if none of them loads."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such checkpoint file or run directory")
    if path.is_file() or (path / ".metadata").is_file():
        return path, read_checkpoint(path)
    for candidate in reversed([path / "best.pt", *list_checkpoints(path)]):
        if candidate.exists():
            try:
                return candidate, read_checkpoint(candidate)
            except UserError as error:  # a file cut short by a crash: an older one may still be whole
                print(f"{error}; trying an older checkpoint", file=sys.stderr)
    raise UserError(f"{path}: no readable checkpoint (ckpt_* or best.pt) in this run directory")


def read_checkpoint(path):
    """torch.load with a one-line error; a sharded directory (zero/fsdp runs) is consolidated in memory."""
    import tempfile
    path = Path(path)
    try:
        if path.is_dir():
            with tempfile.TemporaryDirectory() as tmp:
                return consolidate(str(path), str(Path(tmp) / "ckpt.pt"))
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except UserError:
        raise
    except Exception as error:
        raise UserError(f"{path}: not a readable checkpoint ({type(error).__name__}: {error})") from None
    missing = [key for key in ("model", "model_config", "tokenizer_hash") if key not in ckpt]
    if not isinstance(ckpt, dict) or missing:
        raise UserError(f"{path}: not a train.py checkpoint (missing {', '.join(missing) or 'everything'})")
    return ckpt


# -----------------------------------------------------------------------------
# command line


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    merge = commands.add_parser("consolidate", help="sharded checkpoint dir -> one .pt file for sample/eval")
    merge.add_argument("ckpt_dir")
    merge.add_argument("out_file")
    listing = commands.add_parser("list", help="a run's checkpoints: step, size, tokenizer")
    listing.add_argument("run_dir")
    args = parser.parse_args(argv)
    if args.command == "consolidate":
        if not os.path.isfile(os.path.join(args.ckpt_dir, ".metadata")):
            raise UserError(f"{args.ckpt_dir}: not a sharded checkpoint (no .metadata)")
        checkpoint = consolidate(args.ckpt_dir, args.out_file)
        size = sum(t.numel() for t in checkpoint["model"].values())
        print(f"{args.out_file}: {len(checkpoint['model'])} tensors, {size:,} numbers, step {checkpoint.get('step')}")
    if args.command == "list":
        for path in [*list_checkpoints(args.run_dir), Path(args.run_dir) / "best.pt"]:
            if path.exists():
                meta = read_meta(path)
                size = sum(f.stat().st_size for f in path.rglob("*")) if path.is_dir() else path.stat().st_size
                print(f"{path}: step {meta['step']}, {size / 2**20:.1f} MiB, tokenizer {meta['tokenizer_hash'][:12]}")


if __name__ == "__main__":
    sys.exit(cli(main))
