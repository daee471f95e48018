"""No warmup: the full learning rate from the first step."""
warmup_iters = 0
