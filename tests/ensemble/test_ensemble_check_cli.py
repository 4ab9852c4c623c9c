import json

import numpy as np

from deepeft.cli import main
from deepeft.report import figures as F


def test_check_table_json_and_plots(tmp_path, capsys):
    rc = main(["check", "-a", "tanh", "-L", "4", "-n", "16", "--n-inputs", "2", "-M", "200",
               "--out", str(tmp_path), "--scan-widths", "8,16"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "kernel" in text and "V_norm" in text and "Theta" in text
    for f in ("kernel_vs_layer.png", "V_norm_vs_layer.png", "Theta_vs_layer.png", "histogram_last_layer.png",
              "vertex_vs_aspect.png", "check.json"):
        assert (tmp_path / f).stat().st_size > 0
    rc = main(["check", "-a", "relu", "-L", "3", "-n", "8", "-M", "64", "--json", "--no-ntk"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and set(doc["trust"]) == {"kernel", "V_norm"}
    assert np.asarray(doc["measured"]["values"]["kernel"]).shape == (3, 1, 1)


def test_check_errors_are_clean(capsys):
    assert main(["check", "-M", "1"]) == 2
    assert "ensemble" in capsys.readouterr().err
    assert main(["check", "-M", "8", "--scan-widths", "a,b"]) == 2


def test_edgeworth_density_normalised_with_right_kurtosis():
    z = np.linspace(-30, 30, 200001)
    p = F.edgeworth_density(z, 2.0, 0.05)
    dz = z[1] - z[0]
    assert abs(p.sum() * dz - 1) < 1e-8
    m2, m4 = (z**2 * p).sum() * dz, (z**4 * p).sum() * dz
    assert abs(m2 - 2.0) < 1e-8 and abs(m4 / m2**2 - 3 - 3 * 0.05) < 1e-8
