"""kernels/: the Triton attention and RMSNorm against their torch references, output and every gradient.

On a CPU the kernels run in Triton's interpreter (tests/conftest.py sets TRITON_INTERPRET=1), which is slow,
so shapes are small and the tiles are shrunk (block_sizes=(32, 16)) to get several tiles per sequence,
ragged last tiles and diagonal tiles split in two. The interpreter computes tl.dot on bf16 operands wrongly
(Triton 3.9: garbage, no error), so bf16 attention runs only on a GPU; bf16 RMSNorm has no dot and runs
everywhere. The reference is computed in fp64 from the same (rounded) inputs.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kernels.attention import _launch_config, attention_reference, flash_attention
from kernels.rmsnorm import rms_norm, rms_norm_reference

ROOT = Path(__file__).resolve().parent.parent
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

# Tolerances against the fp64 reference, per input dtype: |got - want| <= atol + rtol * |want|.
# fp32: accumulation-order noise only. fp16 / bf16: a few units in the last place of the dtype
# (eps = 2^-10 and 2^-7), since outputs are rounded to it and P, dS are rounded before their matmuls.
TOLERANCE = {  # dtype: (atol, rtol)
    torch.float32: (1e-5, 1e-5),
    torch.float16: (3e-3, 3e-3),
    torch.bfloat16: (2.5e-2, 2.5e-2),
}
needs_gpu_for_bf16_dot = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="Triton's CPU interpreter computes tl.dot on bf16 wrongly; GPU only")


def assert_close(name, got, want, dtype):
    """allclose with the dtype's tolerance; on failure says how many elements, where, and by how much."""
    atol, rtol = TOLERANCE[dtype]
    assert got.shape == want.shape, f"{name}: shape {tuple(got.shape)}, want {tuple(want.shape)}"
    got, want = got.detach().double().cpu(), want.detach().double().cpu()
    err = (got - want).abs()
    bad = ~(err <= atol + rtol * want.abs())  # also catches NaN
    if bad.any():
        first = tuple(bad.nonzero()[0].tolist())
        worst = tuple(int(i) for i in torch.unravel_index(torch.nan_to_num(err, nan=float("inf")).argmax(), err.shape))
        raise AssertionError(
            f"{name} ({dtype}): {int(bad.sum())} of {bad.numel()} elements off (atol {atol}, rtol {rtol}); "
            f"first at {first}: got {got[first]:.6g}, want {want[first]:.6g}; "
            f"worst at {worst}: got {got[worst]:.6g}, want {want[worst]:.6g}")


def test_assert_close_reports_where_and_how_much():
    want = torch.zeros(2, 3)
    got = want.clone()
    got[1, 2] = 0.5
    with pytest.raises(AssertionError, match=r"1 of 6 elements off.*first at \(1, 2\): got 0.5, want 0"):
        assert_close("demo", got, want, torch.float32)


