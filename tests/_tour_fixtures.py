"""Small, valid fixture files for the README tour's bash block (tests/test_readme_tour.py).

Formats follow deepeft/cli/bayes_cmd.py: a model file is a whole pickled ``nn.Module``
(``torch.save(model, path)``); DATA.pt is a dict ``{"x": inputs, "y": targets}``."""
from pathlib import Path

import torch
from torch import nn

IN, HID, OUT, N = 4, 8, 4, 64

# the tour's quickstart.toml, shrunk: same sections, one activation per class, tiny ensembles
QUICK_STUDY = """\
[study]
name = "quickstart"
description = "tour test: the quickstart study at quick size"
output = "quickstart-results"

[inputs]
kind = "generated"
n_inputs = 2
input_dim = 8
seed = 0

[run]
observables = ["kernel", "V_norm", "Theta"]
order = "1/n"

[defaults]
ensemble = 64
seed = 0
parameterization = "ntk"

[grid]
activation = ["relu", "tanh"]
width = [16]
depth = [3]
C_b = "critical"
C_W = "critical"

[[points]]
activation = "tanh"
width = 16
depth = 3
C_b = 0.1
C_W = 1.5
"""


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, IN, generator=g)
    teacher = torch.randn(IN, OUT, generator=g) / IN ** 0.5
    y = torch.tanh(x @ teacher) + 0.1 * torch.randn(N, OUT, generator=g)
    return x, y


def _mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(IN, HID), nn.Tanh(), nn.Linear(HID, OUT))


def _fit(model: nn.Module, x, y, steps: int) -> nn.Module:
    if steps:
        opt = torch.optim.LBFGS(model.parameters(), max_iter=steps)

        def closure():
            opt.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            return loss

        opt.step(closure)
    return model


def write_fixtures(where: Path) -> None:
    """MODEL.pt (tanh MLP trained a few LBFGS steps), DATA.pt, DLN.pt (bias-free [4,3,4]),
    CKPT_0.pt … CKPT_2.pt (the same MLP after 0, 5, 20 LBFGS iterations), quick.toml."""
    x, y = _data()
    torch.save({"x": x, "y": y}, where / "DATA.pt")
    torch.save(_fit(_mlp(0), x, y, 20), where / "MODEL.pt")
    torch.manual_seed(1)
    dln = nn.Sequential(nn.Linear(IN, 3, bias=False), nn.Linear(3, OUT, bias=False))
    torch.save(_fit(dln, x, y, 10), where / "DLN.pt")
    for i, steps in enumerate((0, 5, 20)):
        torch.save(_fit(_mlp(0), x, y, steps), where / f"CKPT_{i}.pt")
    (where / "quick.toml").write_text(QUICK_STUDY)
