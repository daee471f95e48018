"""No warmup: the full learning rate from the first step. At the baseline's LR a 2-layer model barely
notices (make sweep-warmup measures it), so this run also triples the LR; the incident lab compares it
with the same run with the baseline's warmup."""
warmup_iters = 0
learning_rate *= 3
min_lr *= 3
