"""Plain help for the command line: an argument is listed by its name alone. typer appends the Python type
(`STAGE <list[str]>`, `FOLDER <str>`), which tells a user nothing the name and help do not."""
from __future__ import annotations

import typer
from typer.core import TyperArgument, TyperCommand


class PlainArgumentsCommand(TyperCommand):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, TyperArgument):
                many = param.nargs != 1
                # The help column's "NAME <type>": only the name, and "..." where it takes several.
                param.display_type_rich = lambda ctx, many=many: "..." if many else None


class PlainTyper(typer.Typer):
    """typer.Typer whose commands list their arguments by name (PlainArgumentsCommand) and whose help is plain
    text (no rich boxes: it is read in terminals, logs and CI output alike)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(rich_markup_mode=None, **kwargs)

    def command(self, *args, cls=None, **kwargs):
        return super().command(*args, cls=cls or PlainArgumentsCommand, **kwargs)
