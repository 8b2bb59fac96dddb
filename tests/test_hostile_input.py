"""A hostile-input corpus: every case is refused cleanly, quickly and without side effects.

Each case is a scenario (or a file it names, or a command line) that a careless or malicious user
could give. The real command-line entry point runs in-process on it, in a private working folder,
and every case must give: exit status 2, exactly one line on stderr starting
``infersim: error:``, no traceback, nothing created, changed or removed outside ``--out``, and
bounded time (a watchdog) and memory (tracemalloc, for the amplification cases). The cases are
generated from tables: every numeric field of the schema times every hostile number, YAML
amplification and malformed documents, hostile chip, model and trace files, and unsafe output
folders. A handful run through a fresh interpreter, as a user runs them.
"""

from __future__ import annotations

import copy
import gzip
import json
import math
import os
import signal
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import with_value

from infersim import cli
from infersim.paths import shipped_dir

BASE = {
    "name": "hostile",
    "seed": 1,
    "model": "llama-3.1-8b",
    "pools": {
        "prefill": {"role": "prefill", "hardware": "h100", "instances": 1},
        "decode": {"role": "decode", "hardware": "h100", "instances": 1},
    },
    "links": [{"between": ["prefill", "decode"], "bandwidth": "50 GB/s", "latency": "10 us"}],
    "router": {"policy": "least_loaded", "queue_limit": 64},
    "workload": {
        "arrival": {"process": "poisson", "rate": 5},
        "requests": 12,
        "prompt_tokens": {"dist": "lognormal", "mean": 256, "sigma": 0.5, "max": 1024},
        "output_tokens": {"dist": "fixed", "value": 8},
        "slo": {"ttft_ms": 1000},
    },
    "slo": {"ttft_ms": 1000, "itl_ms": 50, "percentile": 99},
    "time_limit": "1 h",
}
FIXED = {"dist": "fixed", "value": 8}


def _workload(**fields) -> dict:
    return with_value(BASE, "workload", {"requests": 12, **fields})


POISSON = {"process": "poisson", "rate": 5}
LENGTHS = {"prompt_tokens": FIXED, "output_tokens": FIXED}
VARIANTS = {
    "base": BASE,
    "mixed": with_value(with_value(BASE, "pools", {"m": {"role": "mixed", "hardware": "h100",
                                               "step_overhead": "1 ms"}}), "links", []),
    "gamma": _workload(arrival={"process": "gamma", "rate": 5, "burstiness": 0.5}, **LENGTHS),
    "gamma-cv": _workload(arrival={"process": "gamma", "rate": 5, "cv": 2}, **LENGTHS),
    "steps": _workload(arrival={"process": "steps", "steps": [[0, 1], [10, 5]]}, **LENGTHS),
    "diurnal": _workload(arrival={"process": "diurnal", "mean_rate": 5, "amplitude": 0.5,
                                  "period_s": 60, "phase_s": 0}, **LENGTHS),
    "closed": _workload(concurrency=4, think_time_s=0.5, **LENGTHS),
    "normal": _workload(arrival=POISSON, prompt_tokens={"dist": "normal", "mean": 200, "std": 20},
                        output_tokens=FIXED),
    "uniform": _workload(arrival=POISSON, prompt_tokens={"dist": "uniform", "low": 10,
                                                         "high": 20}, output_tokens=FIXED),
    "quantiles": _workload(arrival=POISSON, output_tokens=FIXED, prompt_tokens={
        "dist": "quantiles", "points": [[0, 10], [0.5, 100], [1, 200]]}),
    "empirical": _workload(arrival=POISSON, output_tokens=FIXED, prompt_tokens={
        "dist": "empirical", "values": [10, 20, 30], "weights": [1, 1, 2]}),
    "classes": _workload(arrival=POISSON, mix={"classes": [
        {"name": "a", "weight": 1, **LENGTHS, "slo": {"itl_ms": 80}},
        {"name": "b", "weight": 2, "mix": "chat"}]}),
    "trace": _workload(trace={"format": "azure", "path": "trace.csv", "speedup": 2,
                              "window_s": [0, 100], "max_requests": 5}),
}

