"""Where did this artifact come from? Walk dvc.lock from any output back to the raw inputs: stage,
command, params, md5 of every input and output, the git commit, the Prefect flow run, and whether the
workspace still matches dvc.lock. No torch here (the Prefect flows record their runs through it)."""
from __future__ import annotations

import datetime as dt
import json
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from transferlab.system.io import read_json, write_json
from transferlab.ops.git import git

FLOW_RUNS_FILE = Path(".transferlab") / "flow-runs.json"
FLOW_RUNS_KEPT = 100
ROOTS_MANIFEST = "data/roots.json"  # written by the data_roots stage (transferlab.data.roots)
WEIGHTS_MANIFEST = "data/weights.json"  # data_roots too: each imported backbone's weights file and its md5
CODE_FOLDERS = ("stages", "transferlab", "flows")  # a stage's code deps: shown as one hash unless asked for


@dataclass
class Step:
    stage: str
    cmd: str
    params: dict
    deps: dict[str, str]  # path → md5
    outs: dict[str, str]
    upstream: list[str] = field(default_factory=list)  # stages whose outs this one depends on
    flow_run: dict | None = None
    changed: list[str] = field(default_factory=list)  # what DVC says differs from dvc.lock (empty: up to date)


@dataclass
class Lineage:
    target: str
    steps: list[Step]  # the target's stage first, then upstream
    raw_inputs: dict[str, str]  # deps no stage produces (code, params files, external data) → md5
    commit: str
    lock_committed: bool  # dvc.lock as in the last commit (False: uncommitted changes)

    @property
    def stale(self) -> bool:
        return any(s.changed for s in self.steps)

    def as_dict(self) -> dict:
        return {**asdict(self), "stale": self.stale}


def is_code(path: str) -> bool:
    return path.split("/", 1)[0] in CODE_FOLDERS


def code_hash(deps: dict[str, str]) -> tuple[str, int]:
    """(one md5 over a stage's code deps' paths and md5s, how many there are): a stage's code version at a glance."""
    import hashlib

    code = sorted((p, m) for p, m in deps.items() if is_code(p))
    return hashlib.md5("".join(f"{p} {m}\n" for p, m in code).encode()).hexdigest(), len(code)


def _producers(dep: str, producer: dict[str, str]) -> set[str]:
    """The stages whose outputs make up `dep`: the one that writes it, one that writes the folder holding it, or
    those writing inside it (a stage that reads a whole folder of other stages' models)."""
    return {name for out, name in producer.items() if _contains(out, dep) or _contains(dep, out)}


def _md5(entry: dict) -> str:
    return entry.get("md5") or entry.get("hash") or entry.get("etag") or "?"


def _contains(out: str, target: str) -> bool:
    return target == out or target.startswith(out.rstrip("/") + "/")


def _dvc_changes(root: Path, stages: list[str]) -> dict[str, list[str]]:
    """DVC's own status of each stage: changed deps/outs/command versus dvc.lock."""
    import contextlib

    from dvc.repo import Repo

    # DVC resolves a stage's paths against the working directory: run the status from the repo root.
    with contextlib.chdir(root), Repo(str(root)) as repo:
        status = repo.status(targets=stages)
    out: dict[str, list[str]] = {}
    for stage, changes in status.items():
        name = stage.split(":")[-1]
        for change in changes:
            if isinstance(change, dict):
                for kind, items in change.items():
                    detail = items if isinstance(items, dict) else {str(items): ""}
                    out.setdefault(name, []).extend(f"{kind}: {p} {state}".strip() for p, state in detail.items())
            elif change != "always changed":  # data_roots runs every time by design: not a sign of staleness
                out.setdefault(name, []).append(str(change))
    return out


def _registered(root: Path, target: str) -> dict | None:
    from transferlab.ops.registry import versions

    return next((v for v in versions(root) if _contains(v["path"], target)), None)


def _trace_registered(root: Path, target: str, entry: dict) -> Lineage:
    """A registry copy: the registration itself, then the stages that made its source, as dvc.lock recorded
    them at the commit the version's git tag names (the workspace may have moved on since)."""
    from transferlab.system.io import dir_md5

    commit = git(root, "rev-parse", f"{entry['git_tag']}^{{commit}}") if entry.get("git_tag") else ""
    lock_text = git(root, "show", f"{commit}:dvc.lock") if commit else None
    inner = trace(root, entry["source"], lock_text=lock_text)
    copy = root / entry["path"]
    changed = [] if copy.is_dir() and dir_md5(copy) == entry["md5"] else \
        [f"modified: {entry['path']} (md5 differs from registry.json)" if copy.is_dir() else
         f"missing: {entry['path']} (run `dvc pull {entry.get('dvc_file') or entry['path']}`)"]
    step = Step(f"registry {entry['name']} v{entry['version']} ({entry['stage']})",
                f"transferlab promote (git tag {entry.get('git_tag')}, registered {entry['registered']})",
                {"registry.json": {"metrics": entry["metrics"], "data_md5": entry["data_md5"]}},
                {entry["source"]: entry["md5"]}, {entry["path"]: entry["md5"]}, [inner.steps[0].stage] if inner.steps
                else [], entry.get("flow_run"), changed)
    return Lineage(target, [step, *inner.steps], inner.raw_inputs, commit or inner.commit,
                   inner.lock_committed if not commit else True)


