"""The default run (`python train.py` = `python train.py config/tiny.py`): a small GPT on data/default
that learns visibly on a 2-core CPU in about 3.5 minutes (compiled). Measured figures: README, Training."""
out_dir = "out/tiny"
dataset = "default"
# model: 4 blocks x 128 wide, 4096-token vocabulary from the dataset
n_layer = 4
n_head = 4
n_kv_head = 4
n_embd = 128
block_size = 128
# 16 x 128 = 2,048 tokens per step: at the same 4.1M tokens, 2,000 steps of 16 beat 1,000 of 32 by 0.026 bits
# per byte (bench_train.py --quality's tuning, docs/week3-training.md) at the same tokens/s
batch_size = 16
gradient_accumulation_steps = 1
max_iters = 2000
learning_rate = 3e-3  # the tuned peak: 1.5e-3, 2e-3 and 6e-3 were worse by 0.008-0.10 bits per byte
warmup_iters = 100
min_lr = 3e-4
lr_schedule = "cosine"
eval_interval = 200
eval_iters = 20  # global batches per val bin and evaluation: 3 bins x 20 x 16 x 128 tokens
log_interval = 20
checkpoint_interval = 200
dtype = "bfloat16"
compile_model = True  # 1.6x tokens/s on a CPU for ~15 s of compilation (docs/week3-training.md, Throughput)
