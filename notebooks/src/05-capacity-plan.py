# ruff: noqa: E402 (the tagged parameters cell comes first, before the imports, by design)
# %% [markdown]
# # 05 · A capacity plan for a real trace, checked at twice the load
#
# **Question.** Ten minutes of Azure's production conversation service (the 2023 Azure LLM
# inference trace) is to be served with Llama-3.1-70B within a p99 TTFT of 1 s and a p99
# inter-token latency of 50 ms. Which cluster — which chips, how many, colocated or split into
# prefill and decode pools — is the cheapest that holds those SLOs? And does the plan survive
# when the traffic doubles?
#
# The trace is not part of infersim (its licence asks for it to be fetched from its source). The
# notebook reads it from the `INFERSIM_AZURE_CONV_TRACE` environment variable or the `TRACE_PATH`
# parameter; when the file is absent it falls back to the shipped `chat` mix, whose length
# tables were fitted to the same trace, with gamma arrivals at the trace's measured rate and
# burstiness — and says so.
#
# The planner (`infersim.plan.planner.plan_capacity`) sizes candidate clusters with the cost
# model, confirms the cheapest by simulation at the trace's rate, and finds each confirmed plan's
# highest sustainable rate. It plans against a gamma process fitted to the trace's arrivals (a
# rate it can scale), with a stated headroom over the measured rate; the plan is then checked
# against the trace's own arrival times, replayed as recorded and twice as fast.

# %% tags=["parameters"]
import os

TRACE_PATH = (os.environ.get("INFERSIM_AZURE_CONV_TRACE")
              or "../../shared/traces/azure-2023/AzureLLMInferenceTrace_conv.csv")
WINDOW_S = [0, 600]              # seconds of the trace to replay (from its first request)
MODEL = "llama-3.1-70b"
HARDWARE = ["h100", "b200", "mi300x"]
SLO = {"ttft_ms": 1000, "itl_ms": 50, "percentile": 99}
PLAN_REQUESTS = 600              # requests per planner simulation: small, for speed
SEEDS = 2                        # seeds each finalist is confirmed over (infersim plan: 3)
LOAD_FACTORS = [1, 2]            # the plan is checked at these multiples of the trace's rate
HEADROOM = 1.25                  # plan for this multiple of the measured rate: the trace's own
                                 # bursts and the planner's short runs need slack, as in practice
# Without the trace file: the shipped chat mix (fitted to it) at the trace's measured arrivals.
# Azure 2023 conversation trace: 19,366 requests in 3,502 s (5.53 requests/s); inter-arrival
# coefficient of variation 1.09, i.e. gamma shape (vLLM burstiness) 1 / 1.09² = 0.84.
FALLBACK_MIX = "chat"
FALLBACK_RATE = 5.53
FALLBACK_BURSTINESS = 0.84
SEED = 1

# %%
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

import infersim
from infersim.plan.executors import SerialExecutor
from infersim.plan.outputs import plans_table, verdict
from infersim.plan.planner import plan_capacity
from infersim.report.plots import plain_log_ticks
from infersim.slo import slo_of, slo_verdict
from infersim.workload import build_workload, parse_workload

trace_file = Path(TRACE_PATH).expanduser().resolve()
REPLAYED = trace_file.is_file()
if REPLAYED:
    lengths = {"trace": {"format": "azure", "path": str(trace_file), "window_s": WINDOW_S,
                         "ordered": True}}
    table = build_workload(parse_workload(lengths), np.random.default_rng(SEED))
    arrivals = np.asarray(table.arrival_s)
    gaps = np.diff(arrivals)
    rate = float(len(arrivals) / (WINDOW_S[1] - WINDOW_S[0]))
    burstiness = float(1.0 / (gaps.std() / gaps.mean()) ** 2)
    print(f"Replaying the Azure 2023 conversation trace from {trace_file}: "
          f"{len(arrivals)} requests in {WINDOW_S[1] - WINDOW_S[0]} s.")
else:
    rate, burstiness = FALLBACK_RATE, FALLBACK_BURSTINESS
    requests = math.ceil(rate * (WINDOW_S[1] - WINDOW_S[0]))
    lengths = {"mix": FALLBACK_MIX}
    synthetic = {"arrival": {"process": "gamma", "rate": rate, "burstiness": burstiness},
                 "requests": requests, **lengths}
    table = build_workload(parse_workload(synthetic), np.random.default_rng(SEED))
    arrivals = np.asarray(table.arrival_s)
    print(f"TRACE FILE NOT FOUND at {trace_file}: using the synthetic '{FALLBACK_MIX}' mix "
          f"(fitted to that trace) with gamma arrivals at {rate} requests/s, burstiness "
          f"{burstiness}. Set INFERSIM_AZURE_CONV_TRACE to replay the real trace.")