# Every numeric field a user writes: (variant, field path).
NUMERIC_FIELDS = [
    ("base", "seed"),
    ("base", "pools.decode.instances"), ("base", "pools.decode.tp"), ("base", "pools.decode.pp"),
    ("base", "pools.decode.max_batch_tokens"), ("base", "pools.decode.max_batch_size"),
    ("base", "pools.decode.block_size"), ("base", "pools.decode.memory_fraction"),
    ("base", "pools.decode.host_bandwidth"), ("mixed", "pools.m.step_overhead"),
    ("base", "links.0.bandwidth"), ("base", "links.0.latency"),
    ("base", "router.queue_limit"), ("base", "router.prefix_cache_blocks"),
    ("base", "slo.ttft_ms"), ("base", "slo.itl_ms"), ("base", "slo.percentile"),
    ("base", "time_limit"),
    ("base", "workload.requests"), ("base", "workload.arrival.rate"),
    ("base", "workload.prompt_tokens.mean"), ("base", "workload.prompt_tokens.sigma"),
    ("base", "workload.prompt_tokens.max"), ("base", "workload.output_tokens.value"),
    ("base", "workload.slo.ttft_ms"),
    ("gamma", "workload.arrival.rate"), ("gamma", "workload.arrival.burstiness"),
    ("gamma-cv", "workload.arrival.cv"),
    ("steps", "workload.arrival.steps.1.0"), ("steps", "workload.arrival.steps.1.1"),
    ("diurnal", "workload.arrival.mean_rate"), ("diurnal", "workload.arrival.amplitude"),
    ("diurnal", "workload.arrival.period_s"), ("diurnal", "workload.arrival.phase_s"),
    ("closed", "workload.concurrency"), ("closed", "workload.think_time_s"),
    ("normal", "workload.prompt_tokens.mean"), ("normal", "workload.prompt_tokens.std"),
    ("uniform", "workload.prompt_tokens.low"), ("uniform", "workload.prompt_tokens.high"),
    ("quantiles", "workload.prompt_tokens.points.1.0"),
    ("quantiles", "workload.prompt_tokens.points.1.1"),
    ("empirical", "workload.prompt_tokens.values.0"),
    ("empirical", "workload.prompt_tokens.weights.0"),
    ("classes", "workload.mix.classes.0.weight"),
    ("classes", "workload.mix.classes.0.slo.itl_ms"),
    ("trace", "workload.trace.speedup"), ("trace", "workload.trace.window_s.1"),
    ("trace", "workload.trace.max_requests"),
]
# Numbers no field accepts: not finite, absurdly large either way, or not numbers at all.
HOSTILE_NUMBERS = {
    "nan": math.nan, "inf": math.inf, "-inf": -math.inf, "1e300": 1e300, "-1e300": -1e300,
    "10**30": 10**30, "text": "12abc",
}

TRACE = "TIMESTAMP,ContextTokens,GeneratedTokens\n" + "".join(
    f"2023-11-16 18:15:{10 + i:02d}.0000000,{100 + i},{5 + i}\n" for i in range(8))

CASES: list[tuple] = []  # id, scenario (data or text), argv, needle[, {file: contents}]
for _variant, _field in NUMERIC_FIELDS:
    for _label, _number in HOSTILE_NUMBERS.items():
        CASES.append((f"{_variant}:{_field}={_label}", with_value(VARIANTS[_variant], _field, _number),
                      [], _field))

# The variants themselves are valid: a hostile number is what makes each case fail.
LAUGHS = ('name: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"k{i}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)))
YAML_CASES = {
    "billion-laughs": (LAUGHS, "expanded"),
    "laughs-in-workload": ("defs: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"d{i}: &a{i} [{', '.join(['*a' if i == 0 else f'*a{i - 1}'] * 10)}]\n"
        for i in range(7)) + "name: x\n", "expanded"),
    "cyclic-anchor": ("name: &a [*a]\n", "cyclic"),
    "cyclic-mapping": ("pools: &p {decode: *p}\n", "cyclic"),
    "self-merge": ("pools: &p {<<: *p}\n", "cyclic"),
    "deep-flow": ("name: " + "[" * 50_000 + "]" * 50_000 + "\n", "nesting"),
    "deep-block": ("".join("  " * i + f"k{i}:\n" for i in range(300)), "nesting"),
    "deep-flow-mapping": ("name: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n", "nesting"),
    "huge-integer": ("name: x\nseed: 1" + "0" * 5000 + "\n", "digits"),
    "undefined-alias": ("name: *nothing\n", "alias"),
    "duplicate-anchor-key": ("name: x\nname: y\n", "name"),
    "python-object": ("name: !!python/object/apply:os.system ['true']\n", "YAML"),
    "python-name": ("name: !!python/name:os.system\n", "YAML"),
    "binary-name": ("name: !!binary aGVsbG8=\n", "name"),
    "merge-of-scalar": ("pools: {<<: 5}\n", "merging"),
    "merge-of-list-of-scalars": ("pools: {<<: [1, 2]}\n", "merging"),
    "unhashable-key": ("? [a, b]\n: 1\n", "YAML"),
    "tab-indent": ("name: x\npools:\n\tdecode: {}\n", "YAML"),
    "unclosed-flow": ("name: [x\n", "YAML"),
    "bad-unicode-escape": ('name: "\\uZZZZ"\n', "YAML"),
    "document-stream": ("name: x\n---\nname: y\n", "YAML"),
    "scalar-document": ("just a string\n", "mapping"),
    "list-document": ("- 1\n- 2\n", "mapping"),
    "null-document": ("~\n", "mapping"),
    "empty-document": ("", "empty"),
    "only-comments": ("# nothing\n", "empty"),
    "control-characters": ("name: \x00\x01\n", "YAML"),
    "long-name": (f"name: {'x' * 10_000}\n", "name"),
    "date-as-name": ("name: 2024-01-01\n", "name"),
    "integer-keys": ("1: 2\n", "name"),
}
for _label, (_text, _needle) in YAML_CASES.items():
    CASES.append((f"yaml:{_label}", _text, [], _needle))

