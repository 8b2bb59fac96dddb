"""Write the what-if notebooks (``notebooks/*.ipynb``) from their reviewable sources.

Each notebook is kept as a plain Python file in ``notebooks/src/`` in the "percent" format that
Jupytext, VS Code and Spyder read: a line ``# %%`` starts a code cell, ``# %% [markdown]`` a
markdown cell (its lines written as ``# text``), and ``# %% tags=["parameters"]`` the tagged cell
that papermill-style runners replace. Comment lines before the first cell header (a ruff
directive: the parameters cell comes before the imports by design) stay out of the notebook. The
``.ipynb`` files are generated, committed without
outputs, and executed by ``tests/test_notebooks.py``; edit the sources, then run

    .venv/bin/python notebooks/_build.py          # rewrite every notebook
    .venv/bin/python notebooks/_build.py --check  # exit 1 if a notebook is out of date

The output is deterministic (fixed cell ids derived from the notebook and cell position), so a
rebuild of unchanged sources leaves ``git diff`` empty.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "src"

_HEADER = re.compile(r"^# %%(?P<kind> \[markdown\])?(?: tags=(?P<tags>\[.*\]))?\s*$")

KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def parse_cells(text: str, origin: str) -> list[tuple[str, list[str], str]]:
    """Split a percent-format source into ``(kind, tags, source)`` cells, in order."""
    cells: list[tuple[str, list[str], list[str]]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            kind = "markdown" if header["kind"] else "code"
            tags = json.loads(header["tags"]) if header["tags"] else []
            cells.append((kind, tags, []))
            continue
        if line.startswith("# %%"):
            raise ValueError(f"{origin}:{number}: malformed cell header {line!r}")
        if not cells:
            # Comment lines before the first cell belong to the source file only (linter
            # directives); they are not part of the notebook.
            if line.strip() and not line.startswith("#"):
                raise ValueError(f"{origin}:{number}: code before the first '# %%' cell header")
            continue
        kind, _, body = cells[-1]
        if kind == "markdown":
            if line and not (line == "#" or line.startswith("# ")):
                raise ValueError(f"{origin}:{number}: markdown lines must start with '# '")
            body.append(line[2:])
        else:
            body.append(line)
    out = []
    for kind, tags, body in cells:
        source = "\n".join(body).strip("\n")
        if not source:
            raise ValueError(f"{origin}: empty {kind} cell")
        out.append((kind, tags, source))
    return out


def build_notebook(source_path: Path) -> nbformat.NotebookNode:
    """The notebook for one source file, without outputs."""
    cells = []
    for index, (kind, tags, source) in enumerate(
            parse_cells(source_path.read_text(encoding="utf-8"), source_path.name)):
        metadata = {"tags": tags} if tags else {}
        if kind == "markdown":
            cell = nbformat.v4.new_markdown_cell(source, metadata=metadata)
        else:
            cell = nbformat.v4.new_code_cell(source, metadata=metadata)
        # Stable ids keep rebuilds byte-identical (nbformat would draw random ones).
        digest = hashlib.sha256(f"{source_path.stem}:{index}".encode()).hexdigest()
        cell["id"] = digest[:12]
        cells.append(cell)
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = dict(KERNELSPEC)
    notebook.metadata["language_info"] = {"name": "python"}
    nbformat.validate(notebook)
    return notebook


def render(notebook: nbformat.NotebookNode) -> str:
    return nbformat.writes(notebook) + "\n"


def targets() -> dict[Path, str]:
    """Every notebook path and the text it should hold."""
    return {HERE / f"{src.stem}.ipynb": render(build_notebook(src))
            for src in sorted(SOURCES.glob("*.py"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if any notebook differs from its source")
    args = parser.parse_args(argv)
    stale = []
    for path, text in targets().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path.name)
        if not args.check:
            path.write_text(text, encoding="utf-8")
    if args.check and stale:
        print("out of date (run notebooks/_build.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    for name in stale:
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
