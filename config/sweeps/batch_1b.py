"""The plan's batch-size sweep at the 1B config: a global batch of 64, 256 or 512 sequences of 2,048 tokens
(config/1b.py: 512 = 2^20 tokens), at the same 2^29 = 537M tokens, so the smaller batch takes more steps:
4,096 / 1,024 / 512. LR 4e-4 for all (config/1b.py's); warmup 5% of each run's steps.
    python sweeps.py batch_1b          # base = config/1b.py; one process per run: one GPU
    python sweeps.py batch_1b --nproc 8   # each run under torchrun on one 8-GPU node (the same global batch)
Cost, estimated from plan.py's 7.31e9 FLOPs per token at an assumed 40% MFU of an A100: about 9 GPU-hours
per run, 26 for the sweep. Not run on this repository's machines (no GPU)."""
base = "config/1b.py"
title = "Global batch size (1B)"
question = "At the same 537M training tokens, which global batch size gives the lowest val bits per byte?"
tokens = 2 ** 29


def at_batch(sequences):
    steps = tokens // (sequences * 2048)
    return {"tokens_per_step": sequences * 2048, "max_iters": steps, "lr_decay_iters": steps,
            "warmup_iters": steps // 20, "eval_interval": max(1, steps // 10), "checkpoint_interval": steps // 4}


runs = {f"batch={b}": at_batch(b) for b in (64, 256, 512)}