# Names that would escape the output folder, and other unsafe strings.
for _label, _name in {"dotdot": "..", "dot": ".", "slash": "a/b", "absolute": "/tmp/x",
                      "backslash": "a\\b", "empty": "", "space": "a b", "newline": "a\nb",
                      "nul": "a\x00b", "tilde": "~", "long": "n" * 500}.items():
    CASES.append((f"name:{_label}", with_value(BASE, "name", _name), [], "name"))
for _label, _name in {"dotdot": "..", "slash": "a/b", "empty": ""}.items():
    CASES.append((f"pool-name:{_label}", with_value(BASE, "pools", {
        _name: BASE["pools"]["decode"], "prefill": BASE["pools"]["prefill"]}), [], "pools"))

# Structure and semantics: accepted by a lax reader, refused here.
SEMANTIC = {
    "queue-limit-zero": (with_value(BASE, "router.queue_limit", 0), "router.queue_limit"),
    "block-size-huge": (with_value(BASE, "pools.decode.block_size", 10**9), "block_size"),
    "instances-1e5": (with_value(BASE, "pools.decode.instances", 100_000), "instances"),
    "requests-1e9": (with_value(BASE, "workload.requests", 10**9), "workload.requests"),
    "requests-float": (with_value(BASE, "workload.requests", 1e3), "workload.requests"),
    "rate-denormal": (with_value(BASE, "workload.arrival.rate", 1e-320), "workload.arrival.rate"),
    "rate-zero": (with_value(BASE, "workload.arrival.rate", 0), "workload.arrival.rate"),
    "rate-string-number": (with_value(BASE, "workload.arrival.rate", "5"), "workload.arrival.rate"),
    "bandwidth-denormal": (with_value(BASE, "links.0.bandwidth", 1e-320), "links.0.bandwidth"),
    "bandwidth-nan-text": (with_value(BASE, "links.0.bandwidth", "nan GB/s"), "links.0.bandwidth"),
    "bandwidth-inf-text": (with_value(BASE, "links.0.bandwidth", "inf GB/s"), "links.0.bandwidth"),
    "bandwidth-negative": (with_value(BASE, "links.0.bandwidth", "-5 GB/s"), "links.0.bandwidth"),
    "latency-huge": (with_value(BASE, "links.0.latency", "1e300 s"), "links.0.latency"),
    "time-limit-zero": (with_value(BASE, "time_limit", 0), "time_limit"),
    "seed-2**64": (with_value(BASE, "seed", 2**64), "seed"),
    "seed-bool": (with_value(BASE, "seed", True), "seed"),
    "model-does-not-fit": (with_value(BASE, "model", "llama-3.1-405b"), "pools"),
    "quantiles-nan-probability": (with_value(VARIANTS["quantiles"],
                                        "workload.prompt_tokens.points.0.0", math.nan), "points"),
    "empirical-empty": (with_value(VARIANTS["empirical"], "workload.prompt_tokens.values", []),
                        "values"),
    "steps-nan": (with_value(VARIANTS["steps"], "workload.arrival.steps", [[0, math.nan]]), "steps"),
    "overrides-not-mapping": (with_value(BASE, "pools.decode", [1, 2]), "pools.decode"),
    "workload-list": (with_value(BASE, "workload", [1]), "workload"),
    "links-mapping": (with_value(BASE, "links", {"a": 1}), "links"),
    "hardware-folder": (with_value(BASE, "pools.decode.hardware", "."), "hardware"),
    "hardware-dev-zero": (with_value(BASE, "pools.decode.hardware", "/dev/zero"), "hardware"),
    "model-dev-zero": (with_value(BASE, "model", "/dev/zero"), "model"),
    "model-folder-without-config": (with_value(BASE, "model", "/tmp"), "model"),
    "trace-dev-zero": (with_value(VARIANTS["trace"], "workload.trace.path", "/dev/zero"), "trace"),
    "trace-folder": (with_value(VARIANTS["trace"], "workload.trace.path", "."), "trace"),
}
for _label, (_content, _needle) in SEMANTIC.items():
    CASES.append((f"semantic:{_label}", _content, [], _needle))

