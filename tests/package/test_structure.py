"""Module boundaries: each pipeline stage is one module that imports no other stage, helpers live lower,
the package has no import cycle, and pyflakes finds no unused import or undefined name in the package, its tests, scripts and benchmarks."""
import ast
import os
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "ratingflow"
#: one module per stage of the workflow (workflow/rules/<stage>.smk calls ratingflow.<stage>)
STAGES = {"clean", "prior_check", "fit", "summarise", "publish", "report", "changes", "overview", "periods", "export", "discharge"}


def imports() -> dict[str, set[str]]:
    """Module (dotted, below ratingflow) -> the ratingflow modules it imports, at any depth of the file."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).with_suffix("")
        name = ".".join(p for p in rel.parts if p != "__init__") or "__init__"
        package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - node.level + 1]
                    target = ".".join([*base, node.module] if node.module else base)
                    if node.module is None:
                        found |= {".".join([*base, a.name]) for a in node.names}
                    else:
                        found.add(target)
                elif node.module and node.module.startswith("ratingflow."):
                    found.add(node.module[len("ratingflow."):])
            elif isinstance(node, ast.Import):
                found |= {a.name[len("ratingflow."):] for a in node.names if a.name.startswith("ratingflow.")}
        graph[name] = {m for m in found if m and m != name}
    return graph


def test_stages_do_not_import_each_other():
    graph = imports()
    assert STAGES <= set(graph), STAGES - set(graph)
    for stage in STAGES:
        assert not graph[stage] & STAGES, (stage, graph[stage] & STAGES)


def test_no_import_cycles():
    graph = imports()
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*path, node, nxt]))
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [])


def test_pyflakes_is_clean():
    root = PACKAGE.parents[1]  # the package, its tests, the workflow's scripts and the benchmarks (not bench's venv)
    files = [PACKAGE, root / "tests", root / "workflow" / "scripts", *sorted((root / "bench").glob("*.py"))]
    run = subprocess.run([sys.executable, "-m", "pyflakes", *map(str, files)], capture_output=True, text=True)
    found = [line for line in (run.stdout + run.stderr).splitlines()
             if not (f"{os.sep}scripts{os.sep}" in line and "undefined name 'snakemake'" in line)]  # Snakemake sets it
    assert not found, "\n".join(found)


def test_stages_that_sample_nothing_do_not_import_jax():
    """Every job pays its imports (JAX with NumPyro about 2-3 s of a job's few seconds): the stages that sample
    nothing, rating periods among them, must not load JAX, NumPyro or ArviZ."""
    light = ["clean", "periods", "publish", "report", "changes", "overview", "export"]
    code = (f"import sys; import {', '.join('ratingflow.' + s for s in light)}; "
            "print(sorted(m for m in ('jax', 'numpyro', 'arviz') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]", run.stdout
