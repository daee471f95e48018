"""GPT-2 small's shape (124M) with this repo's blocks (RMSNorm, RoPE, SwiGLU), for comparison with
nanoGPT and llm.c. Intended for one GPU with 24 GB or more; torchrun over more GPUs keeps the same
tokens per step (train.py derives the accumulation from tokens_per_step).

Planner (`python plan.py config/124m.py --gpu A100-80`): 123,587,328 parameters; 8.55e8 training FLOPs
per token; Chinchilla budget 20 x 123.6M = 2.47e9 tokens = 4,715 steps of 524,288 tokens. On one A100:
peak 19.0 GiB at micro-batch 16 (fits up to 69); at an assumed 40% MFU 146k tokens/s, 4.7 hours,
5 GPU-hours, about $9 at $2 per GPU-hour.
"""
out_dir = "out/124m"
dataset = "web50k"              # a large corpus with a GPT-2-sized BPE: prepare.py --vocab-size 50257
# model: GPT-2 small (12 x 768, 12 heads); vocab 50,257 padded to 50,304 = 786 x 64 for the matmuls
n_layer = 12
n_head = 12
n_kv_head = 12
n_embd = 768
ffn_hidden = 0                  # 8/3 x 768 -> 2048: the same MLP parameters as GPT-2's 4 x 768 GELU
block_size = 1024
vocab_size = 50304
tie_embeddings = True           # as GPT-2
# batch: 16 x 1024 tokens per micro-batch, 2^19 = 524,288 tokens per step (nanoGPT's ~0.5M)
batch_size = 16
tokens_per_step = 524288
# optimisation: GPT-3 small's LR; AdamW, cosine, decay 0.1, betas (0.9, 0.95), clip 1.0 and bf16 are
# train.py's defaults; max_iters = the Chinchilla budget (20 tokens/parameter) / tokens per step
learning_rate = 6e-4
min_lr = 6e-5
warmup_iters = 200
max_iters = 4715
# logging and checkpoints
log_interval = 10
eval_interval = 250
eval_iters = 10  # global batches per val bin and evaluation (tokens_per_step tokens each)
checkpoint_interval = 500
