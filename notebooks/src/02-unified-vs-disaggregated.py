# ruff: noqa: E402 (the tagged parameters cell comes first, before the imports, by design)
# %% [markdown]
# # 02 · Unified vs disaggregated serving on the same GPUs
#
# **Question.** Eight H100s serve Llama-3.1-8B to a prefill-heavy workload (4k-token prompts,
# short answers). Should every GPU do both phases — colocated, with vLLM-style chunked prefill or
# prefill-first scheduling — or should the node be split into prefill and decode pools that ship
# the KV cache over NVLink? How do TTFT and inter-token latency percentiles, goodput and cost per
# request change with load, and where is the crossover?
#
# The two shipped scenarios `h100-unified` and `h100-disaggregated` fix the model, the workload and
# the SLOs; this notebook varies only the arrival rate and the way the same GPUs are organised, and
# simulates each point with `infersim.simulate`. Colocated layouts run with chunked prefill at two
# step budgets (the scenario's 1,024 tokens, the largest that keeps its ITL target, and a smaller
# one, the usual tuning for latency) or
# prefill-first; split layouts divide the eight GPUs between the phases in two ratios.
#
# Two readings of the ITL target appear below. The *fleet* reading (the p99 of all token gaps ≤
# the target) is what the SLO lines on the plots check. *Goodput* is stricter, as in vLLM bench:
# a request counts only if it meets every target on its own, and for ITL that means its *largest*
# gap — one stall the user sees is a miss. The fleet reading can hide starvation: when decode
# steps wait behind a queue of prompts, a request sees a few very long gaps among many short ones,
# and once those are under 1 % of all gaps the p99 no longer shows them (watch prefill-first at
# high load); goodput does.

# %% tags=["parameters"]
UNIFIED_SCENARIO = "h100-unified"            # shipped scenario names (or paths to YAML files)
SPLIT_SCENARIO = "h100-disaggregated"
CHUNK_BUDGETS = [1024, 512]                  # tokens per colocated step with chunked prefill
SPLITS = [(4, 4), (6, 2)]                    # (prefill, decode) instances of the split layouts
RATES = [4, 8, 16, 24, 32, 40, 48, 56, 64]   # offered load, requests/s
REQUESTS = 600                               # requests per run: small, for speed
FOCUS_RATE = 32                              # the load whose percentiles are drawn in detail
TIE = 0.03                                   # goodputs within 3 % of each other are a tie
SEED = 1

# %%
from itertools import pairwise

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

import infersim
from infersim.report.plots import plain_log_ticks

unified = infersim.load_scenario(UNIFIED_SCENARIO)
split = infersim.load_scenario(SPLIT_SCENARIO)
unified_pool = next(iter(unified.pools))
unified_gpus = sum(p.instances * p.tp * p.pp for p in unified.pools.values())
slo = unified.slo.model_dump(exclude_none=True)
print(f"Model {unified.model}, SLO {slo}, {unified_gpus} GPUs in the unified layout")

configs = {}
for budget in CHUNK_BUDGETS:
    configs[f"colocated, chunks of {budget}"] = (
        UNIFIED_SCENARIO, [f"pools.{unified_pool}.chunked_prefill=true",
                           f"pools.{unified_pool}.max_batch_tokens={budget}"])
configs["colocated, prefill-first"] = (UNIFIED_SCENARIO,
                                       [f"pools.{unified_pool}.chunked_prefill=false"])
for prefill_n, decode_n in SPLITS:
    configs[f"split {prefill_n}P + {decode_n}D"] = (
        SPLIT_SCENARIO, [f"pools.prefill.instances={prefill_n}",
                         f"pools.decode.instances={decode_n}"])
COLOCATED = [name for name in configs if name.startswith("colocated")]
SPLIT_LAYOUTS = [name for name in configs if name.startswith("split")]

# %% [markdown]
# ## Sweep the load
#
# Every layout sees the same requests at each rate (same seed, same workload section). The cost
# block of each result prices the whole cluster for the run's duration, so dollars per SLO-meeting
# request include the GPUs that sat idle.