def trace(root: Path | str, target: str, lock_text: str | None = None) -> Lineage:
    """The chain of stages that produced `target` (a path relative to the repo root). With `lock_text` (a
    dvc.lock of an earlier commit) the chain is read from it and the workspace is not compared."""
    root = Path(root).resolve()
    lock_path = root / "dvc.lock"
    if lock_text is None and not lock_path.exists():
        raise FileNotFoundError(f"{lock_path} not found: run `dvc repro` first")
    stages = yaml.safe_load(lock_text if lock_text is not None else lock_path.read_text()).get("stages", {})
    target = Path(target).as_posix().lstrip("./") if not Path(target).is_absolute() else \
        Path(target).resolve().relative_to(root).as_posix()
    producer = {o["path"]: name for name, s in stages.items() for o in s.get("outs", [])}
    start = next((name for out, name in producer.items() if _contains(out, target)), None)
    if start is None and lock_text is None and (entry := _registered(root, target)) is not None:
        return _trace_registered(root, target, entry)
    if start is None:
        raise ValueError(f"{target}: no stage in dvc.lock produces it (outputs: {', '.join(sorted(producer))})")
    runs = read_flow_runs(root)
    steps, raw, seen, queue = [], {}, set(), [start]
    while queue:
        name = queue.pop(0)
        if name in seen:
            continue
        seen.add(name)
        s = stages[name]
        deps = {d["path"]: _md5(d) for d in s.get("deps", [])}
        outs = {o["path"]: _md5(o) for o in s.get("outs", [])}
        made_by = {d: _producers(d, producer) - {name} for d in deps}
        upstream = sorted(set().union(*made_by.values())) if made_by else []
        raw.update({d: m for d, m in deps.items() if not made_by[d]})
        flow_run = next((r for r in reversed(_as_list(runs.get(name))) if r.get("outs") == outs), None)
        steps.append(Step(name, s.get("cmd", ""), s.get("params", {}), deps, outs, upstream, flow_run))
        queue += upstream
    roots = root / ROOTS_MANIFEST
    if any(ROOTS_MANIFEST in s.outs for s in steps) and roots.exists():
        # The user's own folders, by the md5 the data_roots stage recorded: the real raw inputs.
        for key, entry in json.loads(roots.read_text()).get("roots", {}).items():
            raw[f"{entry['path']} ({key})"] = entry["md5"]
    weights = root / WEIGHTS_MANIFEST
    weights_used = any(WEIGHTS_MANIFEST in s.outs for s in steps) and weights.exists()
    if weights_used:
        # Backbones imported from elsewhere: the exact weights file each came from is a raw input.
        for name, entry in json.loads(weights.read_text()).items():
            raw[f"{entry['file']} (pretrained weights of backbone {name})"] = entry["md5"] or "not downloaded yet"
    if lock_text is None:  # an earlier commit's record is not compared with today's workspace
        changes = _dvc_changes(root, [s.stage for s in steps])
        for step in steps:
            step.changed = changes.get(step.stage, [])
            if ROOTS_MANIFEST in step.outs:
                from transferlab.data.roots import changed_roots

                step.changed += changed_roots(roots, root)
            if weights_used and WEIGHTS_MANIFEST in step.outs:
                step.changed += changed_weights(weights, root)
    committed = not git(root, "status", "--porcelain", "--", "dvc.lock")
    return Lineage(target, steps, dict(sorted(raw.items())), git(root, "log", "-1", "--format=%H", "--", "dvc.lock")
                   or "uncommitted", committed)


def changed_weights(manifest: Path, root: Path) -> list[str]:
    """Weights files whose md5 differs from what data_roots recorded (a re-run would re-import them)."""
    from transferlab.system.io import file_md5

    out = []
    for name, entry in json.loads(manifest.read_text()).items():
        path = Path(entry["file"]) if Path(entry["file"]).is_absolute() else root / entry["file"]
        now = file_md5(path) if path.is_file() else None
        if now != entry["md5"]:
            out.append(f"modified: {entry['file']} (weights of backbone {name})" if now else
                       f"missing: {entry['file']} (weights of backbone {name})")
    return out


