"""docs/results.md from the current workspace's outputs: a stamp (when, which commit, which machine, which
params), every claim with its verdict and evidence, and each experiment's headline numbers. It only reads what
the pipeline wrote (metrics/*.json, results/**/claims.json); nothing is judged here."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import yaml

from transferlab.system import timings as tm
from transferlab.analysis.claims import CLAIMS_FILE, Claim, claims_by_experiment, read_claims
from transferlab.params import ParamsError
from transferlab.params.base import RuntimeParams
from transferlab.params.profiles import same_profile
from transferlab.report.document import CLIPPED, VERDICT_MARK, ci_cell, counts_line


class ResultsError(RuntimeError):
    """An input the page needs is missing or stale; the message names it."""


# (anchor, title, results dir holding the stage's claims.json, metrics file): the report's section order.
EXPERIMENTS = [
    ("vision", "Images: transfer from source A to target B", "results/evaluation", "metrics/evaluate.json"),
    ("transferability", "Transferability scores vs the fine-tuning sweep", "results/transferability_check",
     "metrics/transferability.json"),
    ("audio", "Audio: spoken words (A) → wake word (B)", "results/audio/evaluation", "metrics/audio.json"),
    ("compare", "Hand-built pipeline vs end-to-end network", "results/compare", "metrics/compare.json"),
    ("multitask", "Multi-task learning", "results/multitask", "metrics/multitask.json"),
    ("distill", "Knowledge distillation", "results/distill", "metrics/distill.json"),
    ("fewshot", "Few-shot learning by meta-learning", "results/fewshot", "metrics/fewshot.json"),
]
ALL_CLAIMS = "metrics/claims.json"


def _pc(x: float) -> str:
    return f"{x * 100:.1f}%"


def _vision(m: dict) -> list[tuple[str, str]]:
    rows = []
    for size, r in m.items():
        if size == "holdout":  # the power law fitted on the smaller pools, checked at the largest
            rows += [(f"extrapolated to {h['per_class']}/class from the smaller pools, {strategy}",
                      f"predicted (%) {ci_cell(h['predicted'], h['low'], h['high'])}, measured "
                      f"{_pc(h['measured'])} ({(h['measured'] - h['predicted']) * 100:+.1f} pp, "
                      f"{'inside' if h['inside'] else 'outside'} the interval)") for strategy, h in r.items()]
        elif size == "source_curve":  # gain over scratch by source images, the control last
            rows += [(f"gain vs scratch by source images, {n[1:]}/class",
                      "; ".join(f"{'permuted control ' if g['control'] else ''}{g['source_images']:,} "
                                f"{g['gain'] * 100:+.1f} pp [{g['gain_low'] * 100:+.1f}, {g['gain_high'] * 100:+.1f}]"
                                for g in sorted(at.values(), key=lambda g: (g["control"], g["source_images"]))))
                     for n, at in r.items()]
        elif size.startswith("ablation_"):  # another backbone (curve, control, imported): accuracy per pool size
            rows.append((f"backbone {size[9:]}", ", ".join(f"{n[1:]}/class {_pc(a)}" for n, a in r.items())))
        elif "best_transfer" in r:
            text = f"best transfer {r['best_transfer']} {_pc(r['best_transfer_accuracy'])}"
            if "gain_vs_scratch" in r:
                text += f" vs scratch {_pc(r['scratch'])} ({r['gain_vs_scratch'] * 100:+.1f} pp)"
            rows.append((f"test accuracy, {size[1:]}/class", text))
    return rows


def _transferability(m: dict) -> list[tuple[str, str]]:
    rows = []
    for size, r in m.items():
        if size == "seconds":
            rows.append(("wall seconds per backbone (features + scores)",
                         ", ".join(f"{b} {s:.1f}" for b, s in r.items())))
            continue
        cells = [f"{score} {t['tau']:+.2f} [{t['low']:+.2f}, {t['high']:+.2f}]" if t["low"] is not None else
                 f"{score} {t['tau']:+.2f}" if t["tau"] is not None else f"{score} —" for score, t in r.items()]
        rows.append((f"Kendall τ, score vs accuracy, {size[1:]}/class", ", ".join(cells)))
    return rows


def _audio(m: dict) -> list[tuple[str, str]]:
    rows, ceiling = [], None
    for size, r in m.items():
        best = r.get("best_transfer")
        frr = next((k for k in (r.get(best) or {}) if k.startswith("frr_at_far")), None)
        if best is None or frr is None:
            continue
        text = f"best transfer {best}: {frr} {_pc(r[best][frr])}, AUROC {_pc(r[best]['auroc'])}"
        if "scratch" in r:
            text += f" vs scratch {_pc(r['scratch'][frr])}, AUROC {_pc(r['scratch']['auroc'])}"
        rows.append((f"{size[3:]} positives", text))
        rates = [k for k in r[best] if k.startswith("frr_at_") and k.endswith("fa_h")]
        if rates:  # scored on the continuous streams: the field's figures
            per_hour = ", ".join(f"{_pc(r[best][k])} at {k[7:-4].replace('_', '.')}/h" for k in rates)
            deployed = (f"; the card's threshold (chosen on validation) gives FRR {_pc(r[best]['deployed_frr'])} at "
                        f"{r[best]['deployed_fa_per_hour']:.2f} false accepts/h on test")
            rows.append((f"{size[3:]} positives, continuous audio", f"{best}: FRR {per_hour}{deployed}"))
        c = r.get("ceiling")
        if c:
            ceiling = (frr, c)
            text = ("no multiple: the ceiling rejects no test positive" if c["ceiling_frr"] <= 0 else "no runs"
                    if c["multiple"] is None else f"{c.get('metric', frr)} {c['multiple']:.2f}× the ceiling's "
                                                  f"(95% CI {c['low']:.2f}× to {c['high']:.2f}×)")
            rows.append((f"{size[3:]} positives, {c['strategy']} vs the ceiling", text))
    if ceiling:
        frr, c = ceiling
        rows.insert(0, ("ceiling", f"full fine-tuning on {c['ceiling_positives']:,} positives: "
                                   f"{c.get('metric', frr)} {_pc(c['ceiling_frr'])}"))
    return rows


def _compare(m: dict) -> list[tuple[str, str]]:
    rows = []
    for track, r in m.items():
        cross = r.get("crossover_size")
        rows.append((f"{track}: crossover", f"≈ {cross:,.0f} training examples" if cross else "none in the sweep"))
        sizes = sorted({int(k.rsplit("_n", 1)[1]) for k in r if k.startswith("pipeline_n")})
        for n in sizes:
            rows.append((f"{track}: accuracy at {n:,} examples", f"pipeline {_pc(r[f'pipeline_n{n}'])}, "
                         f"end-to-end {_pc(r[f'endtoend_n{n}'])}"))
    return rows


def _multitask(m: dict) -> list[tuple[str, str]]:
    return [(arm, f"AUROC {_pc(r['auroc'])}, AP {_pc(r['ap'])}") for arm, r in m.items()]


def _distill(m: dict) -> list[tuple[str, str]]:
    rows = [("teacher", f"{m['teacher']}: {_pc(m['teacher_accuracy'])}, {m['teacher_params']:,} parameters, "
             f"{m['teacher_latency_ms']:.1f} ms per batch of {m['latency_batch']}"),
            ("student", f"{m['student_params']:,} parameters, {m['student_latency_ms']:.1f} ms per batch")]
    return rows + [(f"student accuracy, {k}", _pc(v)) for k, v in m.items() if k.startswith(("distilled/", "hard/"))]


def _fewshot(m: dict) -> list[tuple[str, str]]:
    return [(f"mean episode accuracy, {k}", _pc(v)) for k, v in m.items()]


HEADLINES = {"vision": _vision, "transferability": _transferability, "audio": _audio, "compare": _compare,
             "multitask": _multitask, "distill": _distill, "fewshot": _fewshot}


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()


# What decides the numbers: the code and the params. dvc.lock is not here: every run rewrites it.
RESULT_INPUTS = ("transferlab", "stages", "flows", "dvc.yaml", "pyproject.toml", "constraints.txt", "params.yaml")


def commit_label(root: Path) -> str:
    """Short hash of HEAD, '+dirty' when the code or params.yaml differ from it (run outputs do not count)."""
    try:
        head = _git(root, "rev-parse", "--short", "HEAD")
        dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=no", "--", *RESULT_INPUTS))
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return head + ("+dirty" if dirty else "")


def machine_label() -> str:
    """Platform, CPU model and cores, torch version and GPU (if any): enough to tell two runs' machines apart."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    parts = [platform.platform(), f"{cpu}, {os.cpu_count()} cores"]
    try:
        import torch

        parts.append(f"torch {torch.__version__}")
        parts.append(f"GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "no GPU")
    except ImportError:
        parts.append("torch not installed")
    return "; ".join(parts)


def params_label(root: Path) -> str:
    """sha256 prefix of params.yaml, the profile in profiles/ it equals, if any, and the precision it trains in
    here (`auto` differs between machines: bf16 where the CPU has it natively, and the numbers with it)."""
    data = (root / "params.yaml").read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:12]
    try:
        same = same_profile(root / "params.yaml", root / "profiles")
    except ParamsError:
        same = None
    label = f"params.yaml sha256 {digest}" + (f" (= profiles/{same}.yaml)" if same else "")
    try:
        import torch

        from transferlab.system.precision import resolve

        runtime = (yaml.safe_load(data) or {}).get("runtime") or {}
        requested = str(runtime.get("precision", RuntimeParams().precision))
        device = "cuda" if runtime.get("device") != "cpu" and torch.cuda.is_available() else "cpu"
        label += f"; precision {requested} → {resolve(requested, device)} on this machine"
    except (ImportError, ValueError, yaml.YAMLError):
        pass
    return label


