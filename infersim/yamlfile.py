"""Reading the YAML (and JSON) files users write: scenarios, hardware, models, mixes, plans, sweeps.

One reader for all of them, so that every file gets the same guarantees: only safe YAML (no
arbitrary objects), a key given twice in one mapping is an error rather than a silent overwrite,
and a missing file, an unreadable one or a syntax error is one :class:`InfersimError` line naming
the file and the line.

Hostile files are refused quickly, before anything walks them: aliases may share a node but not
expand the document beyond :data:`MAX_NODES` nodes (the "billion laughs" file of a kilobyte),
an anchor may not contain itself, nesting stops at :data:`MAX_DEPTH` levels and a file at
:data:`MAX_BYTES`. Merge keys (``<<: *defaults``) work as YAML 1.1 defines them, and a float
written with an exponent and no dot (``1e3``, YAML 1.2 style) is a number, not a string.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from infersim.errors import InfersimError

MAX_BYTES = 16 * 2**20      # a scenario, a chip or a plan is a few kilobytes
MAX_DEPTH = 64              # levels of nesting, aliases expanded (a scenario needs about 6)
MAX_NODES = 1_000_000       # values in the document with every alias expanded

_DEPTH = f"nesting of at most {MAX_DEPTH} levels (aliases expanded)"
_MERGE = "tag:yaml.org,2002:merge"
_FLOAT = "tag:yaml.org,2002:float"
# YAML 1.1 needs a dot in a float (1.0e+3); YAML 1.2 and every user also write 1e3 and 1.5e3.
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


class _Limit(yaml.YAMLError):
    """A document beyond the reader's limits; worded like a syntax error, with its line."""

    def __init__(self, expected: str, given: str, mark: Any) -> None:
        super().__init__(expected)
        self.expected, self.given, self.problem_mark = expected, given, mark


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, mark: Any) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key, self.problem_mark = key, mark
        self.problem = f"duplicate key {key!r} (the earlier value would be silently lost)"


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a document whose aliases make it cyclic, deeper than MAX_DEPTH or larger than
    MAX_NODES once expanded; each node is measured once, so this is linear in the file."""
    sizes: dict[int, tuple[int, int]] = {}   # id(node) -> (expanded nodes, expanded depth)
    open_nodes: set[int] = set()

    def measure(node: yaml.Node, depth: int) -> tuple[int, int]:
        known = sizes.get(id(node))
        if known is not None:
            if depth + known[1] > MAX_DEPTH:
                raise _Limit(_DEPTH, "deeper", node.start_mark)
            return known
        if id(node) in open_nodes:
            raise _Limit("an anchor that does not contain itself", "a cyclic alias",
                         node.start_mark)
        if depth > MAX_DEPTH:
            raise _Limit(_DEPTH, "deeper", node.start_mark)
        if isinstance(node, yaml.ScalarNode):
            children: list[yaml.Node] = []
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            children = [part for pair in node.value for part in pair]
        open_nodes.add(id(node))
        total, deepest = 1, 0
        for child in children:
            size, below = measure(child, depth + 1)
            total, deepest = total + size, max(deepest, below)
            if total > MAX_NODES:
                raise _Limit(f"at most {MAX_NODES:,} values with every alias expanded",
                             "more", node.start_mark)
        open_nodes.discard(id(node))
        sizes[id(node)] = (total, deepest + 1)
        return sizes[id(node)]

    measure(root, 1)


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice in one mapping instead of keeping the last, and
    documents beyond the limits above."""

    def compose_document(self) -> Any:
        self._depth = 0
        node = super().compose_document()
        _check_expansion(node)
        return node

    def fetch_flow_collection_start(self, token_class: Any) -> None:
        # '[[[[...' is scanned ahead of the composer (each '[' may start a key): stop it here
        if self.flow_level >= MAX_DEPTH:
            raise _Limit(_DEPTH, "deeper", self.get_mark())
        super().fetch_flow_collection_start(token_class)

    def compose_node(self, parent: Any, index: Any) -> Any:
        # the composer recurses once per level: stop before Python's own recursion limit
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Limit(_DEPTH, "deeper", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:
                continue  # merged keys may be overridden: that is what a merge is for
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, (str, int, float, bool)):
                continue  # an unhashable key is refused, with its line, by the constructor
            if key in seen:
                raise _DuplicateKey(key, key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_implicit_resolver(_FLOAT, _EXPONENT_FLOAT, list("-+.0123456789"))


def parse_yaml(text: str, file: str | Path) -> Any:
    """Parse YAML text; a syntax error or a duplicate key is one line naming the file and line."""
    if len(text) > MAX_BYTES:
        raise InfersimError(file=file, expected=f"a YAML file of at most {MAX_BYTES >> 20} MiB",
                            given=f"{len(text) >> 20} MiB")
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: no arbitrary objects
    except _DuplicateKey as err:
        raise InfersimError(file=file, line=err.problem_mark.line + 1, field=str(err.key),
                            expected="each key once per mapping (YAML would keep only the last)",
                            given=f"{err.key} twice") from None
    except _Limit as err:
        raise InfersimError(file=file, line=err.problem_mark.line + 1,
                            expected=err.expected, given=err.given) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or "malformed YAML"
        raise InfersimError(file=file, line=(mark.line + 1) if mark is not None else None,
                            expected="valid YAML", given=problem) from None
    except ValueError:  # an integer of thousands of digits (Python's int/str conversion limit)
        raise InfersimError(file=file, expected="numbers of at most 4,300 digits",
                            given="a longer one") from None


def _read_text(path: Path, label: str, what: str, kind: str,
               max_bytes: int = MAX_BYTES) -> str:
    """A regular UTF-8 file of at most ``max_bytes``, read without following it into a device."""
    try:
        if path.exists() and not path.is_file():  # a folder, a FIFO or a device never ends well
            raise IsADirectoryError if path.is_dir() else OSError("not a regular file")
        with open(path, "rb") as handle:
            raw = handle.read(max_bytes + 1)
        if len(raw) > max_bytes:
            raise InfersimError(file=label, expected=f"a {kind} file of at most "
                                f"{max_bytes >> 20} MiB", given=f"{path.stat().st_size:,} bytes")
        return raw.decode("utf-8")
    except FileNotFoundError:
        raise InfersimError(file=label, expected=f"an existing {what}", given=str(path)) from None
    except (OSError, UnicodeDecodeError) as err:
        raise InfersimError(file=label, expected=f"a readable UTF-8 {kind} file",
                            given=type(err).__name__) from None


def read_yaml(path: str | Path, label: str | None = None, *, what: str = "file") -> Any:
    """Read and parse a YAML file; ``what`` names it in the missing-file error ("plan file")."""
    path = Path(path)
    label = label or str(path)
    return parse_yaml(_read_text(path, label, what, "YAML"), label)


def read_json(path: str | Path, label: str | None = None, *, what: str = "file",
              max_bytes: int = MAX_BYTES) -> Any:
    """Read and parse a JSON file (a Hugging Face config.json, a benchmark result) under the
    same limits; ``max_bytes`` raises the size bound for files that are large by nature."""
    path = Path(path)
    label = label or str(path)
    return parse_json(_read_text(path, label, what, "JSON", max_bytes), label)


def read_text(path: str | Path, label: str | None = None, *, what: str = "file",
              kind: str = "text", max_bytes: int = MAX_BYTES) -> str:
    """A regular UTF-8 file's text under the size bound (JSON lines are parsed per line)."""
    path = Path(path)
    return _read_text(path, label or str(path), what, kind, max_bytes)


def parse_json(text: str, label: str, line: int | None = None) -> Any:
    """Parse one JSON document; every failure (syntax, nesting too deep, a number of thousands
    of digits) is one :class:`InfersimError`. ``line`` is the document's line in a JSONL file."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InfersimError(f"not valid JSON ({err.msg})", file=label,
                            line=line if line is not None else err.lineno) from None
    except RecursionError:
        raise InfersimError(file=label, line=line,
                            expected="JSON nested at most a few hundred levels",
                            given="deeper") from None
    except ValueError:  # an integer of thousands of digits (Python's int/str conversion limit)
        raise InfersimError(file=label, line=line, expected="numbers of at most 4,300 digits",
                            given="a longer one") from None
