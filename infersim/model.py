"""Model architectures as data: what a transformer costs to store, to cache and to run.

A :class:`ModelSpec` is the shape of a decoder-only transformer, read offline from the
Hugging Face ``config.json`` that ships with every checkpoint. From that shape follow the three
numbers a capacity planner needs:

* **weights** — how many parameters there are (``params_total``) and how many of them one token
  actually touches (``params_active``: for a mixture-of-experts model only the experts the router
  picks, plus everything shared);
* **KV cache** — the bytes one token leaves behind in every layer (``kv_bytes_per_token``): keys
  and values of each KV head for grouped-query attention (GQA, which includes plain multi-head
  attention), or one compressed latent vector plus a shared rotary key for DeepSeek's multi-head
  latent attention (MLA);
* **FLOPs** — the matrix multiplications every token passes through
  (``linear_flops_per_token``) and the attention score/value products, which grow with the
  context a token attends to (``attention_flops``).

Conventions, stated once:

* MLPs are gated (SwiGLU: gate, up and down projections, ``3 × hidden × intermediate``), as in
  Llama, Mistral/Mixtral, Qwen and DeepSeek. Biases are not counted; norms are.
* ``params_total`` counts what must be held in memory to serve the model: the input embedding,
  the output projection (``lm_head``) only when it is not tied to the embedding, every layer's
  attention, MLP/experts, routers and norms. DeepSeek-V3's multi-token-prediction module
  (``num_nextn_predict_layers``) is *not* counted — it is only used for speculative decoding,
  and the model card's 671 B excludes it too.
* ``params_active`` counts the same things, with each MoE layer reduced to its router, its shared
  experts and ``num_experts_per_token`` routed experts. Embeddings and ``lm_head`` *are* included,
  as in the model cards (Mixtral 12.9 B, DeepSeek-V3 37 B).
* Sliding-window attention is not modelled: every token attends to its whole context, an upper
  bound for models with a window (none of the shipped ones uses one).
* FLOPs are multiply-adds × 2. The embedding lookup is a gather, not a matmul, so it costs no
  FLOPs; ``lm_head`` is a matmul and costs ``2 × vocab × hidden`` per token that needs logits,
  whether or not its weight is tied to the embedding.

Multimodal checkpoints are read through their language model (``text_config``, also spelled
``language_config`` or ``llm_config``): it is what generates tokens, and the vision encoder's cost
per image is outside this spec.

A shipped model is a YAML file in ``models/``: the model's ``name``, the ``source`` URL of its
``config.json``, the ``reported_params`` of its model card with their source, and ``hf_config``,
the config's keys verbatim. A user may instead point at any ``config.json`` or a checkpoint folder
that holds one.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from infersim.errors import InfersimError
from infersim.paths import find_data_file, list_names, search_dirs
from infersim.precision import bytes_per_element
from infersim.yamlfile import read_json, read_yaml

# Keys of a model YAML file; anything else is a typo the user should hear about.
_YAML_KEYS = ("name", "description", "source", "reported_params", "hf_config", "notes")
_REPORTED_KEYS = ("total", "active", "source")

# Where multimodal configs keep their language model, in the spellings seen on the hub.
_TEXT_CONFIG_KEYS = ("text_config", "language_config", "llm_config")

# torch_dtype strings of config.json -> infersim precision names
_TORCH_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32", "half": "fp16",
                 "float": "fp32"}


@dataclass(frozen=True)
class ModelSpec:
    """The architecture of one decoder-only transformer, validated and immutable.

    Field names follow infersim's contract (``num_layers``, ``num_kv_heads``, ...), not the
    many spellings of Hugging Face configs; :func:`from_hf_config` does the translation.
    """

    name: str
    hidden_size: int
    num_layers: int
    num_attention_heads: int
    num_kv_heads: int                 # GQA KV heads (MLA: as configured; the cache is a latent)
    head_dim: int                     # per-head query/key width (MLA: qk_nope + qk_rope)
    intermediate_size: int            # width of the dense (non-expert) MLP
    vocab_size: int
    tie_word_embeddings: bool
    # mixture of experts (num_experts == 0: dense model)
    num_experts: int = 0              # routed experts per MoE layer
    num_experts_per_token: int = 0    # routed experts each token visits (top-k)
    moe_intermediate_size: int = 0    # width of one routed expert's MLP
    num_shared_experts: int = 0       # experts every token visits, in every MoE layer
    shared_expert_intermediate_size: int = 0  # width of one shared expert's MLP
    shared_expert_gated: bool = False  # Qwen-MoE: shared expert output scaled by a learned gate
    first_k_dense_layers: int = 0     # leading layers with a dense MLP instead of experts
    num_moe_layers: int = 0           # layers whose MLP is a mixture of experts
    # attention
    attention: Literal["gqa", "mla"] = "gqa"
    kv_lora_rank: int = 0             # MLA: width of the cached latent KV vector
    q_lora_rank: int = 0              # MLA: width of the query bottleneck (0 = none)
    qk_rope_head_dim: int = 0         # MLA: rotary part of each query/key head (key shared)
    qk_nope_head_dim: int = 0         # MLA: non-rotary part of each query/key head
    v_head_dim: int = 0               # MLA: value head width
    # the longest sequence (prompt + output tokens) the checkpoint's positions cover:
    # max_position_embeddings; 0 where the config does not say
    max_context_tokens: int = 0
    # provenance
    native_precision: str = "bf16"    # the precision the checkpoint ships in
    source: str = ""                  # file or URL the spec was read from
    reported_params_total: float | None = None   # the model card's figure, for comparison
    reported_params_active: float | None = None

    # ---- per-layer breakdown (parameters) --------------------------------------------------

    @property
    def is_moe(self) -> bool:
        """True for a mixture-of-experts model."""
        return self.num_experts > 0

    @property
    def num_dense_layers(self) -> int:
        """Layers whose MLP is a single dense SwiGLU block."""
        return self.num_layers - self.num_moe_layers

    @property
    def embedding_params(self) -> int:
        """The input token embedding table (vocab × hidden); a gather at run time, no FLOPs."""
        return self.vocab_size * self.hidden_size

    @property
    def lm_head_params(self) -> int:
        """Parameters of the output projection stored apart from the embedding (0 when tied)."""
        return 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size

    @property
    def lm_head_matmul_params(self) -> int:
        """Weights the output projection multiplies by, tied or not (vocab × hidden)."""
        return self.vocab_size * self.hidden_size

    @property
    def attention_params_per_layer(self) -> int:
        """Projection weights of one attention block (norms excluded).

        GQA: Q and O are ``hidden × heads·head_dim``; K and V are ``hidden × kv_heads·head_dim``.
        MLA: the query goes through an optional low-rank bottleneck (``q_a``: hidden → q_lora,
        ``q_b``: q_lora → heads·(nope+rope)); keys and values are compressed to one latent of
        ``kv_lora_rank`` plus a shared rotary key (``kv_a``: hidden → kv_lora + rope) and expanded
        per head (``kv_b``: kv_lora → heads·(nope + v)); O is ``heads·v × hidden``.
        """
        h = self.hidden_size
        if self.attention == "mla":
            qk_head = self.qk_nope_head_dim + self.qk_rope_head_dim
            if self.q_lora_rank:
                q = h * self.q_lora_rank + self.q_lora_rank * self.num_attention_heads * qk_head
            else:
                q = h * self.num_attention_heads * qk_head
            kv_a = h * (self.kv_lora_rank + self.qk_rope_head_dim)
            kv_b = self.mla_kv_up_params_per_layer
            o = self.num_attention_heads * self.v_head_dim * h
            return q + kv_a + kv_b + o
        q = h * self.num_attention_heads * self.head_dim
        kv = 2 * h * self.num_kv_heads * self.head_dim
        o = self.num_attention_heads * self.head_dim * h
        return q + kv + o

    @property
    def mla_kv_up_params_per_layer(self) -> int:
        """MLA only: the ``kv_b`` up-projection from the latent to per-head keys and values.

        Absorbed-MLA decode kernels fold it into the query and output sides instead of applying
        it to every cached token; either way one new token pays for it once (see
        :meth:`attention_flops`). 0 for GQA.
        """
        if self.attention != "mla":
            return 0
        return self.kv_lora_rank * self.num_attention_heads * (
            self.qk_nope_head_dim + self.v_head_dim)

    @property
    def dense_mlp_params_per_layer(self) -> int:
        """One dense SwiGLU MLP: gate, up and down projections, ``3 × hidden × intermediate``."""
        return 3 * self.hidden_size * self.intermediate_size

    @property
    def expert_params(self) -> int:
        """One routed expert's SwiGLU MLP, ``3 × hidden × moe_intermediate`` (0 if dense)."""
        return 3 * self.hidden_size * self.moe_intermediate_size if self.is_moe else 0

    @property
    def shared_expert_params(self) -> int:
        """One shared expert's SwiGLU MLP (0 if the model has none)."""
        return 3 * self.hidden_size * self.shared_expert_intermediate_size * (
            1 if self.num_shared_experts else 0)

    @property
    def router_params_per_layer(self) -> int:
        """The router (gate) of one MoE layer: ``hidden × num_experts``.

        Qwen-style shared experts also have a scalar gate (``hidden × 1``), counted here.
        """
        if not self.is_moe:
            return 0
        shared_gate = self.hidden_size if self.shared_expert_gated else 0
        return self.hidden_size * self.num_experts + shared_gate

    @property
    def moe_params_per_layer(self) -> int:
        """Everything in one MoE layer's MLP: all routed experts, shared experts, router."""
        return (self.num_experts * self.expert_params
                + self.num_shared_experts * self.shared_expert_params
                + self.router_params_per_layer)

    @property
    def moe_active_params_per_layer(self) -> int:
        """What one token touches in an MoE layer: top-k routed experts, shared experts, router."""
        return (self.num_experts_per_token * self.expert_params
                + self.num_shared_experts * self.shared_expert_params
                + self.router_params_per_layer)

    @property
    def norm_params(self) -> int:
        """RMSNorm weights: two per layer, the final norm, and MLA's latent norms."""
        per_layer = 2 * self.hidden_size
        if self.attention == "mla":
            per_layer += self.kv_lora_rank + self.q_lora_rank
        return self.num_layers * per_layer + self.hidden_size

    # ---- totals ------------------------------------------------------------------------------

    @property
    def params_total(self) -> int:
        """Parameters held in memory to serve the model (see the module docstring)."""
        return (self.embedding_params + self.lm_head_params + self.norm_params
                + self.num_layers * self.attention_params_per_layer
                + self.num_dense_layers * self.dense_mlp_params_per_layer
                + self.num_moe_layers * self.moe_params_per_layer)

    @property
    def params_active(self) -> int:
        """Parameters one token touches: MoE layers reduced to top-k routed + shared experts.

        Embeddings and ``lm_head`` count, as in the model cards. Equals ``params_total`` for a
        dense model.
        """
        return (self.embedding_params + self.lm_head_params + self.norm_params
                + self.num_layers * self.attention_params_per_layer
                + self.num_dense_layers * self.dense_mlp_params_per_layer
                + self.num_moe_layers * self.moe_active_params_per_layer)

    def weight_bytes(self, precision: str) -> float:
        """Bytes of all weights (``params_total``) stored in ``precision`` (quantisation scales
        are not counted)."""
        return self.params_total * bytes_per_element(precision)

    def kv_bytes_per_token(self, kv_precision: str) -> float:
        """KV-cache bytes one token occupies, summed over all layers.

        GQA: ``2 (K and V) × layers × kv_heads × head_dim × bytes``.
        MLA: ``layers × (kv_lora_rank + qk_rope_head_dim) × bytes`` — one latent and one shared
        rotary key per token, whatever the number of heads.
        """
        return self.kv_elements_per_token_per_layer * self.num_layers * bytes_per_element(
            kv_precision, field="kv_precision")

    @property
    def kv_elements_per_token_per_layer(self) -> int:
        """Cached elements per token per layer (see :meth:`kv_bytes_per_token`)."""
        if self.attention == "mla":
            return self.kv_lora_rank + self.qk_rope_head_dim
        return 2 * self.num_kv_heads * self.head_dim

    def kv_bytes_per_token_per_shard(self, kv_precision: str, tp: int) -> float:
        """KV bytes per token held by *one* of ``tp`` tensor-parallel chips.

        GQA splits KV heads across chips; when ``tp`` exceeds the number of KV heads each chip
        keeps a replica of one head (as vLLM does), so the per-chip share stops shrinking. MLA's
        latent is not split by heads: every chip holds the whole latent.
        """
        if tp < 1:
            raise ValueError(f"tp must be >= 1, got {tp}")
        if self.attention == "mla":
            return self.kv_bytes_per_token(kv_precision)
        heads_per_chip = max(1, math.ceil(self.num_kv_heads / tp))
        return (2 * heads_per_chip * self.head_dim * self.num_layers
                * bytes_per_element(kv_precision, field="kv_precision"))

    # ---- FLOPs -------------------------------------------------------------------------------

    def linear_flops_per_token(self) -> float:
        """Matmul FLOPs of one token through the whole model, including ``lm_head``.

        ``2 × (params_active − embedding − norms)`` plus, when tied, the ``lm_head`` matmul the
        shared embedding weight still performs. Attention score/value products are not included
        (:meth:`attention_flops`). In prefill only the last token of a sequence needs logits, so
        a cost model may prefer :meth:`body_linear_flops_per_token` plus
        :meth:`lm_head_flops_per_token` per sampled token.
        """
        return self.body_linear_flops_per_token() + self.lm_head_flops_per_token()

    def body_linear_flops_per_token(self) -> float:
        """Matmul FLOPs of one token through the decoder layers only (no ``lm_head``)."""
        per_token = (self.num_layers * self.attention_params_per_layer
                     + self.num_dense_layers * self.dense_mlp_params_per_layer
                     + self.num_moe_layers * self.moe_active_params_per_layer)
        return 2.0 * per_token

    def lm_head_flops_per_token(self) -> float:
        """FLOPs of the output projection for one token that needs logits."""
        return 2.0 * self.lm_head_matmul_params

    def attention_flops(self, new_tokens: int, context_tokens: int, *,
                        mla_absorbed: bool = True) -> float:
        """FLOPs of the attention products (QKᵀ and softmax·V) for one sequence, all layers.

        ``new_tokens`` are computed this step after ``context_tokens`` already in the cache;
        new token ``i`` attends to the context and to new tokens ``0..i`` (causal), so there are
        ``new·context + new·(new+1)/2`` query-key pairs. Each pair costs ``2 × qk_dim`` for the
        score and ``2 × v_dim`` for the weighted value, per query head. Softmax is ignored.

        GQA: ``qk_dim = v_dim = head_dim``. MLA has two forms, which the caller picks:

        * absorbed (``mla_absorbed=True``, the default; decode kernels such as FlashMLA): the
          per-head ``kv_b`` up-projection is folded into the query and output, so heads attend
          in latent space, ``qk_dim = kv_lora_rank + qk_rope_head_dim``, ``v_dim = kv_lora_rank``.
          The fold costs the same per new token as ``kv_b`` itself, which
          :meth:`linear_flops_per_token` already counts.
        * expanded (``mla_absorbed=False``, typical for prefill): cached latents of the context
          are expanded through ``kv_b`` (``2 × kv_b params`` per context token per layer, counted
          here — the new tokens' expansion is in the linear FLOPs), then heads attend with
          ``qk_dim = qk_nope + qk_rope`` and ``v_dim = v_head_dim``.
        """
        if new_tokens < 0 or context_tokens < 0:
            raise ValueError(f"token counts must be >= 0, got {new_tokens}, {context_tokens}")
        pairs = new_tokens * context_tokens + new_tokens * (new_tokens + 1) / 2
        heads = self.num_attention_heads
        expand = 0.0
        if self.attention == "mla":
            if mla_absorbed:
                qk_dim = self.kv_lora_rank + self.qk_rope_head_dim
                v_dim = self.kv_lora_rank
            else:
                qk_dim = self.qk_nope_head_dim + self.qk_rope_head_dim
                v_dim = self.v_head_dim
                if new_tokens:
                    expand = 2.0 * self.mla_kv_up_params_per_layer * context_tokens
        else:
            qk_dim = v_dim = self.head_dim
        return self.num_layers * (2.0 * heads * (qk_dim + v_dim) * pairs + expand)


