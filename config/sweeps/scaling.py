"""The Chinchilla study (Hoffmann et al. 2022), Approaches 2 and 3 on the same runs, sized for a 2-core CPU.
The runs lie on 4 IsoFLOP lines: at each compute budget C, 5 model sizes, each trained on the tokens that
spend C at its own FLOPs per token (model.py's flops_per_token: the output layer and attention counted, as
the paper counts them), from scratch, with its cosine ending at its own budget (the paper's point: a
schedule longer than the run overestimates the loss). Approach 2 fits a parabola in log N per line and
reads N_opt(C) off its vertex; Approach 3 fits L(N, D) through all of them. The fit never sees `heldout`,
a model 2.4x the largest fitted size's parameters; the report predicts its loss, then trains it.

The sizes slide up the ladder with the budget (a window of 5 of 8), placed from measured runs: a pilot of
the 5e11 line (2026-12-06, 2 shared cores) gave val loss 4.673, 4.623, 4.579, 4.773, 4.994, 5.286, 5.542 for
3.4k, 6.7k, 13k, 27k, 56k, 101k, 151k parameters (a minimum near 13k, ~115 tokens per parameter), and
the earlier sizes x tokens grid put the best model at ~1.6e12 FLOPs near 56k. Measured: 488 s for all 21
runs with 2 jobs on 2 idle cores (2026-12-06, Intel Xeon); the earlier grid took 49 minutes on 2 cores
shared with other jobs.

The vocabulary is 1,024 tokens so that the embedding is a small share of most models (1,024 x 16 = 16k
parameters beside 3.4k in the smallest blocks: there the output layer is most of the FLOPs, which is why
C counts it). The largest D is 6.6M tokens, 1.2 epochs of data/vocab_1k's 5.3M train tokens.
"""
title = "Scaling law (Chinchilla Approaches 2 and 3)"
question = ("Fitted on small runs, what are E, A, B, alpha and beta of L(N, D) = E + A/N^alpha + B/D^beta; at each "
            "compute budget, which model size is best (IsoFLOP profiles), and how do N_opt and D_opt grow with "
            "compute; and does the fit predict a larger run it never saw?")
kind = "scaling"
datasets = {"vocab_1k": ["--vocab-size", "1024"]}
fixed = {"dataset": "vocab_1k", "block_size": 128, "batch_size": 16, "learning_rate": 3e-3, "min_lr": 3e-4,
         "lr_schedule": "cosine", "dtype": "float32", "log_interval": 10, "eval_iters": 12}
# (n_layer, n_embd): head size 16, SwiGLU width 8/3 n_embd (rounded up to 16), so shape and width grow together;
# non-embedding parameters 3.4k, 6.7k, 13k, 27k, 56k, 101k, 151k, 332k
ladder = [(1, 16), (2, 16), (1, 32), (2, 32), (2, 48), (2, 64), (3, 64), (3, 96)]
isoflops = {2e11: ladder[0:5], 5e11: ladder[0:5], 1.2e12: ladder[1:6], 3e12: ladder[3:8]}  # {C (FLOPs): sizes}
heldout = ((4, 128), 500_000)    # 804k non-embedding parameters: 2.4x the largest fitted model
jobs = 2                         # runs at once (one thread each)
