"""The incident lab's baseline: a tiny GPT that visibly learns in about a minute on 2 CPU cores.
Every other file in this folder changes one thing from here; `make incidents` runs them all
(train.py executes baseline.py, then the incident's file, over its defaults as nanoGPT's configurator
does, so an incident may say `learning_rate *= 10`)."""
out_dir = "out/incidents/baseline"
dataset = "default"          # data/default, built by `python prepare.py`
seed = 1337                  # fixed: every incident sees the same init and the same batches
device = "cpu"
dtype = "float32"
compile_model = False
# model: 2 layers x 64 wide; with the 4096-token vocab most of its parameters are the embedding
n_layer = 2
n_head = 4
n_kv_head = 4
n_embd = 64
block_size = 64
# optimisation: 300 steps of 16 x 64 tokens
batch_size = 16
gradient_accumulation_steps = 1
max_iters = 300
optimizer = "adamw"
learning_rate = 1e-2         # near this model's edge, where accidents show (make sweep-lr: 3e-3 is steadier)
min_lr = 1e-3
warmup_iters = 30            # 10% of the run
lr_decay_iters = 300
lr_schedule = "cosine"
weight_decay = 0.1
grad_clip = 1.0
# logging: every step, so the detectors see every spike
log_interval = 1
layer_stats_interval = 10    # per-block grad norm, activation RMS/max, attention logit max (the layer plots)
eval_interval = 100
eval_iters = 8
checkpoint_interval = 300    # one checkpoint at the end (the dup_data and fp16 probes load it)
spike_policy = "warn"        # the monitor reports, it does not fix: we want to see the accident
