"""Hand-written kernels, each a lesson in one file: Triton for the GPU, and one torch-level kernel for the CPU.

    kernels/attention.py        flash_attention(q, k, v, causal=True): FlashAttention-2-style attention, fwd + bwd
    kernels/rmsnorm.py          rms_norm(x, weight, eps=1e-6): fused RMSNorm, fwd + bwd
    kernels/compile_report.py   registers, spills, shared memory of each kernel on sm_90/sm_80, without a GPU
    kernels/cpu_attention.py    cpu_attention(q, k, v): bf16 attention for CPU training, the backward as 5 matmuls

Import the modules themselves (`from kernels.attention import flash_attention`); this package file imports
nothing, so `import kernels` stays cheap. On a machine without a GPU the kernels run in Triton's interpreter
if TRITON_INTERPRET=1 is set before the first kernel module is imported (tests/conftest.py does it).
"""
