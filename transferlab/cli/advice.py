"""How `transferlab advise` prints its answer: ranked backbones, the strategy per target size, labels needed."""
from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from transferlab.ops.advise import rounded


def print_advice(out: dict, console: Console) -> None:
    def num(v, fmt="{:.3f}"):
        return "—" if v is None else fmt.format(v)

    columns = [c for c in ("logme", "leep", "nce", "h_score") if c in out["ranking"][0]]
    table = Table("rank", "backbone", *columns, title=f"Backbones ranked by {out['score']} at "
                  f"{out['per_class']}/class ({out['scores_file']})")
    for r in out["ranking"]:
        table.add_row(str(r["rank"]), r["backbone"], *(num(r[c]) for c in columns))
    console.print(table)
    for n, order in out["ranking_by_size"].items():
        console.print(f"  {n}/class: {' > '.join(order)}", highlight=False)
    if out["check"]:
        console.print("checked against the sweep (Kendall τ of score vs fine-tuned accuracy, CI over seeds): " +
                      "; ".join(f"{c['per_class']}/class " + (f"{c['tau']:+.2f} [{num(c['low'], '{:+.2f}')}, "
                                                              f"{num(c['high'], '{:+.2f}')}]"
                                                              if c["tau"] is not None else "—")
                                + f" ({c['backbones']} backbones, {c['seeds']} seeds)" for c in out["check"]),
                      highlight=False)
    table = Table("per class", "backbone", "strategy", "accuracy [CI]",
                  title=f"Recommended per target size, from the {out['recommendation_source']}")
    for r in out["recommendations"]:
        acc = "—" if r["accuracy"] is None else f"{r['accuracy']:.1%} [{r['low']:.1%}, {r['high']:.1%}]"
        table.add_row(str(r["per_class"]), r["backbone"], r["strategy"], acc)
    console.print(table)
    if out.get("recommendation_note"):
        console.print(out["recommendation_note"], highlight=False)
    if "target_accuracy" in out:
        if out.get("labels_needed_missing"):
            console.print(f"labels needed: {out['labels_needed_missing']}", style="yellow", highlight=False)
            return
        table = Table("strategy", "labels per class", "interval", "note",
                      title=f"Labels per class to reach {out['target_accuracy']:.1%} (power law, bootstrap over seeds)")
        for r in out["labels_needed"]:
            # an interval's open end (∞): some bootstrap fits never reach the target
            span = "" if r["estimate"] is None else f"{rounded(r['low'])}–{rounded(r['high'])}"
            estimate = "—" if r["estimate"] is None else f"≈{rounded(r['estimate'])}"
            note = r["message"] if r.get("supported", True) or not r.get("why") else f"not supported: {r['why']}"
            table.add_row(r["strategy"], estimate, span, note)
        console.print(table)
        check = out.get("holdout_check")
        if check:  # how far to trust the table: the same method, checked on this workspace's largest pool
            where = f" ({check['file']}, verdict: {check['verdict']})" if check["file"] else ""
            console.print(f"held-out check of this extrapolation here{where}: {check['summary']}", highlight=False)
    print_answer(out, console)


def print_answer(out: dict, console: Console) -> None:
    """The last lines: one recommendation and the command to run next."""
    a = out["answer"]
    acc = "" if a["accuracy"] is None else (f", expected accuracy {a['accuracy']:.1%} "
                                            f"[{a['low']:.1%}, {a['high']:.1%}] at {a['per_class']} labels per class")
    lines = [f"[bold]Recommendation:[/bold] backbone {a['backbone']}, strategy {a['strategy']}{acc}."]
    if a.get("labels") is not None:
        lines.append(f"To reach {out['target_accuracy']:.1%}: about {rounded(a['labels'])} labels per class with "
                     f"{a['labels_strategy']} (95 % interval {rounded(a['labels_low'])}–{rounded(a['labels_high'])}).")
    elif a.get("label_next") is not None:
        lines.append(f"How many labels {out['target_accuracy']:.1%} needs cannot be told from the sizes measured "
                     f"({a['label_next_why']}): label {a['label_next']} per class next and run advise again.")
    lines.append(f"Next: [bold]{escape(a['command'])}[/bold]  ({a['why_command']})")
    console.print("\n".join(lines), highlight=False)
