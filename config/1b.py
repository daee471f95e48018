"""A TinyLlama-shaped 1.1B model: 22 layers x 2048, 32 query heads sharing 4 key/value heads (GQA),
SwiGLU 5632, untied embeddings. Intended for 8 GPUs with 80 GB (A100-80/H100):
    torchrun --standalone --nproc_per_node=8 train.py config/1b.py
It also fits one 80 GB GPU as it is (the same tokens per step, 8x the accumulation, 8x the time).

Planner (`python plan.py config/1b.py --gpu A100-80 [--gpus 8]`): 1,100,048,384 parameters; 7.31e9
training FLOPs per token; Chinchilla budget 20 x 1.1B = 2.2e10 tokens = 20,982 steps of 1,048,576 tokens.
Peak 53.2 GiB per GPU at micro-batch 8 (fits up to 12; 47 with activation checkpointing). At an assumed
40% MFU an A100 does 17k tokens/s: 358 GPU-hours = 14.9 days on ONE A100 (1.9 days on 8), about $716 at
$2 per GPU-hour.
"""
out_dir = "out/1b"
dataset = "web32k"              # a large corpus with a 32,000-token tokenizer: prepare.py --vocab-size 32000
n_layer = 22
n_head = 32
n_kv_head = 4
n_embd = 2048
ffn_hidden = 5632
block_size = 2048
vocab_size = 32000
tie_embeddings = False
# batch: 8 x 2048 tokens per micro-batch and GPU; 2^20 = 1,048,576 tokens per step at any number of GPUs
batch_size = 8
tokens_per_step = 1048576
# optimisation: TinyLlama's LR; AdamW, cosine, decay 0.1, betas (0.9, 0.95), clip 1.0 and bf16 are
# train.py's defaults; max_iters = the Chinchilla budget (20 tokens/parameter) / tokens per step
learning_rate = 4e-4
min_lr = 4e-5
warmup_iters = 2000
max_iters = 20982
log_interval = 10
eval_interval = 500
eval_iters = 10  # global batches per val bin and evaluation (tokens_per_step tokens each)
checkpoint_interval = 1000