def _require(root: Path, rel: str) -> Path:
    path = root / rel
    if not path.is_file():
        raise ResultsError(f"missing {rel}: run the pipeline (transferlab repro) before writing the results page")
    return path


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def results_markdown(root: Path, now: datetime | None = None, machine: str | None = None) -> str:
    """The page's text; raises ResultsError naming the first missing input, or a stage claims file that
    disagrees with metrics/claims.json (the report stage has not run since)."""
    root = Path(root)
    try:
        grouped = claims_by_experiment(_require(root, ALL_CLAIMS))
    except KeyError as err:
        raise ResultsError(f"{ALL_CLAIMS}: {err.args[0]}: re-run the report stage") from None
    _require(root, "params.yaml")
    by_experiment: list[tuple[tuple, list[Claim], dict]] = []
    for exp in EXPERIMENTS:
        claims = grouped.get(exp[0], [])
        # Stages that judge their own claims keep a copy; the report's must agree with it (else it is stale).
        own = root / exp[2] / CLAIMS_FILE
        if own.is_file() and read_claims(own) != claims:
            raise ResultsError(f"{ALL_CLAIMS} differs from {exp[2]}/{CLAIMS_FILE}: re-run the report stage")
        metrics = json.loads(_require(root, exp[3]).read_text())
        by_experiment.append((exp, claims, metrics))
    now = now or datetime.now(timezone.utc)
    out = ["# Results", "",
           f"Generated {now.strftime('%Y-%m-%d %H:%M')} UTC from commit {commit_label(root)} on "
           f"{machine or machine_label()}; {params_label(root)}. Regenerate with "
           "`transferlab report --results-md docs/results.md` after `transferlab repro`.", "",
           "## Claims", "", f"**{counts_line([c for _, claims, _ in by_experiment for c in claims])}**", "",
           "| experiment | claim | verdict | evidence |", "|---|---|---|---|"]
    for (anchor, title, *_), claims, _ in by_experiment:
        out += [f"| [{_cell(title)}](#{anchor}) | {_cell(c.statement)} | {VERDICT_MARK.get(c.verdict, c.verdict)} "
                f"| {_cell(c.evidence)} |" for c in claims]
    out.append("")
    for (anchor, title, _, metrics_file), _, metrics in by_experiment:
        out += [f'<a id="{anchor}"></a>', "", f"## {title}", "", f"Headline numbers from `{metrics_file}`:", "",
                "| measure | value |", "|---|---|"]
        rows = HEADLINES[anchor](metrics)
        out += [f"| {_cell(k)} | {_cell(v)} |" for k, v in rows]
        out.append("")
        if any(CLIPPED in str(v) for _, v in rows):
            out += [f"{CLIPPED} an interval cut to the metric's range (0–100 %).", ""]
    return "\n".join(out + _time_section(root) + _elsewhere_section(root))


