"""dvc.yaml's deps cover the code each stage runs, and the package layering holds (one direction of imports).

A stage's code is everything its module `stages/X.py` reaches through imports of `stages.*` and
`transferlab.*` (also imports inside functions): if one of those files is not under a declared dep, DVC
would serve a stale result after it changes.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ..conftest import ROOT

PROJECT_PACKAGES = ("transferlab", "stages", "flows")


def _module_file(module: str) -> Path | None:
    """The file of a project module (a package's __init__.py), or None for third-party modules."""
    if module.split(".")[0] not in PROJECT_PACKAGES:
        return None
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Project modules a file imports (absolute and relative, anywhere in the file), with their parent packages."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    return imported_modules_of_text(path.read_text(), package, str(path))


def imported_modules_of_text(text: str, package: str, filename: str = "<text>") -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(text, filename)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import mod` may name a submodule
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        for name in names:
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ too
                if _module_file(".".join(parts[:i])):
                    found.add(".".join(parts[:i]))
    return found


def _has_code(path: Path) -> bool:
    """False for a package marker that holds at most a docstring: editing it changes nothing a stage runs."""
    body = ast.parse(path.read_text()).body
    return any(not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) for node in body)


def reachable_files(module: str) -> set[Path]:
    """Project files a module runs when imported, following its imports transitively."""
    todo, seen = [module], set()
    while todo:
        path = _module_file(todo.pop())
        if path is None or path in seen:
            continue
        seen.add(path)
        todo.extend(imported_modules(path))
    return {p for p in seen if p.name != "__init__.py" or _has_code(p)}


def stage_code_deps() -> list[tuple[str, str, list[str]]]:
    """(stage name, stage module, deps) for every stage of dvc.yaml, foreach stages expanded."""
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    rows = []
    for name, stage in spec["stages"].items():
        body = stage.get("do", stage)
        module = re.search(r"python -m (stages\.\w+)", body["cmd"]).group(1)
        deps = [d for d in body.get("deps", []) if "${" not in d]  # data deps with vars are not code
        rows.append((name, module, deps))
    return rows


@pytest.mark.parametrize("stage,module,deps", stage_code_deps(), ids=[r[0] for r in stage_code_deps()])
def test_every_file_a_stage_imports_is_a_declared_dep(stage, module, deps):
    dep_paths = [ROOT / d for d in deps]
    missing = sorted(str(f.relative_to(ROOT)) for f in reachable_files(module)
                     if not any(f == d or d in f.parents for d in dep_paths))
    assert not missing, f"stage {stage} ({module}) imports code its dvc.yaml deps do not cover: {missing}"


def test_the_walk_follows_relative_and_function_level_imports():
    files = {str(f.relative_to(ROOT)) for f in reachable_files("stages.report")}
    assert "stages/_common.py" in files  # the stages' shared argument parsing
    assert any(f.startswith("transferlab/params/") for f in files)


# The library's layers, lowest first. A module imports its own layer and the layers before it, never one after:
# the rule comes from the folder a module lives in, so a new module obeys it without being listed here.
LAYERS = ("params", "system", "analysis", "models", "data", "core", "experiments", "report", "ops", "cli")


def _layer(module: str) -> str:
    return module.split(".")[1]


def _experiment(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "experiments" else None


def _library_imports() -> list[tuple[Path, str, str]]:
    """(file, its module, a library module it imports) for every import inside transferlab, parent packages
    that hold only a docstring left out (importing a.b.c runs them, but they depend on nothing)."""
    rows = []
    for path in sorted((ROOT / "transferlab").rglob("*.py")):
        me = _module_name(path)
        for target in imported_modules(path):
            if target.count(".") == 0 or target == me or not _has_code(_module_file(target)):
                continue
            if target.startswith("transferlab."):
                rows.append((path, me, target))
    return rows


def test_every_library_folder_is_a_known_layer():
    folders = {p.name for p in (ROOT / "transferlab").iterdir() if p.is_dir() and p.name != "__pycache__"}
    modules = {p.stem for p in (ROOT / "transferlab").glob("*.py") if p.stem != "__init__"}
    assert folders | modules == set(LAYERS), "a top-level folder of transferlab/ that is not a layer"
    for folder in folders:
        doc = ast.get_docstring(ast.parse((ROOT / "transferlab" / folder / "__init__.py").read_text()))
        assert doc, f"transferlab/{folder}/__init__.py must say what the folder is"


def layer_violations(rows: list[tuple[str, str, str]]) -> list[str]:
    """(where, importing module, imported module) rows that break the layer rule or import another experiment."""
    wrong = []
    for where, me, target in rows:
        if LAYERS.index(_layer(target)) > LAYERS.index(_layer(me)):
            wrong.append(f"{where} ({_layer(me)}) imports {target} ({_layer(target)}), a later layer")
        elif _experiment(me) and _experiment(target) and _experiment(me) != _experiment(target):
            wrong.append(f"{where} (experiment {_experiment(me)}) imports another experiment: {target}")
    return wrong


def test_a_module_imports_only_its_own_layer_and_the_layers_below_and_no_other_experiment():
    rows = [(str(path.relative_to(ROOT)), me, target) for path, me, target in _library_imports()]
    assert rows and not layer_violations(rows), "\n".join(layer_violations(rows))


def test_the_layer_rule_catches_an_upward_import_and_a_sibling_experiment():
    """The walk sees function-level imports, and the rule flags core → experiments and experiment → experiment."""
    text = "def f():\n    from transferlab.experiments.transfer import finetune\n"
    found = imported_modules_of_text(text, "transferlab.core")
    assert "transferlab.experiments.transfer.finetune" in found
    rows = [("core/x.py", "transferlab.core.x", "transferlab.experiments.transfer.finetune"),
            ("fewshot.py", "transferlab.experiments.fewshot", "transferlab.experiments.distillation"),
            ("fine", "transferlab.experiments.fewshot", "transferlab.core.engine")]
    assert [w.split(" ")[0] for w in layer_violations(rows)] == ["core/x.py", "fewshot.py"]


def test_the_library_never_imports_stages_or_flows():
    for path in sorted((ROOT / "transferlab").rglob("*.py")):
        back = {m for m in imported_modules(path) if m.split(".")[0] in ("stages", "flows")}
        assert not back, f"{path.relative_to(ROOT)} imports {sorted(back)}"


def test_flows_never_import_torch():
    code = "import sys, flows.pipeline, flows.retrain, flows.serve; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