prompts = np.asarray(table.prompt_tokens)
outputs = np.asarray(table.output_tokens)
print(f"Rate {rate:.2f} requests/s, gamma shape (burstiness) {burstiness:.2f}; prompts mean "
      f"{prompts.mean():.0f} / median {np.median(prompts):.0f} / p99 "
      f"{np.percentile(prompts, 99):.0f} tokens; outputs mean {outputs.mean():.0f} / median "
      f"{np.median(outputs):.0f} / p99 {np.percentile(outputs, 99):.0f} tokens.")

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
bins = np.arange(0, arrivals.max() + 10, 10)
axes[0].hist(arrivals, bins=bins, color="#1f77b4")
axes[0].axhline(rate * 10, color="black", ls=":", lw=1, label=f"mean {rate:.2f} requests/s")
axes[0].set_xlabel("time since the first request (s)")
axes[0].set_ylabel("requests per 10 s")
axes[0].set_title("Arrivals" + (" (trace)" if REPLAYED else " (synthetic)"))
axes[0].legend(fontsize=8)
for ax, values, title in [(axes[1], prompts, "Prompt lengths"),
                          (axes[2], outputs, "Output lengths")]:
    ax.hist(values, bins=np.geomspace(max(1, values.min()), values.max() + 1, 50),
            color="#7f7f7f")
    ax.axvline(values.mean(), color="black", ls=":", lw=1, label=f"mean {values.mean():.0f}")
    ax.set_xscale("log")
    ax.set_xlabel("tokens")
    ax.set_ylabel("requests")
    ax.set_title(title)
    ax.legend(fontsize=8)
fig.suptitle("The load to plan for" + ("" if REPLAYED else " — SYNTHETIC fallback, trace absent"))
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Plan
#
# The base scenario states the model, the SLOs and the workload: the trace's lengths with gamma
# arrivals at its rate (or the synthetic stand-in). Its pools are placeholders that the planner
# replaces. The verdict the planner applies (`slo_verdict`): every request completes, every SLO
# percentile holds, and a set share of requests meets every target on its own.

# %%
base = {
    "name": "azure-conversation", "seed": SEED, "model": MODEL, "precision": "bf16",
    "pools": {"unified": {"role": "mixed", "hardware": HARDWARE[0], "instances": 1, "tp": 8}},
    "workload": {"arrival": {"process": "gamma", "rate": round(rate, 6),
                             "burstiness": round(burstiness, 6)},
                 "requests": PLAN_REQUESTS, **lengths},
    "slo": SLO,
}
slo = slo_of(infersim.load_scenario(base))
print(f"Planning for {rate * HEADROOM:.2f} requests/s ({rate:.2f} measured × {HEADROOM:g} headroom) "
      f"on {', '.join(HARDWARE)}: p{slo.percentile:g} "
      + ", ".join(f"{metric.upper()} ≤ {target:g} ms" for metric, target in slo.targets().items())
      + f", with at least {slo.attainment:.0%} of requests inside every target on their own.")

outcome = plan_capacity(base, rate=rate * HEADROOM, hardware=HARDWARE, executor=SerialExecutor(),
                        requests=PLAN_REQUESTS, seed=SEED, seeds=SEEDS)
plans = plans_table(outcome)
print(verdict(outcome))
print(f"{len(plans)} candidates admitted by the cost model, {len(outcome.pruned)} shapes pruned, "
      f"{outcome.simulations} simulations.")
display(plans[["rank", "layout", "plan", "chips", "cost_per_hour", "slo_met", "reason",
               slo.summary_key("ttft"), slo.summary_key("itl"), "max_rate"]].head(12))

# %%
ttft_key, itl_key = slo.summary_key("ttft"), slo.summary_key("itl")
simulated = plans[plans.simulated]
fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
styles = {"colocated": ("s", "#ff7f0e"), "disaggregated": ("o", "#1f77b4")}
for layout, part in simulated.groupby("layout"):
    marker, color = styles[layout]
    for met in (True, False):
        sub = part[part.slo_met == met]
        for ax, key in zip(axes, [ttft_key, itl_key], strict=True):
            ax.scatter(sub["cost_per_hour"], sub[key], marker=marker, s=50,
                       facecolor=color if met else "white", edgecolor=color,
                       label=f"{layout}, {'meets' if met else 'misses'} the SLOs")
