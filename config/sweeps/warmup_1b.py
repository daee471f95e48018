"""The plan's warmup sweep at the 1B config: 0, 1,000 or 5,000 warmup steps. A 5,000-step warmup needs a
run well past 5,000 steps, so these runs take 10,000 steps of a 64-sequence global batch (131,072 tokens):
1.3B tokens each, the cosine ending at step 10,000; everything else as config/1b.py.
    python sweeps.py warmup_1b          # base = config/1b.py; one process per run: one GPU
    python sweeps.py warmup_1b --nproc 8   # each run under torchrun on one 8-GPU node (the same global batch)
Cost, estimated from plan.py's 7.31e9 FLOPs per token at an assumed 40% MFU of an A100: about 21 GPU-hours
per run, 64 for the sweep. Not run on this repository's machines (no GPU)."""
base = "config/1b.py"
title = "Warmup (1B)"
question = "Does a long warmup (5,000 steps) beat a short one (1,000) or none, by val bits per byte at 1.3B tokens?"
long_run = {"tokens_per_step": 64 * 2048, "max_iters": 10000, "lr_decay_iters": 10000, "eval_interval": 500}
runs = {f"warmup={w}": {**long_run, "warmup_iters": w} for w in (0, 1000, 5000)}
