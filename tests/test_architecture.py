"""The one-way import rule (docs/architecture.md, "Rooms and one-way imports"), checked on the source
with the AST: the engines (core, theory, ensemble, bayes, nets) import nothing from studies, report
or cli, and no import cycle exists among deepeft's modules."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "deepeft"
ENGINES = ("core", "theory", "ensemble", "bayes", "nets")
OUTER = ("studies", "report", "cli")


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path):
    """(imported module, lazy) for every import in a file; ``lazy`` = inside a function body.
    A package's ``__getattr__`` (PEP 562 lazy re-export for users) is skipped: engine code never runs it."""
    mod = _module(path)
    pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    out = []

    def visit(node, lazy):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if path.name == "__init__.py" and child.name == "__getattr__":
                    continue
                visit(child, True)
                continue
            if isinstance(child, ast.Import):
                out.extend((a.name, lazy) for a in child.names if a.name.startswith("deepeft"))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = pkg.split(".")
                    base = base[:len(base) - child.level + 1]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.startswith("deepeft"):
                    # "from . import x" / "from .pkg import mod": the imported names may be modules
                    out.append((target, lazy))
                    out.extend((f"{target}.{a.name}", lazy) for a in child.names)
            visit(child, lazy)

    visit(tree, False)
    return out


def _all_modules():
    return {_module(p): p for p in ROOT.rglob("*.py")}


def test_engines_never_import_studies_report_or_cli():
    bad = []
    for mod, path in _all_modules().items():
        room = mod.split(".")[1] if mod.count(".") else ""
        if room not in ENGINES:
            continue
        for target, _ in _imports(path):
            parts = target.split(".")
            if len(parts) > 1 and parts[1] in OUTER:
                bad.append(f"{mod} imports {target}")
    assert not bad, bad


def test_no_import_cycles():
    # function-level (lazy) imports count too: they hide a cycle from Python, not from the reader
    mods = _all_modules()
    graph = {m: set() for m in mods}
    for mod, path in mods.items():
        for target, _ in _imports(path):
            if target in mods and target != mod:
                graph[mod].add(target)
    # a package's __init__ re-exporting its submodules is not a cycle of the submodules' code
    for mod in graph:
        graph[mod] = {t for t in graph[mod] if not mod.startswith(t + ".")}
    cycles, state = [], {}

    def dfs(m, stack):
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                dfs(t, stack)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            dfs(m, [])
    assert not cycles, cycles


def test_the_rule_checker_sees_a_violation(tmp_path):
    # the checker itself: a relative import of studies from an engine module is found
    f = tmp_path / "deepeft" / "bayes" / "x.py"
    f.parent.mkdir(parents=True)
    f.write_text("from ..studies.store import Store\n\ndef g():\n    from ..cli import main\n")
    global ROOT
    old, ROOT = ROOT, tmp_path / "deepeft"
    try:
        assert ("deepeft.studies.store", False) in _imports(f) and ("deepeft.cli.main", True) in _imports(f)
    finally:
        ROOT = old
