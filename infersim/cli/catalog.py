"""``infersim hardware list|show`` and ``infersim models list``: what the simulator knows about.

The hardware table is the first thing a capacity planner reads: per chip, where weights live and
how much of it there is, how fast it streams, the dense peak in bf16 and fp8, the ridge point
(the arithmetic intensity above which a kernel is compute-bound: peak FLOP/s over memory
bandwidth), the scale-up domain, power and price. The model table gives the size of each model
and how many bytes of KV cache one token costs. ``hardware show <chip>`` prints every figure of
one chip beside its source, for auditing. All print JSON (SI units) with ``--json``.
"""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from infersim.hardware import list_hardware, load_hardware
from infersim.units import format_si

# the catalog's name for the shared display formatter
human = format_si


def _billions(params: float) -> str:
    """Parameter counts the way model cards write them: ``8.03B``."""
    return f"{params / 1e9:.3g}B"


def _console() -> Console:
    console = Console()
    # Off a terminal (pipes, tests) rich assumes 80 columns and would squeeze the table.
    return console if console.is_terminal else Console(width=200)


def hardware_rows() -> list[dict[str, Any]]:
    """One JSON-ready record per known chip (SI units), with its bf16 and fp8 ridge points."""
    rows = []
    for name in list_hardware():
        profile = load_hardware(name)
        row = profile.to_dict()
        row["peak_flops"] = {p: profile.flops(p) for p in profile.precisions()}
        row["ridge_point"] = {p: profile.ridge_point(p) for p in profile.precisions()}
        rows.append(row)
    return rows


def _peak(row: dict[str, Any], precision: str) -> str:
    flops = row["peak_flops"].get(precision)
    return human(flops, "FLOP/s") if flops is not None else "-"


def _ridge(row: dict[str, Any], precision: str) -> str:
    ridge = row["ridge_point"].get(precision)
    return f"{ridge:.3g}" if ridge is not None else "-"


def list_hardware_command(as_json: bool = typer.Option(False, "--json",
                                                       help="Print JSON (SI units).")) -> None:
    """List the hardware profiles: memory, peaks, ridge point, scale-up domain, power, price."""
    rows = hardware_rows()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="Hardware profiles (per chip; dense peaks; links one direction)")
    for column in ("name", "memory", "capacity", "bandwidth", "bf16", "fp8",
                   "ridge bf16 (FLOP/B)", "scale-up domain", "TDP", "$/chip-h"):
        table.add_column(column, justify="left" if column in ("name", "memory") else "right")
    for row in rows:
        table.add_row(
            row["name"], row["memory_kind"],
            human(row["memory_capacity_bytes"], "B"), human(row["memory_bandwidth"], "B/s"),
            _peak(row, "bf16"), _peak(row, "fp8"),
            _ridge(row, "bf16"),
            f"{row['scaleup_domain_chips']} x {human(row['scaleup_bandwidth'], 'B/s')}",
            human(row["tdp_watts"], "W"),
            f"{row['price_per_chip_hour']:.2f} ({row['price_date']})",
        )
    _console().print(table)


# Attribute -> unit, for ``hardware show``; counts and fractions have no unit.
_SHOW_UNITS = {"memory_capacity_bytes": "B", "memory_bandwidth": "B/s", "sram_bytes": "B",
               "sram_bandwidth": "B/s", "scaleup_bandwidth": "B/s", "scaleup_latency_s": "s",
               "scaleout_bandwidth": "B/s", "scaleout_latency_s": "s", "tdp_watts": "W",
               "idle_watts": "W", "step_overhead_s": "s", "layer_latency_s": "s",
               "hop_latency_s": "s"}