# --set on the command line: the same hostile values, through the override parser.
SETS = {
    "rate-nan": ("workload.arrival.rate=.nan", "workload.arrival.rate"),
    "rate-inf": ("workload.arrival.rate=.inf", "workload.arrival.rate"),
    "rate-1e-320": ("workload.arrival.rate=1e-320", "workload.arrival.rate"),
    "requests-1e9": ("workload.requests=1000000000", "workload.requests"),
    "instances-1e5": ("pools.decode.instances=100000", "pools.decode.instances"),
    "block-size-1e9": ("pools.decode.block_size=1000000000", "pools.decode.block_size"),
    "think-inf": ("workload.arrival=null", "workload"),
    "name-dotdot": ("name=..", "name"),
    "alias-in-value": ("name=*x", "name"),
    "mapping-value": ("pools={a: 1}", "pools"),
    "deep-value": ("name=" + "[" * 100 + "]" * 100, "name"),
    "huge-int-value": ("seed=1" + "0" * 5000, "seed"),
    "no-equals": ("workload.requests", "--set"),
    "empty-key": ("=5", "--set"),
    "empty-component": ("workload..requests=5", "--set"),
    "negative-index": ("links.-1.bandwidth=1", "links"),
    "index-into-scalar": ("seed.x=1", "seed"),
    "unknown-field": ("workload.requestz=5", "requestz"),
}
for _label, (_item, _needle) in SETS.items():
    CASES.append((f"set:{_label}", BASE, ["--set", _item], _needle))
for _label, _seed in {"word": "abc", "negative": "-1", "float": "1.5",
                      "nan": "nan"}.items():
    CASES.append((f"seed-flag:{_label}", BASE, ["--seed", _seed], "--seed"))
CASES.append(("seed-flag:huge", BASE, ["--seed", "9" * 30], "seed"))


# Hostile files a scenario names: a chip profile, a model config, traces and length tables.
H100 = (shipped_dir("hardware") / "h100.yaml").read_text()
CHIP = with_value(BASE, "pools.decode.hardware", "chip.yaml")
for _label, (_old, _new, _needle) in {
    "flops-nan": ("989 TFLOP/s", ".nan", "peak_flops.bf16"),
    "flops-inf": ("989 TFLOP/s", ".inf", "peak_flops.bf16"),
    "flops-denormal": ("989 TFLOP/s", "1e-300 TFLOP/s", "peak_flops.bf16"),
    "flops-huge": ("989 TFLOP/s", "1e30 TFLOP/s", "peak_flops.bf16"),
    "flops-text": ("989 TFLOP/s", "fast", "peak_flops.bf16"),
    "bandwidth-denormal": ("3.35 TB/s", "1e-300 B/s", "memory.bandwidth"),
    "bandwidth-huge": ("3.35 TB/s", "1e300 TB/s", "memory.bandwidth"),
    "memory-huge": ("value: 80 GB", "value: 1e30 GB", "memory.capacity"),
    "memory-negative": ("value: 80 GB", "value: -80 GB", "memory.capacity"),
    "chips-huge": ("value: 8\n", "value: 100000000000\n", "scaleup.chips"),
    "chips-float": ("value: 8\n", "value: 8.5\n", "scaleup.chips"),
    "latency-huge": ("value: 2.5 us", "value: 1e300 s", "scaleup.latency"),
    "latency-inf": ("value: 2.5 us", "value: .inf", "scaleup.latency"),
    "tdp-huge": ("value: 700 W", "value: 1e300 W", "power.tdp"),
    "tdp-nan": ("value: 700 W", "value: .nan", "power.tdp"),
    "not-a-mapping": (H100, "- 1\n", "chip.yaml"),
    "laughs": ("memory_kind: hbm", "memory_kind: hbm\n" + LAUGHS.replace("name:", "x:"),
               "chip.yaml"),
}.items():
    CASES.append((f"chip:{_label}", CHIP, [], _needle, {"chip.yaml": H100.replace(_old, _new, 1)}))

TINY = {"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 160,
        "model_type": "llama", "num_attention_heads": 8, "num_hidden_layers": 2,
        "num_key_value_heads": 2, "vocab_size": 100}
