"""Data mix: three mixes of the built-in sources, one extreme, each prepared into its own dataset.
Each mix has its own val split, so the runs are judged on the mean of their per-source val bits per byte
(Shakespeare and code weighted equally), not on their own mixed val.bin."""
title = "Data mix"
question = "How does the share of code vs Shakespeare change what the model learns, per source?"
datasets = {"mix_sk90": ["--mix", "shakespeare=0.9,code=0.1"],
            "mix_even": ["--mix", "shakespeare=0.5,code=0.5"],
            "mix_code95": ["--mix", "shakespeare=0.05,code=0.95"]}
runs = {"shakespeare 90%": {"dataset": "mix_sk90"}, "50/50": {"dataset": "mix_even"},
        "code 95%": {"dataset": "mix_code95"}}
metric = "per_source_bpb"
seeds = (1337, 1, 2)            # each configuration with 3 seeds; compared seed by seed
