"""Issue 11: the first Python snippet of docs/bayes.md and docs/ensemble.md uses only names it defines
(fast, static) and runs as written (slow: it samples)."""
import ast
import builtins
import os
import re
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ["docs/bayes.md", "docs/ensemble.md"]


def first_python_block(doc):
    text = (ROOT / doc).read_text()
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)


@pytest.mark.parametrize("doc", DOCS)
def test_doc_snippet_defines_every_name_it_uses(doc):
    tree = ast.parse(first_python_block(doc))
    defined = set(dir(builtins))
    used = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            defined.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Name):
            (defined.add if isinstance(node.ctx, ast.Store) else used.append)(node.id)
    assert not sorted(set(used) - defined)


@pytest.mark.slow
@pytest.mark.parametrize("doc", DOCS)
def test_doc_snippet_runs(doc, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ns = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(first_python_block(doc), doc, "exec"), ns)
    if doc == "docs/bayes.md":
        res = ns["res"]
        assert res.ok and res.llc_mean > 0 and res.diagnostics["rhat"] < 1.1
        assert os.path.exists("model.pt") and os.path.exists("data.pt")
    else:
        assert ns["ms"] is not None
