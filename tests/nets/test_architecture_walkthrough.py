"""docs/architecture.md, "Adding a layer": the walk-through's code runs as written (its asserts are the test)."""
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def _walkthrough_code() -> str:
    text = DOC.read_text()
    section = text.split("## Adding a layer", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the walk-through has one python block"
    return blocks[0]


def test_walkthrough_runs():
    ns: dict = {}
    exec(compile(_walkthrough_code(), str(DOC), "exec"), ns)
    assert ns["H"].shape == (4, 5, 5)
