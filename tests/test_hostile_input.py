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
import math
import os
import signal
import tracemalloc
import zlib
from pathlib import Path

import pytest
import yaml

from infersim import cli

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


def _with(data: dict, path: str, value) -> dict:
    out = copy.deepcopy(data)
    node = out
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return out


def _workload(**fields) -> dict:
    return _with(BASE, "workload", {"requests": 12, **fields})


POISSON = {"process": "poisson", "rate": 5}
LENGTHS = {"prompt_tokens": FIXED, "output_tokens": FIXED}
VARIANTS = {
    "base": BASE,
    "mixed": _with(_with(BASE, "pools", {"m": {"role": "mixed", "hardware": "h100",
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

CASES: list[tuple[str, object, list[str], str | None]] = []  # id, content, argv, needle
for _variant, _field in NUMERIC_FIELDS:
    for _label, _number in HOSTILE_NUMBERS.items():
        CASES.append((f"{_variant}:{_field}={_label}", _with(VARIANTS[_variant], _field, _number),
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
    CASES.append((f"name:{_label}", _with(BASE, "name", _name), [], "name"))
for _label, _name in {"dotdot": "..", "slash": "a/b", "empty": ""}.items():
    CASES.append((f"pool-name:{_label}", _with(BASE, "pools", {
        _name: BASE["pools"]["decode"], "prefill": BASE["pools"]["prefill"]}), [], "pools"))

# Structure and semantics: accepted by a lax reader, refused here.
SEMANTIC = {
    "queue-limit-zero": (_with(BASE, "router.queue_limit", 0), "router.queue_limit"),
    "block-size-huge": (_with(BASE, "pools.decode.block_size", 10**9), "block_size"),
    "instances-1e5": (_with(BASE, "pools.decode.instances", 100_000), "instances"),
    "requests-1e9": (_with(BASE, "workload.requests", 10**9), "workload.requests"),
    "requests-float": (_with(BASE, "workload.requests", 1e3), "workload.requests"),
    "rate-denormal": (_with(BASE, "workload.arrival.rate", 1e-320), "workload.arrival.rate"),
    "rate-zero": (_with(BASE, "workload.arrival.rate", 0), "workload.arrival.rate"),
    "rate-string-number": (_with(BASE, "workload.arrival.rate", "5"), "workload.arrival.rate"),
    "bandwidth-denormal": (_with(BASE, "links.0.bandwidth", 1e-320), "links.0.bandwidth"),
    "bandwidth-nan-text": (_with(BASE, "links.0.bandwidth", "nan GB/s"), "links.0.bandwidth"),
    "bandwidth-inf-text": (_with(BASE, "links.0.bandwidth", "inf GB/s"), "links.0.bandwidth"),
    "bandwidth-negative": (_with(BASE, "links.0.bandwidth", "-5 GB/s"), "links.0.bandwidth"),
    "latency-huge": (_with(BASE, "links.0.latency", "1e300 s"), "links.0.latency"),
    "time-limit-zero": (_with(BASE, "time_limit", 0), "time_limit"),
    "seed-2**64": (_with(BASE, "seed", 2**64), "seed"),
    "seed-bool": (_with(BASE, "seed", True), "seed"),
    "model-does-not-fit": (_with(BASE, "model", "llama-3.1-405b"), "pools"),
    "quantiles-nan-probability": (_with(VARIANTS["quantiles"],
                                        "workload.prompt_tokens.points.0.0", math.nan), "points"),
    "empirical-empty": (_with(VARIANTS["empirical"], "workload.prompt_tokens.values", []),
                        "values"),
    "steps-nan": (_with(VARIANTS["steps"], "workload.arrival.steps", [[0, math.nan]]), "steps"),
    "overrides-not-mapping": (_with(BASE, "pools.decode", [1, 2]), "pools.decode"),
    "workload-list": (_with(BASE, "workload", [1]), "workload"),
    "links-mapping": (_with(BASE, "links", {"a": 1}), "links"),
    "hardware-folder": (_with(BASE, "pools.decode.hardware", "."), "hardware"),
    "hardware-dev-zero": (_with(BASE, "pools.decode.hardware", "/dev/zero"), "hardware"),
    "model-dev-zero": (_with(BASE, "model", "/dev/zero"), "model"),
    "model-folder-without-config": (_with(BASE, "model", "/tmp"), "model"),
    "trace-dev-zero": (_with(VARIANTS["trace"], "workload.trace.path", "/dev/zero"), "trace"),
    "trace-folder": (_with(VARIANTS["trace"], "workload.trace.path", "."), "trace"),
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
            state[str(path.relative_to(root))] = (info.st_mode, info.st_size, info.st_mtime_ns)
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


def _write_scenario(folder: Path, content) -> Path:
    (folder / "trace.csv").write_text(TRACE)
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


@pytest.mark.parametrize(("content", "args", "needle"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_hostile_case_is_refused_cleanly(tmp_path, monkeypatch, capsys, content, args, needle):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    path = _write_scenario(work, content)
    out = work / "out"
    before = _snapshot(tmp_path, out)
    # Every case through validate; run must refuse it too, before simulating (a sample of them
    # keeps the suite fast: the two share one pre-flight). Memory is traced where a small file
    # could amplify (tracemalloc slows everything down, so only there).
    traced = isinstance(content, str)
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
