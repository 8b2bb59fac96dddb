"""Steady-state throughput and latency of one instance, in closed form (no simulation).

These estimators turn step times into the figures benchmarks publish, so the cost model can be
calibrated against them and a planner can size a fleet before simulating it.

**Offline, maximum load** (``trtllm-bench``, ``vllm benchmark_throughput``): the engine always has
waiting requests, so continuous batching keeps ``B`` sequences decoding, where ``B`` is the
smaller of the engine's ``max_batch_size`` and the number of requests whose KV cache fits. A
running request occupies, on average over its time in the batch (weighted by its output length,
the time it stays), ``E[in] + E[out²]/E[out]`` tokens of KV when the engine reserves the whole
request up front (TensorRT-LLM's default ``GUARANTEED_NO_EVICT`` policy) or
``E[in] + E[out²]/(2 E[out])`` when it allocates blocks as tokens appear (vLLM). Each decode step
makes ``B`` tokens while the batch attends to ``E[in] + E[out²]/(2 E[out])`` tokens per sequence.
Over a cycle in which ``B`` requests finish and ``B`` new ones are prefilled:

    cycle = (E[out] − 1) · t_decode(B)  +  (B / P) · Δ_prefill
    output tokens/s = B · E[out] / cycle

where ``P`` prompts share one prefill step (the engine's token budget ``max_num_tokens`` over
``E[in]``) and ``Δ_prefill`` is what those prompts add: a whole prefill-only step when the engine
prefills apart from decoding (vLLM 0.6's default), or the growth of a decode step they ride in
(TensorRT-LLM's in-flight batching, vLLM's chunked prefill), which shares the weight read.

**Online, Poisson arrivals at rate λ** (``benchmark_serving``): by Little's law the running batch
is ``N = λ · E[out] · TPOT(N)``, solved as a fixed point. Prefill steps interrupt decoding a
fraction ``λ · t_prefill`` of the time, so ``TPOT = t_decode(N) / (1 − λ · t_prefill)``. TTFT is the
prefill of the median prompt plus the wait for the step group already running: on average half
of ``scheduler_steps`` decode steps (vLLM 0.6's multi-step scheduling runs that many decode steps per
scheduling decision), plus one more step when the engine hands tokens out asynchronously
(vLLM 0.6 overlaps a step's output processing with the next step, so every token, the first
included, reaches the user a step late).

**Pipeline parallelism** (``pp > 1``): the running batch, up to ``max_batch_size`` per stage, is
split into as many micro-batches as there are stages and one decode round of all of them takes a
pipeline cycle
(:mod:`infersim.cost.pipeline`); a single stream is one micro-batch walking every stage.

Lengths are given as means (and second moment of the output length); a lognormal fit of
ShareGPT is provided by :func:`lognormal_lengths`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from infersim.cost.memory import check_fits, placement
from infersim.cost.pipeline import decode_round_coefficients
from infersim.cost.step import decode_step_coefficients, prefill_time, step_time
from infersim.cost.types import Deployment, StepBatch
from infersim.errors import InfersimError


@dataclass(frozen=True)
class EngineConfig:
    """The serving engine's batching policy, as far as steady-state throughput depends on it."""

    name: str
    max_batch_size: int          # most sequences in one step
    max_num_tokens: int          # most prompt tokens prefilled in one step
    kv_reservation: Literal["full", "on_demand"]
    mixed_batching: bool         # prefill tokens ride in decode steps (in-flight / chunked)
    scheduler_steps: int = 1     # decode steps per scheduling decision (vLLM multi-step)
    async_output: bool = False   # tokens reach the user one step late (vLLM 0.6 async output)
    memory_fraction: float = 0.9

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "max_num_tokens", "scheduler_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InfersimError(field=f"engine.{name}", expected="an integer >= 1", given=value)
        if self.kv_reservation not in ("full", "on_demand"):
            raise InfersimError(field="engine.kv_reservation", expected="full or on_demand",
                                given=self.kv_reservation)


