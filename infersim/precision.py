"""Numeric precisions of weights, activations and KV cache, and their sizes in bytes."""

from __future__ import annotations

from infersim.errors import InfersimError

BYTES_PER_ELEMENT: dict[str, float] = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "fp4": 0.5,
    "int4": 0.5,
}

PRECISIONS = tuple(BYTES_PER_ELEMENT)


def bytes_per_element(precision: str, *, field: str = "precision", file: str | None = None) -> float:
    """Bytes of one element stored in ``precision``; a clear error for an unknown name."""
    try:
        return BYTES_PER_ELEMENT[precision]
    except KeyError:
        raise InfersimError(file=file, field=field, expected="one of " + ", ".join(PRECISIONS),
                            given=precision) from None
