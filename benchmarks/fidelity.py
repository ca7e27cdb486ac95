"""Fidelity of a cheaper profile: two finished runs side by side (default against full), every claim's verdict and
the headline numbers with their CIs. The cheaper run may be less certain (inconclusive where the other decides),
but no verdict may be the opposite of the other's: that is a finding changed by the budget.

    python benchmarks/fidelity.py RUN_A RUN_B [--names default full] [--out fidelity.md]

A run is a workspace after `dvc repro` (or a copy of its metrics/ and results/): metrics/claims.json,
results/finetune/runs.csv, results/audio/evaluation/runs.csv and results/audio/ceiling/ceiling.json are read.
Exit status 1 when some verdict is opposite."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from transferlab.params.base import TRANSFER_STRATEGIES, base_strategy
from transferlab.analysis.stats import mean_ci

OPPOSITE = {("holds", "does not hold"), ("does not hold", "holds")}
FRR = "frr_at_far1"


def verdicts(run: Path) -> dict[str, dict]:
    path = run / "metrics" / "claims.json"
    if not path.is_file():
        sys.exit(f"error: {path}: no claims (is {run} a finished run? `dvc repro` writes it)")
    return {c["key"]: c for c in json.loads(path.read_text())}


def claims_table(a: dict, b: dict, names: tuple[str, str]) -> pd.DataFrame:
    rows = []
    for key in dict.fromkeys([*a, *b]):
        va, vb = (a.get(key, {}).get("verdict", "—"), b.get(key, {}).get("verdict", "—"))
        rows.append({"claim": key, names[0]: va, names[1]: vb,
                     "agreement": "OPPOSITE" if (va, vb) in OPPOSITE else "same" if va == vb else "less certain"
                     if "—" not in (va, vb) else "one run only"})
    return pd.DataFrame(rows)


def _cell(values: pd.Series, scale: float = 100.0, digits: int = 1) -> str:
    est = mean_ci(values.to_numpy(float), 0.95)
    return f"{est.mean * scale:.{digits}f} [{est.low * scale:.{digits}f}, {est.high * scale:.{digits}f}]"


def headline(run: Path) -> dict[str, str]:
    """Best transfer strategy's accuracy per pool size (mean [95 % CI] over seeds), FRR@1%FAR per positives count
    of the best strategy, and the ceiling's FRR."""
    out: dict[str, str] = {}
    vision = run / "results" / "finetune" / "runs.csv"
    if vision.is_file():
        runs = pd.read_csv(vision)
        main = runs[runs["backbone"] == runs["backbone"].iloc[0]]
        for n, g in main.groupby("per_class"):
            transfer = g[g["strategy"].map(base_strategy).isin(TRANSFER_STRATEGIES)]
            best = transfer.groupby("strategy")["test_accuracy"].mean().idxmax()
            out[f"vision best transfer, {n}/class (%)"] = f"{best}: " + _cell(transfer[transfer["strategy"] == best]
                                                                              ["test_accuracy"])
            if "stopped" in g:
                out[f"vision runs at their cap, {n}/class"] = f"{int((g['stopped'] == 'cap').sum())} of {len(g)}"
    audio = run / "results" / "audio" / "evaluation" / "runs.csv"
    if audio.is_file():
        runs = pd.read_csv(audio)
        if FRR in runs:
            main = runs[runs["backbone"] == runs["backbone"].iloc[0]]
            for n, g in main.groupby("per_class"):
                best = g.groupby("strategy")[FRR].mean().idxmin()
                out[f"wake word best FRR@1%FAR, {n} positives (%)"] = f"{best}: " + _cell(
                    g[g["strategy"] == best][FRR])
    ceiling = run / "results" / "audio" / "ceiling" / "ceiling.json"
    if ceiling.is_file():
        c = json.loads(ceiling.read_text())
        spread = (f" [{100 * c[FRR + '_low']:.1f}, {100 * c[FRR + '_high']:.1f}], {c['seeds']} seeds"
                  if c.get("seeds", 1) > 1 else ", one run")
        out["wake word ceiling FRR@1%FAR (%)"] = (f"{100 * c[FRR]:.1f}{spread} ({c.get('stopped', '?')}, at most "
                                                  f"{c['steps']} steps)")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs=2, type=Path)
    ap.add_argument("--names", nargs=2, default=["default", "full"])
    ap.add_argument("--out", type=Path, help="also write the comparison as Markdown here")
    args = ap.parse_args(argv)
    names = tuple(args.names)
    table = claims_table(verdicts(args.runs[0]), verdicts(args.runs[1]), names)
    heads = [headline(r) for r in args.runs]
    numbers = pd.DataFrame([{"figure": k, names[0]: heads[0].get(k, "—"), names[1]: heads[1].get(k, "—")}
                            for k in dict.fromkeys([*heads[0], *heads[1]])])
    counts = table["agreement"].value_counts().to_dict()
    opposite = int(counts.get("OPPOSITE", 0))
    summary = (f"{len(table)} claims: {counts.get('same', 0)} same verdict, {counts.get('less certain', 0)} "
               f"decided in one run and inconclusive in the other, {opposite} opposite, "
               f"{counts.get('one run only', 0)} in one run only")
    md = "\n\n".join([f"**{summary}**", numbers.to_markdown(index=False), table.to_markdown(index=False)])
    print(md)
    if args.out:
        args.out.write_text(md + "\n")
    return 1 if opposite else 0


if __name__ == "__main__":
    raise SystemExit(main())
