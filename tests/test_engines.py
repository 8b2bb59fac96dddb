"""Serving-engine profiles (engines/*.yaml) and a pool's ``engine:`` field."""

from __future__ import annotations

import pytest

from infersim.engines import POOL_FIELDS, list_engines, load_engine
from infersim.errors import InfersimError
from infersim.scenario import build_cluster, check_scenario, load_scenario
from infersim.scenario.schema import PoolConfig

SHIPPED = ("dynamo", "sglang", "trtllm", "vllm-0.6", "vllm-v1")

MIXED = {"name": "e", "model": "llama-3.1-8b",
         "pools": {"p": {"role": "mixed", "hardware": "h100"}},
         "workload": {"arrival": {"process": "poisson", "rate": 2}, "requests": 20,
                      "prompt_tokens": {"dist": "fixed", "value": 256},
                      "output_tokens": {"dist": "fixed", "value": 32}}}


def _with_pool(**fields) -> dict:
    return {**MIXED, "pools": {"p": {"role": "mixed", "hardware": "h100", **fields}}}


def _disagg(engine: str) -> dict:
    return {**MIXED, "pools": {"pre": {"role": "prefill", "hardware": "h100", "engine": engine},
                               "dec": {"role": "decode", "hardware": "h100", "engine": engine}},
            "links": [{"between": ["pre", "dec"], "bandwidth": "50 GB/s"}]}


def test_every_shipped_engine_loads_and_sources_every_value():
    assert set(SHIPPED) <= set(list_engines())
    for name in SHIPPED:
        profile = load_engine(name)
        assert profile.description
        assert set(profile.sources) == {f"pool_defaults.{k}" for k in profile.pool_defaults} \
            | {"disaggregation"}
        assert all(len(s) > 20 for s in profile.sources.values())


def test_the_schema_defaults_are_vllm_v1s():
    """A pool without engine: behaves as vLLM V1; the two may not drift apart."""
    v1 = load_engine("vllm-v1")
    assert set(v1.pool_defaults) == set(POOL_FIELDS) - {"step_overhead"}
    for field, value in v1.pool_defaults.items():
        assert PoolConfig.model_fields[field].default == value, field


def test_engine_fills_what_the_pool_leaves_unset_and_the_pool_and_set_win():
    sc = load_scenario(_with_pool(engine="trtllm", max_batch_size=64))
    pool = sc.pools["p"]
    assert (pool.chunked_prefill, pool.block_size, pool.kv_reservation) == (False, 32, "full")
    assert pool.max_batch_size == 64  # the pool's own value
    sc = load_scenario(_with_pool(engine="trtllm"), overrides=["pools.p.block_size=64"])
    assert sc.pools["p"].block_size == 64
    spec = build_cluster(sc).pools[0]
    assert (spec.kv_reservation, spec.chunked_prefill, spec.block_size) == ("full", False, 64)


def test_engine_can_be_set_from_the_command_line_and_changes_the_hash():
    plain = load_scenario(MIXED)
    sglang = load_scenario(MIXED, overrides=["pools.p.engine=sglang"])
    assert sglang.pools["p"].block_size == 1 and sglang.pools["p"].max_batch_size == 1024
    assert sglang.resolved()["pools"]["p"]["engine"] == "sglang"
    assert "engine" not in plain.resolved()["pools"]["p"]
    assert sglang.hash != plain.hash


@pytest.mark.parametrize(("tp", "expected_s"), [(2, None), (4, 0.0065), (8, 0.0065)])
def test_step_overhead_comes_from_the_engine_at_the_pools_tp(tp, expected_s):
    sc = load_scenario({**_with_pool(engine="vllm-0.6", tp=tp), "model": "llama-3.1-70b"})
    assert sc.pools["p"].step_overhead == expected_s
    dep = check_scenario(sc).deployments["p"]
    chip = dep.hardware.step_overhead_s  # below TP4 the chip's calibrated value holds
    assert dep.effective_step_overhead_s == pytest.approx(expected_s or chip)


