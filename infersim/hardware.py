"""Hardware profiles: what one accelerator chip can do, as data.

A chip is described by a handful of physical figures, the ones a roofline needs: dense peak
FLOP/s per numeric precision, the capacity and bandwidth of the memory that holds weights and KV
cache, its on-chip SRAM, the scale-up domain it sits in (NVLink, Infinity Fabric, NeuronLink:
how many chips, how fast one chip can push bytes to its peers in one direction, with what latency)
and its scale-out NIC, its power draw, and what an hour of it costs. Next to these datasheet facts
sit the *calibration knobs*: the fraction of peak that real kernels reach, fixed per-step
overheads, and latency floors per layer and per chip-to-chip hop. The knobs are what turns the
ideal roofline into the speeds real engines measure; each records the published figure it was
fitted to.

Each chip is one YAML file in ``hardware/`` (see ``hardware/README.md`` for the schema); every
figure in it carries its ``source:``. A new chip is a new file, never a new class. Loading
validates once, converts datasheet quantities (``989 TFLOP/s``, ``3.35 TB/s``, ``80 GB``,
``700 W``, ``10 us``) to SI floats, and hands on a frozen :class:`HardwareProfile`. Anything wrong
in the file is an :class:`~infersim.errors.InfersimError` naming the file and the field path.

Two machine kinds exist. On ``hbm`` chips (GPUs, Trainium) weights and KV live in HBM and decode
is bound by HBM bandwidth. On ``sram`` machines (Cerebras WSE-3, Groq LPU) weights and KV live in
on-chip SRAM, whose bandwidth is so high that per-token latency is set instead by the time each
layer takes to stream through the fabric and by hops between chips: there ``layer_latency`` and
``hop_latency`` carry the physics.
"""

from __future__ import annotations

import difflib
import functools
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from infersim.errors import InfersimError
from infersim.paths import find_data_file, list_names, shipped_dir
from infersim.precision import PRECISIONS
from infersim.units import parse_quantity
from infersim.yamlfile import read_yaml

MemoryKind = Literal["hbm", "sram"]
MEMORY_KINDS: tuple[str, ...] = ("hbm", "sram")
# how a scale-up domain's chips are wired; infersim.cost.comm times collectives on each
TOPOLOGIES: tuple[str, ...] = ("all_to_all", "torus", "ethernet")

# bf16 and fp16 are both 2-byte formats that every shipped chip's matrix units run at one rate;
# a chip whose datasheet lists only one of them runs the other at that rate.
_SAME_RATE = {"bf16": "fp16", "fp16": "bf16"}


class FrozenMap(Mapping[str, Any]):
    """A read-only, hashable mapping (so that profiles can key caches and sit in frozen objects)."""

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data = dict(data or {})
        self._hash: int | None = None

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._data == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"


