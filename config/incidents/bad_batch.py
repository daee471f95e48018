"""A poisoned batch (random tokens) half way, with the monitor set to roll back to the last checkpoint
and skip it."""
inject_bad_batch_step = max_iters // 2
spike_policy = "rollback"
checkpoint_interval = max_iters // 12