def stage_arguments(root: Path | str, stage: str) -> dict[str, str]:
    """The `--flag value` arguments of a stage's command as dvc.lock last ran it (paths resolved from
    dvc.yaml's vars), so code that reads a stage's outputs never repeats the paths."""
    lock_file = Path(root) / "dvc.lock"
    lock = yaml.safe_load(lock_file.read_text()).get("stages", {}) if lock_file.exists() else {}
    if stage not in lock:
        raise ValueError(f"dvc.lock has no stage {stage!r}: run `dvc repro {stage}` first")
    return command_arguments(lock[stage]["cmd"])


def command_arguments(cmd: str | list[str]) -> dict[str, str]:
    """A stage command's `--flag value` pairs (a flag given twice keeps its last value)."""
    words = shlex.split(cmd if isinstance(cmd, str) else " ".join(cmd))
    return {w[2:]: words[i + 1] for i, w in enumerate(words[:-1]) if w.startswith("--")
            and not words[i + 1].startswith("--")}


def render_text(lin: Lineage, code: bool = False) -> str:
    """The chain as text; each stage's code deps as one hash (`code`: every file and its md5)."""
    lines = [f"lineage of {lin.target}",
             f"dvc.lock commit: {lin.commit}" + ("" if lin.lock_committed else " (dvc.lock has uncommitted changes)"),
             "workspace: " + ("STALE or MODIFIED — differs from dvc.lock (see 'changed' below)" if lin.stale
                              else "matches dvc.lock"), ""]
    for s in lin.steps:
        lines.append(f"stage {s.stage}" + (f"  [changed: {'; '.join(s.changed)}]" if s.changed else ""))
        lines.append(f"  cmd: {s.cmd}")
        for file, values in s.params.items():
            for key, value in values.items():
                lines.append(f"  param {key} = {json.dumps(value)}  ({file})")
        if not code and any(is_code(p) for p in s.deps):
            digest, n = code_hash(s.deps)
            lines.append(f"  code {digest}  {n} files in {', '.join(sorted({p.split('/')[0] + '/' for p in s.deps if is_code(p)}))} (--code lists them)")
        lines += [f"  in   {m}  {p}" for p, m in s.deps.items() if code or not is_code(p)]
        lines += [f"  out  {m}  {p}" for p, m in s.outs.items()]
        if s.flow_run:
            lines.append(f"  prefect flow run: {s.flow_run.get('flow_run_name')} ({s.flow_run.get('flow_run_id')})"
                         + (f", finished {s.flow_run['finished']}" if s.flow_run.get("finished") else ""))
        lines.append("")
    lines.append("raw inputs (produced by no stage):")
    lines += [f"  {m}  {p}" for p, m in lin.raw_inputs.items() if code or not is_code(p)]
    hidden = sum(is_code(p) for p in lin.raw_inputs)
    lines += [f"  and {hidden} code files (each stage's code hash above; --code lists them)"] if hidden and not code else []
    return "\n".join(lines)


def render_mermaid(lin: Lineage) -> str:
    ids: dict[str, str] = {}

    def node(key: str, label: str, shape: str = "[{}]") -> str:
        if key not in ids:
            ids[key] = f"n{len(ids)}"
        return f'{ids[key]}{shape.format(json.dumps(label))}'

    lines = ["graph LR"]
    for s in reversed(lin.steps):
        stage = node("stage:" + s.stage, s.stage + (" (stale)" if s.changed else ""), "{{{{{}}}}}")
        lines += [f"  {node(p, f'{p} {m[:8]}')} --> {stage}" for p, m in s.deps.items()]
        lines += [f"  {stage} --> {node(p, f'{p} {m[:8]}')}" for p, m in s.outs.items()]
    return "\n".join(lines)


def read_flow_runs(root: Path) -> dict:
    path = root / FLOW_RUNS_FILE
    return read_json(path) if path.exists() else {}


def record_flow_run(root: Path | str, stage: str, flow_run_id: str, flow_run_name: str) -> None:
    """Remember that a Prefect flow run produced the stage's current outs (as dvc.lock now lists them)."""
    root = Path(root)
    lock = yaml.safe_load((root / "dvc.lock").read_text()).get("stages", {})
    name = stage.split(":")[-1]
    if name not in lock:
        return
    runs = read_flow_runs(root)
    run = {"flow_run_id": flow_run_id, "flow_run_name": flow_run_name,
           "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "outs": {o["path"]: _md5(o) for o in lock[name].get("outs", [])}}
    # Every run kept (the last FLOW_RUNS_KEPT a stage): a registered version made by an earlier run is still traced
    # to it after later runs re-made the stage's outs.
    runs[name] = [*_as_list(runs.get(name)), run][-FLOW_RUNS_KEPT:]
    write_json(root / FLOW_RUNS_FILE, runs, sort_keys=True)


def _as_list(runs: list | dict | None) -> list[dict]:
    return [] if runs is None else [runs] if isinstance(runs, dict) else runs  # one dict: the older format