@dataclass(frozen=True)
class HardwareProfile:
    """One accelerator chip, in SI units. Build it with :func:`load_hardware`."""

    name: str  # file stem, e.g. "h100", "gb200-nvl72", "wse3", "lpu"
    description: str
    memory_kind: MemoryKind  # where weights + KV live
    peak_flops: Mapping[str, float]  # precision -> dense FLOP/s per chip (never sparse)
    memory_capacity_bytes: float  # per chip, of the memory that holds weights + KV
    memory_bandwidth: float  # B/s per chip of that memory
    sram_bytes: float  # on-chip SRAM per chip
    sram_bandwidth: float  # B/s
    scaleup_domain_chips: int  # chips in one scale-up (NVLink-like) domain
    scaleup_bandwidth: float  # B/s per chip, one direction
    scaleup_latency_s: float
    scaleout_bandwidth: float  # B/s per chip (NIC), one direction
    scaleout_latency_s: float
    tdp_watts: float  # per chip
    idle_watts: float  # per chip
    price_per_chip_hour: float  # USD
    compute_efficiency: float  # achievable fraction of peak FLOP/s, large GEMMs
    memory_efficiency: float  # achievable fraction of memory bandwidth
    step_overhead_s: float  # fixed per batch step (launch, scheduling, sampling)
    layer_latency_s: float  # per-layer latency floor (dataflow/SRAM machines)
    hop_latency_s: float  # per chip-to-chip hop when a model spans many chips
    sources: Mapping[str, str]  # field (as above; "peak_flops.<precision>") -> source
    price_date: str = ""  # when the price was observed, e.g. "2025-06"
    vendor: str = ""  # who makes it; disaggregated plans ship KV within one vendor by default
    purchase_unit_chips: int = 1  # chips bought together (an NVL72 rack: 72); 1 if sold singly
    purchase_unit_name: str = ""  # what that unit is called ("NVL72 rack")
    path: str = ""  # the file it was loaded from, for messages
    # how the scale-up domain's chips are wired (infersim.cost.comm): "all_to_all" (NVSwitch,
    # Infinity Fabric mesh, a GroqNode), "torus" (Trainium2 NeuronLink), "ethernet" (CS-3
    # systems: no tensor parallelism across chips)
    scaleup_topology: str = "all_to_all"
    # host time to launch one layer's kernels when a step is not replayed from a CUDA graph
    # (prefill and mixed steps, eager engines); 0 on machines that run a compiled static graph
    launch_overhead_s: float = 0.0

    def __post_init__(self) -> None:
        # Profiles built in code (tests, calibration sweeps) may pass plain dicts: freeze them so
        # the profile stays immutable and hashable whichever way it was made.
        for name in ("peak_flops", "sources"):
            value = getattr(self, name)
            if not isinstance(value, FrozenMap):
                object.__setattr__(self, name, FrozenMap(value))

    def flops(self, precision: str) -> float:
        """Dense peak FLOP/s of one chip in ``precision``.

        bf16 and fp16 share a rate (see ``_SAME_RATE``); any other precision the chip's datasheet
        does not list is an error, never a guess.
        """
        if precision in self.peak_flops:
            return self.peak_flops[precision]
        twin = _SAME_RATE.get(precision)
        if twin is not None and twin in self.peak_flops:
            return self.peak_flops[twin]
        raise InfersimError(file=self.path or self.name, field=f"peak_flops.{precision}",
                            expected=f"a precision {self.name} computes in "
                            f"({', '.join(self.precisions())})", given=precision)

    def precisions(self) -> tuple[str, ...]:
        """Every precision :meth:`flops` answers for, in the order of ``PRECISIONS``."""
        listed = set(self.peak_flops) | {_SAME_RATE[p] for p in self.peak_flops if p in _SAME_RATE}
        return tuple(p for p in PRECISIONS if p in listed)

    def ridge_point(self, precision: str, *, achievable: bool = False) -> float:
        """Arithmetic intensity (FLOP per byte of memory traffic) where compute and memory balance.

        Kernels below it are memory-bound, above it compute-bound. The ideal ridge is peak FLOP/s
        over peak bandwidth (H100 bf16: 989e12 / 3.35e12 ≈ 295 FLOP/byte); with
        ``achievable=True`` both are scaled by the calibrated efficiencies.
        """
        flops = self.flops(precision)
        bandwidth = self.memory_bandwidth
        if achievable:
            flops *= self.compute_efficiency
            bandwidth *= self.memory_efficiency
        return flops / bandwidth

    @property
    def tensor_parallel_chips(self) -> int:
        """Most chips one tensor-parallel group may span: the scale-up domain, or one chip where
        the chips only meet over Ethernet (an all-reduce every half layer across CS-3 systems is
        not a layout anyone runs)."""
        return 1 if self.scaleup_topology == "ethernet" else self.scaleup_domain_chips

    def source(self, field: str) -> str:
        """The source recorded for ``field`` (an attribute name or ``peak_flops.<precision>``)."""
        return self.sources[field]

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready data in SI units (for reports and ``--json`` output)."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            out[name] = dict(value) if isinstance(value, Mapping) else value
        return out


# ----------------------------------------------------------------------------------------------
# Loading


def list_hardware() -> list[str]:
    """Names of every hardware profile found (user folders first, then the shipped ones)."""
    return list_names("hardware")


