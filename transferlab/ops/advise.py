"""`transferlab advise`: which backbone and strategy to start from, and how many labels a target accuracy needs,
from what this workspace's pipeline wrote. Stage paths come from dvc.lock (the command each stage last ran),
else from dvc.yaml's command with its vars; nothing here is judged anew except the learning-curve fit."""
from __future__ import annotations

import json
import math
import re
import shlex
from pathlib import Path

import pandas as pd
import yaml

from transferlab.ops.lineage import command_arguments, stage_arguments

SCORES_STAGE, CHECK_STAGE, EVALUATE_STAGE = "transferability", "transferability_check", "evaluate"


class AdviceError(RuntimeError):
    """The workspace lacks what advice needs; the message names it and the command that makes it."""


def stage_command(root: Path, stage: str) -> str:
    """The stage's command as dvc.lock last ran it, else as dvc.yaml declares it (its ${vars} filled in)."""
    try:
        stage_arguments(root, stage)  # raises when dvc.lock never ran the stage
        return yaml.safe_load((root / "dvc.lock").read_text())["stages"][stage]["cmd"]
    except ValueError:
        pass
    spec = yaml.safe_load((root / "dvc.yaml").read_text()) if (root / "dvc.yaml").exists() else {}
    body = (spec or {}).get("stages", {}).get(stage)
    if body is None:
        raise AdviceError(f"no stage {stage!r} in {root / 'dvc.yaml'} or dvc.lock: not a transferlab workspace?")
    values = {k: str(v) for entry in spec.get("vars", []) if isinstance(entry, dict) for k, v in entry.items()}
    return re.sub(r"\$\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), body["cmd"])


def _repeated(cmd: str, flag: str) -> list[str]:
    words = shlex.split(cmd)
    return [words[i + 1] for i, w in enumerate(words[:-1]) if w == f"--{flag}"]


def _out(root: Path, stage: str) -> Path:
    return root / command_arguments(stage_command(root, stage))["out"]


def _missing_backbones(root: Path, cmd: str) -> str | None:
    """A sentence when no candidate backbone exists at all (own ones or imported vision ones), else None."""
    own = [p.partition("=")[2] for p in _repeated(cmd, "backbone")]
    imported = command_arguments(cmd).get("imported")
    if any((root / p / "card.json").exists() for p in own):
        return None
    manifest = root / imported / "manifest.json" if imported else None
    if manifest is not None and manifest.exists():
        entries = json.loads(manifest.read_text()) or {}
        if any(e.get("track") == "vision" for e in entries.values()):
            return None
    where = " and ".join(filter(None, [", ".join(own) + " not found" if own else "",
                                       f"{imported}/manifest.json lists no vision backbone" if imported else ""]))
    return f"no backbone: {where}: run `dvc repro pretrain import_backbones`"


def load_scores(root: Path) -> tuple[pd.DataFrame, Path]:
    cmd = stage_command(root, SCORES_STAGE)
    path = root / command_arguments(cmd)["out"] / "scores.csv"
    if not path.exists():
        raise AdviceError(_missing_backbones(root, cmd) or
                          f"{path.relative_to(root)} not found: run `dvc repro {SCORES_STAGE}`")
    return pd.read_csv(path), path


def ranking(scores: pd.DataFrame, score: str, per_class: int) -> pd.DataFrame:
    """Backbones by `score` (mean over draws of the body features) at one pool size, best first."""
    if score not in scores.columns:
        raise AdviceError(f"no {score!r} column in scores.csv (scores: {', '.join(_score_columns(scores))})")
    body = scores[(scores["cut"] == "body") & (scores["per_class"] == per_class)]
    table = body.groupby("backbone", sort=False)[_score_columns(scores)].mean()
    table = table.sort_values(score, ascending=False, na_position="last").reset_index()
    return table.assign(rank=range(1, len(table) + 1))


def _score_columns(scores: pd.DataFrame) -> list[str]:
    return [c for c in ("logme", "leep", "nce", "h_score") if c in scores.columns]


def _optional_csv(root: Path, stage: str, name: str) -> tuple[pd.DataFrame | None, Path | None]:
    try:
        path = _out(root, stage) / name
    except AdviceError:
        return None, None
    return (pd.read_csv(path), path) if path.exists() else (None, path)


def recommend(curves: pd.DataFrame | None, scores: pd.DataFrame, score: str, random: str = "random") -> list[dict]:
    """Per pool size: the best (backbone, strategy) by measured mean accuracy when the sweep ran; else the
    best-scored backbone with `head` (a linear head on frozen features is what the scores rate), or scratch when
    the random network scores best."""
    out = []
    if curves is not None:
        for n, g in curves.groupby("per_class"):
            best = g.loc[g["accuracy"].idxmax()]
            out.append({"per_class": int(n), "backbone": best["backbone"], "strategy": best["strategy"],
                        "accuracy": float(best["accuracy"]), "low": float(best["accuracy_low"]),
                        "high": float(best["accuracy_high"]), "source": "sweep"})
        return out
    for n in sorted(scores["per_class"].unique()):
        top = ranking(scores, score, int(n)).iloc[0]
        strategy = "scratch" if top["backbone"] == random else "head"
        out.append({"per_class": int(n), "backbone": top["backbone"], "strategy": strategy, "accuracy": None,
                    "low": None, "high": None, "source": "scores"})
    return out


def labels_for(runs: pd.DataFrame, target_accuracy: float, n_boot: int = 200) -> list[dict]:
    """Labels per class each strategy of the main backbone needs for `target_accuracy`: a power law fitted to its
    measured error curve, with a bootstrap interval over seeds (transferlab.analysis.extrapolate)."""
    from transferlab.analysis.powerlaw import bootstrap_fit, fit_power_law, labels_needed

    main = runs["backbone"].iloc[0]
    acc = "accuracy" if "accuracy" in runs else "test_accuracy"
    out = []
    for strategy, g in runs[runs["backbone"] == main].groupby("strategy", sort=False):
        row = {"backbone": main, "strategy": strategy, "estimate": None, "low": None, "high": None,
               "reachable": None}
        per_seed = pd.DataFrame({"n": g["per_class"], "seed": g["seed"], "error": 1 - g[acc]})
        sizes = per_seed["n"].nunique()
        if sizes < 3:
            out.append({**row, "message": f"needs at least 3 pool sizes to fit a, b, c; the sweep has {sizes}"})
            continue
        mean = per_seed.groupby("n")["error"].mean()
        fit = fit_power_law(mean.index.to_numpy(float), mean.to_numpy())
        need = labels_needed(fit, 1 - target_accuracy, bootstrap_fit(per_seed, n_boot=n_boot))
        finite = [None if math.isinf(v) else v for v in (need.estimate, need.low, need.high)]
        row.update(estimate=finite[0], low=finite[1], high=finite[2], reachable=need.reachable,
                   message=need.message if need.reachable else
                   f"not reachable: fitted best accuracy {1 - fit.c:.1%} is below {target_accuracy:.1%}")
        out.append({**row, **support(row, int(per_seed["n"].max()))})
    return out


# How far an extrapolated label count can be acted on: its interval within this factor of the estimate either way,
# and the estimate within this multiple of the largest pool measured. Beyond that the fit is a guess.
SUPPORT_SPREAD, SUPPORT_REACH = 3.0, 10.0


def support(row: dict, largest: int) -> dict:
    """{"supported": bool, "why": ...}: whether the measured pool sizes support acting on the estimate."""
    est, low, high = row["estimate"], row["low"], row["high"]
    if est is None:
        return {"supported": False, "why": row["message"]}
    if low is None or high is None or high > SUPPORT_SPREAD * est or low < est / SUPPORT_SPREAD:
        return {"supported": False, "why": f"its 95 % interval ({rounded(low)}–{rounded(high)}) spans more than "
                                           f"{SUPPORT_SPREAD:g}× the estimate either way"}
    if est > SUPPORT_REACH * largest:
        return {"supported": False, "why": f"it is over {SUPPORT_REACH:g}× the largest pool measured "
                                           f"({largest}/class)"}
    return {"supported": True, "why": None}


def rounded(value: float | None, digits: int = 2) -> str:
    """A label count rounded up to `digits` significant figures (an extrapolation means no more); None is an open
    end; beyond ten million, powers of ten."""
    if value is None:
        return "∞"
    if value >= 1e7:
        return f"{value:.0e}".replace("e+0", "e").replace("e+", "e")
    step = 10 ** max(0, int(math.floor(math.log10(max(value, 1)))) - digits + 1)
    return f"{math.ceil(value / step) * step:,d}"


def advise(root: Path | str, score: str = "logme", per_class: int | None = None,
           target_accuracy: float | None = None, n_boot: int = 200) -> dict:
    """Everything `transferlab advise` prints, JSON-ready; AdviceError names what is missing."""
    root = Path(root)
    scores, scores_path = load_scores(root)
    sizes = sorted(int(n) for n in scores["per_class"].unique())
    n = per_class if per_class is not None else sizes[-1]
    if n not in sizes:
        raise AdviceError(f"no scores at {n}/class; the pool sizes scored are {sizes}")
    rank = ranking(scores, score, n)
    taus, taus_path = _optional_csv(root, CHECK_STAGE, "tau.csv")
    curves, curves_path = _optional_csv(root, EVALUATE_STAGE, "curves.csv")
    runs, runs_path = _optional_csv(root, EVALUATE_STAGE, "runs.csv")
    refuse_stale(root, [p for p in (scores_path, taus_path, curves_path) if p is not None and p.exists()])
    check = None
    if taus is not None:
        sel = taus[taus["score"] == score]
        check = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                 for r in sel[["per_class", "backbones", "seeds", "tau", "low", "high"]].to_dict("records")]
    out = {"workspace": str(root), "scores_file": str(scores_path.relative_to(root)), "score": score,
           "per_class": n, "ranking": rank.to_dict("records"),
           "ranking_by_size": {str(k): list(ranking(scores, score, k)["backbone"]) for k in sizes},
           "check": check, "recommendations": recommend(curves, scores, score),
           "recommendation_source": (f"sweep ({curves_path.relative_to(root)})" if curves is not None else
                                     "transferability scores (no sweep: "
                                     f"{curves_path.relative_to(root) if curves_path else 'evaluate'} not found)"),
           "recommendation_note": None if curves is not None else (
               "the scores rate frozen features under a linear head (the head strategy) and say nothing about "
               f"retraining the body: run `dvc repro {EVALUATE_STAGE}` to compare strategies")}
    if target_accuracy is not None:
        out["target_accuracy"] = target_accuracy
        if runs is None:
            where = runs_path.relative_to(root) if runs_path else "the evaluate stage's runs.csv"
            out["labels_needed"] = []
            out["labels_needed_missing"] = f"{where} not found: run `dvc repro {EVALUATE_STAGE}` (the sweep)"
        else:
            out["labels_needed"] = labels_for(runs, target_accuracy, n_boot)
        out["holdout_check"] = holdout_check(root)
    out["answer"] = answer(root, out, per_class)
    return _plain(out)


