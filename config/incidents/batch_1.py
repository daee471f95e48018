"""Batch far too small: one sequence of 64 tokens per step instead of 16 (same steps, same LR)."""
batch_size = 1
