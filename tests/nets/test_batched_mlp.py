"""deepeft.nets.BatchedMLP: manual backward = autograd, NTK = Jacobian NTKs, init = the ensemble sampler."""
import numpy as np
import pytest
import torch
from torch import nn

from deepeft.core.errors import ParameterError
from deepeft.core.spec import MLPSpec
from deepeft.ensemble import empirical_ntk, ensemble_ntk_autograd, sample_preactivations
from deepeft.nets import BatchedMLP

SPECS = {
    "tanh_ntk": MLPSpec.make("tanh", 3, 6, 3, C_W=1.1, C_b=0.1),
    "relu_std_unequal": MLPSpec.make("relu", 3, [5, 7], 3, C_W=2.0, C_b=0.3, parameterization="standard"),
    "residual": MLPSpec.make("relu", 4, 6, 3, C_W=1.5, C_b=0.05, residual=(0.8, 0.6)),
    "gelu_out2_perlayer": MLPSpec.make("gelu", 3, 5, 3, C_W=[1.2, 1.5, 0.9], C_b=[0.2, 0.0, 0.1], output_width=2,
                                       parameterization="standard", lambda_W=[1.0, 2.0, 0.5]),
    "erf_depth1": MLPSpec.make("erf", 1, 5, 3, C_W=1.2, C_b=0.2),
    "swish_lambdas": MLPSpec.make("silu", 2, 4, 3, C_W=1.7, C_b=0.4, lambda_W=[0.5, 2.0], lambda_b=[1.0, 0.3]),
}
X = np.random.default_rng(0).normal(size=(4, 3))


def _autograd_grads(net, params, x, dout):
    leaves = [{k: v.detach().clone().requires_grad_(True) for k, v in p.items()} for p in params]
    out = net.forward(leaves, x)
    flat = [v for p in leaves for v in p.values()]
    g = torch.autograd.grad((out * dout).sum(), flat)
    it = iter(g)
    return [{k: next(it) for k in p} for p in leaves]


