"""CLI options that contradict each other, or would be silently ignored, are errors (issue 11)."""
from deepeft.cli import main


def test_widths_and_a_different_depth(capsys):
    assert main(["theory", "kernel", "--activation", "tanh", "--widths", "8,8,8", "-L", "3"]) == 2
    err = capsys.readouterr().err
    assert "--depth=3" in err and "allowed 4" in err


def test_widths_with_matching_or_no_depth(capsys):
    assert main(["theory", "kernel", "--activation", "tanh", "--widths", "8,8,8", "-L", "4", "--json"]) == 0
    assert main(["theory", "kernel", "--activation", "tanh", "--widths", "8,8,8", "--json"]) == 0


def test_scan_widths_needs_out(capsys):
    assert main(["check", "--scan-widths", "8,16", "--ensemble", "10"]) == 2
    assert "--scan-widths" in capsys.readouterr().err
