"""Quantities with units, parsed strictly.

Hardware profiles and scenarios write physical figures the way datasheets do: ``50 GB/s``,
``400 Gbit/s``, ``10 us``, ``989 TFLOP/s``, ``80 GB``, ``700 W``. This module turns such strings
into SI floats (bytes, bytes/s, seconds, FLOP/s, watts). Decimal prefixes are powers of 1000 and
binary prefixes (KiB, GiB, ...) powers of 1024; bits are divided by 8. An unknown unit, a unit of
the wrong kind (a time where a bandwidth is expected) or a malformed number is an error, never a
silent default. Plain numbers are taken as already in SI units — except that a bare number below
a million where a size, a bandwidth or a compute rate is expected is a forgotten unit
(``bandwidth: 50`` meant 50 GB/s, not 50 B/s, which would silently stretch a KV transfer to
weeks), so it is an error: no figure infersim reads in bytes, B/s or FLOP/s is that small.
"""

from __future__ import annotations

import math
import re

from infersim.errors import InfersimError

_DECIMAL = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_BINARY = {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50}

# kind -> {unit symbol: factor to SI}
_UNITS: dict[str, dict[str, float]] = {"bytes": {}, "bandwidth": {}, "time": {}, "flops": {},
                                       "power": {}, "frequency": {}, "energy": {}}


def _fill() -> None:
    for p, f in {**_DECIMAL, **_BINARY}.items():
        _UNITS["bytes"][f"{p}B"] = f
        _UNITS["bandwidth"][f"{p}B/s"] = f
        _UNITS["bandwidth"][f"{p}bit/s"] = f / 8
        _UNITS["bandwidth"][f"{p}bps"] = f / 8
    for p, f in _DECIMAL.items():
        _UNITS["flops"][f"{p}FLOP/s"] = f
        _UNITS["flops"][f"{p}FLOPS"] = f
        _UNITS["flops"][f"{p}OPS"] = f  # integer ops (TOPS) for int8 peaks
        _UNITS["flops"][f"{p}OP/s"] = f
        _UNITS["power"][f"{p}W"] = f
        _UNITS["frequency"][f"{p}Hz"] = f
        _UNITS["energy"][f"{p}J"] = f
        _UNITS["energy"][f"{p}Wh"] = f * 3600.0
    _UNITS["time"].update({"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9,
                           "min": 60.0, "h": 3600.0})


_fill()

_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([^\d\s].*?)?\s*$")

KINDS = tuple(_UNITS)

# Kinds whose SI unit is far below any real figure: a bare number under _BARE_SI_FLOOR (other
# than 0) is a unit the user forgot. Noun and SI unit name for the message.
_BARE_SI_FLOOR = 1e6
_NEEDS_UNIT = {"bytes": ("a size", "bytes"), "bandwidth": ("a bandwidth", "B/s"),
               "flops": ("a compute rate", "FLOP/s")}


def parse_quantity(value: object, kind: str, *, field: str | None = None,
                   file: str | None = None) -> float:
    """Return ``value`` in SI units of ``kind`` ('bytes', 'bandwidth', 'time', 'flops', 'power').

    ``value`` may be a number (already SI) or a string such as ``"50 GB/s"``.
    """
    if kind not in _UNITS:
        raise ValueError(f"unknown quantity kind {kind!r}")
    examples = {"bytes": "'80 GB'", "bandwidth": "'50 GB/s' or '400 Gbit/s'", "time": "'10 us'",
                "flops": "'989 TFLOP/s'", "power": "'700 W'", "frequency": "'1.8 GHz'",
                "energy": "'1 kWh'"}[kind]
    if isinstance(value, bool):
        raise InfersimError(file=file, field=field, expected=f"a {kind} quantity such as {examples}",
                            given=value)
    bare = isinstance(value, (int, float))
    if bare:
        number = float(value)
    elif isinstance(value, str):
        match = _QUANTITY.match(value)
        if not match:
            raise InfersimError(file=file, field=field,
                                expected=f"a {kind} quantity such as {examples}", given=value)
        unit = (match.group(2) or "").strip()
        bare = not unit
        if unit and unit not in _UNITS[kind]:
            other = [k for k, table in _UNITS.items() if unit in table]
            hint = f" (that is a {other[0]} unit)" if other else ""
            raise InfersimError(file=file, field=field,
                                expected=f"a {kind} unit such as {examples}{hint}", given=value)
        number = float(match.group(1)) * (_UNITS[kind][unit] if unit else 1.0)
    else:
        raise InfersimError(file=file, field=field, expected=f"a {kind} quantity such as {examples}",
                            given=value)
    if not math.isfinite(number):
        raise InfersimError(file=file, field=field, expected="a finite number", given=value)
    if bare and kind in _NEEDS_UNIT and 0 < abs(number) < _BARE_SI_FLOOR:
        noun, si_unit = _NEEDS_UNIT[kind]
        raise InfersimError(file=file, field=field, given=value,
                            expected=f"{noun} with its unit, such as {examples} "
                                     f"(a bare number is read as {si_unit})")
    return number


_DISPLAY_PREFIXES = ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"),
                     (1.0, ""))


def format_si(value: float, unit: str) -> str:
    """``3.35e12, 'B/s'`` -> ``'3.35 TB/s'``: decimal prefix, three significant digits.

    The inverse of :func:`parse_quantity` for display (tables, messages).
    """
    if value == 0 or not math.isfinite(value):
        return f"{value:g} {unit}"
    for factor, prefix in _DISPLAY_PREFIXES:
        # the prefix is chosen on the rounded figure: 999.6 GB shows as 1 TB, not '1e+03 GB'
        text = f"{value / factor:.3g}"
        if abs(float(text)) >= 1:
            return f"{text} {prefix}{unit}"
    return f"{value:.3g} {unit}"
