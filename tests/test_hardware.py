"""Hardware profiles: shipped datasheet facts, roofline arithmetic, validation, CLI listing."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import textwrap
from pathlib import Path

import pytest
import typer
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import hardware_profiles
from typer.testing import CliRunner

import infersim.cli
from infersim.cli import catalog
from infersim.errors import InfersimError
from infersim.hardware import HardwareProfile, list_hardware, load_hardware, profile_from_dict
from infersim.paths import shipped_dir

SHIPPED = ("a100", "b200", "gb200-nvl72", "h100", "h200", "lpu", "mi300x", "trainium2", "wse3")
H100_TEXT = (shipped_dir("hardware") / "h100.yaml").read_text(encoding="utf-8")
H100_RAW = yaml.safe_load(H100_TEXT)
KNOB_FIELDS = ("compute_efficiency", "memory_efficiency", "step_overhead_s", "layer_latency_s",
               "hop_latency_s")


@pytest.fixture(autouse=True)
def _only_shipped_profiles(monkeypatch):
    # A user's own hardware folder must not change what these tests see.
    monkeypatch.delenv("INFERSIM_HARDWARE_PATH", raising=False)


# ---- shipped profiles ------------------------------------------------------------------------


def test_all_nine_chips_are_shipped():
    assert tuple(list_hardware()) == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profile_is_physical_and_fully_sourced(name):
    hw = load_hardware(name)
    assert hw.name == name
    assert hw.memory_kind in ("hbm", "sram")
    for field in ("memory_capacity_bytes", "memory_bandwidth", "sram_bytes", "sram_bandwidth",
                  "scaleup_bandwidth", "scaleup_latency_s", "scaleout_bandwidth",
                  "scaleout_latency_s", "tdp_watts", "idle_watts", "price_per_chip_hour"):
        assert getattr(hw, field) > 0, field
    assert hw.scaleup_domain_chips >= 1
    assert 0 < hw.idle_watts < hw.tdp_watts
    assert 0 < hw.compute_efficiency <= 1 and 0 < hw.memory_efficiency <= 1
    assert min(hw.step_overhead_s, hw.layer_latency_s, hw.hop_latency_s) >= 0
    assert hw.flops("bf16") > 0  # every shipped chip runs 16-bit models
    # Every figure and every knob names where it came from.
    expected = {f.name for f in dataclasses.fields(HardwareProfile)} - {
        "name", "description", "memory_kind", "peak_flops", "sources", "price_date", "path",
        "vendor", "purchase_unit_name", "purchase_unit_chips"}
    expected |= {f"peak_flops.{p}" for p in hw.peak_flops}
    # A chip sold only in whole units (a rack, a system) says so, and where that is from.
    if hw.purchase_unit_name:
        expected.add("purchase_unit_chips")
    else:
        assert hw.purchase_unit_chips == 1
    assert hw.vendor
    assert set(hw.sources) == expected
    assert all(len(text) > 10 for text in hw.sources.values())
    assert len(hw.price_date) >= 7


@pytest.mark.parametrize("name", SHIPPED)
def test_every_yaml_figure_sits_beside_its_source(name):
    raw = yaml.safe_load((shipped_dir("hardware") / f"{name}.yaml").read_text(encoding="utf-8"))

    def leaves(node, path=""):
        if isinstance(node, dict) and "value" in node:
            yield path, node
        elif isinstance(node, dict):
            for key, child in node.items():
                yield from leaves(child, f"{path}.{key}" if path else key)

    entries = list(leaves(raw))
    assert len(entries) >= 19  # 1+ peaks, 13 figures, price, 5 knobs
    for path, entry in entries:
        note = "fitted_to" if path.startswith("calibration.") else "source"
        assert isinstance(entry.get(note), str) and entry[note].strip(), path


# Datasheet facts quoted in the issue, in SI units. Dense peaks only.
DATASHEET = [
    ("h100", "bf16", 989e12), ("h100", "fp8", 1979e12), ("h200", "bf16", 989e12),
    ("h200", "fp8", 1979e12), ("b200", "bf16", 2250e12), ("b200", "fp8", 4500e12),
    ("gb200-nvl72", "bf16", 2500e12), ("gb200-nvl72", "fp8", 5000e12),
    ("trainium2", "bf16", 667e12), ("trainium2", "fp8", 1299e12), ("lpu", "fp16", 188e12),
    ("lpu", "int8", 750e12), ("a100", "bf16", 312e12), ("mi300x", "bf16", 1307.4e12),
]


@pytest.mark.parametrize(("name", "precision", "flops"), DATASHEET)
def test_dense_peaks_match_datasheets(name, precision, flops):
    assert load_hardware(name).flops(precision) == pytest.approx(flops, rel=1e-12)


MEMORY = [
    ("h100", 80e9, 3.35e12), ("h200", 141e9, 4.8e12), ("b200", 180e9, 7.7e12),
    ("gb200-nvl72", 186e9, 8e12), ("wse3", 44e9, 21e15), ("lpu", 230e6, 80e12),
    ("trainium2", 96 * 2**30, 2.9e12), ("a100", 80e9, 2039e9), ("mi300x", 192e9, 5.3e12),
]


@pytest.mark.parametrize(("name", "capacity", "bandwidth"), MEMORY)
def test_memory_matches_datasheets(name, capacity, bandwidth):
    hw = load_hardware(name)
    assert hw.memory_capacity_bytes == pytest.approx(capacity, rel=1e-12)
    assert hw.memory_bandwidth == pytest.approx(bandwidth, rel=1e-12)


def test_link_figures_are_one_direction_and_domains_match():
    # NVLink "900 GB/s" (H100) and "1.8 TB/s" (Blackwell) count both directions.
    assert load_hardware("h100").scaleup_bandwidth == pytest.approx(450e9)
    assert load_hardware("b200").scaleup_bandwidth == pytest.approx(900e9)
    gb200 = load_hardware("gb200-nvl72")
    assert gb200.scaleup_domain_chips == 72
    # 72 GPUs x 1.8 TB/s two-way = 130 TB/s, the rack's quoted NVLink aggregate.
    assert 72 * 2 * gb200.scaleup_bandwidth == pytest.approx(130e12, rel=0.01)
    assert load_hardware("trainium2").scaleup_domain_chips == 16
    assert load_hardware("h100").tdp_watts == 700.0
    assert load_hardware("h100").scaleout_bandwidth == pytest.approx(400e9 / 8)


def test_no_sparse_peaks():
    # Sparse headline figures are exactly twice the dense ones: a profile holding one would show
    # an H100 above 1.5 PFLOP/s in bf16. Blackwell's dense bf16 is at most 2.5 PFLOP/s.
    for name in SHIPPED:
        hw = load_hardware(name)
        assert hw.flops("bf16") <= 2.5e15 or hw.memory_kind == "sram", name
    # The WSE-3's 125 PFLOPS is a sparse figure; the profile derives the dense one.
    assert load_hardware("wse3").flops("fp16") < 125e15 / 4


# ---- roofline arithmetic ---------------------------------------------------------------------


def test_h100_ridge_point():
    h100 = load_hardware("h100")
    assert h100.ridge_point("bf16") == pytest.approx(989e12 / 3.35e12)
    assert round(h100.ridge_point("bf16")) == 295
    assert h100.ridge_point("fp8") == pytest.approx(2 * h100.ridge_point("bf16"), rel=1e-3)
    achievable = h100.ridge_point("bf16", achievable=True)
    assert achievable == pytest.approx(989e12 * h100.compute_efficiency
                                       / (3.35e12 * h100.memory_efficiency))


def test_sram_machines_have_a_tiny_ridge_point():
    # On SRAM machines almost every kernel is compute- or latency-bound, never bandwidth-bound.
    for name in ("wse3", "lpu"):
        hw = load_hardware(name)
        assert hw.memory_kind == "sram"
        assert hw.ridge_point("fp16") < 3
        assert hw.memory_capacity_bytes <= hw.sram_bytes


def test_bf16_and_fp16_share_a_rate():
    lpu = load_hardware("lpu")  # lists fp16 only
    assert "bf16" not in lpu.peak_flops
    assert lpu.flops("bf16") == lpu.flops("fp16") == 188e12
    assert lpu.precisions() == ("bf16", "fp16", "int8")


def test_missing_precision_is_an_error_not_a_guess():
    with pytest.raises(InfersimError) as err:
        load_hardware("a100").flops("fp8")
    assert str(err.value) == ("hardware/a100.yaml: peak_flops.fp8: expected a precision a100 "
                              "computes in (bf16, fp16, int8), got 'fp8'")


def _latency_floor_s(hw, layers: int, stages: int) -> float:
    """Least time per token of a single stream: step overhead, every layer, every stage handoff."""
    return hw.step_overhead_s + layers * hw.layer_latency_s + (stages - 1) * hw.hop_latency_s


# (chip, layers, pipeline stages, published single-stream tok/s): published.md rows 12 and 13,
# Cerebras' Llama-3.1-70B on four CS-3 (450 tok/s) and Groq's Llama-2-70B on 576 chips (300).
# LPU layouts as the calibration lays them out: 8 chips per stage (one GroqNode), so 66 chips
# for 7B are 9 stages and 576 chips for 70B are 72.
SINGLE_STREAM = [("wse3", 32, 1, 1800.0), ("wse3", 80, 4, 450.0), ("lpu", 32, 9, 750.0),
                 ("lpu", 80, 72, 300.0)]


@pytest.mark.parametrize(("name", "layers", "stages", "tokens_per_s"), SINGLE_STREAM)
def test_sram_machine_speed_is_set_by_latency(name, layers, stages, tokens_per_s):
    # On SRAM machines the latency floor carries most of a token's time at batch 1, and never
    # more than the measured time, within the 5 % a fit over several figures leaves.
    hw = load_hardware(name)
    floor = _latency_floor_s(hw, layers, stages)
    assert 0.5 / tokens_per_s <= floor <= 1.05 / tokens_per_s


def test_wse3_weights_stream_far_faster_than_a_token():
    # Streaming Llama-3.1-8B's 16 GB of weights through the wafer's SRAM takes under a
    # microsecond; the measured 0.55 ms per token is latency, not bandwidth.
    wse3 = load_hardware("wse3")
    assert 16e9 / wse3.memory_bandwidth < 1e-6 < 1 / 1800 / 100


def test_lpu_models_span_many_chips():
    # 7B in 16-bit does not fit on fewer than about 60 LPUs: that is why it spans many.
    assert 6.74e9 * 2 / load_hardware("lpu").memory_capacity_bytes > 55


# ---- the value object ------------------------------------------------------------------------


def test_profile_is_frozen_and_hashable():
    h100 = load_hardware("h100")
    with pytest.raises(dataclasses.FrozenInstanceError):
        h100.memory_bandwidth = 1.0
    with pytest.raises(TypeError):
        h100.peak_flops["bf16"] = 1.0
    assert hash(h100) == hash(load_hardware("h100"))
    assert {h100: "ok"}[load_hardware("h100")] == "ok"
    # A profile varied in code (as calibration does) stays frozen and hashable.
    varied = dataclasses.replace(h100, peak_flops={"bf16": 1e15}, memory_efficiency=0.9)
    assert varied.flops("bf16") == 1e15 and hash(varied) != hash(h100)
    with pytest.raises(TypeError):
        varied.peak_flops["fp8"] = 1.0


def test_loading_is_cached_and_sees_edits(tmp_path):
    path = tmp_path / "chip.yaml"
    path.write_text(H100_TEXT, encoding="utf-8")
    first = load_hardware(str(path))
    assert load_hardware(path) is first
    assert first.name == "chip"
    before_ns = path.stat().st_mtime_ns
    path.write_text(H100_TEXT.replace("value: 700 W", "value: 650 W"), encoding="utf-8")
    # Same size, and possibly the same mtime tick: move the clock on as a later save would.
    os.utime(path, ns=(before_ns + 10**9, before_ns + 10**9))
    assert load_hardware(path).tdp_watts == 650.0


def test_user_folder_profiles_are_found_by_name(tmp_path, monkeypatch):
    (tmp_path / "my-chip.yaml").write_text(H100_TEXT, encoding="utf-8")
    monkeypatch.setenv("INFERSIM_HARDWARE_PATH", str(tmp_path))
    assert "my-chip" in list_hardware()
    assert load_hardware("my-chip").memory_bandwidth == 3.35e12


# ---- bad input: one line naming file, field, expected and given --------------------------------


def _edit(path: str, value):
    """A copy of the H100 document with the value at dotted ``path`` replaced (None: deleted)."""
    doc = copy.deepcopy(H100_RAW)
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return doc


def _rename(path: str, new_key: str):
    doc = copy.deepcopy(H100_RAW)
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node[key]
    node[new_key] = node.pop(last)
    return doc


BAD_DOCUMENTS = [
    (_rename("memory.bandwidth", "bandwith"),
     "memory.bandwith: unknown field (did you mean 'bandwidth'?); expected one of capacity, "
     "bandwidth"),
    (_rename("power", "powr"), "powr: unknown field (did you mean 'power'?); expected one of "
     "description, memory_kind, peak_flops, memory, sram, scaleup, scaleout, power, price, "
     "calibration, vendor, purchase"),
    (_edit("purchase", {"chips": 0, "name": "rack", "source": "a rack of none"}),
     "purchase.chips: expected a whole number of chips >= 1, got 0"),
    (_edit("purchase", {"chips": 72, "source": "a rack"}),
     "purchase.name: missing field; expected it to be present"),
    (_edit("memory.bandwidth.value", "-3.35 TB/s"),
     "memory.bandwidth: expected a positive bandwidth such as '50 GB/s', got '-3.35 TB/s'"),
    (_edit("memory.bandwidth.value", "0 TB/s"),
     "memory.bandwidth: expected a positive bandwidth such as '50 GB/s', got '0 TB/s'"),
    (_edit("memory.bandwidth.value", "3.35 TB"),
     "memory.bandwidth: expected a bandwidth unit such as '50 GB/s' or '400 Gbit/s' (that is a "
     "bytes unit), got '3.35 TB'"),
    (_edit("memory.bandwidth.value", "3.35 TQ/s"),
     "memory.bandwidth: expected a bandwidth unit such as '50 GB/s' or '400 Gbit/s', got "
     "'3.35 TQ/s'"),
    (_edit("calibration.memory_efficiency.value", 1.5),
     "calibration.memory_efficiency.value: expected a fraction in (0, 1], got 1.5"),
    (_edit("calibration.compute_efficiency.value", 0),
     "calibration.compute_efficiency.value: expected a fraction in (0, 1], got 0"),
    (_edit("calibration.step_overhead.value", "-1 ms"),
     "calibration.step_overhead.value: expected a time >= 0 such as '10 us', got '-1 ms'"),
    (_edit("calibration.hop_latency.fitted_to", None),
     "calibration.hop_latency.fitted_to: missing field; expected it to be present"),
    (_edit("memory.capacity.source", ""),
     "memory.capacity.source: expected non-empty text: a source (URL or document title), got ''"),
    (_edit("memory.capacity", "80 GB"),
     "memory.capacity: expected {value: '80 GB', source: ...}, got '80 GB'"),
    (_edit("sram", None), "sram: missing field; expected it to be present"),
    (_edit("peak_flops.fp9", {"value": "1 PFLOP/s", "source": "x"}),
     "peak_flops.fp9: unknown field (did you mean 'fp8'?); expected one of fp32, bf16, fp16, fp8, int8, fp4, int4"),
    (_edit("scaleup.chips.value", 0), "scaleup.chips: expected a whole number >= 1, got 0"),
    (_edit("scaleup.chips.value", "8"), "scaleup.chips: expected a whole number >= 1, got '8'"),
    (_edit("memory_kind", "dram"), "memory_kind: expected one of hbm, sram, got 'dram'"),
    (_edit("power.idle.value", "800 W"),
     "power.idle: expected at most power.tdp (700 W), got '800 W'"),
    (_edit("price.per_chip_hour.value", "2.99 USD"),
     "price.per_chip_hour.value: expected a positive number of USD per chip-hour, got '2.99 USD'"),
    (_edit("price.per_chip_hour.date", None),
     "price.per_chip_hour.date: missing field; expected it to be present"),
    (_edit("memory_kind", "sram"),
     "memory.capacity: expected at most sram.capacity on an sram machine (weights and KV live in "
     "on-chip SRAM: 5e+07 bytes), got '8e+10 bytes'"),
]


@pytest.mark.parametrize(("doc", "message"), BAD_DOCUMENTS, ids=[m.split(":")[0]
                                                                  for _, m in BAD_DOCUMENTS])
def test_bad_profiles_fail_with_one_exact_line(tmp_path, doc, message):
    path = tmp_path / "chip.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    with pytest.raises(InfersimError) as err:
        load_hardware(str(path))
    assert str(err.value) == f"{path}: {message}"
    assert "\n" not in str(err.value)


def test_unknown_chip_lists_the_known_ones():
    with pytest.raises(InfersimError) as err:
        load_hardware("h1000")
    assert str(err.value) == ("hardware: expected a known chip (" + ", ".join(SHIPPED)
                              + ") or the path to a hardware YAML file, got 'h1000'")


def test_missing_file(tmp_path):
    missing = tmp_path / "nowhere" / "chip.yaml"
    with pytest.raises(InfersimError) as err:
        load_hardware(str(missing))
    assert str(err.value) == f"{missing}: no such hardware file"


@pytest.mark.parametrize(("text", "message"), [
    ("description: x\nmemory: [unclosed\nfoo: 1\n",  # the parser trips on line 3's colon
     ":3: expected valid YAML, got \"expected ',' or ']', but got ':'\""),
    ("description: x\ndescription: y\n", ":2: description: expected each key once per mapping "
     "(YAML would keep only the last), got 'description twice'"),
    ("- just\n- a list\n", ": expected a mapping of hardware fields, got ['just', 'a list']"),
])
def test_malformed_yaml(tmp_path, text, message):
    path = tmp_path / "chip.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InfersimError) as err:
        load_hardware(str(path))
    assert str(err.value) == f"{path}{message}"


# ---- properties over random figures ----------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(bandwidth_gbs=st.floats(1.0, 1e7), bf16_tflops=st.floats(1.0, 1e5))
def test_quantities_round_trip_in_si(bandwidth_gbs, bf16_tflops):
    doc = _edit("memory.bandwidth.value", f"{bandwidth_gbs!r} GB/s")
    doc["peak_flops"]["bf16"]["value"] = f"{bf16_tflops!r} TFLOP/s"
    hw = profile_from_dict(doc, name="x", file="x.yaml")
    assert hw.memory_bandwidth == pytest.approx(bandwidth_gbs * 1e9, rel=1e-12)
    assert hw.ridge_point("bf16") == pytest.approx(bf16_tflops * 1e12 / (bandwidth_gbs * 1e9))
    assert hw.ridge_point("bf16", achievable=True) == pytest.approx(
        hw.ridge_point("bf16") * hw.compute_efficiency / hw.memory_efficiency)


@settings(max_examples=40, deadline=None)
@given(st.one_of(st.floats(max_value=0.0, allow_nan=False),
                 st.floats(min_value=1.0, exclude_min=True),
                 st.just(math.nan), st.booleans(), st.text(max_size=5)))
def test_efficiency_outside_unit_interval_is_rejected(value):
    doc = _edit("calibration.compute_efficiency.value", value)
    with pytest.raises(InfersimError, match=r"^x\.yaml: calibration\.compute_efficiency\.value: "
                                            r"expected a fraction in \(0, 1\], got "):
        profile_from_dict(doc, name="x", file="x.yaml")


@settings(max_examples=50, deadline=None)
@given(hw=hardware_profiles(), scale=st.floats(0.1, 10.0))
def test_ridge_point_scales_with_bandwidth(hw, scale):
    faster = dataclasses.replace(hw, memory_bandwidth=hw.memory_bandwidth * scale)
    assert faster.ridge_point("bf16") == pytest.approx(hw.ridge_point("bf16") / scale)
    assert hw.ridge_point("bf16", achievable=True) == pytest.approx(
        hw.ridge_point("bf16") * hw.compute_efficiency / hw.memory_efficiency)
    assert hw.flops("fp16") == hw.flops("bf16")
    # JSON-ready and loss-free.
    assert json.loads(json.dumps(hw.to_dict())) == hw.to_dict()


# ---- command line ----------------------------------------------------------------------------


def _catalog_app() -> typer.Typer:
    app = typer.Typer()
    catalog.register(app)
    return app


def test_hardware_list_table_names_every_chip():
    result = CliRunner().invoke(_catalog_app(), ["hardware", "list"])
    assert result.exit_code == 0, result.output
    for name in SHIPPED:
        assert name in result.output
    assert "3.35 TB/s" in result.output and "989 TFLOP/s" in result.output
    assert "295" in result.output  # H100 bf16 ridge point


def test_hardware_list_json_is_si():
    result = CliRunner().invoke(_catalog_app(), ["hardware", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert tuple(rows) == SHIPPED
    assert rows["h100"]["memory_bandwidth"] == 3.35e12
    assert rows["h100"]["ridge_point"]["bf16"] == pytest.approx(295.2, abs=0.05)
    assert rows["lpu"]["peak_flops"]["bf16"] == 188e12  # the fp16 twin, made explicit
    assert rows["h100"]["sources"]["memory_bandwidth"].startswith("NVIDIA H100")


def test_hardware_show_prints_every_figure_with_its_source():
    result = CliRunner().invoke(_catalog_app(), ["hardware", "show", "lpu"])
    assert result.exit_code == 0, result.output
    lpu = load_hardware("lpu")
    for field in lpu.sources:
        assert field in result.output
    assert "240 GB/s" in result.output and "188 TFLOP/s" in result.output
    shown = json.loads(CliRunner().invoke(_catalog_app(), ["hardware", "show", "lpu",
                                                           "--json"]).output)
    assert shown == json.loads(json.dumps(lpu.to_dict()))


def test_models_list_json():
    result = CliRunner().invoke(_catalog_app(), ["models", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    llama = rows["llama-3.1-8b"]
    assert llama["num_layers"] == 32 and llama["attention"] == "gqa"
    # 32 layers x 8 KV heads x 128 dims x (K and V) x 2 bytes
    assert llama["kv_bytes_per_token_bf16"] == 32 * 8 * 128 * 2 * 2
    table = CliRunner().invoke(_catalog_app(), ["models", "list"])
    assert table.exit_code == 0 and "llama-3.1-8b" in table.output and "8.03B" in table.output


def test_cli_bad_profile_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "broken.yaml").write_text(
        textwrap.dedent(H100_TEXT).replace("value: 3.35 TB/s", "value: 3.35 TB"), encoding="utf-8")
    monkeypatch.setenv("INFERSIM_HARDWARE_PATH", str(tmp_path))
    monkeypatch.setattr(infersim.cli, "COMMAND_MODULES", ("infersim.cli.catalog",))
    with pytest.raises(SystemExit) as exit_info:
        infersim.cli.main(["hardware", "list"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err == (f"infersim: error: {Path(tmp_path) / 'broken.yaml'}: memory.bandwidth: "
                   "expected a bandwidth unit such as '50 GB/s' or '400 Gbit/s' (that is a bytes "
                   "unit), got '3.35 TB'\n")
    assert "Traceback" not in err
