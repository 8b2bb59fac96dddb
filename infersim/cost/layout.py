"""Layouts a serving engine can run: how one model copy may be split over ``tp × pp`` chips.

Tensor parallelism (``tp``) splits every layer's attention heads and MLP over the chips of one
stage, which all-reduce twice per layer: so ``tp`` must give each chip the same number of query
heads (divide them), split the KV heads evenly or replicate them (divide them or be a multiple of
them, as vLLM does), and stay inside one scale-up domain (NVLink, a GroqNode's RealScale fabric),
since an all-reduce every half-layer over the data-centre network is not a layout anyone runs;
where chips meet only over Ethernet (Cerebras CS-3 systems) that domain is one chip.
Pipeline parallelism (``pp``) gives each stage at least one whole layer, so ``pp`` is at most the
number of layers. Models that need many chips (SRAM machines) grow ``pp`` and keep ``tp`` within
the domain: Llama-2-7B on Groq LPUs runs as ``tp 8 × pp 10``, not as 80 stages of one chip.

:func:`check_layout` applies these rules (the scenario's pools and ``infersim roofline`` both
call it); :func:`valid_tensor_parallel` lists the ``tp`` values they allow, from which
:func:`infersim.cost.memory.smallest_layout` picks the smallest layout that holds a model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from infersim.cost.types import check_tensor_parallel
from infersim.errors import InfersimError

if TYPE_CHECKING:
    from infersim.hardware import HardwareProfile
    from infersim.model import ModelSpec


def tensor_parallel_splits_heads(model: ModelSpec, tp: int) -> bool:
    """Whether ``tp`` chips split ``model``'s query heads evenly and its KV heads evenly or by
    replication (the rule :func:`~infersim.cost.types.check_tensor_parallel` enforces)."""
    heads, kv_heads = model.num_attention_heads, model.num_kv_heads
    if tp < 1 or heads % tp:
        return False
    return not (kv_heads and kv_heads % tp and tp % kv_heads)


def valid_tensor_parallel(model: ModelSpec, hardware: HardwareProfile) -> tuple[int, ...]:
    """Every ``tp`` a serving engine can run ``model`` at on ``hardware``, ascending."""
    top = min(model.num_attention_heads, hardware.tensor_parallel_chips)
    return tuple(tp for tp in range(1, top + 1) if tensor_parallel_splits_heads(model, tp))


def check_layout(model: ModelSpec, hardware: HardwareProfile, tp: int, pp: int, *,
                 tp_field: str = "tp", pp_field: str = "pp", file: str | None = None) -> None:
    """InfersimError, naming ``tp_field`` or ``pp_field``, unless ``tp × pp`` is a layout a
    serving engine can run (module docstring)."""
    try:
        check_tensor_parallel(model, tp, field=tp_field)
    except InfersimError as err:
        raise err.with_file(file) if file is not None else err from None
    if tp > hardware.tensor_parallel_chips:
        where = (f"one {hardware.name} scale-up domain" if hardware.scaleup_topology != "ethernet"
                 else f"{hardware.name} chips meet only over Ethernet, no tensor parallelism "
                      "across them")
        raise InfersimError(file=file, field=tp_field,
                            expected=f"at most {hardware.tensor_parallel_chips} ({where}; span "
                                     "more chips with pp)",
                            given=tp)
    if pp > model.num_layers:
        raise InfersimError(file=file, field=pp_field,
                            expected=f"at most {model.num_layers} ({model.name}'s layers)",
                            given=pp)
