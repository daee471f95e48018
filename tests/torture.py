"""
tests/torture.py — kill a training run over and over; it must end exactly where an uninterrupted run ends.

    python tests/torture.py                      # 20 SIGKILLs at random moments + 2 SIGTERMs (~2 min)
    python tests/torture.py --kills 5 --terms 1  # shorter

The run saves a checkpoint every 2 steps, each save held open for a moment (inject_slow_save) so that
many kills land in the middle of a checkpoint write. After every kill the run is restarted with --resume
(from scratch while no checkpoint exists yet). At the end: the final weights must equal, bit for bit,
those of the same run never interrupted, and every checkpoint left in the directory must load.
tests/test_train.py runs a shortened version in `make test`.
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tokenizer import tokenizer_hash, train_tokenizer  # noqa: E402  (the project root is on the path now)

ARGS = ["--n_layer=2", "--n_head=2", "--n_kv_head=1", "--n_embd=32", "--block_size=32", "--batch_size=4",
        "--dtype=float32", "--device=cpu", "--kernels=torch", "--warmup_iters=2", "--learning_rate=1e-2",
        "--min_lr=1e-3", "--eval_iters=2", "--log_interval=1", "--checkpoint_interval=2", "--eval_interval=10",
        "--inject_slow_save=0.2"]


def make_dataset(root):
    """A prepare.py-style dataset of repetitive sentences (train/val bins, meta.json, tokenizer/)."""
    rng = np.random.default_rng(0)
    words = "the cat dog sat on a mat and ran to big red hat".split()
    docs = [" ".join(rng.choice(words, size=8)) + ".\n" for _ in range(400)]
    enc = train_tokenizer(docs[:200], 300, root / "tokenizer", verbose=False)
    meta = {"vocab_size": enc.n_vocab, "dtype": "uint16", "eot_token": enc.eot_token, "tokenizer": "tokenizer",
            "tokenizer_hash": tokenizer_hash(root / "tokenizer"), "bins": {}}
    for name, part in (("train.bin", docs[:360]), ("val.bin", docs[360:])):
        ids = [t for doc in part for t in [enc.eot_token] + enc.encode_ordinary(doc)]
        np.array(ids, dtype=np.uint16).tofile(root / name)
        meta["bins"][name] = {"tokens": len(ids), "bytes": sum(len(d.encode()) for d in part), "docs": len(part)}
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def start(out_dir, dataset, max_iters):
    resume = ["--resume"] if list(Path(out_dir).glob("ckpt_*.pt")) else []
    return subprocess.Popen([sys.executable, str(ROOT / "train.py"), *ARGS, f"--dataset={dataset}",
                             f"--out_dir={out_dir}", f"--max_iters={max_iters}", *resume], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def finished(out_dir):
    metrics = Path(out_dir) / "metrics.jsonl"
    lines = metrics.read_text().splitlines() if metrics.is_file() else []
    return bool(lines) and '"status": "finished"' in lines[-1]


def torture(work, kills=20, terms=2, max_iters=40, seed=0, log=print):
    """Returns (final weights equal to the uninterrupted run's, every checkpoint loads, what happened)."""
    work = Path(work)
    dataset = make_dataset(work / "data") if not (work / "data" / "meta.json").exists() else work / "data"
    straight = start(work / "straight", dataset, max_iters)
    assert straight.wait() == 0, "the uninterrupted run failed"
    rng, events = random.Random(seed), []
    signals = [signal.SIGKILL] * kills + [signal.SIGTERM] * terms
    rng.shuffle(signals)
    for sig in signals:
        if finished(work / "tortured"):
            break
        proc = start(work / "tortured", dataset, max_iters)
        time.sleep(rng.uniform(1.0, 4.0))  # torch's import takes ~1-2 s: some kills land there, most in training
        proc.send_signal(sig)
        code = proc.wait()
        steps = len(list((work / "tortured").glob("ckpt_*.pt")))
        events.append(f"{signal.Signals(sig).name} -> exit {code}, {steps} checkpoint file(s)")
        log(events[-1])
    while not finished(work / "tortured"):
        assert start(work / "tortured", dataset, max_iters).wait() == 0, "the final resume failed"
    name = f"ckpt_{max_iters:07d}.pt"
    a = torch.load(work / "straight" / name, weights_only=False)["model"]
    b = torch.load(work / "tortured" / name, weights_only=False)["model"]
    identical = all(torch.equal(a[k], b[k]) for k in a)
    loadable = all(torch.load(p, weights_only=False)["step"] >= 0 for p in (work / "tortured").glob("*.pt"))
    return identical, loadable, events


if __name__ == "__main__":
    import tempfile
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--terms", type=int, default=2)
    parser.add_argument("--max-iters", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        identical, loadable, events = torture(tmp, args.kills, args.terms, args.max_iters, args.seed)
    print(f"{len(events)} interruptions; final weights bit-identical: {identical}; every checkpoint loads: {loadable}")
    sys.exit(0 if identical and loadable else 1)
