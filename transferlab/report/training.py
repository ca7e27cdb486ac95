"""How every arm of an experiment trained: the stopping rule and which runs, if any, stopped at their cap."""
from __future__ import annotations

import pandas as pd


def stopping_para(runs: pd.DataFrame, arm_columns: list[str]) -> str | None:
    """One paragraph from a runs table with the convergence columns (transferlab.core.convergence.OUTCOME_COLUMNS):
    the rule(s), how long runs trained, and each arm with a run at its cap (whose claims are inconclusive)."""
    if "stopped" not in runs:
        return None
    rules = "; ".join(f"{r} ({n} runs)" for r, n in runs["stop_rule"].value_counts().items())
    converged = int((runs["stopped"] == "converged").sum())
    text = (f"Training to convergence: {converged} of {len(runs)} runs stopped because they had converged, judged on "
            f"a validation share held out of each run's own training data (never the test set), or, for pools too "
            f"small to spare one, on the training loss. Rules: {rules}. Steps per run: median "
            f"{int(runs['steps'].median())}, max {int(runs['steps'].max())}; epochs: median "
            f"{runs['epochs'].median():.1f}. ")
    capped = runs[runs["stopped"] == "cap"]
    if capped.empty:
        return text + "No run stopped at its cap."
    arms = capped.groupby(arm_columns, sort=False).agg(runs=("stopped", "size"), cap=("cap_steps", "max"))
    listed = ", ".join(f"{' '.join(map(str, key if isinstance(key, tuple) else (key,)))} "
                       f"({r.runs} at {int(r.cap)} steps)" for key, r in arms.head(12).iterrows())
    more = f" and {len(arms) - 12} more" if len(arms) > 12 else ""
    return (text + f"{len(capped)} runs stopped at their cap: {listed}{more}. A claim comparing any of these arms is "
            "inconclusive (under-trained), whatever its numbers say.")
