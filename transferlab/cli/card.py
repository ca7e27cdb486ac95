"""`transferlab card`: a model's card, as a table or as JSON."""
from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def card(model_dir: Path = typer.Argument(..., metavar="MODEL_DIR", help="A model directory (model.safetensors + card.json)."),
         as_json: bool = typer.Option(False, "--json", help="The whole card as JSON.")) -> None:
    """Show a model's card: architecture, classes, preprocessing, frozen parts, parents, metrics. The model is
    loaded first: a missing, foreign or tampered file is one line naming it, exit status 2."""
    from transferlab.models.artifacts import ModelFileError, load_model

    try:
        _, data = load_model(model_dir)
    except ModelFileError as err:
        console.print(str(err), style="red", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    if as_json:
        print(json.dumps(data, indent=2))
        return
    console.print(card_table(data))


def card_table(data: dict) -> Table:
    """The card as a two-column table: numbers to 4 significant digits, nested settings one per line."""
    from rich.markup import escape

    from transferlab.system.io import relative_path

    def shown(value) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        if isinstance(value, dict):
            return "\n".join(f"{k}: {shown(v)}" for k, v in value.items())
        if isinstance(value, (list, tuple)):
            return ", ".join(shown(v) for v in value) or "none"
        return str(value)

    arch = data.get("architecture", {})
    classes = data.get("classes", [])
    rows = {"format": data.get("format"),
            "architecture": f"{arch.get('name')}({', '.join(f'{k}={v}' for k, v in arch.get('kwargs', {}).items())})",
            "classes": f"{len(classes)}: {', '.join(map(str, classes[:12]))}{' …' if len(classes) > 12 else ''}",
            "preprocessing": data.get("preprocessing", {}), "frozen modules": data.get("frozen_modules") or [],
            "metrics": data.get("metrics") or {}, "precision": (data.get("runtime") or {}).get("precision", "fp32"),
            "code version": data.get("code_version"), "created": data.get("created")}
    table = Table(show_header=False)
    table.add_column()
    table.add_column(overflow="fold")
    for key, value in rows.items():
        table.add_row(key, escape(shown(value)))
    for p in data.get("parents", []):  # cards written before parents were stored relative show them so too
        where = relative_path(p["path"]) if p.get("path") else "?"
        table.add_row(f"parent ({p.get('role')})", escape(f"{where}\nmd5 {p.get('md5') or '-'}"))
    return table