def _time_section(root: Path) -> list[str]:
    """The last run of each stage from the stages' own timings (`transferlab timings`), when there are any."""
    path = root / tm.TIMINGS_FILE
    rows = tm.last_runs(tm.read_timings(path)[0]) if path.is_file() else []
    if not rows:
        return ["## Where time goes", "", f"No stage timings in `{tm.TIMINGS_FILE}` (`TRANSFERLAB_TIMINGS=off`?).", ""]
    return ["## Where time goes", "",
            f"The last run of each stage (`transferlab timings --markdown`), {rows[0]['started'][:16]} to "
            f"{rows[-1].get('ended', rows[-1]['started'])[:16]} UTC. Stages that ran at once add up to more wall time "
            "than the run took; peak RSS is per process (a worker counts alone).", "",
            tm.markdown_table(rows)]


BENCHMARK_RESULTS = Path("benchmarks") / "results"


def _elsewhere_section(root: Path) -> list[str]:
    """Figures from machines the pipeline does not run on here (a GPU): each committed benchmarks/results/*.md,
    written from a benchmark's output and stamped with its own date, commit and machine, one level down."""
    pages = sorted((root / BENCHMARK_RESULTS).glob("*.md"))
    if not pages:
        return []
    out = ["## Measured on other machines", "",
           f"Benchmark figures kept in `{BENCHMARK_RESULTS.as_posix()}/`, each stamped with its own date, commit "
           "and machine (not this run's).", ""]
    for page in pages:
        out += ["#" + line if line.startswith("#") else line for line in page.read_text().splitlines()] + [""]
    return out


def write_results_md(root: Path, out: Path) -> Path:
    text = results_markdown(root)  # fails before touching `out`
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return out