# %%
rows = []
for rate in RATES:
    for name, (scenario, overrides) in configs.items():
        result = infersim.simulate(scenario, seed=SEED, overrides=[
            *overrides, f"workload.requests={REQUESTS}", f"workload.arrival.rate={rate}"])
        s = result.summary
        good_requests = s["request_goodput"] * s["duration"]
        rows.append({
            "layout": name, "rate": rate, "gpus": s["cost"]["chips"],
            "dollars_per_hour": s["cost"]["dollars_per_hour"],
            "completed": s["completed"], "failed": s["failed"],
            "median_ttft_ms": s["median_ttft_ms"], "p90_ttft_ms": s["p90_ttft_ms"],
            "p99_ttft_ms": s["p99_ttft_ms"],
            "median_itl_ms": s["median_itl_ms"], "p90_itl_ms": s["p90_itl_ms"],
            "p99_itl_ms": s["p99_itl_ms"],
            "request_throughput": s["request_throughput"],
            "request_goodput": s["request_goodput"],
            "slo_met": s["failed"] == 0 and all(t["met"] for t in s["slo_attainment"].values()),
            "usd_per_million_tokens": s["cost"]["usd_per_million_tokens"],
            "usd_per_1k_good_requests": (s["cost"]["cost_usd"] / good_requests * 1e3
                                         if good_requests else np.nan),
        })
sweep = pd.DataFrame(rows)
budgets = sweep.groupby("layout")[["gpus", "dollars_per_hour"]].first()
assert budgets["dollars_per_hour"].nunique() == 1, "layouts must cost the same per hour"
display(budgets)

# %%
colors = dict(zip(configs, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))


styles = {name: "--" if name in COLOCATED else "-" for name in configs}

fig, axes = plt.subplots(2, 2, figsize=(13, 9))
panels = [
    (axes[0, 0], "p99_ttft_ms", "p99 time to first token (ms)", slo.get("ttft_ms"), True),
    (axes[0, 1], "p99_itl_ms", "p99 inter-token latency (ms)", slo.get("itl_ms"), True),
    (axes[1, 0], "request_goodput", "goodput (requests/s meeting every SLO)", None, False),
    (axes[1, 1], "usd_per_1k_good_requests", "$ per 1,000 SLO-meeting requests", None, True),
]
for ax, column, label, target, log in panels:
    for name in configs:
        part = sweep[sweep.layout == name]
        ax.plot(part["rate"], part[column], marker="o", ls=styles[name], color=colors[name],
                label=name)
    if target is not None:
        ax.axhline(target, color="black", lw=1, ls=":", label=f"SLO {target:g} ms")
    if log:
        ax.set_yscale("log")
        plain_log_ticks(ax.yaxis)
    ax.set_xlabel("offered load (requests/s)")
    ax.set_ylabel(label)
    ax.grid(True, which="both", alpha=0.3)