# ------------------------------------------------------------------------------------------- attention
def _qkv(B, H, H_kv, T, D, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    make = lambda heads: torch.randn(B, heads, T, D, generator=g).to(DEVICE, dtype).requires_grad_()
    return make(H), make(H_kv), make(H_kv)


def check_attention(B, H, H_kv, T, D, causal, dtype, block_sizes=(32, 16)):
    q, k, v = _qkv(B, H, H_kv, T, D, dtype)
    o = flash_attention(q, k, v, causal=causal, block_sizes=block_sizes)
    do = torch.randn_like(o)
    dq, dk, dv = torch.autograd.grad(o, (q, k, v), do)

    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    o64 = attention_reference(q64, k64, v64, causal=causal)
    dq64, dk64, dv64 = torch.autograd.grad(o64, (q64, k64, v64), do.double())
    assert o.dtype == dtype and dk.shape == k.shape
    for name, got, want in (("o", o, o64), ("dq", dq, dq64), ("dk", dk, dk64), ("dv", dv, dv64)):
        assert_close(name, got, want, dtype)


# (B, H, H_kv, T, D, causal): every T (1, not a multiple of any tile, exactly two tiles, ragged) with every
# head grouping (plain, GQA groups of 2, one kv head for 4 query heads), causal or not; then head dim 64,
# a head dim that is not a power of two (padded to 64 inside), head dim 128 (the 1B/7B configs'), and a
# batch of 2.
ATTENTION_CASES = [(1, H, H_kv, T, 32, causal) for T in (1, 17, 64, 100) for H, H_kv in ((2, 2), (4, 2), (4, 1))
                   for causal in (True, False)]
ATTENTION_CASES += [(1, 4, 1, 100, 64, True), (1, 2, 2, 64, 64, False), (1, 2, 2, 40, 48, True),
                    (1, 2, 1, 50, 128, True), (2, 4, 2, 70, 32, True)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("B, H, H_kv, T, D, causal", ATTENTION_CASES)
def test_attention_matches_reference(B, H, H_kv, T, D, causal, dtype):
    check_attention(B, H, H_kv, T, D, causal, dtype)


@needs_gpu_for_bf16_dot
@pytest.mark.parametrize("B, H, H_kv, T, D, causal", ATTENTION_CASES + [(2, 8, 2, 1000, 128, True)])
def test_attention_matches_reference_bf16(B, H, H_kv, T, D, causal):
    check_attention(B, H, H_kv, T, D, causal, torch.bfloat16, block_sizes=None)


def test_attention_default_tiles_and_equal_tiles():
    check_attention(1, 2, 1, 100, 32, True, torch.float32, block_sizes=None)  # one 128-row tile
    check_attention(1, 2, 2, 50, 32, True, torch.float32, block_sizes=(16, 16))  # BLOCK_M == BLOCK_N


def test_attention_is_causal():
    """Changing keys and values at positions >= t0 leaves the outputs before t0 bit-for-bit unchanged."""
    q, k, v = _qkv(1, 2, 1, 70, 32, torch.float32)
    t0 = 37
    k2, v2 = k.detach().clone(), v.detach().clone()
    k2[:, :, t0:] += 3.0 * torch.randn_like(k2[:, :, t0:])
    v2[:, :, t0:] -= 5.0
    o = flash_attention(q, k, v, block_sizes=(32, 16))
    o2 = flash_attention(q, k2, v2, block_sizes=(32, 16))
    assert torch.equal(o[:, :, :t0], o2[:, :, :t0])
    assert not torch.allclose(o[:, :, t0:], o2[:, :, t0:])


def test_attention_accepts_strided_inputs():
    """The model makes q as (B, T, H, D) and transposes; the kernel must copy it to contiguous itself."""
    q, k, v = _qkv(1, 2, 2, 33, 32, torch.float32)
    o_contiguous = flash_attention(q, k, v, block_sizes=(32, 16))
    q_strided = q.detach().transpose(1, 2).contiguous().transpose(1, 2)
    assert not q_strided.is_contiguous()
    assert torch.equal(flash_attention(q_strided, k, v, block_sizes=(32, 16)), o_contiguous)


def test_attention_under_autocast_casts_to_one_dtype():
    """Like SDPA: under autocast an fp32 q (e.g. after RoPE) and an fp16 k meet in the autocast dtype."""
    q, k, v = _qkv(1, 2, 1, 20, 32, torch.float32)
    with torch.autocast(DEVICE, dtype=torch.float16):
        o = flash_attention(q, k.detach().half(), v, block_sizes=(16, 16))
    assert o.dtype == torch.float16
    want = attention_reference(*(t.detach().half().double() for t in (q, k, v)))
    assert_close("o", o, want, torch.float16)
    o.float().sum().backward()
    assert q.grad.dtype == torch.float32 and torch.isfinite(q.grad).all()


def test_attention_rejects_bad_input():
    q, k, v = _qkv(1, 4, 3, 8, 32, torch.float32)
    with pytest.raises(ValueError, match="multiple of H_kv"):
        flash_attention(q, k, v)
    q, k, v = _qkv(1, 4, 2, 8, 32, torch.float32)
    with pytest.raises(ValueError, match="one dtype"):
        flash_attention(q, k.half(), v.half())
    with pytest.raises(ValueError, match="head dim 256"):
        flash_attention(*_qkv(1, 2, 2, 8, 256, torch.float32))


@pytest.mark.skipif(not (Path(sys.modules["triton"].__file__).parent / "backends/nvidia/bin/ptxas").exists(),
                    reason="this Triton has no bundled ptxas")
@pytest.mark.parametrize("arch", [90, 80], ids=["h100", "a100"])
def test_every_kernel_compiles_without_spills(arch):
    """The real compiler path (not the interpreter), with the tiles the launcher picks on that GPU: every
    kernel compiles with no register spills, and the attention kernels' loads are software-pipelined (async
    copies). Run in a fresh process: this one is in interpreter mode."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"
    out = subprocess.run([sys.executable, str(ROOT / "kernels/compile_report.py"), "--arch", str(arch)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    header = lines[1].split()  # kernel config regs spill_B smem_KiB async_copies
    rows = [dict(zip(header, line.split())) for line in lines[2:]]
    kernels = [row["kernel"] for row in rows]
    assert kernels.count("attn_fwd") == kernels.count("attn_dkdv") == kernels.count("attn_dq") == 2, out.stdout
    assert kernels.count("rms_fwd") == kernels.count("rms_bwd") >= 4, out.stdout
    for row in rows:
        assert int(row["spill_B"]) == 0, f"register spills on sm_{arch}: {row}"
        # the sm_80 tiles also run on every 8.x GPU and unknown ones: sm_86/89/120 give a program 99 KiB
        assert float(row["smem_KiB"]) <= (99.0 if arch == 80 else 227.0), f"too much shared memory: {row}"
        if row["kernel"] in ("attn_fwd", "attn_dkdv", "attn_dq"):
            assert int(row["async_copies"]) > 0, f"loads not pipelined on sm_{arch}: {row}"


def test_launcher_picks_the_tiles_of_the_gpu_generation():
    """An A100 (8.x) gets its own dK/dV tile at head dim 128, an H100 (9.x) the one it was tuned with, an
    unknown generation (or the CPU interpreter) the A100's; short sequences shrink the tiles."""
    assert _launch_config("dkdv", 4096, 128, major=9) == (128, 32, 8, 2)
    assert _launch_config("dkdv", 4096, 128, major=8) == (64, 32, 8, 3)
    assert _launch_config("dkdv", 4096, 128, major=12) == _launch_config("dkdv", 4096, 128, major=8)
    assert _launch_config("fwd", 4096, 32, major=9) == (128, 64, 4, 3)  # head dim 32 uses the D=64 tiles
    assert _launch_config("fwd", 20, 64, major=9) == (32, 32, 4, 3)


# ------------------------------------------------------------------------------------------- rmsnorm
# x shapes: a single element, a ragged row length with leading dims, more rows than backward programs
# (each program then sums dw over several rows), a long row that is not a power of two.
RMSNORM_SHAPES = [(1, 1), (3, 5, 123), (17, 64), (2, 1000)]


@pytest.mark.parametrize("x_dtype, w_dtype", [(torch.float32, torch.float32), (torch.float16, torch.float16),
                                              (torch.bfloat16, torch.bfloat16), (torch.bfloat16, torch.float32)],
                         ids=["fp32", "fp16", "bf16", "bf16-fp32w"])
@pytest.mark.parametrize("shape", RMSNORM_SHAPES, ids=str)
def test_rms_norm_matches_reference(shape, x_dtype, w_dtype):
    g = torch.Generator().manual_seed(0)
    x = (2 * torch.randn(shape, generator=g)).to(DEVICE, x_dtype).requires_grad_()
    w = (1 + torch.randn(shape[-1], generator=g)).to(DEVICE, w_dtype).requires_grad_()
    y = rms_norm(x, w, eps=1e-5)
    dy = torch.randn_like(y)
    dx, dw = torch.autograd.grad(y, (x, w), dy)

    x64, w64 = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    y64 = rms_norm_reference(x64, w64, eps=1e-5)
    dx64, dw64 = torch.autograd.grad(y64, (x64, w64), dy.double())
    assert (y.dtype, dx.dtype, dw.dtype) == (x_dtype, x_dtype, w_dtype)
    assert_close("y", y, y64, x_dtype)
    assert_close("dx", dx, dx64, x_dtype)
    assert_close("dw", dw, dw64, w_dtype)


def test_rms_norm_rejects_mismatched_weight():
    with pytest.raises(ValueError, match="does not match the last dim"):
        rms_norm(torch.randn(2, 8, device=DEVICE), torch.ones(7, device=DEVICE))


# ------------------------------------------------------------------------------------------- together
def _train_toy_model(attention, norm, steps=8):
    """A one-block toy language model (RMSNorm -> GQA attention, 2 query heads sharing 1 kv head -> a
    residual -> logits) trained with SGD; returns the loss at every step."""
    torch.manual_seed(0)
    V, C, H, D, B, T = 32, 32, 2, 16, 2, 23
    emb, out = torch.nn.Embedding(V, C), torch.nn.Linear(C, V, bias=False)
    to_qkv = torch.nn.Linear(C, (H + 2) * D, bias=False)  # H query heads, one key head, one value head
    norm_weight = torch.nn.Parameter(torch.ones(C))
    params = [*emb.parameters(), *out.parameters(), *to_qkv.parameters(), norm_weight]
    optimizer = torch.optim.SGD(params, lr=0.5)
    idx = torch.randint(0, V, (B, T + 1), generator=torch.Generator().manual_seed(1))
    losses = []
    for _ in range(steps):
        x = emb(idx[:, :-1])  # (B, T, C)
        q, k, v = to_qkv(norm(x, norm_weight)).split([H * D, D, D], dim=-1)
        q = q.view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        k, v = k.view(B, T, 1, D).transpose(1, 2), v.view(B, T, 1, D).transpose(1, 2)  # (B, 1, T, D)
        y = attention(q, k, v).transpose(1, 2).reshape(B, T, C)
        loss = torch.nn.functional.cross_entropy(out(x + y).view(B * T, V), idx[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_toy_model_trains_the_same_with_the_kernels():
    """Liger-style convergence check: the same 8 SGD steps with the kernels and with the torch references
    give the same loss at every step (fp32), and the loss goes down."""
    with_kernels = _train_toy_model(lambda q, k, v: flash_attention(q, k, v, causal=True), rms_norm)
    with_torch = _train_toy_model(lambda q, k, v: attention_reference(q, k, v, causal=True), rms_norm_reference)
    for step, (a, b) in enumerate(zip(with_kernels, with_torch)):
        assert abs(a - b) <= 1e-5 * abs(b), f"step {step}: loss {a:.7f} with kernels, {b:.7f} with torch"
    assert with_kernels[-1] < with_kernels[0] - 0.1, with_kernels