@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize("shared", [True, False])
def test_manual_backward_equals_autograd(name, shared):
    spec = SPECS[name]
    net = BatchedMLP(spec)
    M = 5
    params = net.init(M, seed=1)
    x = torch.as_tensor(X) if shared else torch.randn(M, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    out, cache = net.forward(params, x, keep=True)
    assert out.shape == (M, 4, spec.output_width)
    torch.testing.assert_close(out, net.forward(params, x), rtol=0, atol=0)
    dout = torch.randn(out.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    manual = net.backward(params, cache, dout)
    auto = _autograd_grads(net, params, x, dout)
    for gm, ga in zip(manual, auto):
        for k in ga:
            torch.testing.assert_close(gm[k], ga[k], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", list(SPECS))
def test_ntk_equals_jacobian_ntk(name):
    spec = SPECS[name]
    net = BatchedMLP(spec)
    params = net.init(3, seed=4)
    x = torch.as_tensor(X)
    Ws, bs = zip(*net.weights(params))
    ref = ensemble_ntk_autograd(spec, x, list(Ws), list(bs))  # per-network Jacobians (torch.func)
    layers = net.ntk_layers(params, x)
    for Hl, Rl in zip(layers, ref):
        torch.testing.assert_close(Hl.expand_as(Rl), Rl, rtol=1e-10, atol=1e-12)
    H = net.ntk(params, x)
    R = ref[-1][..., 0, 0] if spec.output_width == 1 else ref[-1]
    torch.testing.assert_close(H, R, rtol=1e-10, atol=1e-12)
    # cross NTK Θ̂(x1, x2) against the full one on the stacked inputs
    H12 = net.ntk(params, x[:2], x[1:])
    torch.testing.assert_close(H12, H[:, :2, 1:], rtol=1e-10, atol=1e-12)


def test_ntk_equals_nn_module_ntk_standard():
    """Independent of deepeft.nets: an nn.Sequential with the same weights and the per-parameter rates."""
    spec = SPECS["relu_std_unequal"]
    net = BatchedMLP(spec)
    params = net.init(2, seed=5)
    H = net.ntk(params, X)
    rates = net.rates()
    for m in range(2):
        mods = []
        for l, (W, b) in enumerate(net.weights(params)):
            lin = nn.Linear(W.shape[2], W.shape[1]).double()
            with torch.no_grad():
                lin.weight.copy_(W[m])
                lin.bias.copy_(b[m])
            mods += [lin, nn.ReLU()]
        model = nn.Sequential(*mods[:-1])
        r = {f"{2 * l}.weight": rates[l]["W"] for l in range(spec.depth)}
        r.update({f"{2 * l}.bias": rates[l]["b"] for l in range(spec.depth)})
        ref = empirical_ntk(model, torch.as_tensor(X), compute="trace", rates=r)
        torch.testing.assert_close(H[m], ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["tanh_ntk", "relu_std_unequal", "residual"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_init_is_the_ensemble_samplers_networks(name, dtype):
    spec = SPECS[name]
    M, B = 12, 4
    z_ref = sample_preactivations(spec, X, M, seed=7, method="weights", dtype=dtype, rng_block=B)
    net = BatchedMLP(spec, dtype=dtype)
    params = net.init(M, seed=7, rng_block=B)
    zs = net.preactivations(params, torch.as_tensor(X, dtype=dtype))
    for l, z in enumerate(zs, start=1):
        assert torch.equal(z, z_ref[l]), l
    # chunks of whole RNG blocks reproduce the whole ensemble bit for bit
    parts = [net.init(8, seed=7, rng_block=B, start=0, total=M), net.init(4, seed=7, rng_block=B, start=8, total=M)]
    for l in range(spec.depth):
        for k in ("W", "b"):
            assert torch.equal(torch.cat([parts[0][l][k], parts[1][l][k]]), params[l][k])
    with pytest.raises(ParameterError, match="start"):
        net.init(4, seed=7, rng_block=B, start=2, total=M)


def test_float32_and_rates():
    spec = SPECS["tanh_ntk"]
    net = BatchedMLP(spec, dtype="float32")
    params = net.init(4, seed=0)
    assert params[0]["W"].dtype == torch.float32
    out, cache = net.forward(params, X, keep=True)
    dout = torch.ones_like(out)
    manual = net.backward(params, cache, dout)
    auto = _autograd_grads(net, params, torch.as_tensor(X, dtype=torch.float32), dout)
    for gm, ga in zip(manual, auto):
        for k in ga:
            torch.testing.assert_close(gm[k], ga[k], rtol=1e-5, atol=1e-5)
    assert net.rates() == [{"W": a, "b": b} for a, b in (spec.per_parameter_rates(l) for l in range(1, 4))]


@pytest.mark.parametrize("name", ["tanh_ntk", "gelu_out2_perlayer", "residual"])
def test_gradient_step_with_rates_moves_outputs_by_the_ntk(name):
    """Δθ = −η·rate·∂L/∂θ changes f by −η Θ̂ ∂L/∂f to first order (PDLT's GD with λ_W, λ_b)."""
    spec = SPECS[name]
    net = BatchedMLP(spec)
    params = net.init(3, seed=9)
    x = torch.as_tensor(X)
    out, cache = net.forward(params, x, keep=True)
    dout = torch.randn(out.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    grads = net.backward(params, cache, dout)
    eta = 1e-6
    new = [{k: p[k] - eta * r[k] * g[k] for k in p} for p, g, r in zip(params, grads, net.rates())]
    df = (net.forward(new, x) - out) / eta
    H = net.ntk(params, x)
    if spec.output_width == 1:
        pred = -torch.einsum("mab,mb->ma", H, dout[..., 0])[..., None]
    else:
        pred = -torch.einsum("mabij,mbj->mai", H, dout)
    torch.testing.assert_close(df, pred, rtol=1e-4, atol=1e-5)


def test_bad_inputs():
    net = BatchedMLP(SPECS["tanh_ntk"])
    with pytest.raises(ParameterError, match="x"):
        net.forward(net.init(2), np.zeros((4, 5)))
    with pytest.raises(ParameterError, match="spec"):
        BatchedMLP("not a spec")
    with pytest.raises(ParameterError, match="M"):
        net.init(0)
