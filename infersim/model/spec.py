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

import math
from dataclasses import dataclass
from typing import Literal

from infersim.precision import bytes_per_element


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