# ---- reading Hugging Face configs -------------------------------------------------------------


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


# ---- files ------------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    return read_json(path, what="config.json")


def _read_yaml(path: Path) -> Any:
    return read_yaml(path, what="model YAML")


def _reported(doc: Mapping[str, Any], path: Path) -> tuple[float | None, float | None]:
    rep = doc.get("reported_params")
    if rep is None:
        return None, None
    if not isinstance(rep, Mapping):
        raise InfersimError(file=path, field="reported_params",
                            expected="a mapping with total, active (MoE) and source", given=rep)
    unknown = sorted(set(rep) - set(_REPORTED_KEYS))
    if unknown:
        raise InfersimError(file=path, field=f"reported_params.{unknown[0]}",
                            expected="one of " + ", ".join(_REPORTED_KEYS), given=unknown[0])
    out: list[float | None] = []
    for key in ("total", "active"):
        value = rep.get(key)
        if isinstance(value, str):
            # YAML 1.1 reads 8.03e9 (no exponent sign) as a string; take it as the number meant
            with contextlib.suppress(ValueError):
                value = float(value)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or value <= 0):
            raise InfersimError(file=path, field=f"reported_params.{key}",
                                expected="a positive parameter count such as 8.03e9", given=value)
        out.append(float(value) if value is not None else None)
    return out[0], out[1]