MODEL = with_value(BASE, "model", "tiny/config.json")
for _key in ("hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers",
             "num_key_value_heads", "vocab_size"):
    for _label, _value in {"nan": math.nan, "inf": math.inf, "huge": 10**30, "zero": 0,
                           "float": 2.5, "text": "x"}.items():
        CASES.append((f"model:{_key}={_label}", MODEL, [], _key,
                      {"tiny/config.json": json.dumps({**TINY, _key: _value})}))
for _label, (_text, _needle) in {
    "deep-json": ('{"a":' * 100_000 + "1" + "}" * 100_000, "config.json"),
    "huge-int-json": ('{"hidden_size": 1' + "0" * 5000 + "}", "digits"),
    "not-json": ("hello", "JSON"),
    "json-list": ("[1, 2]", "config.json"),
    "bad-utf8": (b"\xff\xfe{}", "config.json"),
}.items():
    CASES.append((f"model:{_label}", MODEL, [], _needle, {"tiny/config.json": _text}))

AZURE_HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
AZURE_ROW = "2023-11-16 18:15:46.6805900,{},{}\n"
for _label, _count in {"2**63": 2**63, "2**64": 2**64, "1e30": 10**30, "1e300": "1e300",
                       "negative": -5, "nan": "nan", "inf": "inf", "fraction": "1.5",
                       "text": "abc", "digits": "9" * 5000}.items():
    for _column, _row in (("ContextTokens", AZURE_ROW.format(_count, 10)),
                          ("GeneratedTokens", AZURE_ROW.format(100, _count))):
        CASES.append((f"trace:azure-{_column}={_label}", VARIANTS["trace"], [], _column,
                      {"trace.csv": AZURE_HEADER + _row + AZURE_ROW.format(100, 10)}))
MOONCAKE = _workload(trace={"format": "mooncake", "path": "trace.jsonl"})
_MC = {"timestamp": 0, "input_length": 100, "output_length": 10, "hash_ids": [0]}
for _key in ("timestamp", "input_length", "output_length"):
    for _label, _value in {"2**63": 2**63, "1e30": 10**30, "negative": -1, "nan": math.nan,
                           "inf": math.inf, "text": "x", "null": None}.items():
        CASES.append((f"trace:mooncake-{_key}={_label}", MOONCAKE, [], _key,
                      {"trace.jsonl": json.dumps({**_MC, _key: _value}) + "\n"}))
for _label, (_text, _needle) in {
    "deep": ("[" * 100_000 + "]" * 100_000 + "\n", "JSON"),
    "digits": ('{"timestamp": 0, "input_length": 1' + "0" * 5000 + "}\n", "JSON"),
    "hash-ids-huge": (json.dumps({**_MC, "hash_ids": [2**70]}) + "\n", "hash_ids"),
    "not-json": ("hello\n", "JSON"),
}.items():
    CASES.append((f"trace:mooncake-{_label}", MOONCAKE, [], _needle, {"trace.jsonl": _text}))
_GZ = gzip.compress((AZURE_HEADER + "".join(AZURE_ROW.format(100 + i, 10) for i in range(500))
                     ).encode())
GZ_TRACE = with_value(VARIANTS["trace"], "workload.trace.path", "trace.csv.gz")
EMPIRICAL_GZ = with_value(VARIANTS["empirical"], "workload.prompt_tokens", {
    "dist": "empirical", "path": "lengths.csv.gz", "column": "ContextTokens"})
