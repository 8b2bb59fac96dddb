"""``infersim schema``: print (or write) the JSON Schema of scenario files.

Editors use it to complete and check scenario YAML (e.g. a ``# yaml-language-server: $schema=``
comment pointing at the written file).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from infersim.errors import InfersimError


def register(app: typer.Typer) -> None:
    @app.command("schema")
    def schema(
        out: Annotated[Path | None, typer.Option("--out", "-o", help="write to this file "
                                                 "instead of printing")] = None,
    ) -> None:
        """Print the JSON Schema of scenario files."""
        from infersim.scenario import json_schema

        text = json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"
        if out is None:
            typer.echo(text, nl=False)
            return
        try:
            out.write_text(text, encoding="utf-8")
        except OSError as err:
            raise InfersimError(field="--out", expected="a writable file path",
                                given=f"{out} ({err.strerror})") from None
        typer.echo(f"wrote {out}")
