"""Batch size at a fixed token budget (300 x 16 x 64 = 307,200 tokens): a smaller batch takes more, noisier
steps; a larger one fewer, cleaner and (on most hardware) faster ones. LR and everything else fixed."""
title = "Batch size"
question = "At the same number of training tokens, which batch size gives the lowest val bits per byte?"
runs = {f"batch={b}": {"batch_size": b, "max_iters": 4800 // b, "lr_decay_iters": 4800 // b,
                       "warmup_iters": 480 // b, "eval_interval": 400 // b, "checkpoint_interval": 4800 // b}
        for b in (4, 16, 64)}
seeds = (1337, 1, 2)            # each configuration with 3 seeds; compared seed by seed