def refuse_stale(root: Path, inputs: list[Path]) -> None:
    """AdviceError when a file advice reads no longer matches its stage's inputs (the data, params or code changed
    since it ran): the same check as `transferlab lineage`, naming each stale stage and the command to run."""
    if not (root / "dvc.lock").exists():  # not a DVC run (a folder of results): nothing to compare with
        return
    from transferlab.ops.lineage import trace

    stale: dict[str, list[str]] = {}
    for path in inputs:
        for step in trace(root, path.relative_to(root).as_posix()).steps:
            if step.changed:
                stale.setdefault(step.stage, step.changed)
    if stale:
        names = sorted(stale)
        first = next(iter(stale))  # trace lists the stage that made the file first, then its upstream
        raise AdviceError(f"the results advice reads are stale: {len(names)} stage(s) no longer match their inputs "
                          f"({', '.join(names[:5])}{', …' if len(names) > 5 else ''}; {first}: {stale[first][0]}): "
                          f"run `dvc repro {CHECK_STAGE} {EVALUATE_STAGE}` first")


def answer(root: Path, out: dict, per_class: int | None = None) -> dict:
    """The one recommendation: backbone and strategy at `per_class` (default: the most labels per class measured),
    its measured accuracy, the labels a target needs when the fit supports it (else the size to label next), and
    the command to run next."""
    recs = {r["per_class"]: r for r in out["recommendations"]}
    n = per_class if per_class in recs else max(recs)
    rec = recs[n]
    result = {"per_class": n, "backbone": rec["backbone"], "strategy": rec["strategy"], "accuracy": rec["accuracy"],
              "low": rec["low"], "high": rec["high"], "labels": None, "label_next": None}
    if rec["source"] != "sweep":
        result["command"] = f"dvc repro {EVALUATE_STAGE}"
        result["why_command"] = "measure the strategies on your pools (the scores rate a frozen body only)"
        return result
    needs = [r for r in out.get("labels_needed", []) if r.get("supported")]
    if needs:
        best = min(needs, key=lambda r: r["estimate"])
        result.update(labels=best["estimate"], labels_strategy=best["strategy"], labels_low=best["low"],
                      labels_high=best["high"])
    elif out.get("labels_needed"):
        largest = max(recs)
        result["label_next"] = 2 * largest
        reasons = {r.get("why") or r["message"] for r in out["labels_needed"]}
        result["label_next_why"] = "; ".join(sorted(reasons))
    model = _model_dir(root, rec["backbone"], rec["strategy"], n)
    if model is not None:
        result["command"] = f"transferlab predict {model} <your files>"
        result["why_command"] = "use the recommended model"
    else:
        result["command"] = (f"dvc exp run -S finetune.main_backbone={rec['backbone']} "
                             f"-S 'finetune.strategies=[{rec['strategy']}]'")
        result["why_command"] = "train the recommended combination as the main sweep"
    return result


