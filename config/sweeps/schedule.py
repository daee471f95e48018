"""LR schedule: cosine decay vs warmup-stable-decay (WSD, a constant LR with a short final anneal) vs a
constant LR. If WSD's val loss drops sharply only once its anneal starts, a 'stopped falling' plateau
was the learning rate, not convergence. Evaluated every 20 steps to see the anneal."""
title = "LR schedule"
question = "Cosine or WSD, and does the late anneal explain 'the loss stopped falling'?"
runs = {name: {"lr_schedule": name, "eval_interval": 20} for name in ("cosine", "wsd", "constant")}
seeds = (1337, 1, 2)            # each configuration with 3 seeds; compared seed by seed
