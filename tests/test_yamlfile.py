"""The one YAML reader: safe, strict, bounded; merge keys and 1e3 floats read as users mean."""

from __future__ import annotations

import time

import pytest

from infersim.errors import InfersimError
from infersim.yamlfile import MAX_DEPTH, parse_yaml, read_yaml


def test_merge_keys_merge_and_explicit_keys_win():
    text = ("base: &pool {role: decode, hardware: h100, instances: 2}\n"
            "pool:\n  <<: *pool\n  instances: 4\n"
            "both: {<<: [{a: 1}, {a: 2, b: 2}], c: 3}\n")
    data = parse_yaml(text, "f.yaml")
    assert data["pool"] == {"role": "decode", "hardware": "h100", "instances": 4}
    assert data["both"] == {"a": 1, "b": 2, "c": 3}  # the first mapping listed wins, as in YAML


def test_a_key_written_twice_is_still_refused_beside_a_merge():
    with pytest.raises(InfersimError, match=r"f.yaml:3: b: expected each key once"):
        parse_yaml("d: &d {a: 1}\ne: {<<: *d,\n b: 1, b: 2}\n", "f.yaml")


@pytest.mark.parametrize(("text", "value"), [
    ("1e3", 1000.0), ("-1.5E-2", -0.015), (".5e1", 5.0), ("2.5e+3", 2500.0), ("1_000", 1000),
    ("1.0", 1.0), ("'1e3'", "1e3"), ("1e", "1e"), ("e3", "e3"), ("1.2.3", "1.2.3"),
    (".inf", float("inf")),
])
def test_exponent_floats_are_numbers_yaml_1_2_style(text, value):
    assert parse_yaml(f"x: {text}\n", "f.yaml")["x"] == value


LAUGHS = ('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)))


@pytest.mark.parametrize(("text", "message"), [
    (LAUGHS, r"f.yaml:\d+: expected at most 1,000,000 values with every alias expanded"),
    ("a: &a [*a]\n", "f.yaml:1: expected an anchor that does not contain itself, got 'a cyclic"),
    ("a: &a {<<: *a}\n", "an anchor that does not contain itself"),
    ("a: " + "[" * 50_000 + "]" * 50_000, f"expected nesting of at most {MAX_DEPTH} levels"),
    ("".join("  " * i + f"k{i}:\n" for i in range(2000)), "nesting of at most"),
    ("a: &a [1]\n" + "".join(f"a{i}: &a{i} [*{'a' if i == 0 else f'a{i - 1}'}]\n"
                             for i in range(100)), "nesting of at most"),
    ("a: 1" + "0" * 5000 + "\n", "numbers of at most 4,300 digits"),
])
def test_amplification_is_refused_fast_with_the_line(text, message):
    started = time.monotonic()
    with pytest.raises(InfersimError, match=message):
        parse_yaml(text, "f.yaml")
    assert time.monotonic() - started < 5  # a watchdog, not a benchmark: it used to hang


def test_aliases_that_share_without_amplifying_are_fine():
    data = parse_yaml("d: &d {x: 1}\nlist: [*d, *d, *d]\n", "f.yaml")
    assert data["list"] == [{"x": 1}] * 3


def test_files_that_are_not_regular_files_are_refused(tmp_path):
    with pytest.raises(InfersimError, match="a readable UTF-8 YAML file"):
        read_yaml(tmp_path)
    with pytest.raises(InfersimError, match="a readable UTF-8 YAML file"):
        read_yaml("/dev/zero")
    (tmp_path / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    with pytest.raises(InfersimError, match="UnicodeDecodeError"):
        read_yaml(tmp_path / "latin1.yaml")
