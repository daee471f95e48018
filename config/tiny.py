"""The default run (`python train.py` = `python train.py config/tiny.py`): a small GPT on data/default
that learns visibly on a 2-core CPU in about 3 minutes (compiled). Measured figures: README, Training."""
out_dir = "out/tiny"
dataset = "default"
# model: 4 blocks x 128 wide, 4096-token vocabulary from the dataset
n_layer = 4
n_head = 4
n_kv_head = 4
n_embd = 128
block_size = 128
# 32 x 128 = 4,096 tokens per step
batch_size = 32
gradient_accumulation_steps = 1
max_iters = 1000
learning_rate = 3e-3
warmup_iters = 50
min_lr = 3e-4
lr_schedule = "cosine"
eval_interval = 100
eval_iters = 10  # global batches per val bin and evaluation: 3 bins x 10 x 32 x 128 tokens
log_interval = 10
checkpoint_interval = 100
dtype = "bfloat16"
compile_model = True  # 1.6x tokens/s on a CPU for ~15 s of compilation (docs/week3-training.md, Throughput)