def load_model_yaml(path: str | Path) -> ModelSpec:
    """Read a model YAML (``name``, ``source``, ``reported_params``, ``hf_config``)."""
    path = Path(path)
    doc = _read_yaml(path)
    if not isinstance(doc, Mapping):
        raise InfersimError(file=path, expected="a mapping with name, source and hf_config",
                            given=doc)
    unknown = sorted(set(doc) - set(_YAML_KEYS))
    if unknown:
        raise InfersimError(file=path, field=str(unknown[0]),
                            expected="one of " + ", ".join(_YAML_KEYS), given=unknown[0])
    if "hf_config" not in doc:
        raise InfersimError(file=path, field="hf_config",
                            expected="the model's Hugging Face config.json keys (required)",
                            given=None)
    name = doc.get("name", path.stem)
    if not isinstance(name, str) or not name:
        raise InfersimError(file=path, field="name", expected="a non-empty string", given=name)
    total, active = _reported(doc, path)
    return from_hf_config(doc["hf_config"], name=name, file=path, field_prefix="hf_config.",
                          reported_params_total=total, reported_params_active=active)


def load_hf_config(path: str | Path, *, name: str | None = None) -> ModelSpec:
    """Read a Hugging Face ``config.json``; the model is named after its folder by default."""
    path = Path(path)
    return from_hf_config(_read_json(path), name=name or path.resolve().parent.name, file=path)