# TensorRT-LLM (trtllm-bench): build defaults max_batch_size 2048 and max_num_tokens 8192,
# in-flight batching of context and generation requests, GUARANTEED_NO_EVICT KV reservation,
# kv_cache_free_gpu_mem_fraction 0.9.
TENSORRT_LLM = EngineConfig(name="tensorrt-llm", max_batch_size=2048, max_num_tokens=8192,
                            kv_reservation="full", mixed_batching=True)


def vllm_060(max_model_len: int = 8192, *, scheduler_steps: int = 1) -> EngineConfig:
    """vLLM 0.6.0 defaults: ``max_num_seqs`` 256, prefill-only steps (chunked prefill off below
    32K context) of up to ``max(max_model_len, 2048)`` tokens, KV blocks allocated on demand,
    ``gpu_memory_utilization`` 0.9, and asynchronous output processing (a step's tokens are
    detokenised and sent while the next step runs). Its v0.6.0 benchmarks ran multi-step scheduling with 10
    steps (``--num-scheduler-steps 10``)."""
    return EngineConfig(name="vllm-0.6", max_batch_size=256,
                        max_num_tokens=max(max_model_len, 2048), kv_reservation="on_demand",
                        mixed_batching=False, scheduler_steps=scheduler_steps,
                        async_output=True)


@dataclass(frozen=True)
class LengthStats:
    """Prompt and output lengths of a workload, as the moments the estimators need."""

    mean_input: float
    mean_output: float
    median_input: float | None = None     # None: equal to the mean (fixed lengths)
    output_second_moment: float | None = None  # E[out²]; None: fixed lengths (mean²)

    @property
    def input_median(self) -> float:
        return self.mean_input if self.median_input is None else self.median_input

    @property
    def output_sq(self) -> float:
        m2 = self.output_second_moment
        return self.mean_output ** 2 if m2 is None else m2

    @property
    def mean_decode_context(self) -> float:
        """Mean KV length a decoding sequence attends to, over the batch at a random step."""
        return self.mean_input + self.output_sq / (2.0 * self.mean_output)


def fixed_lengths(prompt_tokens: int, output_tokens: int) -> LengthStats:
    """Every request ``prompt_tokens`` in and ``output_tokens`` out (``trtllm-bench`` ISL/OSL)."""
    return LengthStats(mean_input=float(prompt_tokens), mean_output=float(output_tokens))


def lognormal_lengths(mean_input: float, mean_output: float, sigma_input: float = 1.0,
                      sigma_output: float = 1.0) -> LengthStats:
    """Lognormal prompt and output lengths with the given means and log-space spreads.

    ShareGPT as filtered by vLLM's benchmarks is well described by means ≈ 230 in and ≈ 200 out
    and σ ≈ 1 for both (a long tail: the median is ``mean·e^(−σ²/2)``).
    """
    return LengthStats(mean_input=mean_input, mean_output=mean_output,
                       median_input=mean_input * math.exp(-sigma_input ** 2 / 2.0),
                       output_second_moment=mean_output ** 2 * math.exp(sigma_output ** 2))


@dataclass(frozen=True)
class OfflineEstimate:
    output_tokens_per_s: float
    requests_per_s: float
    batch_size: int
    limited_by: Literal["max_batch_size", "kv_capacity"]
    decode_step_s: float
    prefill_s_per_request: float


@dataclass(frozen=True)
class OnlineEstimate:
    running_batch: float
    ttft_s: float
    tpot_s: float
    decode_step_s: float
    prefill_s: float
    utilisation: float      # fraction of time the instance is busy prefilling


def batch_limit(dep: Deployment, engine: EngineConfig) -> int:
    """Most sequences ``dep`` runs at once under ``engine``: ``max_batch_size`` per micro-batch,
    one micro-batch per pipeline stage (vLLM runs one scheduler, each with its own
    ``max_num_seqs``, per pipeline stage; TensorRT-LLM likewise keeps ``pp`` micro-batches)."""
    return engine.max_batch_size * dep.pp


