"""The Chinchilla study (Hoffmann et al. 2022, Approach 3), sized for a 2-core CPU in about 30 minutes
(measured: 49 minutes on 2026-12-06 on 2 cores shared with other jobs, load average 9-13):
5 model sizes (13k to 0.8M non-embedding parameters) x 3-4 token budgets (0.25M to 2M tokens), each run
from scratch with its cosine schedule ending at its own budget (the paper's point: a schedule longer than
the run overestimates the loss). The fit never sees `heldout`, a model twice the largest size's
parameters; the report predicts its loss from the fit, then trains it and compares.

The vocabulary is 1,024 tokens so that the embedding is a small share of even the smallest model
(1,024 x 32 = 33k parameters beside 13k in the blocks; with 4,096 it would be 10 times the blocks).
Every budget stays under one epoch of data/vocab_1k's 5.3M train tokens: no data repeats.
"""
title = "Scaling law (Chinchilla Approach 3)"
question = ("Fitted on small runs, what are E, A, B, alpha and beta of L(N, D) = E + A/N^alpha + B/D^beta, how "
            "many tokens per parameter are compute-optimal, and does the fit predict a larger run it never saw?")
kind = "scaling"
datasets = {"vocab_1k": ["--vocab-size", "1024"]}
fixed = {"dataset": "vocab_1k", "block_size": 128, "batch_size": 16, "learning_rate": 3e-3, "min_lr": 3e-4,
         "lr_schedule": "cosine", "dtype": "float32", "log_interval": 10, "eval_iters": 12}
# (n_layer, n_embd): head size 16, SwiGLU width 8/3 n_embd (rounded up to 16), so shape and width grow together
sizes = [(1, 32), (2, 48), (2, 64), (3, 96), (4, 128)]
tokens = [250_000, 500_000, 1_000_000, 2_000_000]
skip = [((4, 128), 2_000_000)]  # the most expensive cell (~8 min alone on one core): left out to fit 30 minutes
heldout = ((5, 160), 1_000_000)  # 1.55M non-embedding parameters: twice the largest fitted model
jobs = 2                         # runs at once (one thread each)