def load_model(name_or_path: str | Path, *, field: str = "model") -> ModelSpec:
    """Load a model by shipped/user name, model YAML path, ``config.json`` path or folder.

    Names are looked up in ``INFERSIM_MODELS_PATH`` folders, then in the shipped ``models/``.
    ``field`` names the setting that held ``name_or_path``, for the error when nothing matches.
    """
    if not isinstance(name_or_path, (str, Path)) or not str(name_or_path):
        raise InfersimError(field=field, expected="a model name or the path to a config.json or "
                            "model YAML", given=name_or_path)
    text = str(name_or_path)
    direct = Path(text).expanduser()
    if direct.is_dir():
        config = direct / "config.json"
        if not config.is_file():
            raise InfersimError(file=direct, field=field,
                                expected="a folder containing config.json", given=text)
        return load_hf_config(config, name=direct.resolve().name)
    if direct.is_file() and direct.suffix == ".json":
        return load_hf_config(direct)
    found = find_data_file("models", text)
    if found is None:
        found = find_data_file("models", text, suffixes=(".json", "/config.json"))
    if found is None:
        raise InfersimError(
            field=field,
            expected="a model name (one of " + ", ".join(list_models())
            + ") or a path to a model YAML, a config.json or a folder containing one",
            given=text)
    if found.name == "config.json":
        return load_hf_config(found, name=text)
    if found.suffix == ".json":
        return load_hf_config(found, name=found.stem)
    return load_model_yaml(found)


def list_models() -> list[str]:
    """Names of all models: YAML specs, ``<name>.json`` configs and ``<name>/config.json``
    checkpoint folders found in user folders and the shipped ``models/``, sorted."""
    names = dict.fromkeys(list_names("models"))
    names.update(dict.fromkeys(list_names("models", suffixes=(".json",))))
    for folder in search_dirs("models"):
        if folder.is_dir():
            names.update(dict.fromkeys(
                sub.name for sub in folder.iterdir()
                if (sub / "config.json").is_file() and not sub.name.startswith("_")))
    return sorted(names)
