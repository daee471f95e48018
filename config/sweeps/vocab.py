"""Vocabulary size at equal compute: BPE tokenizers of 1k, 4k and 16k tokens trained on the same text, the
same blocks (2 layers x 64: equal non-embedding parameters), each run given the same training FLOPs, not
the same steps: the 16k model's output layer costs ~6x the 1k model's per token, so it sees fewer tokens.
Judged in bits per byte, the unit that does not depend on the tokenizer."""
title = "Vocabulary size at equal compute"
question = ("Does a tokenizer that compresses better (more bytes per token) buy a lower bits per byte for the "
            "same training FLOPs?")
kind = "vocab"
datasets = {"vocab_1k": ["--vocab-size", "1024"], "vocab_4k": ["--vocab-size", "4096"],
            "vocab_16k": ["--vocab-size", "16384"]}
flops = 1.0e12                      # per run: about 400 steps of the 4k model (2.5 MFLOP/token x 1,024 tokens/step)
runs = {"1k": {"dataset": "vocab_1k"}, "4k": {"dataset": "vocab_4k"}, "16k": {"dataset": "vocab_16k"}}
metric = "per_source_bpb"           # val_<source>.bin hold the same documents for every tokenizer; val.bin
                                    # does not (prepare.py mixes it to token shares, which depend on the tokenizer)
seeds = (1337, 1)                   # each configuration with 2 seeds; compared seed by seed
