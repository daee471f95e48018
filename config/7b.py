"""Llama-2-7B's shape: 32 layers x 4096, 32 heads, SwiGLU 11008, vocab 32000, context 4096, untied.
Intended for 8 GPUs with 80 GB, sharded with FSDP and activation checkpointing:
    torchrun --standalone --nproc_per_node=8 train.py config/7b.py
On ONE 80 GB GPU it needs --cpu_offload=True as well (and ~100 GiB of CPU RAM for the states).

Planner (`python plan.py config/7b.py --gpu A100-80 --gpus 8`): 6,738,415,616 parameters; 4.61e10
training FLOPs per token; Chinchilla budget 20 x 6.74B = 1.35e11 tokens = 32,132 steps of 4,194,304 tokens.
Peak 30.2 GiB per GPU at micro-batch 4 (FSDP over 8 + checkpointing); unsharded it would need 118 GiB
even with checkpointing. With --cpu_offload=True on one GPU: 17.7 GiB on the GPU, 100 GiB of CPU RAM.
At an assumed 40% MFU (30% of useful work with the recompute) an A100 does 2.0k tokens/s: 18,432
GPU-hours = 96 days on 8 A100s (768 days on one), about $36,900 at $2 per GPU-hour.
"""
out_dir = "out/7b"
dataset = "web32k"              # a large corpus with a 32,000-token tokenizer: prepare.py --vocab-size 32000
n_layer = 32
n_head = 32
n_kv_head = 32
n_embd = 4096
ffn_hidden = 11008
block_size = 4096
vocab_size = 32000
tie_embeddings = False
# memory: the 16 B/param of AdamW (108 GB) cannot sit on one GPU; FSDP shards them over the ranks
fsdp = True
activation_checkpointing = True
# batch: 4 x 4096 tokens per micro-batch and GPU; 2^22 = 4,194,304 tokens per step (Llama 2's 4M)
batch_size = 4
tokens_per_step = 4194304
# optimisation: Llama 2's LR; AdamW, cosine, decay 0.1, betas (0.9, 0.95), clip 1.0 and bf16 are
# train.py's defaults; max_iters = the Chinchilla budget (20 tokens/parameter) / tokens per step
learning_rate = 3e-4
min_lr = 3e-5
warmup_iters = 2000
max_iters = 32132
log_interval = 1
eval_interval = 500
eval_iters = 5  # global batches per val bin and evaluation (tokens_per_step tokens each)
checkpoint_interval = 500
