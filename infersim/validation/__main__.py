"""``python -m infersim.validation [--check] [--out PATH]``: regenerate docs/validation.md."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from infersim.errors import InfersimError
from infersim.validation.report import DOC, build_page


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infersim.validation",
                                     description="Regenerate docs/validation.md")
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 when the page is out of date")
    parser.add_argument("--out", type=Path, default=DOC, help="where to write the page")
    args = parser.parse_args(argv)
    try:
        page = build_page()
    except InfersimError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.is_file() else ""
        if current != page:
            print(f"{args.out} is out of date: run python -m infersim.validation",
                  file=sys.stderr)
            return 1
        return 0
    args.out.write_text(page, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
