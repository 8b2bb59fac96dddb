"""Reading a Hugging Face ``config.json`` into a :class:`~infersim.model.spec.ModelSpec`.

One translation from the hub's many spellings (``num_key_value_heads``, ``n_routed_experts``,
``text_config`` of multimodal checkpoints, ...) to infersim's field names, with one-line errors
naming the config key that is missing or wrong. No network: the dict is read offline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from infersim.errors import InfersimError
from infersim.model.spec import ModelSpec

# Where multimodal configs keep their language model, in the spellings seen on the hub.
_TEXT_CONFIG_KEYS = ("text_config", "language_config", "llm_config")

# torch_dtype strings of config.json -> infersim precision names
_TORCH_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32", "half": "fp16",
                 "float": "fp32"}

# No model dimension (layers, width, vocabulary, context, experts) comes near 2**31.
_MAX_CONFIG_INT = 2**31 - 1


def _int_field(cfg: Mapping[str, Any], key: str, *, file: str | None, prefix: str,
               minimum: int = 1, default: int | None = None) -> int:
    """A config integer that must be ``>= minimum``; ``None``/absent takes ``default``."""
    value = cfg.get(key)
    if value is None:
        if default is None:
            raise InfersimError("required key missing", file=file, field=prefix + key,
                                expected=f"an integer >= {minimum}")
        return default
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or value != int(value)):
        raise InfersimError(file=file, field=prefix + key, expected=f"an integer >= {minimum}",
                            given=value)
    if not minimum <= value <= _MAX_CONFIG_INT:
        bound = f">= {minimum}" if value < minimum else f"<= {_MAX_CONFIG_INT}"
        raise InfersimError(file=file, field=prefix + key, expected=f"an integer {bound}",
                            given=value)
    return int(value)


def _first_key(cfg: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    return next((k for k in keys if cfg.get(k) is not None), None)


def _native_precision(cfg: Mapping[str, Any], top: Mapping[str, Any]) -> str:
    quant = top.get("quantization_config") or cfg.get("quantization_config")
    if isinstance(quant, Mapping) and str(quant.get("quant_method", "")).lower() == "fp8":
        return "fp8"
    dtype = cfg.get("torch_dtype") or cfg.get("dtype") or top.get("torch_dtype") or top.get("dtype")
    return _TORCH_DTYPES.get(str(dtype), "bf16")


def from_hf_config(config: Mapping[str, Any], *, name: str, file: str | Path | None = None,
                   reported_params_total: float | None = None,
                   reported_params_active: float | None = None,
                   field_prefix: str = "") -> ModelSpec:
    """Build a :class:`ModelSpec` from a Hugging Face ``config.json`` dict (no network).

    Multimodal configs are read through their ``text_config`` (or ``language_config`` /
    ``llm_config``): the language model is what generates tokens. ``field_prefix`` is put in
    front of field names in errors (``hf_config.`` for a model YAML).
    """
    src = str(file) if file is not None else None
    if not isinstance(config, Mapping):
        raise InfersimError(file=src, field=field_prefix.rstrip(".") or "config",
                            expected="a mapping of Hugging Face config keys", given=config)
    top = config
    cfg = config
    prefix = field_prefix
    text_key = _first_key(config, _TEXT_CONFIG_KEYS)
    if text_key is not None:
        cfg = config[text_key]
        prefix = f"{field_prefix}{text_key}."
        if not isinstance(cfg, Mapping):
            raise InfersimError(file=src, field=prefix.rstrip("."),
                                expected="a mapping of the language model's config keys",
                                given=cfg)

    def num(key: str, **kw: Any) -> int:
        return _int_field(cfg, key, file=src, prefix=prefix, **kw)

    hidden = num("hidden_size")
    layers = num("num_hidden_layers")
    heads = num("num_attention_heads")
    kv_heads = num("num_key_value_heads", default=heads)  # absent: plain multi-head attention
    intermediate = num("intermediate_size")
    vocab = num("vocab_size")
    context = num("max_position_embeddings", default=0)
    tie = cfg.get("tie_word_embeddings", top.get("tie_word_embeddings", False))
    if not isinstance(tie, bool):
        raise InfersimError(file=src, field=prefix + "tie_word_embeddings",
                            expected="true or false", given=tie)
    if heads % kv_heads:
        raise InfersimError(file=src, field=prefix + "num_key_value_heads",
                            expected=f"a divisor of num_attention_heads ({heads})", given=kv_heads)

    mla = cfg.get("kv_lora_rank") is not None
    mla_fields: dict[str, int] = {}
    if mla:
        mla_fields = {
            "kv_lora_rank": num("kv_lora_rank"),
            "q_lora_rank": num("q_lora_rank", minimum=0, default=0),  # null: no q bottleneck
            "qk_rope_head_dim": num("qk_rope_head_dim"),
            "qk_nope_head_dim": num("qk_nope_head_dim"),
            "v_head_dim": num("v_head_dim"),
        }
        head_dim = mla_fields["qk_nope_head_dim"] + mla_fields["qk_rope_head_dim"]
    elif cfg.get("head_dim") is not None:
        head_dim = num("head_dim")
    else:
        if hidden % heads:
            raise InfersimError(
                file=src, field=prefix + "num_attention_heads",
                expected=f"a divisor of hidden_size ({hidden}), or an explicit head_dim",
                given=heads)
        head_dim = hidden // heads

    experts_key = _first_key(cfg, ("num_local_experts", "num_experts", "n_routed_experts"))
    moe: dict[str, Any] = {}
    if experts_key is not None and num(experts_key, minimum=0) > 0:
        experts = num(experts_key)
        top_k = num("num_experts_per_tok")
        if top_k > experts:
            raise InfersimError(file=src, field=prefix + "num_experts_per_tok",
                                expected=f"at most {experts_key} ({experts})", given=top_k)
        # Mixtral-style configs have no moe_intermediate_size: each expert is a full-width MLP.
        expert_width = num("moe_intermediate_size", default=intermediate)
        n_shared = num("n_shared_experts", minimum=0, default=0)
        shared_width = expert_width
        qwen_shared = num("shared_expert_intermediate_size", minimum=0, default=0)
        if qwen_shared:
            # Qwen-MoE: one shared expert of its own width, behind a sigmoid gate
            n_shared, shared_width = 1, qwen_shared
        first_dense = num("first_k_dense_replace", minimum=0, default=0)
        if first_dense > layers:
            raise InfersimError(file=src, field=prefix + "first_k_dense_replace",
                                expected=f"at most num_hidden_layers ({layers})", given=first_dense)
        freq = num("moe_layer_freq", default=1)           # DeepSeek: every freq-th layer
        step = num("decoder_sparse_step", default=1)      # Qwen-MoE: every step-th layer
        dense_only = cfg.get("mlp_only_layers") or []
        if not isinstance(dense_only, list) or not all(
                isinstance(i, int) and 0 <= i < layers for i in dense_only):
            raise InfersimError(file=src, field=prefix + "mlp_only_layers",
                                expected=f"a list of layer indices in [0, {layers})",
                                given=dense_only)
        # the layer rule of the reference implementations (modeling_deepseek, Qwen2-MoE)
        moe_layers = sum(1 for i in range(layers)
                         if i >= first_dense and i % freq == 0
                         and (i + 1) % step == 0 and i not in dense_only)
        moe = {"num_experts": experts, "num_experts_per_token": top_k,
               "moe_intermediate_size": expert_width, "num_shared_experts": n_shared,
               "shared_expert_intermediate_size": shared_width if n_shared else 0,
               "shared_expert_gated": bool(qwen_shared),
               "first_k_dense_layers": first_dense, "num_moe_layers": moe_layers}

    return ModelSpec(
        name=name, hidden_size=hidden, num_layers=layers, num_attention_heads=heads,
        num_kv_heads=kv_heads, head_dim=head_dim, intermediate_size=intermediate,
        vocab_size=vocab, tie_word_embeddings=tie, attention="mla" if mla else "gqa",
        max_context_tokens=context,
        native_precision=_native_precision(cfg, top), source=src or "",
        reported_params_total=reported_params_total,
        reported_params_active=reported_params_active, **moe, **mla_fields)
