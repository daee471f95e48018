"""A poisoned batch (random tokens) half way, with the monitor only warning (the baseline's policy): the
bad update goes into the weights. The fixed run rolls back to the last checkpoint and skips it."""
inject_bad_batch_step = max_iters // 2
