"""Reading the YAML files users write (scenarios, hardware profiles, models, mixes, plans, sweeps).

One reader for all of them, so that every file gets the same guarantees: only safe YAML (no
arbitrary objects), a key given twice in one mapping is an error rather than a silent overwrite,
and a missing file, an unreadable one or a syntax error is one :class:`InfersimError` line naming
the file and the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from infersim.errors import InfersimError


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, mark: Any) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key, self.problem_mark = key, mark
        self.problem = f"duplicate key {key!r} (the earlier value would be silently lost)"


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice in one mapping instead of keeping the last."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise _DuplicateKey(key, key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, file: str | Path) -> Any:
    """Parse YAML text; a syntax error or a duplicate key is one line naming the file and line."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: no arbitrary objects
    except _DuplicateKey as err:
        raise InfersimError(file=file, line=err.problem_mark.line + 1, field=str(err.key),
                            expected="each key once per mapping (YAML would keep only the last)",
                            given=f"{err.key} twice") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or "malformed YAML"
        raise InfersimError(file=file, line=(mark.line + 1) if mark is not None else None,
                            expected="valid YAML", given=problem) from None


def read_yaml(path: str | Path, label: str | None = None, *, what: str = "file") -> Any:
    """Read and parse a YAML file; ``what`` names it in the missing-file error ("plan file")."""
    path = Path(path)
    label = label or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InfersimError(file=label, expected=f"an existing {what}", given=str(path)) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as err:
        raise InfersimError(file=label, expected="a readable UTF-8 YAML file",
                            given=type(err).__name__) from None
    return parse_yaml(text, label)
