"""Checkpoint interval: save every step, every 10, every 100 steps. The report measures each save (time,
size) as a share of the step time against the work a crash would lose, and finds the best interval."""
title = "Checkpoint interval"
question = "How often should I checkpoint? Measured cost of saving against expected work lost on a crash."
runs = {f"every {k}": {"checkpoint_interval": k, "max_iters": 200, "lr_decay_iters": 200} for k in (1, 10, 100)}
