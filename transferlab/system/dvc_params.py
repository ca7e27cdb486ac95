"""Params that dvc.yaml declares must exist in params.yaml: DVC fails a stage whose declared key is missing,
and it finds out only when it reaches that stage, possibly after an hour of others (or after a retrain
merged a batch). The schema's defaults do not help there: DVC reads the file, not the schema."""
from __future__ import annotations

import contextlib
from pathlib import Path


def declared_params(root: Path | str) -> dict[str, list[str]]:
    """stage name → the params.yaml keys its `params:` list declares, as DVC itself parses dvc.yaml."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    root = Path(root).resolve()
    out: dict[str, list[str]] = {}
    # uninitialized: a project folder without .dvc/ (not `dvc init`-ed yet) still has a readable dvc.yaml.
    with contextlib.chdir(root), Repo(str(root), uninitialized=True) as repo:
        for stage in repo.index.stages:
            for dep in stage.deps:
                if isinstance(dep, ParamsDependency) and Path(dep.def_path).name == "params.yaml":
                    out.setdefault(stage.addressing, []).extend(dep.params)
    return out


def missing_declared_params(root: Path | str, values: dict) -> list[str]:
    """'KEY (declared by stage S, T)' for each declared key that `values` (a loaded params file) lacks."""
    missing: dict[str, list[str]] = {}
    for stage, keys in declared_params(root).items():
        for key in keys:
            node = values
            for part in key.split("."):
                if not isinstance(node, dict) or part not in node:
                    missing.setdefault(key, []).append(stage)
                    break
                node = node[part]
    return [f"{key} (declared by stage {', '.join(sorted(set(stages)))})" for key, stages in sorted(missing.items())]