def _decode_step(dep: Deployment, batch: float, context: float) -> float:
    """Time for every running sequence to advance one token at a possibly fractional batch size
    (linear between integers). With ``pp > 1`` the batch runs as micro-batches in flight through
    the stages (:mod:`infersim.cost.pipeline`): one round of all of them takes a pipeline cycle.
    """
    if batch <= 0:
        return 0.0
    if dep.pp > 1:
        return _pipelined_decode_round(dep, batch, context)
    lo = max(1, math.floor(batch))
    hi = lo + 1
    a_lo, b = decode_step_coefficients(dep, lo)
    t_lo = a_lo + b * lo * context
    if batch <= lo:
        return t_lo
    a_hi, _ = decode_step_coefficients(dep, hi)
    t_hi = a_hi + b * hi * context
    return t_lo + (t_hi - t_lo) * (batch - lo)


def _pipelined_decode_round(dep: Deployment, batch: float, context: float) -> float:
    """One decode round of ``batch`` sequences at ``context`` tokens each, as micro-batches in
    flight (:func:`~infersim.cost.pipeline.decode_round_coefficients`)."""
    running = max(1, round(batch))
    a, b = decode_round_coefficients(dep, running)
    return a + b * running * max(1, round(context))


def offline_throughput(dep: Deployment, lengths: LengthStats, engine: EngineConfig) -> OfflineEstimate:
    """Output tokens/s of ``dep`` at maximum load (see the module docstring)."""
    place = placement(dep, engine.memory_fraction)
    if not place.fits:
        raise InfersimError(field="deployment",
                            expected=f"a deployment that fits ({place.min_chips} chips)",
                            given=dep.describe())
    mean_in, mean_out = lengths.mean_input, lengths.mean_output
    if engine.kv_reservation == "full":
        kv_per_request = mean_in + lengths.output_sq / mean_out
    else:
        kv_per_request = mean_in + lengths.output_sq / (2.0 * mean_out)
    kv_batch = math.floor(place.kv_capacity_tokens / kv_per_request)
    if kv_batch < 1:
        raise InfersimError(field="deployment",
                            expected=f"KV room for one request of {kv_per_request:.0f} tokens",
                            given=f"{place.kv_capacity_tokens} tokens on {dep.describe()}")
    batch = min(batch_limit(dep, engine), kv_batch)
    limited_by: Literal["max_batch_size", "kv_capacity"] = (
        "max_batch_size" if batch == batch_limit(dep, engine) else "kv_capacity")
    context = lengths.mean_decode_context
    t_decode = _decode_step(dep, batch, context)

    prompt = max(1, round(mean_in))
    if engine.mixed_batching:
        # The step's token budget covers the decode tokens too (TensorRT-LLM counts both).
        budget = max(prompt, engine.max_num_tokens - batch)
        per_step = max(1, min(budget // prompt, batch))
        mixed = step_time(dep, StepBatch(prefill_new_tokens=(prompt,) * per_step,
                                         decode_kv_lens=(round(context),) * batch)).time_s
        plain = step_time(dep, StepBatch(decode_kv_lens=(round(context),) * batch)).time_s
        prefill_per_request = (mixed - plain) / per_step
    else:
        per_step = max(1, min(engine.max_num_tokens // prompt, engine.max_batch_size))
        prefill_per_request = prefill_time(dep, (prompt,) * per_step) / per_step

    cycle = (mean_out - 1.0) * t_decode + batch * prefill_per_request
    tokens_per_s = batch * mean_out / cycle
    return OfflineEstimate(output_tokens_per_s=tokens_per_s,
                           requests_per_s=tokens_per_s / mean_out, batch_size=batch,
                           limited_by=limited_by, decode_step_s=t_decode,
                           prefill_s_per_request=prefill_per_request)


def online_latency(dep: Deployment, lengths: LengthStats, rate: float,
                   engine: EngineConfig) -> OnlineEstimate:
    """Median-like TTFT and TPOT at Poisson arrivals of ``rate`` requests/s (module docstring)."""
    if not rate > 0:
        raise InfersimError(field="rate", expected="a positive request rate", given=rate)
    prompt = max(1, round(lengths.mean_input))
    prefill_mean = prefill_time(dep, (prompt,))
    busy = rate * prefill_mean
    if busy >= 1.0:
        raise InfersimError(field="rate",
                            expected=f"below {1.0 / prefill_mean:.3g} req/s, the prefill capacity "
                            f"of {dep.describe()}", given=rate)
    context = lengths.mean_decode_context
    # Little's law fixed point; N ↦ λ·E[out]·TPOT(N) is increasing and concave, so plain
    # iteration from N = 1 converges monotonically when a finite solution exists.
    running = 1.0
    for _ in range(200):
        tpot = _decode_step(dep, running, context) / (1.0 - busy)
        updated = max(1.0, rate * lengths.mean_output * tpot)
        if updated > 10.0 * batch_limit(dep, engine):
            raise InfersimError(field="rate", expected="a load the instance can sustain",
                                given=rate)
        if abs(updated - running) < 1e-9 * updated:
            running = updated
            break
        running = updated
    running = min(running, float(batch_limit(dep, engine)))
    t_decode = _decode_step(dep, running, context)
    tpot = t_decode / (1.0 - busy)
    median_prompt = max(1, round(lengths.input_median))
    wait = engine.scheduler_steps * tpot / 2.0
    delivery = tpot if engine.async_output else 0.0
    ttft = prefill_time(dep, (median_prompt,)) + wait + delivery
    return OnlineEstimate(running_batch=running, ttft_s=ttft, tpot_s=tpot, decode_step_s=t_decode,
                          prefill_s=prefill_mean, utilisation=busy)


def single_stream(dep: Deployment, prompt_tokens: int, output_tokens: int, *,
                  memory_fraction: float = 0.9) -> tuple[float, float]:
    """(TTFT, mean inter-token latency) of one request alone on the instance, in seconds.

    InfersimError, naming the chips it would take, when the instance cannot hold the request's
    own KV cache (prompt + output tokens) beside the weights: a speed for a deployment that
    cannot serve the request is no prediction.
    """
    check_fits(dep, memory_fraction, min_kv_tokens=prompt_tokens + output_tokens)
    ttft = prefill_time(dep, (prompt_tokens,))
    a, b = decode_step_coefficients(dep, 1)
    # Mean over the decode steps of a + b·k for k = prompt+1 … prompt+output−1.
    mean_context = prompt_tokens + output_tokens / 2.0
    return ttft, a + b * mean_context


@dataclass(frozen=True)
class ClosedLoopEstimate:
    running_batch: int           # sequences in the batch (the rest of the users wait)
    ttft_s: float                # mean, queueing for a batch slot included
    tpot_s: float
    e2e_s: float
    output_tokens_per_s: float
    limited_by: Literal["users", "max_batch_size", "kv_capacity"]


def closed_loop(dep: Deployment, prompt_tokens: int, output_tokens: int, users: int,
                engine: EngineConfig) -> ClosedLoopEstimate:
    """Steady state of ``users`` clients that each send their next request (fixed lengths) as
    soon as the last one finishes (AIPerf's / GenAI-Perf's concurrency mode).

    The batch runs ``n = min(users, max_batch_size, KV room)`` requests; the others queue for a
    slot. Requests finish at rate ``X`` and each new prompt costs its share ``Δ`` of the steps it
    rides in (mixed batching) or a step of its own, so, as for Poisson arrivals,
    ``TPOT = t_decode(n) / (1 − X·Δ)``; a request holds its slot for ``TTFT_slot + (out − 1)·TPOT``
    with ``TTFT_slot`` = half a decode step of waiting, an M/D/1 wait for the prompts ahead of it,
    plus the step that prefills it, and
    ``X = n / slot time`` (a quadratic in TPOT, solved exactly). Little's law over all users gives the wait of
    the queued ones: ``E2E = users / X``. One user alone gets ``prefill + (out − 1)·decode(1)``.
    """
    if isinstance(users, bool) or not isinstance(users, int) or users < 1:
        raise InfersimError(field="users", expected="an integer >= 1", given=users)
    place = placement(dep, engine.memory_fraction)
    if not place.fits:
        raise InfersimError(field="deployment",
                            expected=f"a deployment that fits ({place.min_chips} chips)",
                            given=dep.describe())
    reserve = prompt_tokens + (output_tokens if engine.kv_reservation == "full"
                               else output_tokens / 2.0)
    room = math.floor(place.kv_capacity_tokens / reserve)
    if room < 1:
        raise InfersimError(field="deployment",
                            expected=f"KV room for one request of {reserve:.0f} tokens",
                            given=f"{place.kv_capacity_tokens} tokens on {dep.describe()}")
    running = min(users, batch_limit(dep, engine), room)
    limited_by: Literal["users", "max_batch_size", "kv_capacity"] = (
        "users" if running == users else
        "max_batch_size" if running == batch_limit(dep, engine) else "kv_capacity")
    context = prompt_tokens + output_tokens / 2.0
    decode = _decode_step(dep, running, context)
    if running == 1:
        ttft_slot = prefill_time(dep, (prompt_tokens,))
        tpot = decode
    else:
        others = (max(1, round(context)),) * (running - 1)
        if engine.mixed_batching:
            with_prompt = step_time(dep, StepBatch(prefill_new_tokens=(prompt_tokens,),
                                                   decode_kv_lens=others)).time_s
            prompt_share = with_prompt - step_time(dep, StepBatch(decode_kv_lens=others)).time_s
        else:
            with_prompt = prompt_share = prefill_time(dep, (prompt_tokens,))
        # A prompt also waits for the prompts ahead of it: the steps that prefill them arrive
        # about at random (many users), so an M/D/1 wait rho·Δ / (2(1 − rho)) at prefill load
        # rho = X·Δ. TTFT_slot and X depend on each other; a few rounds settle them.
        ttft_slot = decode / 2.0 + with_prompt
        tpot = _closed_loop_tpot(decode, prompt_share * running, ttft_slot, output_tokens - 1)
        for _ in range(50):
            load = min(0.99, running / (ttft_slot + (output_tokens - 1) * tpot) * prompt_share)
            settled = decode / 2.0 + with_prompt + load * prompt_share / (2.0 * (1.0 - load))
            tpot = _closed_loop_tpot(decode, prompt_share * running, settled,
                                     output_tokens - 1)
            if abs(settled - ttft_slot) <= 1e-12 * settled:
                break
            ttft_slot = settled
    slot = ttft_slot + (output_tokens - 1) * tpot
    rate = running / slot
    e2e = users / rate if users > running else slot
    ttft = e2e - (output_tokens - 1) * tpot
    return ClosedLoopEstimate(running_batch=running, ttft_s=ttft, tpot_s=tpot, e2e_s=e2e,
                              output_tokens_per_s=users / e2e * output_tokens,
                              limited_by=limited_by)


def _closed_loop_tpot(decode_s: float, prompts_s: float, ttft_slot_s: float, steps: int) -> float:
    """The TPOT ``t`` with ``t = d / (1 − X·Δ)`` and ``X = n / (T0 + k·t)``: with ``P = n·Δ``,
    ``k·t² + (T0 − P − k·d)·t − d·T0 = 0``, whose positive root it returns (``d`` when no decode
    steps follow the first token)."""
    if steps <= 0:
        return decode_s
    b = ttft_slot_s - prompts_s - steps * decode_s
    return (-b + math.sqrt(b * b + 4.0 * steps * decode_s * ttft_slot_s)) / (2.0 * steps)


def batch_latency(dep: Deployment, batch: int, prompt_tokens: int, output_tokens: int) -> float:
    """Seconds for one batch of ``batch`` equal requests to finish together (vLLM's
    ``benchmark_latency``): one prefill step of all prompts, then ``output − 1`` decode steps at
    the batch's mean context ``prompt + output/2``."""
    check_fits(dep, min_kv_tokens=batch * (prompt_tokens + output_tokens))
    a, b = decode_step_coefficients(dep, batch)
    prefill = prefill_time(dep, (prompt_tokens,) * batch)
    return prefill + (output_tokens - 1) * (a + b * batch * (prompt_tokens + output_tokens / 2.0))
