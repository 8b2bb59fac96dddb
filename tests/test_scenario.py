"""The scenario file: schema, units, overrides, the hash, cross-field checks, engine specs."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pydantic
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from infersim.errors import InfersimError
from infersim.paths import shipped_dir
from infersim.scenario import (
    DECODE_POLICIES,
    ROUTER_POLICIES,
    Scenario,
    apply_overrides,
    build_cluster,
    check_scenario,
    json_schema,
    load_scenario,
)

SMALL = {
    "name": "small",
    "seed": 3,
    "model": "llama-3.1-8b",
    "pools": {
        "prefill": {"role": "prefill", "hardware": "h100", "instances": 1},
        "decode": {"role": "decode", "hardware": "h100", "instances": 2, "max_batch_size": 64},
    },
    "links": [{"between": ["prefill", "decode"], "bandwidth": "400 Gbit/s", "latency": "10 us"}],
    "workload": {
        "arrival": {"process": "poisson", "rate": 5},
        "requests": 10,
        "prompt_tokens": {"dist": "fixed", "value": 100},
        "output_tokens": {"dist": "fixed", "value": 10},
    },
    "slo": {"ttft_ms": 500, "itl_ms": 40},
}

SEED_SCENARIOS = sorted(p.stem for p in shipped_dir("scenarios").glob("*.yaml"))


def test_quantities_are_parsed_to_si_units():
    sc = load_scenario(SMALL)
    assert sc.links[0].bandwidth == pytest.approx(50e9)  # 400 Gbit/s = 50 GB/s
    assert sc.links[0].latency == pytest.approx(10e-6)
    assert load_scenario({**SMALL, "time_limit": "2 min"}).time_limit == pytest.approx(120.0)


def test_defaults_are_the_documented_vllm_ones():
    pool = load_scenario(SMALL).pools["prefill"]
    assert (pool.max_batch_tokens, pool.max_batch_size, pool.block_size) == (8192, 256, 16)
    assert (pool.memory_fraction, pool.preemption, pool.chunked_prefill) == (0.9, "recompute", True)


def test_scenario_is_frozen():
    sc = load_scenario(SMALL)
    with pytest.raises(pydantic.ValidationError) as top:
        sc.seed = 4
    with pytest.raises(pydantic.ValidationError) as nested:
        sc.pools["prefill"].instances = 4
    for caught, field in ((top, "seed"), (nested, "instances")):
        assert [(e["type"], e["loc"]) for e in caught.value.errors()] == [
            ("frozen_instance", (field,))]
    assert sc == load_scenario(SMALL)


def test_overrides_reach_any_field_and_parse_yaml_scalars():
    sc = load_scenario(SMALL, overrides=["pools.decode.instances=8", "workload.arrival.rate=40",
                                         "links.0.bandwidth=100 GB/s", "pools.decode.pp=2",
                                         "ideal=true"])
    assert sc.pools["decode"].instances == 8
    assert sc.workload.arrival.rate == 40
    assert sc.links[0].bandwidth == pytest.approx(100e9)
    assert sc.pools["decode"].pp == 2  # a field absent from the file may still be set
    assert sc.ideal is True


def test_overrides_do_not_touch_the_input():
    data = copy.deepcopy(SMALL)
    apply_overrides(data, ["pools.decode.instances=8"])
    assert data == SMALL


@pytest.mark.parametrize(("override", "field"), [
    ("pools.decode.gpus=3", "--set pools.decode.gpus"),
    ("pools.nope.instances=3", "--set pools.nope"),
    ("links.2.bandwidth=1", "--set links.2"),
    ("workload.arrival.rate.x=1", "--set workload.arrival.rate.x"),
    ("nonsense", "--set"),
])
def test_an_unknown_override_path_is_an_error_naming_it(override, field):
    with pytest.raises(InfersimError) as err:
        load_scenario(SMALL, overrides=[override])
    assert err.value.field == field


def test_seed_argument_replaces_the_files_seed_and_changes_the_hash():
    base = load_scenario(SMALL)
    reseeded = load_scenario(SMALL, seed=11)
    assert reseeded.seed == 11
    assert reseeded.hash != base.hash


def test_hash_is_16_hex_and_independent_of_how_a_quantity_is_written():
    a = load_scenario(SMALL)
    b = load_scenario(SMALL, overrides=["links.0.bandwidth=50 GB/s", "links.0.latency=0.00001"])
    assert len(a.hash) == 16 and int(a.hash, 16) >= 0
    assert a.hash == b.hash  # 400 Gbit/s == 50 GB/s once resolved


@settings(max_examples=25, deadline=None)
@given(rate=st.floats(0.1, 1000), instances=st.integers(1, 8), seed=st.integers(0, 2**31))
def test_hash_is_a_function_of_the_resolved_scenario(rate, instances, seed):
    overrides = [f"workload.arrival.rate={rate!r}", f"pools.decode.instances={instances}"]
    a = load_scenario(SMALL, overrides=overrides, seed=seed)
    b = load_scenario(SMALL, overrides=overrides, seed=seed)
    assert a.hash == b.hash
    assert Scenario.model_validate(a.resolved()).hash == a.hash  # the dump round-trips


def test_json_schema_forbids_unknown_keys_and_documents_units():
    schema = json_schema()
    assert schema["additionalProperties"] is False
    pool = schema["$defs"]["PoolConfig"]
    assert pool["additionalProperties"] is False
    link = schema["$defs"]["LinkConfig"]["properties"]["bandwidth"]
    assert "50 GB/s" in json.dumps(link)
    assert "workload" in schema["required"]


def test_relative_model_config_is_found_next_to_the_scenario(tmp_path):
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 512,
              "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 2,
              "intermediate_size": 1024, "vocab_size": 1000, "tie_word_embeddings": False}
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "config.json").write_text(json.dumps(config))
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**SMALL, "model": "tiny/config.json"}))
    resolved = check_scenario(load_scenario(str(path)))
    assert resolved.model.num_layers == 4
    path.write_text(yaml.safe_dump({**SMALL, "model": "tiny"}))  # the folder holding it
    assert check_scenario(load_scenario(str(path))).model.num_layers == 4


def test_topology_shared_scaleup_domain_needs_no_link():
    sc = load_scenario(SMALL, overrides=["links=[]", "pools.prefill.scaleup_domain=node",
                                         "pools.decode.scaleup_domain=node"])
    cluster = build_cluster(sc)
    assert cluster.links == ()
    assert {p.scaleup_domain for p in cluster.pools} == {"node"}


def test_mixed_pool_alone_is_fine():
    sc = load_scenario({**SMALL, "links": [],
                        "pools": {"all": {"role": "mixed", "hardware": "h100", "instances": 2}}})
    assert [p.role for p in build_cluster(sc).pools] == ["mixed"]


def test_build_cluster_maps_every_field_onto_the_engine_specs():
    sc = load_scenario(SMALL, overrides=["pools.decode.tp=2", "pools.decode.kv_precision=fp8",
                                         "router.policy=round_robin", "ideal=true"])
    cluster = build_cluster(sc)
    decode = cluster.pools[1]
    assert decode.name == "decode" and decode.instances == 2 and decode.max_batch_size == 64
    assert decode.deployment.tp == 2 and decode.deployment.kv_precision == "fp8"
    assert decode.deployment.ideal is True
    assert cluster.links[0].bandwidth == pytest.approx(50e9)
    assert cluster.router.policy == "round_robin"


def test_router_names_map_onto_the_engine_registry():
    from infersim.sim import POLICIES

    assert set(ROUTER_POLICIES.values()) <= set(POLICIES)
    assert set(DECODE_POLICIES.values()) <= set(POLICIES)
    assert ROUTER_POLICIES["least_loaded"] == "least_outstanding_tokens"


def test_a_model_that_does_not_fit_says_how_many_chips_it_needs():
    with pytest.raises(InfersimError, match="at least 12 chips") as err:
        check_scenario(load_scenario(SMALL, overrides=["model=llama-3.1-405b"]))
    assert err.value.field == "pools.prefill"


def test_a_scenario_file_is_found_by_name_or_path():
    by_name = load_scenario("default")
    by_path = load_scenario(str(shipped_dir("scenarios") / "default.yaml"))
    assert by_name.hash == by_path.hash
    assert by_name.source == "default"


@pytest.mark.parametrize("name", SEED_SCENARIOS)
def test_every_seed_scenario_validates_and_asks_its_question(name):
    path = shipped_dir("scenarios") / f"{name}.yaml"
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith(f"# {name}:") and "?" in path.read_text().split("\nname:")[0]
    sc = load_scenario(str(path))
    assert sc.name == name
    check_scenario(sc)


def test_the_seed_scenarios_are_all_there():
    assert set(SEED_SCENARIOS) >= {
        "default", "h100-unified", "h100-disaggregated", "nvl72-split",
        "cerebras-prefill-nvl72-decode", "blackwell-prefill-lpu-decode",
        "trainium-prefill-wse3-decode", "workload-mix"}


def test_unified_and_disaggregated_use_the_same_gpus_and_requests():
    unified = load_scenario("h100-unified")
    split = load_scenario("h100-disaggregated")

    def gpus(sc):
        return sum(p.instances * p.tp * p.pp for p in sc.pools.values())

    assert gpus(unified) == gpus(split) == 8
    assert unified.workload == split.workload


def test_nvl72_split_fills_one_rack():
    sc = load_scenario("nvl72-split")
    assert sum(p.instances * p.tp * p.pp for p in sc.pools.values()) == 72
    assert {p.scaleup_domain for p in sc.pools.values()} == {"rack0"}


def test_yaml_file_round_trip(tmp_path: Path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(SMALL, sort_keys=False))
    assert load_scenario(str(path)).hash == load_scenario(SMALL).hash


def test_every_seed_scenario_passes_the_published_json_schema():
    jsonschema = pytest.importorskip("jsonschema")  # editors use the schema; check it is sound
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for name in SEED_SCENARIOS:
        data = yaml.safe_load((shipped_dir("scenarios") / f"{name}.yaml").read_text())
        assert not list(validator.iter_errors(data)), name
    data["pools"]["decode"]["gpus"] = 3
    assert list(validator.iter_errors(data))


def test_a_pools_step_overhead_is_parsed_with_units_and_reaches_its_deployment():
    # vLLM 0.6 at TP4 wants ~6.5 ms per step where TensorRT-LLM wants the H100's 2 ms
    # (docs/engine-validation.md D2): one pool may say so without touching the chip's profile.
    data = copy.deepcopy(SMALL)
    data["pools"]["decode"]["step_overhead"] = "5500 us"
    sc = load_scenario(data)
    assert sc.pools["decode"].step_overhead == pytest.approx(5.5e-3)
    assert sc.pools["prefill"].step_overhead is None
    cluster = build_cluster(sc)
    deps = {pool.name: pool.deployment for pool in cluster.pools}
    assert deps["decode"].effective_step_overhead_s == pytest.approx(5.5e-3)
    assert deps["prefill"].effective_step_overhead_s == deps["prefill"].hardware.step_overhead_s
    ideal = build_cluster(load_scenario({**data, "ideal": True}))
    assert all(p.deployment.effective_step_overhead_s == 0.0 for p in ideal.pools)


def test_a_step_overhead_with_a_wrong_unit_or_sign_is_one_line():
    with pytest.raises(InfersimError, match=r"pools\.decode\.step_overhead: expected a time"):
        load_scenario(SMALL, overrides=["pools.decode.step_overhead=5 GB"])
    with pytest.raises(InfersimError, match=r"pools\.decode\.step_overhead: expected .*>= 0"):
        load_scenario(SMALL, overrides=["pools.decode.step_overhead=-1 ms"])


def test_an_unset_step_overhead_leaves_the_resolved_scenario_and_hash_as_before():
    sc = load_scenario(SMALL)
    assert all("step_overhead" not in pool for pool in sc.resolved()["pools"].values())
    set_ = load_scenario(SMALL, overrides=["pools.decode.step_overhead=5 ms"])
    assert set_.resolved()["pools"]["decode"]["step_overhead"] == pytest.approx(5e-3)
    assert set_.hash != sc.hash
    # the resolved form loads back to the same scenario
    assert load_scenario(set_.resolved()).hash == set_.hash


def test_a_slower_framework_step_slows_the_simulated_decode():
    from infersim.api import simulate

    fast = simulate(SMALL).summary
    slow = simulate(load_scenario(SMALL, overrides=["pools.decode.step_overhead=6 ms"])).summary
    # ~4 ms more per decode step (H100's shipped knob is 2 ms); TTFT is the prefill pool's.
    assert slow["mean_itl_ms"] - fast["mean_itl_ms"] == pytest.approx(4.0, rel=0.05)


def test_a_pool_too_small_for_its_model_is_advised_a_layout_the_scenario_accepts():
    # The advice of a failed fit obeys the same layout rules as pools.X.tp / pools.X.pp: follow
    # it and the scenario validates.
    data = copy.deepcopy(SMALL)
    data["pools"]["decode"]["hardware"] = "lpu"
    data["pools"]["decode"]["max_batch_size"] = 4
    with pytest.raises(InfersimError, match=r"pools\.decode: .*use at least 84 chips: tp 4 × "
                                            r"pp 21 holds the weights and 4,096 tokens of KV"):
        check_scenario(load_scenario(data))
    data["pools"]["decode"].update(tp=4, pp=21)
    check_scenario(load_scenario(data))
    # the shared rules, through the scenario: tp beyond the domain, pp beyond the layers
    for override, field, expected in (
            ("pools.prefill.tp=16", "pools.prefill.tp", "at most 8 (one h100 scale-up domain"),
            ("pools.prefill.pp=33", "pools.prefill.pp", "at most 32 (llama-3.1-8b's layers)")):
        with pytest.raises(InfersimError, match=rf"{field}: expected {re.escape(expected)}"):
            check_scenario(load_scenario(data, overrides=[override]))


# -- sizing that cannot meet the ITL SLO: a warning before simulating --------------------------


def _decode_step_ms(sc, batch: int, context: int) -> float:
    from infersim.cost import decode_time

    return 1e3 * decode_time(check_scenario(sc).deployments["decode"], batch, context)


def test_a_decode_batch_slower_than_the_itl_slo_is_warned_with_the_batch_that_meets_it():
    from infersim.scenario import decode_slo_warnings

    # SMALL: fixed 100-token prompts, 10 output tokens -> mean decode context 105 tokens.
    loose = load_scenario(SMALL)
    assert decode_slo_warnings(loose, check_scenario(loose)) == []
    itl = round((_decode_step_ms(loose, 1, 105) + _decode_step_ms(loose, 64, 105)) / 2, 3)
    tight = load_scenario(SMALL, overrides=[f"slo.itl_ms={itl}"])
    (line,) = decode_slo_warnings(tight, check_scenario(tight))
    assert line.startswith("pools.decode: a decode step of 64 sequences at 105 tokens of "
                           "context (the workload's mean) takes ")
    assert f"above the ITL SLO of {itl:g} ms; max_batch_size " in line
    advised = int(re.search(r"max_batch_size (\d+) keeps a step within it$", line).group(1))
    assert _decode_step_ms(tight, advised, 105) <= itl < _decode_step_ms(tight, advised + 1, 105)
    # a prefill pool's steps are not decode steps; no SLO, no warning
    no_slo = load_scenario({**SMALL, "slo": {"ttft_ms": 500}})
    assert decode_slo_warnings(no_slo, check_scenario(no_slo)) == []


def test_the_warned_batch_is_capped_by_kv_room_and_mixes_use_a_lower_bound():
    from infersim.scenario import decode_slo_warnings

    data = copy.deepcopy(SMALL)
    data["workload"]["prompt_tokens"] = {"dist": "fixed", "value": 100_000}
    data["pools"]["decode"]["max_batch_size"] = 256
    sc = load_scenario(data, overrides=["slo.itl_ms=1"])
    resolved = check_scenario(sc)
    room = resolved.placements["decode"].kv_capacity_tokens // 100_005
    (line,) = decode_slo_warnings(sc, resolved)
    assert f"a decode step of {room} sequences, all that its KV room holds of max_batch_size " \
           "256" in line and "even one sequence's step is slower" in line
    mixed = copy.deepcopy(SMALL)
    del mixed["workload"]["prompt_tokens"], mixed["workload"]["output_tokens"]
    mixed["workload"]["mix"] = "chat"
    sc = load_scenario(mixed, overrides=["slo.itl_ms=2"])
    (line,) = decode_slo_warnings(sc, check_scenario(sc))
    assert "at 1 token of context (a lower bound" in line


def test_check_scenario_logs_the_warning_and_the_cli_prints_it_as_one_line(caplog, tmp_path):
    import subprocess
    import sys

    tight = load_scenario(SMALL, overrides=["slo.itl_ms=1"])
    with caplog.at_level("WARNING", logger="infersim"):
        check_scenario(tight)
    (record,) = [r for r in caplog.records if r.name == "infersim.scenario"]
    assert record.getMessage().startswith("infersim: warning: pools.decode: a decode step of ")
    # Outside pytest nothing configures logging: Python prints the line on stderr.
    path = tmp_path / "tight.yaml"
    path.write_text(yaml.safe_dump({**SMALL, "slo": {"itl_ms": 1}}))
    code = "import sys; from infersim.cli import main; main(sys.argv[1:])"
    done = subprocess.run([sys.executable, "-c", code, "validate", str(path)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.startswith("ok: small")
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"infersim: warning: {path}: pools.decode: a decode step of 64 "
                           "sequences at 105 tokens")


def test_a_links_per_field_maps_onto_the_engines_per_sender_instance():
    pool = build_cluster(load_scenario(SMALL)).links[0]
    assert pool.per_sender_instance is False
    sc = load_scenario(SMALL, overrides=["links.0.per=instance"])
    assert sc.links[0].per == "instance"
    assert build_cluster(sc).links[0].per_sender_instance is True


def test_a_links_per_field_takes_pool_or_instance_only():
    with pytest.raises(InfersimError, match=r"links\.0\.per: expected .*'pool'.*'instance'"):
        load_scenario(SMALL, overrides=["links.0.per=chip"])


def test_a_default_per_leaves_the_resolved_scenario_and_hash_as_before():
    sc = load_scenario(SMALL)
    assert "per" not in sc.resolved()["links"][0]
    assert load_scenario(SMALL, overrides=["links.0.per=pool"]).hash == sc.hash
    per_instance = load_scenario(SMALL, overrides=["links.0.per=instance"])
    assert per_instance.resolved()["links"][0]["per"] == "instance"
    assert per_instance.hash != sc.hash
    assert load_scenario(per_instance.resolved()).hash == per_instance.hash


def test_kv_reservation_maps_onto_the_pool_and_is_left_out_of_the_hash_at_its_default():
    sc = load_scenario(SMALL)
    assert build_cluster(sc).pools[1].kv_reservation == "on_demand"
    assert "kv_reservation" not in sc.resolved()["pools"]["decode"]
    assert load_scenario(SMALL, overrides=["pools.decode.kv_reservation=on_demand"]).hash == \
        sc.hash
    full = load_scenario(SMALL, overrides=["pools.decode.kv_reservation=full"])
    assert build_cluster(full).pools[1].kv_reservation == "full"
    assert full.resolved()["pools"]["decode"]["kv_reservation"] == "full"
    assert full.hash != sc.hash and load_scenario(full.resolved()).hash == full.hash


def test_kv_reservation_is_one_of_two_and_not_on_a_prefill_pool():
    with pytest.raises(InfersimError, match=r"pools\.decode\.kv_reservation: expected "
                                            r".*'on_demand'.*'full'"):
        load_scenario(SMALL, overrides=["pools.decode.kv_reservation=eager"])
    with pytest.raises(InfersimError, match=r"pools\.prefill\.kv_reservation: expected "
                                            r"on_demand in a prefill pool"):
        check_scenario(load_scenario(SMALL, overrides=["pools.prefill.kv_reservation=full"]))
