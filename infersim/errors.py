"""User-facing errors.

Everything a user can get wrong (a scenario, a hardware profile, a trace, a command-line flag)
is reported as one :class:`InfersimError`: a single line that names the file, the field, what was
expected and what was given. The CLI prints it and exits with status 2; the Python API raises it.
Internal bugs are not InfersimErrors and keep their tracebacks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
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
