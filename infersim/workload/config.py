"""The scenario's ``workload:`` section, validated.

A workload answers three questions: *when* do requests arrive (an open-loop ``arrival`` process,
or a closed loop of ``concurrency`` users), *how long* are they (``prompt_tokens`` and
``output_tokens`` distributions, a named or inline ``mix`` of request classes, or a recorded
``trace``), and *how many* (``requests``). For example::

    workload:
      arrival: {process: poisson, rate: 20}        # requests per second
      requests: 2000
      prompt_tokens: {dist: lognormal, mean: 1024, sigma: 0.6, max: 32768}
      output_tokens: {dist: fixed, value: 256}

    workload: {arrival: {process: gamma, rate: 20, burstiness: 0.5}, requests: 5000, mix: chat}

    workload:
      concurrency: 32                              # closed loop: 32 users
      think_time_s: 2.0
      requests: 1000
      mix: {classes: [{name: agent, weight: 0.5, mix: coding-agent, slo: {ttft_ms: 2000}},
                      {name: chat, weight: 0.5, mix: chat, slo: {ttft_ms: 500, tpot_ms: 50}}]}

    workload: {trace: {format: azure, path: traces/conv.csv, speedup: 2.0, window_s: [0, 600]}}

Exactly one of ``prompt_tokens`` + ``output_tokens``, ``mix`` or ``trace`` gives the lengths; at
most one of ``arrival`` and ``concurrency`` gives the timing. A trace with timestamps brings its
own timing (an ``arrival`` or ``concurrency`` given alongside replaces it); every other workload
must name one. ``requests`` is required except for traces, where it caps the replay.

These models only validate; :func:`infersim.workload.build.build_workload` turns one into a
request table with the run's random generator.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from infersim import limits
from infersim.schema_errors import error_from_validation
from infersim.workload.lengths import LengthDist, check_centre_within_bounds
from infersim.workload.traces import TRACE_FORMATS

Rate = Annotated[float, Field(ge=limits.MIN_RATE, le=limits.MAX_RATE)]
Seconds = Annotated[float, Field(ge=0, le=limits.MAX_SECONDS)]
PositiveSeconds = Annotated[float, Field(gt=0, le=limits.MAX_SECONDS)]
Milliseconds = Annotated[float, Field(gt=0, le=limits.MAX_MS)]


class _Strict(BaseModel):
    # strict: YAML's true is not a count, "10" is not a rate; ints are accepted for floats.
    # allow_inf_nan=False: .nan and .inf are refused in every float (bounds: infersim.limits).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


# ---------------------------------------------------------------------------------------------
# Arrival processes


class PoissonArrival(_Strict):
    """Poisson arrivals: independent exponential gaps, mean ``1/rate`` (gap CV 1)."""

    process: Literal["poisson"] = "poisson"
    rate: Rate = Field(description="Mean arrival rate, requests per second.")


class GammaArrival(_Strict):
    """Gamma-distributed gaps, as ``vllm bench serve --burstiness``.

    Each gap is Gamma(shape=burstiness, scale=1/(rate*burstiness)): mean gap ``1/rate``, gap
    CV ``1/sqrt(burstiness)``. ``burstiness`` 1 is Poisson, below 1 burstier, above 1 smoother.
    Give ``cv`` (the gaps' coefficient of variation) instead of ``burstiness`` if you prefer:
    ``burstiness = 1/cv**2``.
    """

    process: Literal["gamma"] = "gamma"
    rate: Rate = Field(description="Mean arrival rate, requests per second.")
    burstiness: Annotated[float, Field(ge=1e-4, le=1e4)] | None = Field(None, description="Gamma shape (vLLM bench's "
                                             "--burstiness); 1 = Poisson, < 1 burstier.")
    cv: Annotated[float, Field(ge=1e-2, le=100)] | None = Field(None, description="Coefficient of variation of the gaps, "
                                     "instead of burstiness (burstiness = 1/cv**2).")

    @model_validator(mode="after")
    def _one_shape(self):
        if (self.burstiness is None) == (self.cv is None):
            raise ValueError("expected exactly one of burstiness or cv, got "
                             + ("both" if self.cv is not None else "neither"))
        return self

    @property
    def shape(self) -> float:
        """The gamma shape, vLLM's burstiness."""
        return self.burstiness if self.burstiness is not None else 1.0 / self.cv**2


class StepsArrival(_Strict):
    """Poisson arrivals at a piecewise-constant rate: ``steps: [[start_s, rate], ...]``.

    The first step starts at 0 s, starts increase, the last rate holds for ever; a rate of 0
    (an idle spell) is allowed except in the last step.
    """

    process: Literal["steps"] = "steps"
    steps: list[Annotated[list[Annotated[float, Field(ge=0, le=limits.MAX_SECONDS)]],
                          Field(min_length=2, max_length=2)]] = Field(
        min_length=1, max_length=100_000, description="[start_s, rate] pairs: from start_s on, rate requests/s.")

    @model_validator(mode="after")
    def _ordered(self):
        if self.steps[0][0] != 0:
            raise ValueError(f"expected the first step to start at 0 s, got {self.steps[0][0]}")
        for i in range(1, len(self.steps)):
            if self.steps[i][0] <= self.steps[i - 1][0]:
                raise ValueError(f"expected increasing start times, got {self.steps[i][0]} "
                                 f"after {self.steps[i - 1][0]} at steps[{i}]")
        if self.steps[-1][1] <= 0:
            raise ValueError("expected a last rate > 0 (it holds for the rest of the run), "
                             f"got {self.steps[-1][1]}")
        return self


class DiurnalArrival(_Strict):
    """Poisson arrivals under a sinusoidal rate, the day/night swing of a production service.

    rate(t) = mean_rate * (1 + amplitude * sin(2*pi*(t - phase_s) / period_s)).
    """

    process: Literal["diurnal"] = "diurnal"
    mean_rate: Rate = Field(description="Rate averaged over a period, requests/s.")
    amplitude: float = Field(ge=0, lt=1, description="Relative swing: the rate runs from "
                             "mean_rate*(1-amplitude) to mean_rate*(1+amplitude).")
    period_s: PositiveSeconds = Field(description="Length of one cycle, seconds (86400 = a day).")
    phase_s: float = Field(0.0, ge=-limits.MAX_SECONDS, le=limits.MAX_SECONDS, description="Time at which the rate crosses its mean rising; "
                           "the peak comes a quarter period later.")


class OfflineArrival(_Strict):
    """Every request present at t = 0 (an offline batch job)."""

    process: Literal["offline"] = "offline"


ArrivalConfig = Annotated[PoissonArrival | GammaArrival | StepsArrival | DiurnalArrival
                          | OfflineArrival, Field(discriminator="process")]
"""An open-loop arrival process, chosen by its ``process`` key."""


# ---------------------------------------------------------------------------------------------
# Request classes and mixes


class SLOConfig(_Strict):
    """Latency targets a request must meet to count towards goodput (vLLM bench's ``--goodput``).

    All in milliseconds; a request meets the SLO when each given metric is ``<=`` its target.
    """

    ttft_ms: Milliseconds | None = Field(None, description="Time to first token.")
    tpot_ms: Milliseconds | None = Field(None, description="Time per output token after the "
                                          "first: (e2e - ttft) / (output - 1).")
    itl_ms: Milliseconds | None = Field(None, description="Every gap between two tokens.")
    e2el_ms: Milliseconds | None = Field(None, description="End-to-end latency.")

    def targets(self) -> dict[str, float]:
        """The targets that are set, e.g. ``{"ttft_ms": 500.0}``."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class ClassConfig(_Strict):
    """One request class of a mix: a share of the requests with its own lengths and SLO.

    Lengths come either from another ``mix`` (a shipped name such as ``chat``) or from
    ``prompt_tokens`` + ``output_tokens``.
    """

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-/]+$",
                      description="Class name, as reported per class in the results.")
    weight: Annotated[float, Field(gt=0, le=1e12)] = Field(description="Relative share of requests (weights are "
                                  "normalised over the classes).")
    mix: str | None = Field(None, description="Named mix giving this class's lengths.")
    prompt_tokens: LengthDist | None = None
    output_tokens: LengthDist | None = None
    slo: SLOConfig | None = Field(None, description="This class's latency targets; they "
                                  "override those of the named mix.")

    @model_validator(mode="after")
    def _one_length_source(self):
        _check_lengths(self.mix is not None, self.prompt_tokens, self.output_tokens, "mix")
        return self


class MixSpec(_Strict):
    """A request mix: one class (``prompt_tokens`` + ``output_tokens``) or weighted ``classes``.

    Shipped mixes live in ``workloads/<name>.yaml`` and record where their numbers come from in
    ``sources`` and ``derivation``.
    """

    description: str = ""
    sources: dict[str, str] = Field(default_factory=dict, description="What each number rests "
                                    "on: field -> citation.")
    derivation: str = Field("", description="How the distributions were fitted.")
    prompt_tokens: LengthDist | None = None
    output_tokens: LengthDist | None = None
    slo: SLOConfig | None = Field(None, description="Default latency targets of this mix.")
    classes: list[ClassConfig] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_length_source(self):
        _check_lengths(self.classes is not None, self.prompt_tokens, self.output_tokens,
                       "classes")
        if self.classes is not None:
            names = [c.name for c in self.classes]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"expected distinct class names, got {', '.join(dupes)} twice")
        return self


def _check_lengths(has_other: bool, prompt, output, other: str) -> None:
    for dist, field in ((prompt, "prompt_tokens"), (output, "output_tokens")):
        if dist is not None:
            check_centre_within_bounds(dist, field)
    given = (prompt is not None) + (output is not None)
    if has_other and given:
        raise ValueError(f"expected either {other} or prompt_tokens + output_tokens, got both")
    if not has_other and given < 2:
        missing = "prompt_tokens" if prompt is None else "output_tokens"
        raise ValueError(f"expected {other} or prompt_tokens + output_tokens, got no {missing}"
                         if given else f"expected {other} or prompt_tokens + output_tokens, "
                         "got neither")


def _mix_kind(value: Any) -> str:
    return "name" if isinstance(value, str) else "inline"


MixRef = Annotated[Annotated[str, Tag("name")] | Annotated[MixSpec, Tag("inline")],
                   Discriminator(_mix_kind)]
"""A mix: a name (``chat``, or a YAML file path) or an inline mapping."""


# ---------------------------------------------------------------------------------------------
# Traces


class TraceConfig(_Strict):
    """Replay a recorded trace. Times are relative to its first arrival.

    Formats: ``azure`` (2023/2024 CSV), ``mooncake`` (FAST'25 JSONL, with prefix block hashes),
    ``burstgpt`` (CSV; failed rows with 0 response tokens are dropped) and ``lengths`` (a CSV of
    prompt/output lengths without timestamps; give the workload an ``arrival`` or
    ``concurrency``). Gzipped files are read as they are.
    """

    format: Literal["azure", "mooncake", "burstgpt", "lengths"] = Field(
        description=f"Trace format: {', '.join(TRACE_FORMATS)}.")
    path: str = Field(min_length=1, description="Trace file; a relative path is taken from "
                      "the scenario file's folder.")
    speedup: Annotated[float, Field(ge=1.0 / limits.MAX_SPEEDUP, le=limits.MAX_SPEEDUP)] = Field(1.0, description="Divides every inter-arrival time "
                                   "(2 = twice the request rate).")
    window_s: Annotated[list[Seconds], Field(min_length=2, max_length=2)] | None = Field(
        None, description="[start, end): keep requests arriving this many seconds after the "
        "trace's first arrival (trace time, before speedup).")
    max_requests: Annotated[int, Field(ge=1, le=limits.MAX_REQUESTS)] | None = Field(None, description="Keep only the earliest N.")
    prompt_column: str | None = Field(None, description="lengths format: prompt column "
                                      "(default: a known name such as num_prefill_tokens).")
    output_column: str | None = Field(None, description="lengths format: output column.")
    model: str | None = Field(None, description="burstgpt format: keep only this Model value.")
    ordered: bool = Field(False, description="The file is in arrival order (published traces "
                          "are): reading stops once past window_s or the request cap, and a row "
                          "out of order is an error. False: the whole file is read and sorted.")
    shuffle: bool = Field(False, description="lengths format: draw rows in a random order "
                          "(from the run's seed) instead of file order.")

    @model_validator(mode="after")
    def _consistent(self):
        if self.window_s is not None and self.window_s[1] <= self.window_s[0]:
            raise ValueError(f"expected window_s end > start, got {list(self.window_s)}")
        if self.format != "lengths":
            for name in ("prompt_column", "output_column"):
                if getattr(self, name) is not None:
                    raise ValueError(f"expected {name} only with format 'lengths', got it with "
                                     f"{self.format!r}")
            if self.shuffle:
                raise ValueError("expected shuffle only with format 'lengths' (a timed trace "
                                 "keeps its order)")
        elif self.window_s is not None or self.ordered:
            raise ValueError("expected no window_s or ordered with format 'lengths' (it has no "
                             "timestamps)")
        if self.model is not None and self.format != "burstgpt":
            raise ValueError(f"expected model only with format 'burstgpt', got it with "
                             f"{self.format!r}")
        return self


# ---------------------------------------------------------------------------------------------
# The workload section


class WorkloadConfig(_Strict):
    """The scenario's ``workload:`` section: when requests arrive, how long they are, how many.

    Lengths: exactly one of ``prompt_tokens`` + ``output_tokens``, ``mix`` or ``trace``.
    Timing: ``arrival`` (open loop) or ``concurrency`` (closed loop), not both; a timed trace
    needs neither. ``requests`` is the number of requests to generate (required unless replaying
    a trace, where it caps the replay).
    """

    arrival: ArrivalConfig | None = Field(None, description="Open-loop arrival process.")
    concurrency: Annotated[int, Field(ge=1, le=limits.MAX_CONCURRENCY)] | None = Field(None, description="Closed loop: this many users, "
                                            "each sending its next request when its last one "
                                            "finishes (plus think time).")
    think_time_s: Seconds = Field(0.0, description="Closed loop: mean pause between "
                                           "a response and the user's next request.")
    think_dist: Literal["fixed", "exponential"] = Field("fixed", description="Closed loop: "
                                                        "think time always the mean, or "
                                                        "exponentially distributed.")
    requests: Annotated[int, Field(ge=1, le=limits.MAX_REQUESTS)] | None = Field(None, description="Number of requests (a cap for "
                                         "traces).")
    prompt_tokens: LengthDist | None = Field(None, description="Prompt length distribution.")
    output_tokens: LengthDist | None = Field(None, description="Output length distribution.")
    mix: MixRef | None = Field(None, description="A named mix (workloads/<name>.yaml, "
                               "e.g. chat) or an inline {classes: [...]}.")
    trace: TraceConfig | None = Field(None, description="Replay a recorded trace.")
    slo: SLOConfig | None = Field(None, description="Latency targets for every class that "
                                  "sets none of its own.")

    @field_validator("mix")
    @classmethod
    def _mix_name(cls, value):
        if isinstance(value, str) and not value.strip():
            raise ValueError("expected a mix name such as 'chat', got an empty string")
        return value

    @model_validator(mode="after")
    def _consistent(self):
        sources = [name for name, present in (
            ("prompt_tokens/output_tokens", self.prompt_tokens is not None
             or self.output_tokens is not None),
            ("mix", self.mix is not None), ("trace", self.trace is not None)) if present]
        if len(sources) != 1:
            raise ValueError("expected exactly one of prompt_tokens + output_tokens, mix or "
                             f"trace, got {' and '.join(sources) if sources else 'none'}")
        if sources[0].startswith("prompt") and (self.prompt_tokens is None
                                                or self.output_tokens is None):
            missing = "prompt_tokens" if self.prompt_tokens is None else "output_tokens"
            raise ValueError(f"expected both prompt_tokens and output_tokens, got no {missing}")
        for dist, field in ((self.prompt_tokens, "prompt_tokens"),
                            (self.output_tokens, "output_tokens")):
            if dist is not None:
                check_centre_within_bounds(dist, field)
        if self.arrival is not None and self.concurrency is not None:
            raise ValueError("expected arrival (open loop) or concurrency (closed loop), "
                             "got both")
        timed_trace = self.trace is not None and self.trace.format != "lengths"
        if self.arrival is None and self.concurrency is None and not timed_trace:
            why = " (a lengths trace has no timestamps)" if self.trace is not None else ""
            raise ValueError("expected an arrival process (e.g. {process: poisson, rate: 10}) "
                             f"or concurrency{why}, got neither")
        if self.requests is None and self.trace is None:
            raise ValueError("expected requests (how many to generate), got none")
        if self.trace is not None and self.trace.speedup != 1 and (
                self.arrival is not None or self.concurrency is not None):
            raise ValueError("expected trace.speedup only when replaying the trace's own "
                             "timestamps, got it with arrival/concurrency")
        if self.concurrency is None and (self.think_time_s != 0 or self.think_dist != "fixed"):
            raise ValueError("expected think_time_s/think_dist only with concurrency "
                             "(closed loop)")
        return self


# ---------------------------------------------------------------------------------------------
# Validation at the edge


def parse_workload(data: Any, *, file: str | None = None,
                   prefix: str = "workload") -> WorkloadConfig:
    """Validate a ``workload:`` mapping, raising one-line :class:`InfersimError` on bad input."""
    try:
        return WorkloadConfig.model_validate(data)
    except ValidationError as exc:
        raise error_from_validation(exc, data, file, root=WorkloadConfig,
                                    prefix=prefix.split(".") if prefix else ()) from None