def test_step_overhead_table_picks_the_largest_degree_not_above_tp(tmp_path):
    path = tmp_path / "my-engine.yaml"
    path.write_text("description: test\n"
                    "pool_defaults:\n"
                    "  step_overhead: {value: {1: 2 ms, 4: 5 ms}, source: 'measured by us'}\n"
                    "disaggregation: {value: true, source: 'it does, trust us'}\n")
    profile = load_engine(str(path))
    assert [profile.pool_values(tp)["step_overhead"] for tp in (1, 2, 4, 8)] == \
        ["2 ms", "2 ms", "5 ms", "5 ms"]
    assert "step_overhead" not in load_engine("vllm-0.6").pool_values(2)


def test_engine_without_disaggregation_is_refused_for_split_pools():
    with pytest.raises(InfersimError) as err:
        check_scenario(load_scenario(_disagg("vllm-0.6")))
    assert str(err.value) == ("pools.pre.engine: expected an engine that serves disaggregated "
                              "prefill pools (dynamo, sglang, trtllm, vllm-v1), or role: mixed, "
                              "got 'vllm-0.6'")
    # trtllm's guaranteed-no-evict admission is a decode concern: not put on the prefill pool
    sc = load_scenario(_disagg("trtllm"))
    check_scenario(sc)
    assert (sc.pools["pre"].kv_reservation, sc.pools["dec"].kv_reservation) == \
        ("on_demand", "full")


def test_unknown_engine_is_one_line_naming_the_field():
    with pytest.raises(InfersimError) as err:
        load_scenario(_with_pool(engine="vllm-9"))
    assert str(err.value).startswith("pools.p.engine: expected a shipped engine (dynamo, ")
    assert str(err.value).endswith("or a path to an engine YAML, got 'vllm-9'")


@pytest.mark.parametrize(("text", "message"), [
    ("pool_defaults:\n  max_batch_tokens: {value: 0, source: x}\n"
     "disaggregation: {value: true, source: x}\n",
     "pool_defaults.max_batch_tokens.value: expected an integer >= 1, got 0"),
    ("pool_defaults:\n  max_batch_tokens: 8192\ndisaggregation: {value: true, source: x}\n",
     "pool_defaults.max_batch_tokens: expected {value: ..., source: '...'} (every engine default "
     "names where it comes from), got 8192"),
    ("pool_defaults:\n  tp: {value: 2, source: x}\ndisaggregation: {value: true, source: x}\n",
     "pool_defaults.tp: unknown key; expected one of the keys chunked_prefill"),
    ("pool_defaults:\n  step_overhead: {value: {0: 1 ms}, source: x}\n"
     "disaggregation: {value: true, source: x}\n",
     "pool_defaults.step_overhead.value: expected a time, or a table of times by "
     "tensor-parallel degree (integer keys >= 1), got {0: '1 ms'}"),
    ("pool_defaults:\n  step_overhead: {value: {1: fast}, source: x}\n"
     "disaggregation: {value: true, source: x}\n",
     "pool_defaults.step_overhead.value.1: expected a time quantity"),
    ("disaggregation: {value: maybe, source: x}\n",
     "disaggregation.value: expected true or false, got 'maybe'"),
])
def test_malformed_engine_files_name_file_and_field(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InfersimError) as err:
        load_engine(str(path))
    text_of = str(err.value)
    assert text_of.startswith(f"{path}: {message}")
    # the same file named by a scenario reports the file's own line
    with pytest.raises(InfersimError, match=r"bad\.yaml"):
        load_scenario(_with_pool(engine=str(path)))


def test_engines_list_json(capsys):
    import json

    from infersim import cli

    try:
        cli.main(["engines", "list", "--json"])
    except SystemExit as exit_info:
        assert not exit_info.code
    rows = json.loads(capsys.readouterr().out)
    by_name = {row["name"]: row for row in rows}
    assert set(SHIPPED) <= set(by_name)
    assert by_name["trtllm"]["kv_reservation"] == "full"
    assert by_name["vllm-0.6"]["disaggregation"] is False
