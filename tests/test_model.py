"""Model specs: parameter counts against the model cards, KV bytes, FLOPs, and loading errors.

The shipped models are checked against the figures their publishers state; the tiny hand-written
configs in ``tests/fixtures/hf_configs/`` are checked against counts worked out by hand, so that
each architectural feature (GQA, MHA default, tied embeddings, text_config, Mixtral, DeepSeek MLA,
Qwen shared experts) is pinned by arithmetic a reader can redo.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infersim.errors import InfersimError
from infersim.model import ModelSpec, from_hf_config, list_models, load_model

FIXTURES = Path(__file__).parent / "fixtures" / "hf_configs"

# Model-card figures (parameters); the 671 B of DeepSeek-V3 excludes its 14 B MTP module.
MODEL_CARDS = {
    "llama-3.1-8b": (8.03e9, None),
    "llama-3-8b": (8.03e9, None),
    "llama-3.1-70b": (70.6e9, None),
    "llama-3.1-405b": (405.9e9, None),
    "llama-2-7b": (6.74e9, None),
    "llama-2-70b": (69.0e9, None),
    "qwen3-32b": (32.8e9, None),
    "mixtral-8x7b": (46.7e9, 12.9e9),
    "deepseek-v3": (671e9, 37e9),
}


# ---- shipped models against their model cards ----------------------------------------------


def test_every_named_model_ships():
    assert set(MODEL_CARDS) <= set(list_models())


@pytest.mark.parametrize("name", sorted(MODEL_CARDS))
def test_params_match_model_card(name):
    model = load_model(name)
    total, active = MODEL_CARDS[name]
    assert model.params_total == pytest.approx(total, rel=0.01)
    assert model.params_active == pytest.approx(active or total, rel=0.02)
    # the YAML records the same card figures it is tested against
    assert model.reported_params_total == total
    assert model.reported_params_active == active


def test_llama_3_8b_bf16_weights_are_16_06_gb():
    assert load_model("llama-3-8b").weight_bytes("bf16") == pytest.approx(16.06e9, abs=0.005e9)
    assert load_model("llama-3.1-8b").weight_bytes("fp8") == pytest.approx(8.03e9, abs=0.005e9)


@pytest.mark.parametrize(
    ("name", "kv_bytes"),
    [
        ("llama-3.1-8b", 131_072),    # 2 · 32 layers · 8 KV heads · 128 · 2 B
        ("llama-3.1-70b", 327_680),   # 2 · 80 · 8 · 128 · 2 B
        ("llama-2-7b", 524_288),      # full MHA: 2 · 32 · 32 · 128 · 2 B
        ("deepseek-v3", 70_272),      # MLA: 61 · (512 latent + 64 rope) · 2 B
    ],
)
def test_kv_bytes_per_token_bf16(name, kv_bytes):
    assert load_model(name).kv_bytes_per_token("bf16") == kv_bytes


def test_deepseek_v3_shape():
    model = load_model("deepseek-v3")
    assert (model.attention, model.num_moe_layers, model.num_dense_layers) == ("mla", 58, 3)
    assert (model.num_experts, model.num_experts_per_token, model.num_shared_experts) == (256, 8, 1)
    assert model.native_precision == "fp8"
    # the MLA latent is not split across tensor-parallel chips; GQA heads are, down to one
    assert model.kv_bytes_per_token_per_shard("bf16", 8) == 70_272
    llama = load_model("llama-3.1-70b")
    assert llama.kv_bytes_per_token_per_shard("bf16", 8) == 327_680 / 8
    assert llama.kv_bytes_per_token_per_shard("bf16", 16) == 327_680 / 8


def test_qwen3_explicit_head_dim_wins_over_hidden_over_heads():
    model = load_model("qwen3-32b")
    assert model.head_dim == 128 and model.hidden_size // model.num_attention_heads == 80


def test_linear_flops_are_twice_the_active_matmul_weights():
    model = load_model("llama-3.1-8b")
    matmul_params = model.params_active - model.embedding_params - model.norm_params
    assert model.linear_flops_per_token() == 2 * matmul_params
    mixtral = load_model("mixtral-8x7b")
    # a token visits 2 of 8 experts: far fewer FLOPs than the total weights suggest
    assert mixtral.linear_flops_per_token() == pytest.approx(2 * 12.75e9, rel=0.01)


# ---- tiny configs, counted by hand ---------------------------------------------------------
# All tiny models: hidden 64, 8 heads of 8 (unless MLA), intermediate 160, vocab 100.
# Dense SwiGLU MLP: 3·64·160 = 30720. GQA(2 KV heads) attention: 64·64 + 2·64·16 + 64·64 = 10240.


def test_tiny_llama_by_hand():
    model = load_model(FIXTURES / "tiny-llama")
    assert model.name == "tiny-llama"
    assert (model.num_kv_heads, model.head_dim, model.attention) == (2, 8, "gqa")
    assert model.attention_params_per_layer == 10_240
    assert model.dense_mlp_params_per_layer == 30_720
    # 2 layers · (10240 + 30720) + norms 2·2·64 + 64 + embedding 6400 + lm_head 6400
    assert model.params_total == model.params_active == 95_040
    assert model.kv_bytes_per_token("bf16") == 2 * 2 * 2 * 8 * 2
    assert model.linear_flops_per_token() == 2 * (2 * 40_960 + 6400)
    # 3 new tokens after 5 cached: 3·5 + (1+2+3) = 21 pairs; 2 layers · 2·8 heads·(8+8)·21
    assert model.attention_flops(3, 5) == 2 * 2 * 8 * 16 * 21


def test_missing_kv_heads_means_multi_head_attention_and_tied_lm_head_is_free():
    model = load_model(FIXTURES / "tiny-mha" / "config.json")
    assert model.num_kv_heads == model.num_attention_heads == 8
    assert model.native_precision == "fp16"
    assert model.tie_word_embeddings and model.lm_head_params == 0
    assert model.params_total == 2 * (4 * 4096 + 30_720) + 320 + 6400
    # a tied lm_head stores nothing extra but still multiplies every sampled token
    assert model.lm_head_flops_per_token() == 2 * 6400


def test_multimodal_config_reads_its_text_model():
    model = load_model(FIXTURES / "tiny-llava")
    text_only = load_model(FIXTURES / "tiny-llama")
    assert dataclasses.replace(model, name="x", source="") == dataclasses.replace(
        text_only, name="x", source="")


@pytest.mark.parametrize("key", ["text_config", "language_config", "llm_config"])
def test_every_spelling_of_the_language_model_is_read(key):
    text = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 8,
            "intermediate_size": 160, "vocab_size": 100}
    model = from_hf_config({key: text, "vision_config": {"hidden_size": 1024}}, name="vlm")
    assert model == from_hf_config(text, name="vlm")
    with pytest.raises(InfersimError, match=rf"^{key}\.vocab_size: required key missing"):
        from_hf_config({key: {k: v for k, v in text.items() if k != "vocab_size"}}, name="vlm")


def test_tiny_mixtral_by_hand():
    model = load_model(FIXTURES / "tiny-mixtral")
    # Mixtral experts are full-width MLPs; router 64·4
    assert model.expert_params == 30_720 and model.router_params_per_layer == 256
    assert model.num_moe_layers == 2 and model.num_dense_layers == 0
    assert model.params_total == 2 * (10_240 + 4 * 30_720 + 256) + 320 + 12_800
    assert model.params_active == 2 * (10_240 + 2 * 30_720 + 256) + 320 + 12_800


def test_tiny_deepseek_mla_by_hand():
    model = load_model(FIXTURES / "tiny-mla")
    # q_a 64·24 + q_b 24·4·(8+4) + kv_a 64·(16+4) + kv_b 16·4·(8+8) + o 4·8·64
    assert model.attention_params_per_layer == 1536 + 1152 + 1280 + 1024 + 2048
    assert model.mla_kv_up_params_per_layer == 1024
    assert (model.num_dense_layers, model.num_moe_layers) == (1, 2)
    expert = 3 * 64 * 32
    norms = 3 * (2 * 64 + 16 + 24) + 64
    assert model.params_total == (3 * 7040 + 30_720 + 2 * (9 * expert + 64 * 8) + norms + 12_800)
    assert model.params_active == (3 * 7040 + 30_720 + 2 * (3 * expert + 64 * 8) + norms + 12_800)
    assert model.kv_bytes_per_token("bf16") == 3 * (16 + 4) * 2
    assert model.native_precision == "fp8"
    # one decode token over 9 cached: 10 pairs
    absorbed = 3 * 2 * 4 * ((16 + 4) + 16) * 10
    expanded = 3 * (2 * 4 * ((8 + 4) + 8) * 10 + 2 * 1024 * 9)
    assert model.attention_flops(1, 9) == absorbed
    assert model.attention_flops(1, 9, mla_absorbed=False) == expanded


def test_tiny_qwen_moe_shared_expert_and_dense_only_layers():
    model = load_model(FIXTURES / "tiny-qwen-moe")
    assert (model.num_dense_layers, model.num_moe_layers) == (1, 2)   # mlp_only_layers: [0]
    assert model.shared_expert_params == 3 * 64 * 48
    router = 64 * 6 + 64                                                # + shared-expert gate
    attention = 4 * 64 * 64
    assert model.params_total == (3 * attention + 30_720 + 2 * (6 * 3072 + 9216 + router)
                                  + 3 * 128 + 64 + 6400)
    assert model.params_active == (3 * attention + 30_720 + 2 * (3 * 3072 + 9216 + router)
                                   + 3 * 128 + 64 + 6400)


def test_user_models_folder_is_searched(monkeypatch):
    monkeypatch.setenv("INFERSIM_MODELS_PATH", str(FIXTURES))
    assert {"tiny-mixtral", "llama-3.1-8b"} <= set(list_models())
    assert load_model("tiny-mixtral").num_experts == 4


def test_yaml_spec_by_path_and_determinism():
    path = Path(__file__).parents[1] / "models" / "mixtral-8x7b.yaml"
    assert load_model(str(path)) == load_model("mixtral-8x7b")


# ---- bad input: one line naming file and field ------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "message"),
    [
        ("missing_hidden_size.json",
         "missing_hidden_size.json: hidden_size: required key missing; expected an integer >= 1"),
        ("negative_layers.json",
         "negative_layers.json: num_hidden_layers: expected an integer >= 1, got -2"),
        ("heads_not_dividing.json",
         "heads_not_dividing.json: num_attention_heads: expected a divisor of hidden_size (64), "
         "or an explicit head_dim, got 6"),
        ("truncated.json", "truncated.json:5: not valid JSON (Expecting ',' delimiter)"),
    ],
)
def test_bad_config_is_one_line_error(fixture, message):
    with pytest.raises(InfersimError) as err:
        load_model(str(FIXTURES / fixture))
    assert str(err.value) == message.replace(fixture, str(FIXTURES / fixture), 1)
    assert "\n" not in str(err.value)


def test_unknown_model_name_lists_known_names():
    with pytest.raises(InfersimError, match=r"^model: expected a model name \(one of .*llama-3\.1-8b.*"
                       r"got 'llama-9'$"):
        load_model("llama-9")


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("name: x\nhf_config: {hidden_size: 64}\n",
         "hf_config.num_hidden_layers: required key missing; expected an integer >= 1"),
        ("name: x\nhf_confg: {}\n", "hf_confg: expected one of name, description, source, "
         "reported_params, hf_config, notes, got 'hf_confg'"),
        ("name: x\n", "hf_config: expected the model's Hugging Face config.json keys (required), "
         "got None"),
        ("name: x\nhf_config:\n  text_config: {hidden_size: 64, num_hidden_layers: 0}\n",
         "hf_config.text_config.num_hidden_layers: expected an integer >= 1, got 0"),
        ("name: x\nreported_params: {total: lots}\nhf_config: {}\n",
         "reported_params.total: expected a positive parameter count such as 8.03e9, got 'lots'"),
        ("name: [x\n", "expected valid YAML"),
    ],
)
def test_bad_model_yaml(tmp_path, yaml_text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(InfersimError) as err:
        load_model(str(path))
    assert str(err.value).startswith(str(path))
    assert message in str(err.value)


def test_folder_without_config_json_is_rejected(tmp_path):
    with pytest.raises(InfersimError, match=r": model: expected a folder containing config\.json"):
        load_model(tmp_path)


def test_moe_top_k_above_expert_count_is_rejected():
    config = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 8,
              "intermediate_size": 160, "vocab_size": 100, "num_local_experts": 2,
              "num_experts_per_tok": 3}
    with pytest.raises(InfersimError, match=r"^c\.json: num_experts_per_tok: expected at most "
                       r"num_local_experts \(2\), got 3$"):
        from_hf_config(config, name="x", file="c.json")


# ---- invariants over random architectures ----------------------------------------------------


@st.composite
def hf_configs(draw) -> dict:
    """Random small HF-style configs: GQA or MLA, dense or MoE."""
    heads = draw(st.sampled_from([1, 2, 4, 8]))
    head_dim = draw(st.sampled_from([4, 8, 16]))
    cfg = {
        "hidden_size": heads * head_dim, "num_hidden_layers": draw(st.integers(1, 6)),
        "num_attention_heads": heads,
        "num_key_value_heads": draw(st.sampled_from([h for h in (1, 2, 4, 8) if heads % h == 0])),
        "intermediate_size": draw(st.integers(1, 256)), "vocab_size": draw(st.integers(1, 500)),
        "tie_word_embeddings": draw(st.booleans()),
    }
    if draw(st.booleans()):
        cfg.update(kv_lora_rank=draw(st.integers(1, 64)), q_lora_rank=draw(st.integers(0, 64)),
                   qk_rope_head_dim=draw(st.integers(1, 16)),
                   qk_nope_head_dim=draw(st.integers(1, 32)), v_head_dim=draw(st.integers(1, 32)))
    if draw(st.booleans()):
        experts = draw(st.integers(1, 16))
        cfg.update(n_routed_experts=experts, num_experts_per_tok=draw(st.integers(1, experts)),
                   moe_intermediate_size=draw(st.integers(1, 64)),
                   n_shared_experts=draw(st.integers(0, 2)),
                   first_k_dense_replace=draw(st.integers(0, cfg["num_hidden_layers"])))
    return cfg


@settings(max_examples=60, deadline=None)
@given(hf_configs())
def test_active_params_never_exceed_total(cfg):
    model = from_hf_config(cfg, name="random")
    assert 0 < model.params_active <= model.params_total
    if not model.is_moe or model.num_experts_per_token == model.num_experts:
        assert model.params_active == model.params_total
    # Matmul FLOPs are 2 x the active weights a token multiplies by: every active parameter
    # except the embedding gather and the norms, plus the lm_head product a tied embedding
    # still performs (two independent sums of the same weights: params vs FLOPs).
    tied_head = model.lm_head_matmul_params if model.tie_word_embeddings else 0
    assert model.linear_flops_per_token() == 2.0 * (
        model.params_active - model.embedding_params - model.norm_params + tied_head)


@settings(max_examples=60, deadline=None)
@given(hf_configs(), st.integers(0, 64), st.integers(0, 64), st.integers(0, 512))
def test_chunked_prefill_costs_the_same_attention_as_one_pass(cfg, first, second, context):
    """Splitting a prefill into chunks changes nothing in the attention products (absorbed)."""
    model = from_hf_config(cfg, name="random")
    whole = model.attention_flops(first + second, context)
    chunked = model.attention_flops(first, context) + model.attention_flops(second, context + first)
    assert chunked == pytest.approx(whole, rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(hf_configs(), st.integers(0, 4096), st.sampled_from(["bf16", "fp8", "fp4"]))
def test_decode_attention_is_affine_in_context_and_kv_scales_with_precision(cfg, context, kv):
    model = from_hf_config(cfg, name="random")
    step = model.attention_flops(1, 1) - model.attention_flops(1, 0)
    assert model.attention_flops(1, context) == pytest.approx(
        model.attention_flops(1, 0) + step * context, rel=1e-12)
    ratio = {"bf16": 1.0, "fp8": 0.5, "fp4": 0.25}[kv]
    assert model.kv_bytes_per_token(kv) == model.kv_bytes_per_token("bf16") * ratio
    assert model.kv_bytes_per_token_per_shard(kv, 1) == model.kv_bytes_per_token(kv)


def test_spec_is_frozen():
    model = load_model("llama-3.1-8b")
    assert isinstance(model, ModelSpec)
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.num_layers = 1  # type: ignore[misc]


def test_context_window_comes_from_max_position_embeddings():
    assert load_model("llama-2-7b").max_context_tokens == 4096
    assert load_model("llama-3.1-8b").max_context_tokens == 131072
    cfg = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
           "intermediate_size": 128, "vocab_size": 100}
    assert from_hf_config(cfg, name="no-window").max_context_tokens == 0  # the config is silent

