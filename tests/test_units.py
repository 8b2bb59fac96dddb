"""Quantities with units: SI conversion and strict rejection of what is not a quantity."""

import pytest

from infersim.errors import InfersimError
from infersim.units import format_si, parse_quantity


@pytest.mark.parametrize(
    ("text", "kind", "si"),
    [
        ("50 GB/s", "bandwidth", 50e9),
        ("400 Gbit/s", "bandwidth", 50e9),
        ("3.35 TB/s", "bandwidth", 3.35e12),
        ("1 GiB/s", "bandwidth", 2.0**30),
        ("10 us", "time", 10e-6),
        ("10 µs", "time", 10e-6),
        ("2.5 ms", "time", 2.5e-3),
        ("80 GB", "bytes", 80e9),
        ("96 GiB", "bytes", 96 * 2.0**30),
        ("989 TFLOP/s", "flops", 989e12),
        ("750 TOPS", "flops", 750e12),
        ("700 W", "power", 700.0),
        ("1e3", "time", 1000.0),
        (42e9, "bytes", 42e9),
        (50e9, "bandwidth", 50e9),
        (0, "bytes", 0.0),
        (600, "time", 600.0),
        (700, "power", 700.0),
    ],
)
def test_parses_to_si(text, kind, si):
    assert parse_quantity(text, kind) == pytest.approx(si, rel=1e-12)


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        ("50 GB", "bandwidth", "links.bw: expected a bandwidth unit such as '50 GB/s' or '400 Gbit/s' (that is a bytes unit), got '50 GB'"),
        ("10 parsecs", "time", "links.bw: expected a time unit such as '10 us', got '10 parsecs'"),
        ("fast", "bandwidth", "links.bw: expected a bandwidth quantity such as '50 GB/s' or '400 Gbit/s', got 'fast'"),
        (True, "time", "links.bw: expected a time quantity such as '10 us', got True"),
        ("inf", "time", "links.bw: expected a time quantity such as '10 us', got 'inf'"),
    ],
)
def test_rejects_with_one_line(text, kind, message):
    with pytest.raises(InfersimError) as err:
        parse_quantity(text, kind, field="links.bw")
    assert str(err.value) == message
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("value", "kind", "message"),
    [
        (50, "bandwidth", "links.bw: expected a bandwidth with its unit, such as '50 GB/s' or '400 Gbit/s' (a bare number is read as B/s), got 50"),
        ("3.35", "bandwidth", "links.bw: expected a bandwidth with its unit, such as '50 GB/s' or '400 Gbit/s' (a bare number is read as B/s), got '3.35'"),
        (80, "bytes", "links.bw: expected a size with its unit, such as '80 GB' (a bare number is read as bytes), got 80"),
        (989.0, "flops", "links.bw: expected a compute rate with its unit, such as '989 TFLOP/s' (a bare number is read as FLOP/s), got 989.0"),
    ],
)
def test_a_bare_number_too_small_to_be_si_is_a_forgotten_unit(value, kind, message):
    # `bandwidth: 50` meant 50 GB/s, not 50 B/s: read as SI it turns a KV transfer of 100 MB into
    # three weeks, silently. No figure infersim reads in bytes, B/s or FLOP/s is below a million.
    with pytest.raises(InfersimError) as err:
        parse_quantity(value, kind, field="links.bw")
    assert str(err.value) == message


def test_error_names_file_field_expected_given():
    err = InfersimError(file="s.yaml", field="pools.decode.instances", expected="an integer >= 1",
                        given=-3)
    assert str(err) == "s.yaml: pools.decode.instances: expected an integer >= 1, got -3"
    assert str(err.with_prefix("scenario")) == (
        "s.yaml: scenario.pools.decode.instances: expected an integer >= 1, got -3")



@pytest.mark.parametrize("value, text", [
    (3.35e12, "3.35 TB/s"), (141e9, "141 GB/s"), (999.4e9, "999 GB/s"),
    (999.6e9, "1 TB/s"),  # rounds up to the next prefix, never '1e+03 GB/s'
    (999.5, "1 kB/s"), (0.5, "0.5 B/s"), (0.0, "0 B/s"),
])
def test_format_si_picks_the_prefix_of_the_rounded_figure(value, text):
    assert format_si(value, "B/s") == text
