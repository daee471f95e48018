"""Clean vs raw data: the same raw corpus through prepare.py three ways, trained for the same tokens with the
same tokenizer, all scored on one held-out set split off before any cleaning (sweeps_data.py builds it).
The raw corpus repeats a few passages many times, as a crawl repeats mirrored pages, so that deduplication
has something to remove and regurgitation something to measure.

'no dedup' also turns off the repeated-lines stage (--line-dedup-docs 0): it is deduplication at the
level of lines, and leaving it on would make that arm half-deduplicated."""
title = "Clean vs raw data"
question = ("For the same training tokens, do cleaning and deduplication give a better model on text none of "
            "the arms trained on, and do they stop the model writing back repeated passages?")
kind = "clean"
data_prefix = "clean"               # data/clean_corpus/, data/clean_<arm>/, data/clean_<arm>_scored/
arms = {"cleaned + dedup": [],
        "no dedup": ["--no-dedup", "--line-dedup-docs", "0"],
        "raw": ["--no-clean", "--no-dedup", "--line-dedup-docs", "0"]}
vocab_size = 2048
corpus = {"shakespeare_mb": 2.0,    # train plays, raw
          "heldout_mb": 0.6,        # held-out plays (both editions of a play on the same side)
          "code_mb": 1.0,           # prepare.py's stdlib sample
          "heldout_code_files": 40, # stdlib files outside that sample, none a near twin of one in it
          "passages": 10, "passage_chars": 500, "copies": 50}
corpus_seed = 0
fixed = {"max_iters": 400, "lr_decay_iters": 400, "eval_interval": 50, "eval_iters": 16, "checkpoint_interval": 400}
metric = "per_source_bpb"           # the mean of held-out Shakespeare and held-out code bits per byte
seeds = (1337, 1)                   # each arm with 2 seeds; compared seed by seed
runs = {}                           # one per arm, filled in by sweeps_data.plan_clean
