"""Precision mistake: fp16 autocast with no loss scaler (train.py refuses this without the flag).
fp16 matmuls are emulated on CPUs without AVX512-FP16 (~5x slower), so this run is the baseline's
first third; the lab's probe then measures, on its final weights, how much of the gradient fp16 loses."""
dtype = "float16"
fp16_no_scaler = True
max_iters //= 3              # the baseline's schedule (lr_decay_iters unchanged), stopped a third of the way
checkpoint_interval = max_iters