axes[1, 0].plot(RATES, RATES, color="grey", lw=0.8, ls=":", label="every request good")
axes[0, 0].set_title("Time to first token")
axes[0, 1].set_title("Inter-token latency")
axes[1, 0].set_title("Goodput")
axes[1, 1].set_title("Cost per SLO-meeting request")
axes[0, 1].legend(fontsize=8)
axes[1, 0].legend(fontsize=8)
fig.suptitle(f"{unified.model} on {unified_gpus}× H100, the same GPUs organised {len(configs)} ways "
             f"({REQUESTS} requests per point)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Percentiles at one load
#
# Median, p90 and p99 of TTFT and of the inter-token gaps at `FOCUS_RATE` requests/s. The two
# forces at work: colocated layouts can prefill on every GPU, but their decoding sequences share
# steps with prompt chunks (or wait behind whole prompts) — the ITL tail; split layouts keep
# decode steps clean but prefill on only part of the node — the TTFT tail. The printout below
# the chart says which force wins at this load.

# %%
focus = sweep[sweep.rate == FOCUS_RATE].set_index("layout")
fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
width = 0.8 / len(configs)
stats = ["median", "p90", "p99"]
for ax, metric, title in [(axes[0], "ttft", "Time to first token"),
                          (axes[1], "itl", "Inter-token latency")]:
    for i, name in enumerate(configs):
        values = [focus.loc[name, f"{stat}_{metric}_ms"] for stat in stats]
        ax.bar(np.arange(len(stats)) + (i - (len(configs) - 1) / 2) * width, values, width,
               color=colors[name], label=name)
    target = slo.get(f"{metric}_ms")
    if target is not None:
        ax.axhline(target, color="black", lw=1, ls=":", label=f"SLO {target:g} ms")
    ax.set_xticks(np.arange(len(stats)), stats)
    ax.set_yscale("log")
    plain_log_ticks(ax.yaxis)
    ax.set_ylabel(f"{metric.upper()} (ms)")
    ax.set_title(f"{title} at {FOCUS_RATE} requests/s")
    ax.grid(True, axis="y", which="both", alpha=0.3)
axes[1].legend(fontsize=8)
fig.tight_layout()
plt.show()
for metric in ("ttft", "itl"):
    column = focus[f"p99_{metric}_ms"]
    print(f"p99 {metric.upper()} at {FOCUS_RATE} requests/s: lowest {column.min():.0f} ms "
          f"({column.idxmin()}), highest {column.max():.0f} ms ({column.idxmax()}).")

# %% [markdown]
# ## What the numbers say
#
# Computed from the sweep above: which layout sustains the most load within the SLOs, which wins
# goodput at each rate, and where the lead changes hands.

# %%
goodput = sweep.pivot(index="rate", columns="layout", values="request_goodput")[list(configs)]
display(goodput.round(2))

sustained = {}
for name in configs:
    met = sweep[sweep.layout == name].set_index("rate")["slo_met"]
    # The highest rate below which every swept rate holds: a lucky point past a failure does
    # not count.
    holding = [rate for rate in RATES if met.loc[:rate].all()]
    sustained[name] = max(holding) if holding else None
for name, rate in sustained.items():
    if rate is None:
        print(f"{name}: the fleet p99 TTFT and ITL miss their SLOs already at {min(RATES)} "
              "requests/s.")
        continue
    row = sweep[(sweep.layout == name) & (sweep.rate == rate)].iloc[0]
    share = row["request_goodput"] / row["request_throughput"]
    print(f"{name}: the fleet p99 TTFT and ITL hold their SLOs with nothing failed up to {rate} "
          f"requests/s, where {share:.0%} of requests meet every target on their own.")

best_colocated = goodput[COLOCATED].max(axis=1)
best_split = goodput[SPLIT_LAYOUTS].max(axis=1)
winner = goodput.idxmax(axis=1)
lead = pd.Series("tie", index=goodput.index)
lead[best_split > best_colocated * (1 + TIE)] = "split"
lead[best_colocated > best_split * (1 + TIE)] = "colocated"
print(f"Most goodput by rate (within {TIE:.0%} counts as a tie): "
      + ", ".join(f"{rate} → {winner[rate] if lead[rate] != 'tie' else 'tie'}"
                  for rate in RATES) + ".")
decided = lead[lead != "tie"]
if decided.empty:
    print(f"No layout kind leads anywhere in {min(RATES)}–{max(RATES)} requests/s.")
elif decided.nunique() == 1:
    print(f"No crossover in {min(RATES)}–{max(RATES)} requests/s: wherever one kind leads by more "
          f"than {TIE:.0%} it is a {decided.iloc[0]} layout.")
else:
    for prev, rate in pairwise(decided.index):
        if decided[rate] != decided[prev]:
            print(f"Crossover between {prev} and {rate} requests/s: the lead passes from "
                  f"{decided[prev]} to {decided[rate]} layouts ({winner[rate]}: "
                  f"{goodput.loc[rate, winner[rate]]:.1f} requests/s against the other kind's "
                  f"best {min(best_split[rate], best_colocated[rate]):.1f}).")

top = max(RATES)
at_top = sweep[sweep.rate == top].set_index("layout")
cheapest = at_top["usd_per_1k_good_requests"].idxmin()
print(f"At {top} requests/s the cheapest SLO-meeting request comes from {cheapest}: "
      f"${at_top.loc[cheapest, 'usd_per_1k_good_requests']:.3f} per 1,000, against "
      + ", ".join(f"${at_top.loc[n, 'usd_per_1k_good_requests']:.3f} ({n})"
                  for n in configs if n != cheapest) + ".")
per_token = at_top["usd_per_million_tokens"]
per_good = at_top["usd_per_1k_good_requests"]
print(f"Cost per million tokens delivered, late or not, spans {per_token.min():.3f}–"
      f"{per_token.max():.3f} $/Mtok at {top} requests/s ({per_token.max() / per_token.min():.1f}×); "
      f"cost per SLO-meeting request spans {per_good.max() / per_good.min():.0f}×"
      + (": at equal hardware the layouts differ far more in how many tokens arrive in time than "
         "in how many arrive." if per_good.max() / per_good.min() > 2 * per_token.max() / per_token.min()
         else "."))
