"""Warmup length: none, short (3% of the run) and long (33%), everything else fixed."""
title = "Warmup"
question = "How long should the linear warmup be for this model, judged by val bits per byte at 300 steps?"
runs = {"warmup=0": {"warmup_iters": 0}, "warmup=10": {"warmup_iters": 10}, "warmup=100": {"warmup_iters": 100}}
seeds = (1337, 1, 2)            # each configuration with 3 seeds; compared seed by seed