best = outcome.best
for ax, key, target in [(axes[0], ttft_key, SLO["ttft_ms"]), (axes[1], itl_key, SLO["itl_ms"])]:
    ax.axhline(target, color="black", ls=":", lw=1, label=f"SLO {target:g} ms")
    if best is not None:
        ax.scatter([best.candidate.cost_per_hour], [best.summary[key]], marker="*", s=300,
                   color="#d62728", edgecolor="black", zorder=3, label="the plan")
    ax.set_yscale("log")
    plain_log_ticks(ax.yaxis)
    ax.set_xlabel("cluster cost ($/h)")
    percentile, metric = key.removesuffix("_ms").split("_")
    ax.set_ylabel(f"{percentile} {metric.upper()} (ms)")
    ax.grid(True, which="both", alpha=0.3)
axes[0].set_title(f"TTFT of every simulated candidate at {rate:.2f} requests/s")
axes[1].set_title("Inter-token latency (hollow: missed some SLO)")
handles, labels = axes[0].get_legend_handles_labels()
unique = dict(zip(labels, handles, strict=True))
axes[0].legend(unique.values(), unique.keys(), fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Check the plan against the trace, as recorded and at twice the load
#
# The plan runs the replayed arrivals at each load factor (the trace's `speedup`, or the synthetic
# rate scaled). Where it fails at a higher load, the planner is asked again for that rate and its
# new plan is checked against the same replay.

# %%
if best is None:
    raise RuntimeError("no plan met the SLOs: widen HARDWARE or relax the SLO")
plan = outcome.best_scenario
window = WINDOW_S[1] - WINDOW_S[0]


def check_scenario(plan_data, factor):
    data = {**plan_data, "name": f"{plan_data['name']}-x{factor:g}"}
    if REPLAYED:
        workload = {"trace": {**lengths["trace"], "speedup": float(factor)},
                    "requests": len(arrivals)}
    else:
        workload = {"arrival": {"process": "gamma", "rate": rate * factor,
                                "burstiness": burstiness},
                    "requests": math.ceil(rate * factor * window), **lengths}
    data["workload"] = workload
    return data


def replan(factor):
    """The planner's answer for ``factor`` × the rate (same hardware, SLO and seed)."""
    return plan_capacity(base, rate=rate * factor * HEADROOM, hardware=HARDWARE,
                         executor=SerialExecutor(), requests=PLAN_REQUESTS, seed=SEED)


replans = {}
rows = []
for factor in LOAD_FACTORS:
    data = check_scenario(plan, factor)
    result = infersim.simulate(data)
    ok, reason = slo_verdict(result.summary, slo, data["workload"]["requests"])
    rows.append((f"plan at {factor:g}×", data, result, ok, reason))
    if not ok and factor > 1:
        replans[factor] = replan(factor)
        if replans[factor].best_scenario is not None:
            data = check_scenario(replans[factor].best_scenario, factor)
            result = infersim.simulate(data)
            ok, reason = slo_verdict(result.summary, slo, data["workload"]["requests"])
            rows.append((f"re-plan at {factor:g}×", data, result, ok, reason))


def describe(data):
    return " + ".join(f"{p['instances']}× {p['hardware']} tp{p['tp']} {p['role']}"
                      for p in data["pools"].values())


check_table = pd.DataFrame([{
    "check": label, "cluster": describe(data),
    "$/h": result.summary["cost"]["dollars_per_hour"],
    "requests": result.summary["completed"], "SLOs": "met" if ok else f"missed: {reason}",
    "p99 TTFT (ms)": result.summary[ttft_key], "p99 ITL (ms)": result.summary[itl_key],
    "within every SLO": result.summary["request_goodput"] / result.summary["request_throughput"],
    "$ per M output tokens": result.summary["cost"]["usd_per_million_output_tokens"],
} for label, data, result, ok, reason in rows]).set_index("check")
display(check_table.round(3))

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 4.6))
for (label, _, result, ok, _), color in zip(rows, ["#2ca02c", "#d62728", "#1f77b4", "#9467bd"],
                                            strict=False):
    done = result.requests[result.requests["completed"]]
    ttft = np.sort(done["ttft_s"].to_numpy() * 1e3)
    axes[0].plot(ttft, np.arange(1, len(ttft) + 1) / len(ttft), color=color,
                 label=f"{label} ({'meets' if ok else 'misses'} the SLOs)")
    gaps = result.token_gaps.sort_values("gap_s")
    cumulative = gaps["count"].cumsum() / gaps["count"].sum()
    axes[1].plot(gaps["gap_s"] * 1e3, cumulative, color=color, label=label)
