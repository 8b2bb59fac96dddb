"""``infersim roofline``: one model on one chip layout, on the back of an envelope.

Prints what the cost model says about a deployment without simulating anything: how long a
prompt takes to prefill, how long one decode step of a batch takes and what it yields per user
and in aggregate, which resource binds each (compute, memory or the latency floors), their
arithmetic intensity against the chip's ridge point, the weight and KV-cache bytes, whether the
model fits and the fewest chips it needs. ``--ideal`` strips the calibrated inefficiencies to show
the textbook roofline; ``--step-overhead`` replaces the chip's fixed per-step host time with a
serving framework's (e.g. ``6.5 ms`` for vLLM 0.6 at TP4, the scenario's ``pools.X.step_overhead``);
``--json`` prints one JSON object in SI units.
"""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from infersim.cost import (
    Deployment,
    StepBatch,
    StepCost,
    check_fits,
    check_tensor_parallel,
    decode_step_coefficients,
    ridge_point,
    smallest_layout,
    step_time,
)
from infersim.cost.pipeline import cycle_s, micro_batches_in_flight, stage_plan
from infersim.errors import InfersimError
from infersim.hardware import load_hardware
from infersim.model import load_model
from infersim.units import format_si, parse_quantity


def _seconds(value: float) -> str:
    if value >= 1.0:
        return f"{value:.3g} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} µs"


def _cost_record(cost: StepCost) -> dict[str, Any]:
    return {"time_s": cost.time_s, "bound": cost.bound,
            "arithmetic_intensity": cost.arithmetic_intensity, "flops": cost.flops,
            "bytes_moved": cost.bytes_moved, "compute_s": cost.compute_s,
            "memory_s": cost.memory_s, "comm_s": cost.comm_s, "overhead_s": cost.overhead_s}


