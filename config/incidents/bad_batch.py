"""A poisoned batch at step 150, with the monitor set to roll back to the last checkpoint and skip it."""
inject_bad_batch_step = 150
spike_policy = "rollback"
checkpoint_interval = 25
