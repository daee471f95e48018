"""Learning rate: three values a factor ~3 apart around the baseline's, everything else fixed."""
title = "Learning rate"
question = "Which peak learning rate gives the lowest val bits per byte after the same 300 steps?"
runs = {"lr=3e-3": {"learning_rate": 3e-3, "min_lr": 3e-4},
        "lr=1e-2": {"learning_rate": 1e-2, "min_lr": 1e-3},
        "lr=3e-2": {"learning_rate": 3e-2, "min_lr": 3e-3}}
seeds = (1337, 1, 2)            # each configuration with 3 seeds; compared seed by seed