def _model_dir(root: Path, backbone: str, strategy: str, n: int) -> str | None:
    """The saved seed-0 model of that run, as the fine-tuning stage named it, when it exists."""
    from transferlab.analysis.sweep import RunSpec

    try:
        models = command_arguments(stage_command(root, "finetune")).get("models")
    except AdviceError:
        return None
    path = Path(models or "models/finetuned") / RunSpec(backbone, strategy, n, 0).model_name
    return path.as_posix() if (root / path / "card.json").exists() else None


def holdout_check(root: Path) -> dict:
    """How well the same power-law method predicted on this workspace: the evaluate stage's held-out check
    (fit on the smaller pools, predict the largest), read from its extrapolation.csv; a reason when absent."""
    from transferlab.analysis.extrapolate import holdout_claim

    table, path = _optional_csv(root, EVALUATE_STAGE, "extrapolation.csv")
    if table is None:
        where = path.relative_to(root) if path else "the evaluate stage's extrapolation.csv"
        return {"file": None, "verdict": None, "summary": f"{where} not found: run `dvc repro {EVALUATE_STAGE}`",
                "rows": []}
    claim = holdout_claim(table)
    cols = ["strategy", "n", "predicted", "low", "high", "measured", "inside", "note"]
    return {"file": str(path.relative_to(root)), "verdict": claim.verdict, "summary": claim.evidence,
            "rows": table[[c for c in cols if c in table.columns]].to_dict("records")}


def _plain(value):
    """numpy scalars → Python, NaN → None: `json.dumps` of the result is strict JSON."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and not math.isfinite(value) else value