for _label, _bytes in {"truncated": _GZ[: len(_GZ) // 2], "crc": _GZ[:-8] + bytes(8),
                       "length": _GZ[:-4] + b"\xff\xff\xff\x7f", "header-only": _GZ[:10],
                       "garbage": b"\x1f\x8b" + bytes(60),
                       "flipped": _GZ[:40] + bytes(b ^ 0xFF for b in _GZ[40:48]) + _GZ[48:]
                       }.items():
    CASES.append((f"gzip:trace-{_label}", GZ_TRACE, [], "trace.csv.gz",
                  {"trace.csv.gz": _bytes}))
    CASES.append((f"gzip:lengths-{_label}", EMPIRICAL_GZ, [], "lengths.csv.gz",
                  {"lengths.csv.gz": _bytes}))


def _snapshot(root: Path, skip: Path | None) -> dict[str, tuple]:
    state = {}
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        if skip is not None and (here == skip or skip in here.parents):
            dirs[:] = []
            continue
        for name in files + dirs:
            path = here / name
            if skip is not None and path == skip:
                continue
            info = path.lstat()
            # a folder's own mtime moves when anything is made and removed in it (the probe for
            # a writable --out); what it holds is compared entry by entry instead
            changed = 0 if path.is_dir() and not path.is_symlink() else info.st_mtime_ns
            state[str(path.relative_to(root))] = (info.st_mode, info.st_size, changed)
    return state


class _Watchdog:
    """Fail a case that runs past ``seconds`` instead of hanging the suite."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds

    def __enter__(self):
        def expire(signum, frame):
            raise TimeoutError(f"a hostile case ran past {self.seconds} s")

        self.previous = signal.signal(signal.SIGALRM, expire)
        signal.alarm(self.seconds)

    def __exit__(self, *exc):
        signal.alarm(0)
        signal.signal(signal.SIGALRM, self.previous)


def _run(argv: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info, _Watchdog(60):
        cli.main(argv)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.err


def _write_scenario(folder: Path, content, files: dict | None = None) -> Path:
    (folder / "trace.csv").write_text(TRACE)
    for name, body in (files or {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(body, bytes):
            (folder / name).write_bytes(body)
        else:
            (folder / name).write_text(body)
    path = folder / "scenario.yaml"
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_text(yaml.safe_dump(content, sort_keys=False, allow_unicode=True))
    return path


def _assert_refused(code: int, err: str, needle: str | None) -> None:
    lines = err.strip("\n").split("\n")
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("infersim: error: "), err
    assert "Traceback" not in err
    if needle is not None:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(("content", "args", "needle", "files"),
                         [(*c[1:4], c[4] if len(c) > 4 else None) for c in CASES],
                         ids=[c[0] for c in CASES])
def test_hostile_case_is_refused_cleanly(tmp_path, monkeypatch, capsys, content, args, needle,
                                         files):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    path = _write_scenario(work, content, files)
    out = work / "out"
    before = _snapshot(tmp_path, out)
    # Every case through validate; run must refuse it too, before simulating (a sample of them
    # keeps the suite fast: the two share one pre-flight). Memory is traced where a small file
    # could amplify (tracemalloc slows everything down, so only there).
    traced = isinstance(content, str) or files is not None
    if traced:
        tracemalloc.start()
    try:
        code, err = _run(["validate", str(path), *args], capsys)
        peak = tracemalloc.get_traced_memory()[1] if traced else 0
    finally:
        if traced:
            tracemalloc.stop()
    _assert_refused(code, err, needle)
    assert peak < 100 * 2**20, f"{peak / 2**20:.0f} MiB to refuse one file"
    if zlib.crc32(repr((content, args)).encode()) % 8 == 0 or args:
        code, err = _run(["run", str(path), *args, "--out", str(out), "-q"], capsys)
        _assert_refused(code, err, needle)
    assert _snapshot(tmp_path, out) == before
    assert not out.exists()


def test_the_corpus_has_at_least_three_hundred_cases():
    assert len(CASES) >= 300
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_is_valid_so_each_case_fails_for_its_hostile_value(
        tmp_path, monkeypatch, capsys, variant):
    monkeypatch.chdir(tmp_path)
    path = _write_scenario(tmp_path, VARIANTS[variant])
    with pytest.raises(SystemExit) as exit_info, _Watchdog(60):
        cli.main(["validate", str(path)])
    assert exit_info.value.code in (0, None), capsys.readouterr().err


# -- unsafe output folders: run refuses before simulating; nothing outside --out changes -------

def _out_cases(root: Path) -> dict[str, tuple[list[str], str]]:
    """Each: the extra run arguments (after the scenario), and the text the error must hold."""
    (root / "file").write_text("a file")
    (root / "used").mkdir()
    (root / "used" / "summary.json").write_text("an earlier run")
    (root / "elsewhere").mkdir()
    (root / "elsewhere" / "summary.json").write_text("not yours to overwrite")
    (root / "link").symlink_to(root / "elsewhere")
    (root / "dangling").symlink_to(root / "nowhere")
    return {
        "out-is-a-file": (["--out", str(root / "file")], "--out"),
        "out-under-a-file": (["--out", str(root / "file" / "run")], "--out"),
        "out-holds-files": (["--out", str(root / "used")], "--force"),
        "out-is-a-symlink": (["--out", str(root / "link")], "symbolic link"),
        "out-is-a-symlink-forced": (["--out", str(root / "link"), "--force"], "symbolic link"),
        "out-is-a-dangling-symlink": (["--out", str(root / "dangling")], "symbolic link"),
        "out-in-proc": (["--out", "/proc/infersim-run"], "--out"),
        "out-empty-name": (["--out", ""], "--out"),
        "default-out-name-dotdot": (["--set", "name=.."], "name"),
    }


OUT_CASES = ["out-is-a-file", "out-under-a-file", "out-holds-files", "out-is-a-symlink",
             "out-is-a-symlink-forced", "out-is-a-dangling-symlink", "out-in-proc",
             "out-empty-name", "default-out-name-dotdot"]


@pytest.mark.parametrize("case", OUT_CASES)
def test_unsafe_output_folder_is_refused_and_nothing_changes(tmp_path, monkeypatch, capsys, case):
    monkeypatch.chdir(tmp_path)
    args, needle = _out_cases(tmp_path)[case]
    path = _write_scenario(tmp_path, BASE)
    before = _snapshot(tmp_path, None)
    code, err = _run(["run", str(path), *args, "-q", "--no-plots"], capsys)
    _assert_refused(code, err, needle)
    assert _snapshot(tmp_path, None) == before
    assert (tmp_path / "elsewhere" / "summary.json").read_text() == "not yours to overwrite"


def test_every_output_case_is_listed(tmp_path):
    assert sorted(_out_cases(tmp_path)) == sorted(OUT_CASES)


# -- the Python API: every mistake is an InfersimError, one line --------------------------------

def _api_cases():
    import infersim
    from infersim.cost import StepBatch

    small = with_value(BASE, "workload.requests", 3)
    result = infersim.simulate(small)
    model, chip = infersim.load_model("llama-3.1-8b"), infersim.load_hardware("h100")
    deployment = infersim.Deployment(model=model, hardware=chip)
    return {
        "overrides-int": lambda: infersim.simulate(small, overrides=5),
        "overrides-list-of-int": lambda: infersim.simulate(small, overrides=[5]),
        "overrides-bytes": lambda: infersim.simulate(small, overrides=[b"seed=1"]),
        "overrides-mapping": lambda: infersim.simulate(small, overrides={"seed": 1}),
        "overrides-unknown-path": lambda: infersim.simulate(small, overrides="pools.x.tp=2"),
        "seed-negative": lambda: infersim.simulate(small, seed=-1),
        "seed-float": lambda: infersim.simulate(small, seed=1.5),
        "seed-text": lambda: infersim.simulate(small, seed="1"),
        "seed-huge": lambda: infersim.simulate(small, seed=2**70),
        "scenario-int": lambda: infersim.simulate(5),
        "scenario-none": lambda: infersim.simulate(None),
        "scenario-list": lambda: infersim.simulate([1]),
        "scenario-empty": lambda: infersim.simulate(""),
        "scenario-folder": lambda: infersim.simulate("/tmp"),
        "scenario-int-keys": lambda: infersim.simulate({1: 2}),
        "progress-not-callable": lambda: infersim.simulate(small, progress=5),
        "token-times-negative": lambda: result.token_times(-1),
        "token-times-beyond": lambda: result.token_times(10**9),
        "token-times-float": lambda: result.token_times(1.5),
        "token-times-text": lambda: result.token_times("a"),
        "token-times-bool": lambda: result.token_times(True),
        "token-times-none": lambda: result.token_times(None),
        "load-scenario-overrides-int": lambda: infersim.load_scenario(small, overrides=3),
        "load-hardware-int": lambda: infersim.load_hardware(5),
        "load-hardware-none": lambda: infersim.load_hardware(None),
        "load-hardware-empty": lambda: infersim.load_hardware(""),
        "load-hardware-folder": lambda: infersim.load_hardware("/tmp"),
        "load-model-int": lambda: infersim.load_model(5),
        "load-model-empty": lambda: infersim.load_model(""),
        "load-model-folder": lambda: infersim.load_model("/tmp"),
        "load-model-dev-zero": lambda: infersim.load_model("/dev/zero"),
        "deployment-no-model": lambda: infersim.Deployment(model=None, hardware=chip),
        "deployment-no-hardware": lambda: infersim.Deployment(model=model, hardware="h100"),
        "deployment-tp-zero": lambda: infersim.Deployment(model=model, hardware=chip, tp=0),
        "deployment-tp-text": lambda: infersim.Deployment(model=model, hardware=chip, tp="2"),
        "deployment-precision": lambda: infersim.Deployment(model=model, hardware=chip,
                                                            precision="fp9"),
        "deployment-overhead-nan": lambda: infersim.Deployment(model=model, hardware=chip,
                                                               step_overhead_s=math.nan),
        "step-time-not-a-batch": lambda: infersim.step_time(deployment, None),
        "step-batch-mismatch": lambda: StepBatch(prefill_new_tokens=(1, 2), prefill_context=(0,)),
    }


API_CASES = sorted([
    "overrides-int", "overrides-list-of-int", "overrides-bytes", "overrides-mapping",
    "overrides-unknown-path", "seed-negative", "seed-float", "seed-text", "seed-huge",
    "scenario-int", "scenario-none", "scenario-list", "scenario-empty", "scenario-folder",
    "scenario-int-keys", "progress-not-callable", "token-times-negative", "token-times-beyond",
    "token-times-float", "token-times-text", "token-times-bool", "token-times-none",
    "load-scenario-overrides-int", "load-hardware-int", "load-hardware-none",
    "load-hardware-empty", "load-hardware-folder", "load-model-int", "load-model-empty",
    "load-model-folder", "load-model-dev-zero", "deployment-no-model", "deployment-no-hardware",
    "deployment-tp-zero", "deployment-tp-text", "deployment-precision",
    "deployment-overhead-nan", "step-time-not-a-batch", "step-batch-mismatch"])


@pytest.fixture(scope="module")
def api_cases():
    return _api_cases()


@pytest.mark.parametrize("case", API_CASES)
def test_api_mistakes_raise_one_line_infersim_errors(api_cases, case):
    from infersim.errors import InfersimError

    with pytest.raises(InfersimError) as err, _Watchdog(60):
        api_cases[case]()
    assert "\n" not in str(err.value) and str(err.value)


def test_every_api_case_is_listed(api_cases):
    assert sorted(api_cases) == API_CASES


def test_a_single_override_string_is_one_override_not_characters():
    import infersim

    scenario = infersim.load_scenario(BASE, overrides="workload.requests=3")
    assert scenario.workload.requests == 3


# -- a few through a fresh interpreter, as a user runs them -------------------------------------

@pytest.mark.parametrize("label", ["yaml:billion-laughs", "base:workload.arrival.rate=inf",
                                   "trace:azure-ContextTokens=2**63", "model:deep-json"])
def test_a_fresh_interpreter_prints_one_line_and_exits_2(tmp_path, label):
    (case,) = [c for c in CASES if c[0] == label]
    path = _write_scenario(tmp_path, case[1], case[4] if len(case) > 4 else None)
    before = _snapshot(tmp_path, None)
    proc = subprocess.run([sys.executable, "-c", "from infersim.cli import main; main()", "run",
                           str(path), "--out", str(tmp_path / "out"), "-q"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    _assert_refused(proc.returncode, proc.stderr, case[3])
    assert _snapshot(tmp_path, None) == before


# -- hypothesis over the schema: any value at any field is accepted or one InfersimError --------

def _leaf_paths(node, prefix=()) -> list[tuple]:
    if isinstance(node, dict):
        return [p for key, value in node.items() for p in _leaf_paths(value, (*prefix, key))]
    if isinstance(node, list):
        return [p for i, value in enumerate(node) for p in _leaf_paths(value, (*prefix, i))]
    return [prefix]


LEAVES = sorted({(name, path) for name, data in VARIANTS.items() if name != "trace"
                 for path in _leaf_paths(data)}, key=repr)
ANY_VALUE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**80), 2**80),
    st.text(max_size=12), st.booleans(), st.none(),
    st.lists(st.integers(-5, 5), max_size=3), st.dictionaries(st.text(max_size=4),
                                                              st.integers(), max_size=2))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(leaf=st.sampled_from(LEAVES), value=ANY_VALUE)
def test_any_value_at_any_field_is_accepted_or_refused_in_one_line(leaf, value):
    from infersim.errors import InfersimError
    from infersim.scenario import load_scenario
    from infersim.scenario.build import prepare_run

    variant, path = leaf
    data = copy.deepcopy(VARIANTS[variant])
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    try:
        with _Watchdog(60):
            prepare_run(load_scenario(data))
    except InfersimError as err:
        assert "\n" not in str(err) and str(err)


@pytest.mark.parametrize("command", [["sweep", "default", "--grid", "workload.requests=5,6"],
                                     ["plan", "default", "--rate", "1"]])
@pytest.mark.parametrize("where", ["file", "below-a-file", "symlink", "proc"])
def test_sweep_and_plan_refuse_an_unwritable_out_before_working(tmp_path, monkeypatch, capsys,
                                                                 command, where):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("x")
    (tmp_path / "target").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "target")
    out = {"file": tmp_path / "file", "below-a-file": tmp_path / "file" / "out",
           "symlink": tmp_path / "link", "proc": Path("/proc/infersim-out")}[where]
    before = _snapshot(tmp_path, None)
    code, err = _run([*command, "--out", str(out)], capsys)
    _assert_refused(code, err, "--out")
    assert _snapshot(tmp_path, None) == before


def test_a_failing_disk_is_one_line_not_a_traceback(tmp_path, monkeypatch, capsys):
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.json"))

    monkeypatch.setattr("infersim.cli.validate.Console", full)
    code, err = _run(["validate", "default"], capsys)
    _assert_refused(code, err, "No space left on device")
