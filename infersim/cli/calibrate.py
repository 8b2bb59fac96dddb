"""``infersim calibrate``: fit a scenario's serving knobs to the user's own benchmark results.

    infersim calibrate c4.json c16.json c64.json --scenario my-vllm.yaml
    infersim calibrate benchmarks.json --scenario my-vllm.yaml --fit-on 0 --out my-vllm.cal.yaml
    infersim run my-vllm.yaml --overlay my-vllm.cal.yaml

Reads ``vllm bench serve --save-result`` JSON, guidellm ``benchmarks.json`` (one run per load
level) and genai-perf / AIPerf profile exports; replays each run's lengths and load through the
scenario's cluster; fits ``step_overhead``, ``compute_efficiency`` and ``memory_efficiency`` on
the calibration runs (``--fit-on``, 0-based in the order listed; default every other run from
the first); prints measured against simulated for every run and the held-out error per
statistic; writes the fitted values as an overlay YAML.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from infersim.cli.run import SET_HELP
from infersim.errors import InfersimError


def _parse_fit_on(text: str | None, count: int) -> list[int] | None:
    if text is None:
        return None
    try:
        picks = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        picks = []
    if not picks or any(not 0 <= p < count for p in picks):
        raise InfersimError(field="--fit-on", expected=f"comma-separated run numbers in "
                            f"0..{count - 1} (runs in the order listed)", given=text)
    return picks


def _knobs(names: str | None) -> tuple:
    from infersim.calibrate.fit import KNOB_NAMES, KNOBS

    if names is None:
        return KNOBS
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in KNOB_NAMES]
    if unknown or not chosen:
        raise InfersimError(field="--knobs", expected="a comma-separated subset of " +
                            ", ".join(KNOB_NAMES), given=names)
    return tuple(k for k in KNOBS if k.name in chosen)


def register(app: typer.Typer) -> None:
    @app.command("calibrate")
    def calibrate_cmd(
        results: Annotated[list[Path], typer.Argument(help="benchmark result files (vLLM, "
                                                           "guidellm, genai-perf, AIPerf JSON)")],
        scenario: Annotated[str, typer.Option("--scenario", "-s", help="the deployment's "
                                                                       "scenario file or name")],
        fit_on: Annotated[str | None, typer.Option("--fit-on", metavar="I,J", help="runs to fit "
                          "on (0-based, in the order listed); the others are held out")] = None,
        knobs: Annotated[str | None, typer.Option("--knobs", help="knobs to fit (default: "
                         "step_overhead,compute_efficiency,memory_efficiency)")] = None,
        out: Annotated[Path | None, typer.Option("--out", "-o", help="overlay file to write "
                       "(default calibration-<scenario name>.yaml)")] = None,
        max_evals: Annotated[int, typer.Option("--max-evals", min=0, help="simulations per "
                             "fitted run the search may spend")] = 60,
        max_requests: Annotated[int, typer.Option("--max-requests", min=1, help="requests "
                                "replayed per run (the first ones)")] = 400,
        sets: Annotated[list[str] | None,
                        typer.Option("--set", metavar="KEY=VALUE", help=SET_HELP)] = None,
    ) -> None:
        """Fit a scenario's step overhead and efficiencies to measured benchmark runs."""
        from infersim.calibrate.fit import calibrate, split_runs
        from infersim.calibrate.formats import METRICS, read_benchmark
        from infersim.calibrate.overlay import overlay_document
        from infersim.calibrate.replay import check_replayable
        from infersim.scenario import load_scenario

        sc = load_scenario(scenario, overrides=sets or ())
        check_replayable(sc)
        runs = [run for path in results for run in read_benchmark(path)]
        roles = split_runs(runs, _parse_fit_on(fit_on, len(runs)))
        chosen = _knobs(knobs)
        console = Console(highlight=False)
        cal = calibrate(sc, runs, roles, knobs=chosen, max_evals=max_evals,
                        max_requests=max_requests)
        console.print(_runs_table(cal))
        console.print(_knobs_table(cal))
        errors = {}
        for key in METRICS:
            err = cal.median_abs_error(key, "held-out")
            if err is not None:
                errors[key] = err
        if errors:
            console.print("held-out median |error|: " + ", ".join(
                f"{k} {100 * v:.1f} %" for k, v in errors.items()))
        else:
            console.print("no held-out run: the errors above are the fit's own residuals; "
                          "give runs at other loads to see how well it predicts")
        target = out if out is not None else Path(f"calibration-{sc.name}.yaml")
        text = overlay_document(
            sc.name, {o.split("=", 1)[0]: float(o.split("=", 1)[1]) for o in cal.overrides},
            fitted_on=[r.run.source for r in cal.runs if r.role == "fit"],
            held_out=[r.run.source for r in cal.runs if r.role == "held-out"], errors=errors)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        except OSError as err:
            raise InfersimError(file=str(target), expected="a writable overlay file",
                                given=err.strerror or str(err)) from None
        console.print(f"wrote {target} (apply: infersim run {scenario} --overlay {target})")


def _runs_table(cal) -> Table:
    from infersim.calibrate.formats import METRICS

    table = Table(title="measured / simulated (ms), simulated error")
    for col in ("run", "load", "role", *METRICS):
        table.add_column(col, justify="left" if col in ("run", "load", "role") else "right")
    for r in cal.runs:
        cells = []
        for key in METRICS:
            if key not in r.measured:
                cells.append("-")
                continue
            cells.append(f"{r.measured[key]:.1f} / {r.simulated[key]:.1f} "
                         f"{100 * r.relative(key):+.1f}%")
        path = Path(r.run.source)
        # AIPerf and genai-perf name every export alike: their run folder tells them apart
        name = f"{path.parent.name}/{path.name}" if path.name.startswith("profile_export") \
            else path.name
        table.add_row(name, r.run.load.describe(), r.role, *cells)
    return table


def _knobs_table(cal) -> Table:
    table = Table(title=f"fitted knobs ({cal.evaluations} evaluations)")
    for col in ("knob", "start", "fitted", "bounds", "meaning"):
        table.add_column(col)
    for knob, start, value in zip(cal.knobs, cal.start, cal.values, strict=True):
        table.add_row(knob.name, knob.render(start), knob.render(value),
                      f"{knob.render(knob.low)} .. {knob.render(knob.high)}", knob.why)
    return table
