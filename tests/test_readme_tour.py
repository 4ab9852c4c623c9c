"""The README's "## A tour" runs as written, at quick sizes (issue 11: "Make the README tour a test
that runs").  Both code blocks are read from README.md at test time; every quick-size substitution
must match its line exactly once, so an edited README line fails here loudly instead of drifting."""
import glob
import math
import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _tour_fixtures import write_fixtures  # noqa: E402

README = Path(__file__).resolve().parents[1] / "README.md"


def _tour_blocks() -> dict:
    text = README.read_text()
    m = re.search(r"^## A tour\n(.*?)(?=^## )", text, re.S | re.M)
    assert m, "README.md has no '## A tour' section"
    blocks = dict(re.findall(r"```(python|bash)\n(.*?)```", m.group(1), re.S))
    assert set(blocks) == {"python", "bash"}, f"tour blocks found: {sorted(blocks)}"
    return blocks


def _substitute(text: str, table: list) -> str:
    for old, new in table:
        n = text.count(old)
        assert n == 1, f"quick-size substitution {old!r} matches {n} times (README changed?) in:\n{text}"
        text = text.replace(old, new)
    return text


# ---------------------------------------------------------------- python block
PY_QUICK = [
    ("ensemble=4096", "ensemble=256"),
    ("randn(2000, 8)", "randn(200, 8)"),
    ("ensemble=512", "ensemble=64"),
    ("steps=200", "steps=50"),
]


def test_tour_python_block(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    np.random.seed(0)
    torch.manual_seed(0)
    code = _substitute(_tour_blocks()["python"], PY_QUICK)
    ns = {"__name__": "__tour__"}
    exec(compile(code, "README.md:tour", "exec"), ns)

    # criticality("gelu"): the constants printed in the tour's comment, to its 8 digits
    comment = re.search(r'criticality\("gelu"\).*K\* = ([\d.]+), C_W = ([\d.]+), C_b = ([\d.]+)',
                        _tour_blocks()["python"])
    assert comment, "the tour no longer prints gelu's K*, C_W, C_b in a comment"
    k_star, c_w, c_b = map(float, comment.groups())
    g = ns["criticality"]("gelu")
    assert g.exists and g.universality_class == "half-stable"
    assert g.K_star == pytest.approx(k_star, abs=1e-7)
    assert g.C_W == pytest.approx(c_w, abs=1e-8)
    assert g.C_b == pytest.approx(c_b, abs=1e-8)
    assert (g.K_star, g.C_W, g.C_b) == pytest.approx((3.5615528, 1.98305826, 0.17292239), abs=1e-7)
    elu = ns["criticality"]("elu")
    assert elu.exists and elu.C_b == 0.0 and elu.C_W == pytest.approx(1.0) and elu.K_star == 0.0
    sig = ns["criticality"]("sigmoid")
    assert not sig.exists and sig.message.startswith("sigmoid cannot be tuned to criticality")

    # compare(theory, mc): every z finite (deterministic entries are 'exact', z = 0), none mismatched
    cmp_mc = ns["compare"](ns["theory"], ns["mc"])
    assert cmp_mc.rows
    assert all(r["status"] in ("z", "exact") for r in cmp_mc.rows), [r for r in cmp_mc.rows if r["status"] == "mismatch"]
    assert all(math.isfinite(r["z"]) for r in cmp_mc.rows)
    assert math.isfinite(cmp_mc.max_abs_z())

    k = ns["k"]
    assert np.asarray(k.nngp).shape[:2] == (200, 200) and np.all(np.isfinite(np.asarray(k.ntk)))
    # the trained comparison: a non-empty table, one row per test input at least
    tab = ns["cmp"].table()
    assert tab.strip() and len(tab.strip().splitlines()) >= 1 + ns["d"].x_test.shape[0]
    assert "z" in capsys.readouterr().out


# ---------------------------------------------------------------- bash block
# quick-size substitutions per command (matched by the command's exact README text prefix)
BASH_QUICK = {
    "deepeft check": [("--ensemble 2000", "--ensemble 100")],
    "deepeft llc MODEL.pt --data DATA.pt --json": [("--json", "--json --chains 2 --draws 100")],
    "deepeft llc MODEL.pt --data DATA.pt --lr 1e-4": [("--chains 8", "--chains 4 --draws 100")],
    "deepeft bayes dln-gibbs": [("10 10 10 10 10 10", "4 4 4 4"), ("--nbeta 1e5", "--nbeta 1e5 --chains 2 --sweeps 50")],
    "deepeft llc DLN.pt": [("--localization 1", "--localization 1 --chains 2 --draws 100")],
    "deepeft bayes wbic": [("--prior-precision 1", "--prior-precision 1 --chains 2 --draws 100")],
    "deepeft bayes llc-sweep": [("--lr 1e-4", "--lr 1e-4 --chains 2 --draws 100")],
    "deepeft study run": [("examples/quickstart.toml", "quick.toml")],
    "deepeft train-check": [("--width 256", "--width 32"), ("--ensemble 256", "--ensemble 32"),
                            ("--steps 200", "--steps 20")],
    "deepeft train-lr-equivalence": [("--depths 2,4,8", "--depths 2,4 --width 16 --ensemble 16 --steps 20")],
}
SLOW: set = set()  # README commands too slow even at quick size (run with -m slow)


def _bash_commands() -> list:
    cmds = []
    for line in _tour_blocks()["bash"].splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        for part in line.split("&&"):
            part = part.strip()
            assert part.startswith("deepeft "), f"tour line is not a deepeft command: {part!r}"
            cmds.append(part)
    return cmds


def _quick(cmd: str) -> str:
    keys = [k for k in BASH_QUICK if cmd.startswith(k)]
    assert len(keys) <= 1, (cmd, keys)
    return _substitute(cmd, BASH_QUICK[keys[0]]) if keys else cmd


def _run(cmd: str, where: Path) -> int:
    from deepeft.cli import main
    argv = []
    for tok in shlex.split(_quick(cmd))[1:]:
        hits = sorted(glob.glob(str(where / tok))) if any(c in tok for c in "*?[") else None
        if hits is not None:
            assert hits, f"glob {tok!r} matches nothing in the fixture dir"
            argv += [Path(h).name for h in hits]
        else:
            argv.append(tok)
    torch.manual_seed(0)
    np.random.seed(0)
    return main(argv)


@pytest.fixture(scope="module")
def tour_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tour")
    write_fixtures(d)
    return d


def test_every_quick_substitution_is_used():
    cmds = _bash_commands()
    for key in BASH_QUICK:
        assert any(c.startswith(key) for c in cmds), f"no tour command starts with {key!r}"


_CMDS = _bash_commands()


@pytest.mark.parametrize("cmd", [c for c in _CMDS if c not in SLOW])
def test_tour_bash_line(cmd, tour_dir, monkeypatch, one_torch_thread):
    monkeypatch.chdir(tour_dir)
    assert _run(cmd, tour_dir) == 0, cmd


@pytest.mark.slow
@pytest.mark.parametrize("cmd", [c for c in _CMDS if c in SLOW] or [pytest.param("", marks=pytest.mark.skip("none slow"))])
def test_tour_bash_line_slow(cmd, tour_dir, monkeypatch):
    monkeypatch.chdir(tour_dir)
    assert _run(cmd, tour_dir) == 0, cmd
