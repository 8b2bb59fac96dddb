"""User-facing errors.

Everything a user can get wrong (a scenario, a hardware profile, a trace, a command-line flag)
is reported as one :class:`InfersimError`: a single line that names the file, the field, what was
expected and what was given. The CLI prints it and exits with status 2; the Python API raises it.
Internal bugs are not InfersimErrors and keep their tracebacks.
"""

from __future__ import annotations

import reprlib
from pathlib import Path
from typing import Any

_PREVIEW = reprlib.Repr()
_PREVIEW.maxlevel, _PREVIEW.maxstring, _PREVIEW.maxother = 3, 60, 60
_PREVIEW.maxlist = _PREVIEW.maxtuple = _PREVIEW.maxdict = _PREVIEW.maxset = 6


def _short(value: Any, limit: int = 60) -> str:
    """A preview of ``value`` of at most ``limit`` characters, bounded *before* formatting: a
    huge or self-referential value (a YAML alias bomb, a million-item list) costs no more to
    show than a small one."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"an integer of {value.bit_length()} bits"
    try:
        text = _PREVIEW.repr(value)
    except Exception:  # a value whose repr fails is still an error worth showing
        text = f"a {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class InfersimError(Exception):
    """A one-line, user-facing error: ``file: field: expected ..., got ...``."""

    def __init__(
        self,
        message: str | None = None,
        *,
        file: str | Path | None = None,
        field: str | None = None,
        expected: str | None = None,
        given: Any = ...,
        line: int | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.field = field
        self.expected = expected
        self.given = given
        self.line = line
        self.detail = message
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.file:
            where.append(self.file + (f":{self.line}" if self.line is not None else ""))
        elif self.line is not None:
            where.append(f"line {self.line}")
        if self.field:
            where.append(self.field)
        parts = []
        if self.expected is not None:
            what = f"expected {self.expected}"
            if self.given is not ...:
                what += f", got {_short(self.given)}"
            parts.append(what)
        elif self.given is not ...:
            parts.append(f"got {_short(self.given)}")
        if self.detail:
            parts.insert(0, self.detail)
        body = "; ".join(parts) if parts else "invalid input"
        text = (": ".join(where) + ": " + body) if where else body
        return " ".join(text.split())  # always one line

    def with_file(self, file: str | Path) -> InfersimError:
        """The same error, attributed to ``file`` if it names none yet."""
        if self.file is None:
            self.file = str(file)
            self.args = (self._render(),)
        return self

    def with_prefix(self, prefix: str) -> InfersimError:
        """The same error with ``prefix.`` put in front of its field path."""
        self.field = f"{prefix}.{self.field}" if self.field else prefix
        self.args = (self._render(),)
        return self

    def __str__(self) -> str:
        return self.args[0] if self.args else self._render()