def roofline(dep: Deployment, *, batch: int, prompt: int, context: int,
             memory_fraction: float = 0.9) -> dict[str, Any]:
    """The roofline summary of ``dep`` as a JSON-ready dict (SI units).

    Raises InfersimError, naming the chips needed, when the weights plus ``batch`` sequences of
    ``context`` tokens of KV do not fit.
    """
    kv_tokens = batch * (context + 1)
    place = check_fits(dep, memory_fraction, min_kv_tokens=kv_tokens)
    smallest = smallest_layout(dep, memory_fraction, kv_tokens)
    prefill = step_time(dep, StepBatch(prefill_new_tokens=(prompt,)))
    decode = step_time(dep, StepBatch(decode_kv_lens=(context,) * batch))
    a, b = decode_step_coefficients(dep, batch)
    hw = dep.hardware
    pipelined = None
    if dep.pp > 1:
        # the batch as micro-batches in flight through the stages (infersim.cost.pipeline)
        micro = micro_batches_in_flight(dep.pp, batch)
        per_micro = -(-batch // micro)
        cycle = cycle_s(stage_plan(dep, StepBatch(decode_kv_lens=(context,) * per_micro)), micro)
        pipelined = {"micro_batches": micro, "sequences_per_micro_batch": per_micro,
                     "cycle_s": cycle, "tokens_per_s": micro * per_micro / cycle,
                     "tokens_per_s_per_user": 1.0 / cycle}
    return {
        "model": dep.model.name, "hardware": hw.name, "memory_kind": hw.memory_kind,
        "precision": dep.precision, "kv_precision": dep.kv_dtype, "tp": dep.tp, "pp": dep.pp,
        "chips": dep.chips, "ideal": dep.ideal, "memory_fraction": memory_fraction,
        "step_overhead_s": dep.effective_step_overhead_s,
        "fits": place.fits, "min_chips": place.min_chips,
        # the fewest chips as a layout an engine can run, holding this batch's KV
        "smallest_layout": None if smallest is None else {
            "tp": smallest.tp, "pp": smallest.pp, "chips": smallest.chips,
            "kv_tokens": kv_tokens},
        "weight_bytes": place.weight_bytes, "weight_bytes_per_chip": place.weight_bytes_per_chip,
        "kv_bytes_per_token": place.kv_bytes_per_token,
        "kv_capacity_tokens": place.kv_capacity_tokens,
        "max_batch_at_context": place.kv_capacity_tokens // (context + 1),
        "ridge_point": ridge_point(dep),
        "ridge_point_peak": hw.flops(dep.precision) / hw.memory_bandwidth,
        "prefill": {"prompt_tokens": prompt, "tokens_per_s": prompt / prefill.time_s,
                    **_cost_record(prefill)},
        "decode": {"batch": batch, "context": context,
                   "tokens_per_s_per_user": 1.0 / decode.time_s,
                   "tokens_per_s": batch / decode.time_s,
                   "kv_bytes": batch * context * place.kv_bytes_per_token,
                   "step_coefficients": {"a_s": a, "b_s_per_kv_token": b},
                   "pipelined": pipelined,
                   **_cost_record(decode)},
    }


def _layout_text(layout: dict[str, Any] | None) -> str:
    if layout is None:  # the asked-for layout fits only outside the engine's rules (tp > domain)
        return "none within one scale-up domain"
    return (f"tp {layout['tp']} × pp {layout['pp']} = {layout['chips']} chips "
            f"(weights + {layout['kv_tokens']:,} tokens of KV)")


def _print_table(summary: dict[str, Any]) -> None:
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)
    p, d = summary["prefill"], summary["decode"]
    mode = "ideal roofline" if summary["ideal"] else "calibrated"
    layout = f"tp{summary['tp']}" + (f"·pp{summary['pp']}" if summary["pp"] > 1 else "")
    table = Table(title=f"{summary['model']} {summary['precision']} on {summary['chips']}× "
                        f"{summary['hardware']} ({layout}, {mode})")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    rows = [
        (f"prefill of {p['prompt_tokens']} tokens", _seconds(p["time_s"])),
        ("  prefill throughput", f"{p['tokens_per_s']:,.0f} tok/s"),
        ("  bound / intensity", f"{p['bound']} / {p['arithmetic_intensity']:.3g} FLOP/B"),
        (f"decode step, batch {d['batch']} × {d['context']} context", _seconds(d["time_s"])),
        ("  per user", f"{d['tokens_per_s_per_user']:,.1f} tok/s"),
        ("  aggregate", f"{d['tokens_per_s']:,.0f} tok/s"),
        ("  bound / intensity", f"{d['bound']} / {d['arithmetic_intensity']:.3g} FLOP/B"),
        *(() if d["pipelined"] is None else (
            (f"  pipelined: {d['pipelined']['micro_batches']} micro-batches of "
             f"{d['pipelined']['sequences_per_micro_batch']} in flight",
             f"{_seconds(d['pipelined']['cycle_s'])} per round"),
            ("    aggregate / per user", f"{d['pipelined']['tokens_per_s']:,.0f} / "
                                         f"{d['pipelined']['tokens_per_s_per_user']:,.1f} tok/s"))),
        ("step overhead (per step)", _seconds(summary["step_overhead_s"])
         if summary["step_overhead_s"] > 0 else "0"),
        ("ridge point (achievable / peak)",
         f"{summary['ridge_point']:.3g} / {summary['ridge_point_peak']:.3g} FLOP/B"),
        ("weights (total / per chip)",
         f"{format_si(summary['weight_bytes'], 'B')} / {format_si(summary['weight_bytes_per_chip'], 'B')}"),
        ("KV per token / of the batch",
         f"{format_si(summary['kv_bytes_per_token'], 'B')} / {format_si(d['kv_bytes'], 'B')}"),
        ("KV capacity", f"{summary['kv_capacity_tokens']:,} tokens "
                        f"(batch ≤ {summary['max_batch_at_context']:,} at this context)"),
        ("fits", f"yes (at memory_fraction {summary['memory_fraction']:g}); "
                 f"fewest chips {summary['min_chips']} for the weights"),
        ("smallest runnable layout", _layout_text(summary.get("smallest_layout"))),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


def roofline_command(
    model: str = typer.Option(..., "--model", help="Model name or path (see `infersim models list`)."),
    hardware: str = typer.Option(..., "--hardware", help="Chip name or path (see `infersim hardware list`)."),
    tp: int = typer.Option(1, "--tp", min=1, help="Tensor-parallel chips per stage."),
    pp: int = typer.Option(1, "--pp", min=1, help="Pipeline stages."),
    precision: str = typer.Option("bf16", "--precision", help="Weight and compute precision."),
    kv_precision: str | None = typer.Option(None, "--kv-precision",
                                            help="KV-cache precision (default: as --precision)."),
    batch: int = typer.Option(1, "--batch", min=1, help="Sequences in the decode step."),
    prompt: int = typer.Option(1024, "--prompt", min=1, help="Prompt tokens to prefill."),
    context: int | None = typer.Option(None, "--context", min=0,
                                       help="KV tokens each decoding sequence attends to "
                                            "(default: --prompt)."),
    memory_fraction: float = typer.Option(0.9, "--memory-fraction",
                                          help="Share of chip memory for weights + KV."),
    ideal: bool = typer.Option(False, "--ideal", help="Textbook roofline: efficiencies 1, "
                                                      "no overheads or latency floors."),
    step_overhead: str | None = typer.Option(
        None, "--step-overhead", help="Serving framework's fixed time per step, e.g. '5.5 ms' "
                                      "(default: the chip's calibrated step_overhead)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (SI units)."),
) -> None:
    """Prefill and decode times, bounds and intensities of a model on a chip layout."""
    spec = load_model(model)
    check_tensor_parallel(spec, tp, field="--tp")
    overhead_s = None
    if step_overhead is not None:
        overhead_s = parse_quantity(step_overhead, "time", field="--step-overhead")
        if overhead_s < 0:
            raise InfersimError(field="--step-overhead", expected="a time >= 0 such as '5 ms'",
                                given=step_overhead)
    chip = load_hardware(hardware)
    if tp > chip.tensor_parallel_chips == 1:
        # a what-if may span nodes with tp (an all-reduce over the NICs), but chips that meet
        # only over Ethernet, such as CS-3 wafers, split no layer: span them with --pp
        raise InfersimError(field="--tp", given=tp,
                            expected=f"1 ({chip.name} chips meet only over Ethernet: no tensor "
                                     "parallelism across them; span more chips with --pp)")
    dep = Deployment(model=spec, hardware=chip,
                     precision=precision, kv_precision=kv_precision, tp=tp, pp=pp, ideal=ideal,
                     step_overhead_s=overhead_s)
    if not 0 < memory_fraction <= 1:
        raise InfersimError(field="--memory-fraction", expected="a fraction in (0, 1]",
                            given=memory_fraction)
    summary = roofline(dep, batch=batch, prompt=prompt,
                       context=prompt if context is None else context,
                       memory_fraction=memory_fraction)
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        _print_table(summary)


def register(app: typer.Typer) -> None:
    app.command("roofline")(roofline_command)