for ax, target, xlabel, title in [
        (axes[0], SLO["ttft_ms"], "time to first token (ms)", "TTFT, every completed request"),
        (axes[1], SLO["itl_ms"], "gap between consecutive tokens (ms)",
         "Inter-token latency, every gap")]:
    ax.axvline(target, color="black", ls=":", lw=1, label=f"SLO {target:g} ms")
    ax.axhline(SLO["percentile"] / 100, color="grey", ls="--", lw=0.8,
               label=f"p{SLO['percentile']:g}")
    ax.set_xscale("log")
    plain_log_ticks(ax.xaxis)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction ≤ x")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
axes[0].legend(fontsize=8, loc="lower right")
fig.suptitle(f"The plan ({describe(plan)}) on the " + ("replayed trace" if REPLAYED else
                                                        "synthetic stand-in"))
fig.tight_layout()
plt.show()

# %% [markdown]
# ## What the numbers say
#
# Computed from the plan and the checks above.

# %%
source = ("the replayed Azure 2023 conversation trace" if REPLAYED else
          f"the synthetic '{FALLBACK_MIX}' stand-in (trace file absent)")
print(f"Load: {source}, {rate:.2f} requests/s.")
print(f"Cheapest plan meeting the SLOs: {describe(plan)} ({best.candidate.layout}), "
      f"${best.candidate.cost_per_hour:.2f}/h; the planner found it sustains up to "
      f"{best.max_rate:.2f} requests/s ({best.max_rate / rate:.1f}× the planned load).")
print(verdict(outcome) + ".")
for label, _, result, ok, reason in rows:
    s = result.summary
    print(f"{label}: {'meets' if ok else 'misses'} the SLOs"
          + ("" if ok else f" ({reason})")
          + f"; p99 TTFT {s[ttft_key]:.0f} ms, p99 ITL {s[itl_key]:.1f} ms, "
          f"{s['request_goodput'] / s['request_throughput']:.0%} of requests within every SLO, "
          f"${s['cost']['usd_per_million_output_tokens']:.2f} per million output tokens.")
top = max(LOAD_FACTORS)
at_top = [r for r in rows if r[0] == f"plan at {top:g}×"]
if at_top:
    ok = at_top[0][3]
    predicted = best.max_rate >= top * rate
    agreement = ("as the planner's sustainable rate predicted" if ok == predicted else
                 "unlike the planner's sustainable-rate estimate, which was found on the fitted "
                 "gamma arrivals rather than the trace's own timing")
    print(f"At {top:g}× the load the plan {'holds' if ok else 'fails'}, {agreement}.")
    rescue = [r for r in rows if r[0] == f"re-plan at {top:g}×"]
    if top in replans and not rescue:
        print(f"Re-planning at {top:g}× the rate found no plan within the SLOs on "
              f"{', '.join(HARDWARE)}.")
    if rescue:
        _, data, result, ok, reason = rescue[0]
        cost_now = result.summary["cost"]["dollars_per_hour"]
        print(f"The planner's plan for {top:g}× the load is {describe(data)} at "
              f"${cost_now:.2f}/h ({cost_now / best.candidate.cost_per_hour:.2f}× the first "
              f"plan's price for {top:g}× the traffic); against the "
              + ("replayed trace" if REPLAYED else "synthetic load") + " it "
              + ("meets the SLOs." if ok else
                 f"still misses them ({reason}): the planner confirmed it on {PLAN_REQUESTS} "
                 "requests with fitted gamma arrivals, the check replays "
                 f"{data['workload']['requests']} requests"
                 + (" with the trace's own timing." if REPLAYED else ".")))
        if cost_now < best.candidate.cost_per_hour:
            # A cheaper plan for more traffic would mean the first search missed it (the planner
            # is meant to be monotone in load); check it against the original load.
            cheaper = check_scenario(data, 1)
            cheaper_result = infersim.simulate(cheaper)
            cheaper_ok, why = slo_verdict(cheaper_result.summary, slo,
                                          cheaper["workload"]["requests"])
            print("That plan is cheaper than the first one; at 1× the load it "
                  + ("also meets the SLOs: the first search, whose candidates were sized for "
                     "1×, missed a cheaper plan." if cheaper_ok else
                     f"misses the SLOs ({why}), so the first plan stands for 1×."))