def _show_value(field: str, value: Any) -> str:
    if field in _SHOW_UNITS:
        if _SHOW_UNITS[field] == "s" and 0 < value < 1e-3:
            return f"{value * 1e6:.4g} us"
        if _SHOW_UNITS[field] == "s" and 0 < value < 1:
            return f"{value * 1e3:.4g} ms"
        return human(value, _SHOW_UNITS[field])
    if field == "price_per_chip_hour":
        return f"${value:g}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def show_hardware_command(
    name: str = typer.Argument(..., help="A chip name (see 'hardware list') or a YAML path."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (SI units)."),
) -> None:
    """Show every figure of one chip with the source it came from."""
    profile = load_hardware(name)
    if as_json:
        typer.echo(json.dumps(profile.to_dict(), indent=2))
        return
    table = Table(title=f"{profile.name}: {profile.description} ({profile.path})")
    table.add_column("field")
    table.add_column("value", justify="right")
    table.add_column("source / fitted to", overflow="fold")
    for precision in profile.peak_flops:
        key = f"peak_flops.{precision}"
        table.add_row(key, human(profile.peak_flops[precision], "FLOP/s"), profile.sources[key])
    for field, source in profile.sources.items():
        if not field.startswith("peak_flops."):
            value = _show_value(field, getattr(profile, field))
            if field == "price_per_chip_hour":
                value += f" ({profile.price_date})"
            table.add_row(field, value, source)
    _console().print(table)


def model_rows() -> list[dict[str, Any]]:
    """One JSON-ready record per known model: sizes and bf16 KV bytes per token."""
    from infersim.model import list_models, load_model  # the model layer loads on demand

    rows = []
    for name in list_models():
        spec = load_model(name)
        rows.append({
            "name": name,
            "params_total": spec.params_total,
            "params_active": spec.params_active,
            "num_layers": spec.num_layers,
            "attention": spec.attention,
            "num_experts": spec.num_experts,
            "kv_bytes_per_token_bf16": spec.kv_bytes_per_token("bf16"),
        })
    return rows


def list_models_command(as_json: bool = typer.Option(False, "--json",
                                                     help="Print JSON (SI units).")) -> None:
    """List the model specs: parameters (total/active), layers, attention, KV bytes per token."""
    rows = model_rows()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="Model specs (KV cache in bf16, all layers)")
    for column in ("name", "params total", "params active", "layers", "attention", "experts",
                   "KV bytes/token"):
        table.add_column(column, justify="left" if column in ("name", "attention") else "right")
    for row in rows:
        table.add_row(row["name"], _billions(row["params_total"]), _billions(row["params_active"]),
                      str(row["num_layers"]), row["attention"],
                      str(row["num_experts"]) if row["num_experts"] else "-",
                      human(row["kv_bytes_per_token_bf16"], "B"))
    _console().print(table)


def list_engines_command(as_json: bool = typer.Option(False, "--json",
                                                      help="Print JSON.")) -> None:
    """List the serving-engine profiles and the scheduler defaults each sets."""
    from infersim.engines import POOL_FIELDS, list_engines, load_engine

    rows = [{"name": name, "description": p.description, "disaggregation": p.disaggregation,
             **dict(p.pool_defaults)} for name in list_engines()
            for p in (load_engine(name),)]
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    table = Table(title="Serving-engine profiles (engines/*.yaml; blank: the schema default)")
    for column in ("name", *POOL_FIELDS, "disaggregation"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], *(str(row.get(f, "")) for f in POOL_FIELDS),
                      "yes" if row["disaggregation"] else "no")
    _console().print(table)


def register(app: typer.Typer) -> None:
    """Add the ``hardware``, ``models`` and ``engines`` command groups to ``app``."""
    hardware_app = typer.Typer(help="Hardware profiles (hardware/*.yaml).", no_args_is_help=True)
    hardware_app.command("list")(list_hardware_command)
    hardware_app.command("show")(show_hardware_command)
    app.add_typer(hardware_app, name="hardware")
    models_app = typer.Typer(help="Model specs (models/*.yaml).", no_args_is_help=True)
    models_app.command("list")(list_models_command)
    app.add_typer(models_app, name="models")
    engines_app = typer.Typer(help="Serving-engine profiles (engines/*.yaml).",
                              no_args_is_help=True)
    engines_app.command("list")(list_engines_command)
    app.add_typer(engines_app, name="engines")
