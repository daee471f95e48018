"""kernels/cpu_attention.py against a float64 reference: outputs and the gradients of q, k and v."""
import pytest
import torch
import torch.nn.functional as F

from kernels.cpu_attention import cpu_attention


def reference(q, k, v, d_out):
    """Causal SDPA in float64 (GQA by repeating kv heads): the output and (dq, dk, dv)."""
    q, k, v = (t.detach().double().requires_grad_() for t in (q, k, v))
    group = q.shape[1] // k.shape[1]
    out = F.scaled_dot_product_attention(q, k.repeat_interleave(group, 1), v.repeat_interleave(group, 1),
                                         is_causal=True)
    out.backward(d_out.double())
    return out.detach(), (q.grad, k.grad, v.grad)


def run(attend, q, k, v, d_out):
    q, k, v = (t.detach().clone().requires_grad_() for t in (q, k, v))
    out = attend(q, k, v)
    out.backward(d_out)
    return out.detach().double(), tuple(t.grad.double() for t in (q, k, v))


def max_errors(got, want):
    """The largest absolute error of the output and of each gradient."""
    return [(a - b).abs().max().item() for a, b in zip([got[0], *got[1]], [want[0], *want[1]])]


def inputs(dtype, B=2, H=4, H_kv=4, T=96, D=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, T, D, generator=g).to(dtype)
    k, v = (torch.randn(B, H_kv, T, D, generator=g).to(dtype) for _ in range(2))
    return q, k, v, torch.randn(B, H, T, D, generator=g).to(dtype)


@pytest.mark.parametrize("heads", [(4, 4), (4, 2), (4, 1)])
def test_float32_matches_reference(heads):
    """In fp32 the five-matmul backward is the exact math: within 1e-5 of float64, GQA included."""
    q, k, v, d_out = inputs(torch.float32, H=heads[0], H_kv=heads[1])
    errors = max_errors(run(cpu_attention, q, k, v, d_out), reference(q, k, v, d_out))
    assert max(errors) < 1e-5, errors


def test_bfloat16_as_accurate_as_torch():
    """In bf16 every result is rounded to 8 bits of mantissa. The gradients must stay within 1.5x of the
    error of torch's own bf16 attention on the same inputs (both against float64). The output may be
    off by one bf16 step where torch's is off by half (our scores are rounded to bf16: the module
    docstring says why), and no more: within 2.5x of torch's error."""
    q, k, v, d_out = inputs(torch.bfloat16, T=128)
    want = reference(q, k, v, d_out)
    ours = max_errors(run(cpu_attention, q, k, v, d_out), want)
    sdpa = max_errors(run(lambda *t: F.scaled_dot_product_attention(*t, is_causal=True), q, k, v, d_out), want)
    assert ours[0] <= 2.5 * sdpa[0], (ours, sdpa)
    assert all(o <= 1.5 * s + 1e-3 for o, s in zip(ours[1:], sdpa[1:])), (ours, sdpa)


def test_compiled_matches_eager():
    """torch.compile (how model.py uses it) fuses the elementwise steps; the results stay the same math."""
    q, k, v, d_out = inputs(torch.float32, H_kv=2, T=64)
    compiled = run(torch.compile(cpu_attention, dynamic=False), q, k, v, d_out)
    errors = max_errors(compiled, reference(q, k, v, d_out))
    assert max(errors) < 1e-5, errors


def test_compiled_model_uses_it_and_agrees():
    """A bf16 GPT compiled on the CPU (attention through this file) gives the eager model's loss and
    gradients (attention through fp32 SDPA) up to bf16 rounding."""
    from model import GPT, GPTConfig
    config = GPTConfig(n_layer=1, n_head=2, n_kv_head=1, n_embd=64, block_size=32, vocab_size=128, kernels="torch")
    torch.manual_seed(0)
    model, tokens = GPT(config), torch.randint(0, 128, (4, 33))

    def loss_and_grads(forward):
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", torch.bfloat16):
            _, loss = forward(tokens[:, :-1], tokens[:, 1:])
        loss.backward()
        return loss.item(), torch.cat([p.grad.flatten() for p in model.parameters()])

    calls = []
    import kernels.cpu_attention as module
    original = module.cpu_attention
    module.cpu_attention = lambda *t: calls.append(1) or original(*t)  # model.py imports it at call time
    try:
        compiled_loss, compiled_grads = loss_and_grads(torch.compile(model, dynamic=False))
    finally:
        module.cpu_attention = original
    eager_loss, eager_grads = loss_and_grads(model)
    assert calls, "the compiled model did not attend through kernels/cpu_attention.py"
    assert abs(compiled_loss - eager_loss) < 1e-2
    assert F.cosine_similarity(compiled_grads, eager_grads, dim=0) > 0.999