def load_hardware(name_or_path: str | os.PathLike[str]) -> HardwareProfile:
    """Load a chip by shipped name (``"h100"``), user-folder name, or path to a YAML file.

    Profiles are cached per resolved file and modification time: the engine and the planner ask
    for the same chip many times, and an edited file is read again.
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise InfersimError(field="hardware", expected="a chip name or the path to a hardware "
                            "YAML file", given=name_or_path)
    given = os.fspath(name_or_path)
    path = find_data_file("hardware", given) if given else None
    if path is None and _looks_like_path(given):
        raise InfersimError("no such hardware file", file=given)
    if path is None:
        raise InfersimError(field="hardware",
                            expected="a known chip (" + ", ".join(list_hardware())
                            + ") or the path to a hardware YAML file", given=given)
    resolved = path.resolve()
    stat = resolved.stat()
    return _load_file(str(resolved), stat.st_mtime_ns, stat.st_size, _display_name(path))


def _looks_like_path(text: str) -> bool:
    """A path (not a chip name) was meant: it has a folder part or a YAML suffix."""
    return "/" in text or os.sep in text or text.endswith((".yaml", ".yml"))


def _display_name(path: Path) -> str:
    """How messages name a file: ``hardware/h100.yaml`` for shipped ones, else the path given."""
    try:
        if path.resolve().parent == shipped_dir("hardware").resolve():
            return f"hardware/{path.name}"
    except OSError:
        pass
    return str(path)


@functools.lru_cache(maxsize=256)
def _load_file(resolved: str, mtime_ns: int, size: int, display: str) -> HardwareProfile:
    # mtime_ns and size are only cache-key parts: an edited file is a different key.
    raw = read_yaml(resolved, display)  # size, depth and alias limits included
    return profile_from_dict(raw, name=Path(resolved).stem, file=display)


# ---- the schema ------------------------------------------------------------------------------
# Each physical figure is written {value: <quantity>, source: <URL or document title>}; the price
# adds date:; each calibration knob is {value: <number>, fitted_to: <published figure>}.

_TOP_FIELDS = ("description", "memory_kind", "peak_flops", "memory", "sram", "scaleup",
               "scaleout", "power", "price", "calibration")
_OPTIONAL_FIELDS = ("vendor", "purchase")

# section -> field -> (quantity kind, attribute name); kind "count" is a positive integer.
_SECTIONS: dict[str, dict[str, tuple[str, str]]] = {
    "memory": {"capacity": ("bytes", "memory_capacity_bytes"),
               "bandwidth": ("bandwidth", "memory_bandwidth")},
    "sram": {"capacity": ("bytes", "sram_bytes"),
             "bandwidth": ("bandwidth", "sram_bandwidth")},
    "scaleup": {"chips": ("count", "scaleup_domain_chips"),
                "bandwidth": ("bandwidth", "scaleup_bandwidth"),
                "latency": ("time", "scaleup_latency_s")},
    "scaleout": {"bandwidth": ("bandwidth", "scaleout_bandwidth"),
                 "latency": ("time", "scaleout_latency_s")},
    "power": {"tdp": ("power", "tdp_watts"),
              "idle": ("power", "idle_watts")},
}

# knob -> (kind, attribute): "fraction" in (0, 1]; "time" >= 0 (a zero floor is a real choice:
# GPUs have no per-layer floor beyond their step overhead).
_KNOBS: dict[str, tuple[str, str]] = {
    "compute_efficiency": ("fraction", "compute_efficiency"),
    "memory_efficiency": ("fraction", "memory_efficiency"),
    "step_overhead": ("time", "step_overhead_s"),
    "layer_latency": ("time", "layer_latency_s"),
    "hop_latency": ("time", "hop_latency_s"),
    "launch_overhead": ("time", "launch_overhead_s"),
}
# knobs a profile may leave out (they default to 0 s): added after the first profiles were
# written, and 0 is the right value for chips without host-launched kernels
_OPTIONAL_KNOBS = ("launch_overhead",)

# The widest range each kind of figure may take: beyond any chip made (a WSE-3 wafer streams
# 2.1e16 B/s of SRAM), finite, and far from the floats where the cost model would overflow or
# divide by almost nothing (a bandwidth of 1e-300 B/s makes every transfer take inf s).
_PLAUSIBLE: dict[str, tuple[float, float, str]] = {
    "flops": (1e6, 1e20, "FLOP/s"), "bandwidth": (1e3, 1e18, "B/s"),
    "bytes": (1e3, 1e16, "bytes"), "time": (0.0, 3600.0, "s"), "power": (0.0, 1e7, "W"),
    "count": (1, 1_000_000, "chips"),
}

_UNIT_EXAMPLE = {"bytes": "'80 GB'", "bandwidth": "'50 GB/s'", "time": "'10 us'",
                 "flops": "'989 TFLOP/s'", "power": "'700 W'"}


def profile_from_dict(raw: Any, *, name: str, file: str) -> HardwareProfile:
    """Validate a parsed hardware YAML document and build the frozen profile."""
    top = _mapping(raw, file, "", "a mapping of hardware fields")
    _check_keys(top, _TOP_FIELDS + _OPTIONAL_FIELDS, file, "", required=_TOP_FIELDS)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if "vendor" in top:
        values["vendor"] = _text(top["vendor"], file, "vendor", "the maker's name, e.g. nvidia")
    if "purchase" in top:
        # Chips sold only in whole units (a rack, a system): a plan pays for every chip of them.
        unit = _mapping(top["purchase"], file, "purchase",
                        "{chips: <chips per unit>, name: ..., source: ...}")
        _check_keys(unit, ("chips", "name", "source"), file, "purchase",
                    required=("chips", "name", "source"))
        chips = unit["chips"]
        if isinstance(chips, bool) or not isinstance(chips, int) or chips < 1:
            raise InfersimError(file=file, field="purchase.chips",
                                expected="a whole number of chips >= 1", given=chips)
        values["purchase_unit_chips"] = chips
        values["purchase_unit_name"] = _text(unit["name"], file, "purchase.name",
                                             "what the unit is called, e.g. 'NVL72 rack'")
        sources["purchase_unit_chips"] = _text(unit["source"], file, "purchase.source",
                                               "a source (URL or document title)")

    values["description"] = _text(top["description"], file, "description", "a one-line description")
    kind = top["memory_kind"]
    if kind not in MEMORY_KINDS:
        raise InfersimError(file=file, field="memory_kind",
                            expected="one of " + ", ".join(MEMORY_KINDS), given=kind)
    values["memory_kind"] = kind

    flops_raw = _mapping(top["peak_flops"], file, "peak_flops",
                         "a mapping precision -> {value: '989 TFLOP/s', source: ...}")
    if not flops_raw:
        raise InfersimError(file=file, field="peak_flops",
                            expected="at least one precision such as bf16", given={})
    _check_keys(flops_raw, PRECISIONS, file, "peak_flops")
    peak: dict[str, float] = {}
    for precision, entry in flops_raw.items():
        field = f"peak_flops.{precision}"
        peak[precision], sources[field] = _sourced(entry, "flops", file, field)
    values["peak_flops"] = FrozenMap(peak)

    for section, fields in _SECTIONS.items():
        body = _mapping(top[section], file, section, "a mapping of " + ", ".join(fields))
        optional = ("topology",) if section == "scaleup" else ()
        _check_keys(body, tuple(fields) + optional, file, section, required=tuple(fields))
        for key, (qkind, attribute) in fields.items():
            field = f"{section}.{key}"
            values[attribute], sources[attribute] = _sourced(body[key], qkind, file, field)
        if "topology" in body:
            values["scaleup_topology"], sources["scaleup_topology"] = _topology(
                body["topology"], file)
        elif section == "scaleup":
            sources["scaleup_topology"] = "not given: all_to_all"

    price = _mapping(top["price"], file, "price", "a mapping with per_chip_hour")
    _check_keys(price, ("per_chip_hour",), file, "price", required=("per_chip_hour",))
    entry = _mapping(price["per_chip_hour"], file, "price.per_chip_hour",
                     "{value: <USD per chip-hour>, source: ..., date: ...}")
    _check_keys(entry, ("value", "source", "date"), file, "price.per_chip_hour",
                required=("value", "source", "date"))
    values["price_per_chip_hour"] = _positive_number(entry["value"], file,
                                                     "price.per_chip_hour.value",
                                                     "a positive number of USD per chip-hour")
    values["price_date"] = _text(entry["date"], file, "price.per_chip_hour.date",
                                 "the date the price was seen, such as '2025-06'")
    sources["price_per_chip_hour"] = _text(entry["source"], file, "price.per_chip_hour.source",
                                           "a source (URL or document title)")

    calibration = _mapping(top["calibration"], file, "calibration",
                           "a mapping of " + ", ".join(_KNOBS))
    _check_keys(calibration, tuple(_KNOBS), file, "calibration",
                required=tuple(k for k in _KNOBS if k not in _OPTIONAL_KNOBS))
    for knob, (kkind, attribute) in _KNOBS.items():
        field = f"calibration.{knob}"
        if knob not in calibration:
            sources[attribute] = "not given: 0 s"
            continue
        body = _mapping(calibration[knob], file, field, "{value: ..., fitted_to: ...}")
        _check_keys(body, ("value", "fitted_to"), file, field, required=("value", "fitted_to"))
        sources[attribute] = _text(body["fitted_to"], file, f"{field}.fitted_to",
                                   "the published figure the knob was fitted to")
        if kkind == "fraction":
            values[attribute] = _fraction(body["value"], file, f"{field}.value")
        else:
            seconds = parse_quantity(body["value"], "time", field=f"{field}.value", file=file)
            if not 0 <= seconds <= _PLAUSIBLE["time"][1]:
                raise InfersimError(file=file, field=f"{field}.value",
                                    expected="a time >= 0 such as '10 us'", given=body["value"])
            values[attribute] = seconds

    _check_consistency(values, file)
    return HardwareProfile(name=name, sources=FrozenMap(sources), path=file, **values)


def _check_consistency(values: dict[str, Any], file: str) -> None:
    """Relations between fields that no single field can check."""
    if values["idle_watts"] > values["tdp_watts"]:
        raise InfersimError(file=file, field="power.idle",
                            expected=f"at most power.tdp ({values['tdp_watts']:g} W)",
                            given=f"{values['idle_watts']:g} W")
    if (values["memory_kind"] == "sram"
            and values["memory_capacity_bytes"] > values["sram_bytes"] * (1 + 1e-9)):
        raise InfersimError(file=file, field="memory.capacity",
                            expected="at most sram.capacity on an sram machine (weights and KV "
                            f"live in on-chip SRAM: {values['sram_bytes']:g} bytes)",
                            given=f"{values['memory_capacity_bytes']:g} bytes")


# ---- field helpers ---------------------------------------------------------------------------


def _mapping(value: Any, file: str, field: str, expected: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InfersimError(file=file, field=field or None, expected=expected, given=value)
    for key in value:
        if not isinstance(key, str):
            where = f"{field}.{key}" if field else str(key)
            raise InfersimError(file=file, field=where, expected="a text key", given=key)
    return value


def _check_keys(body: Mapping[str, Any], allowed: tuple[str, ...], file: str, field: str,
                required: tuple[str, ...] = ()) -> None:
    """Reject unknown keys (with a did-you-mean) and report the first missing required key."""
    for key in body:
        if key not in allowed:
            where = f"{field}.{key}" if field else key
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InfersimError(f"unknown field{hint}", file=file, field=where,
                                expected="one of " + ", ".join(allowed))
    for key in required:
        if key not in body:
            where = f"{field}.{key}" if field else key
            raise InfersimError("missing field", file=file, field=where,
                                expected="it to be present")


def _text(value: Any, file: str, field: str, expected: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InfersimError(file=file, field=field, expected=f"non-empty text: {expected}",
                            given=value)
    return " ".join(value.split())


def _sourced(entry: Any, kind: str, file: str, field: str) -> tuple[Any, str]:
    """Read ``{value: <quantity>, source: <text>}``: a positive SI number and its source."""
    example = _UNIT_EXAMPLE.get(kind, "8")
    body = _mapping(entry, file, field, f"{{value: {example}, source: ...}}")
    _check_keys(body, ("value", "source"), file, field, required=("value", "source"))
    source = _text(body["source"], file, f"{field}.source", "a source (URL or document title)")
    raw = body["value"]
    low, high, unit = _PLAUSIBLE[kind]
    if kind == "count":
        if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
            raise InfersimError(file=file, field=field, expected="a whole number >= 1", given=raw)
        if raw > high:
            raise InfersimError(file=file, field=field, expected=f"at most {high:,} {unit}",
                                given=raw)
        return raw, source
    number = parse_quantity(raw, kind, field=field, file=file)
    if not number > 0:
        raise InfersimError(file=file, field=field, expected=f"a positive {kind} such as {example}",
                            given=raw)
    if not low <= number <= high:
        raise InfersimError(file=file, field=field, expected=f"a {kind} from {low:g} to "
                            f"{high:g} {unit}", given=raw)
    return number, source


def _topology(entry: Any, file: str) -> tuple[str, str]:
    """``scaleup.topology: {value: all_to_all | torus | ethernet, source: ...}``."""
    field = "scaleup.topology"
    body = _mapping(entry, file, field, "{value: all_to_all, source: ...}")
    _check_keys(body, ("value", "source"), file, field, required=("value", "source"))
    if body["value"] not in TOPOLOGIES:
        raise InfersimError(file=file, field=f"{field}.value",
                            expected="one of " + ", ".join(TOPOLOGIES), given=body["value"])
    return body["value"], _text(body["source"], file, f"{field}.source",
                                "a source (URL or document title)")


def _positive_number(value: Any, file: str, field: str, expected: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 < value <= 1e9:
        raise InfersimError(file=file, field=field, expected=expected, given=value)
    return float(value)


def _fraction(value: Any, file: str, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 < value <= 1:
        raise InfersimError(file=file, field=field, expected="a fraction in (0, 1]", given=value)
    return float(value)
