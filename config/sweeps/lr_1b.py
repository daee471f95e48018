"""The plan's learning-rate sweep at the 1B config: 1e-4, 3e-4, 5e-4 (config/1b.py uses TinyLlama's 4e-4).
Each run is 1,000 steps of 2^20 tokens = 1.05B tokens (5% of the Chinchilla budget), its cosine ending at
step 1,000 with a 100-step warmup: a short run ranks learning rates, it does not finish a model.
    python sweeps.py lr_1b          # base = config/1b.py; one process per run: one GPU
    python sweeps.py lr_1b --nproc 8   # each run under torchrun on one 8-GPU node (the same global batch)
Cost, estimated from plan.py's 7.31e9 FLOPs per token at an assumed 40% MFU of an A100 (125 TFLOP/s):
about 17 GPU-hours per run, 51 for the sweep. Not run on this repository's machines (no GPU)."""
base = "config/1b.py"
title = "Learning rate (1B)"
question = "Which peak learning rate gives the lowest val bits per byte after the same 1.05B tokens?"
short = {"max_iters": 1000, "lr_decay_iters": 1000, "warmup_iters": 100, "eval_interval": 100}
runs = {f"lr={lr:g}": {**short, "learning_rate": lr, "min_lr": lr / 10} for lr in (1e-4, 3e-4, 5e-4)}
