"""Batch far too small: one sequence per step instead of batch_size (same steps, same LR).
An evaluation reads eval_iters global batches, so eval_iters grows by the same factor: both runs are
scored on the same number of val windows (2 windows of one row each would be noise, not a verdict)."""
eval_iters *= batch_size
batch_size = 1
