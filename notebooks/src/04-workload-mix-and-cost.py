# ruff: noqa: E402 (the tagged parameters cell comes first, before the imports, by design)
# %% [markdown]
# # 04 · Workload mix and cost per task
#
# **Question.** A coding agent spends 80 % of its tokens on output (short prompts, long
# generations: decode-heavy); a research summariser spends 80 % on the prompt (whole papers in,
# a summary out: prefill-heavy). What does one task of each cost on each chip — H100, H200, B200,
# MI300X, Trainium2, Cerebras WSE-3, Groq LPU — and which chip wins for which mix?
#
# "Cost per token" hides the answer, because the two phases stress different resources. So each
# chip serves each workload class alone, on the same kind of cluster (`INSTANCES` colocated
# instances with chunked prefill, each the chip's smallest instance that holds the model and a
# few dozen requests' KV cache), and the simulator finds the highest arrival rate at which the
# SLOs still hold. Running at that rate, a task costs the cluster's dollars per hour divided by
# the tasks it finishes per hour. The shipped mixes `coding-agent` and `summariser`
# (`workloads/*.yaml`) give the lengths.
#
# A coding-agent request on a GPU decodes for a minute or more, so each capacity run offers
# arrivals for `LIFETIMES` request lifetimes (mean output tokens × the cost model's decode step
# at full batch) and the verdict is passed on a full cluster, not on one still filling up (a
# short burst would overstate capacity several-fold).

# %% tags=["parameters"]
MODEL = "llama-3.1-8b"
PRECISION = "bf16"                # fp16 on chips without a bf16 peak (the LPU)
CHIPS = ["h100", "h200", "b200", "mi300x", "trainium2", "wse3", "lpu"]
CLASSES = {"coding agent": "coding-agent", "research summariser": "summariser"}
INSTANCES = 1                     # colocated instances per cluster (cost per task hardly
                                  # depends on it; one keeps the runs small)
CHUNK_TOKENS = 512                # chunked-prefill step budget
KV_ROOM_SEQUENCES = 32            # an instance holds this many mean-length requests' KV
SLO = {"ttft_ms": 2000, "itl_ms": 50, "percentile": 99}
MIN_REQUESTS = 100                # per capacity run
LIFETIMES = 4                     # arrivals per capacity run span this many request lifetimes,
MIN_SECONDS = 30                  # and at least this long, so the verdict is on a steady state
DOUBLINGS = 4                     # capacity search: from half the cost model's estimate, double
BISECTIONS = 4                    # until the SLOs fail, then bisect
VERIFY_BLEND = 0.5                # simulate this coding-agent share to check the blend line,
                                  # on h100 and on the cheapest chip of each class
SEED = 1

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

import infersim
import infersim.cost as cost
from infersim.cost.throughput import EngineConfig, LengthStats, offline_throughput
from infersim.report.plots import plain_log_ticks
from infersim.slo import SLO as PlanSLO
from infersim.slo import slo_verdict

model = infersim.load_model(MODEL)
hardware = {chip: infersim.load_hardware(chip) for chip in CHIPS}
slo = PlanSLO(**SLO)
colors = dict(zip(CHIPS, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))


def length_stats(lengths):
    """Moments of a workload's prompt and output lengths, from the requests a run draws."""
    probe = infersim.simulate(workload_scenario("h100", 1, 1, PRECISION, lengths, 1.0,
                                                MIN_REQUESTS))
    prompts = probe.requests["prompt_tokens"].to_numpy(dtype=float)
    outputs = probe.requests["output_tokens"].to_numpy(dtype=float)
    return LengthStats(mean_input=prompts.mean(), mean_output=outputs.mean(),
                       median_input=float(np.median(prompts)),
                       output_second_moment=float(np.mean(outputs ** 2)))


def workload_scenario(chip, tp, pp, precision, lengths, rate, requests):
    return {
        "name": f"{chip}-colocated", "seed": SEED, "model": MODEL, "precision": precision,
        "pools": {"unified": {"role": "mixed", "hardware": chip, "instances": INSTANCES,
                              "tp": tp, "pp": pp, "chunked_prefill": True,
                              "max_batch_tokens": CHUNK_TOKENS}},
        "workload": {"arrival": {"process": "poisson", "rate": rate}, "requests": requests,
                     **lengths},
        "slo": SLO,
    }


stats = {name: length_stats({"mix": mix}) for name, mix in CLASSES.items()}
means = {name: (st.mean_input, st.mean_output) for name, st in stats.items()}
pd.DataFrame([{"class": name, "mean prompt": p, "mean output": o, "output share": o / (p + o)}
              for name, (p, o) in means.items()]).set_index("class").round(2)

# %% [markdown]
# ## One instance shape per chip
#
# GPUs and Trainium split the model over chips of one scale-up domain (tensor parallelism);
# SRAM machines spread its layers over chips in sequence (pipeline stages) until weights and
# cache fit on chip. The KV room is sized for `KV_ROOM_SEQUENCES` requests of the longer class.

# %%
def precision_for(hw):
    twins = {"bf16": "fp16", "fp16": "bf16"}
    if PRECISION not in hw.peak_flops and twins.get(PRECISION) in hw.peak_flops:
        return twins[PRECISION]
    return PRECISION


def smallest_instance(hw, kv_tokens):
    """The fewest chips (tp·pp) of ``hw`` that hold the weights plus ``kv_tokens`` of KV."""
    precision = precision_for(hw)

    def fits(tp, pp):
        dep = cost.Deployment(model=model, hardware=hw, precision=precision, tp=tp, pp=pp)
        return cost.placement(dep).kv_capacity_tokens >= kv_tokens

    need = cost.min_chips(cost.Deployment(model=model, hardware=hw, precision=precision),
                          kv_tokens=kv_tokens)
    if hw.memory_kind == "sram":
        tp = 1
        while tp <= hw.tensor_parallel_chips:
            for pp in range(max(1, math.ceil(need / tp)), model.num_layers + 1):
                if fits(tp, pp):
                    return tp, pp, precision
            tp *= 2
    else:
        tp = 1
        while tp < need and tp * 2 <= min(hw.scaleup_domain_chips, model.num_kv_heads):
            tp *= 2
        for pp in range(math.ceil(need / tp), model.num_layers + 1):
            if fits(tp, pp):
                return tp, pp, precision
    raise ValueError(f"{MODEL} with {kv_tokens} KV tokens fits no layout of {hw.name}")


kv_tokens = KV_ROOM_SEQUENCES * math.ceil(max(p + o for p, o in means.values()))
shapes = {chip: smallest_instance(hw, kv_tokens) for chip, hw in hardware.items()}
display(pd.DataFrame([
    {"chip": chip, "tp": tp, "pp": pp, "precision": precision,
     "chips per cluster": INSTANCES * tp * pp,
     "cluster $/h": INSTANCES * tp * pp * hardware[chip].price_per_chip_hour}
    for chip, (tp, pp, precision) in shapes.items()]).set_index("chip").round(2))

# %% [markdown]
# ## Capacity and cost per task
#
# For each chip and class: start at half the cost model's offline estimate of the cluster's
# request rate (`infersim.cost.throughput`), double until the SLOs fail, then bisect. The verdict
# is the planner's (`slo_verdict`): every request completed, every SLO percentile within its
# target, and the planner's share of requests meeting every target on its own (printed below).

# %%
def run_at(chip, lengths, rate, window_s):
    tp, pp, precision = shapes[chip]
    requests = max(MIN_REQUESTS, math.ceil(rate * window_s))
    result = infersim.simulate(workload_scenario(chip, tp, pp, precision, lengths, rate,
                                                 requests))
    return result, slo_verdict(result.summary, slo, requests)[0]


ENGINE = EngineConfig(name="colocated", max_batch_size=256, max_num_tokens=CHUNK_TOKENS,
                      kv_reservation="on_demand", mixed_batching=True)


def estimate(chip, lengths_stats):
    """The cost model's offline (no SLO) request rate of the cluster, where the search starts,
    and a request's lifetime at that load (its output tokens × the full-batch decode step)."""
    tp, pp, precision = shapes[chip]
    dep = cost.Deployment(model=model, hardware=hardware[chip], precision=precision, tp=tp, pp=pp)
    offline = offline_throughput(dep, lengths_stats, ENGINE)
    return (INSTANCES * offline.requests_per_s,
            lengths_stats.mean_output * offline.decode_step_s)


def capacity(chip, lengths, lengths_stats):
    """(max rate, the run at it): the highest rate found at which the SLOs hold."""
    best, best_run = 0.0, None
    offline_rate, lifetime_s = estimate(chip, lengths_stats)
    window_s = max(MIN_SECONDS, LIFETIMES * lifetime_s)
    rate = 0.5 * offline_rate
    for _ in range(DOUBLINGS):
        result, ok = run_at(chip, lengths, rate, window_s)
        if not ok:
            break
        best, best_run, rate = rate, result, 2 * rate
    lo, hi = best, rate
    for _ in range(BISECTIONS):
        mid = (lo + hi) / 2
        result, ok = run_at(chip, lengths, mid, window_s)
        if ok:
            lo, best_run = mid, result
        else:
            hi = mid
    return lo, best_run


print(f"Verdict: p{slo.percentile:g} "
      + ", ".join(f"{metric.upper()} ≤ {target:g} ms" for metric, target in slo.targets().items())
      + f", every request completed, at least {slo.attainment:.0%} of requests within every "
      "target on their own.")
rows = []
for chip in CHIPS:
    tp, pp, _ = shapes[chip]
    per_hour = INSTANCES * tp * pp * hardware[chip].price_per_chip_hour
    for name, mix in CLASSES.items():
        rate, result = capacity(chip, {"mix": mix}, stats[name])
        s = result.summary if result is not None else {}
        rows.append({
            "chip": chip, "class": name, "max_rate": rate, "dollars_per_hour": per_hour,
            "usd_per_task": per_hour / (3600 * rate) if rate else np.nan,
            "median_itl_ms": s.get("median_itl_ms", np.nan),
            "p99_ttft_ms": s.get("p99_ttft_ms", np.nan),
            "usd_per_m_input": s.get("cost", {}).get("usd_per_million_input_tokens", np.nan),
            "usd_per_m_output": s.get("cost", {}).get("usd_per_million_output_tokens", np.nan),
        })
costs = pd.DataFrame(rows)
per_task = costs.pivot(index="chip", columns="class", values="usd_per_task").loc[CHIPS]
display(costs.set_index(["chip", "class"]).round(4))

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), sharey=False)
for ax, name in zip(axes, CLASSES, strict=True):
    values = per_task[name] * 1e3
    order = values.sort_values(na_position="last").index
    bars = ax.bar(range(len(order)), values[order], color=[colors[c] for c in order])
    ax.set_xticks(range(len(order)), order)
    for bar, chip in zip(bars, order, strict=True):
        label = "none" if not np.isfinite(values[chip]) else f"{values[chip]:.3g}"
        ax.annotate(label, (bar.get_x() + bar.get_width() / 2,
                            values[chip] if np.isfinite(values[chip]) else 0),
                    xytext=(0, 3), textcoords="offset points", ha="center", fontsize=8)
    ax.set_yscale("log")
    plain_log_ticks(ax.yaxis)
    ax.set_ylabel("$ per 1,000 tasks, at the highest rate within the SLOs")
    p, o = means[name]
    ax.set_title(f"{name}: ~{p:.0f} prompt + {o:.0f} output tokens ({o / (p + o):.0%} output)")
    ax.grid(True, axis="y", which="both", alpha=0.3)
cluster = "one colocated instance" if INSTANCES == 1 else f"{INSTANCES} colocated instances"
fig.suptitle(f"{MODEL}: cost per task on {cluster} of each chip "
             f"(SLO p{SLO['percentile']:g} TTFT ≤ {SLO['ttft_ms']:g} ms, ITL ≤ {SLO['itl_ms']:g} ms)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Blends of the two
#
# A cluster running at capacity spends a task's share of its time on each task, so the cost of
# an average task of a blend is the blend of the two costs per task: a straight line from the
# summariser's cost (left) to the coding agent's (right). Where two chips' lines cross, the
# cheaper chip changes. One blend (`VERIFY_BLEND`) is simulated on every chip as a check of that
# line (stars) on H100 and on each class's cheapest chip.

# %%
shares = np.linspace(0, 1, 101)
coding, summariser = list(CLASSES)
blend = {chip: shares * per_task.loc[chip, coding] + (1 - shares) * per_task.loc[chip, summariser]
         for chip in CHIPS}
verified = {}
verify_chips = dict.fromkeys(["h100", *(per_task[name].idxmin() for name in CLASSES
                                        if per_task[name].notna().any())])
for chip in verify_chips:
    if chip not in CHIPS or not np.isfinite(blend[chip]).all():
        continue
    mix = {"mix": {"classes": [
        {"name": CLASSES[coding], "weight": VERIFY_BLEND, "mix": CLASSES[coding]},
        {"name": CLASSES[summariser], "weight": 1 - VERIFY_BLEND,
         "mix": CLASSES[summariser]}]}}
    blend_stats = LengthStats(
        mean_input=VERIFY_BLEND * stats[coding].mean_input
        + (1 - VERIFY_BLEND) * stats[summariser].mean_input,
        mean_output=VERIFY_BLEND * stats[coding].mean_output
        + (1 - VERIFY_BLEND) * stats[summariser].mean_output)
    rate, _ = capacity(chip, mix, blend_stats)
    tp, pp, _ = shapes[chip]
    verified[chip] = (INSTANCES * tp * pp * hardware[chip].price_per_chip_hour / (3600 * rate)
                      if rate else np.nan)

fig, ax = plt.subplots(figsize=(9, 5.5))
for chip in CHIPS:
    ax.plot(shares * 100, blend[chip] * 1e3, color=colors[chip], label=chip)
    if chip in verified:
        ax.scatter([VERIFY_BLEND * 100], [verified[chip] * 1e3], marker="*", s=140,
                   color=colors[chip], edgecolor="black", zorder=3)
ax.scatter([], [], marker="*", s=140, color="white", edgecolor="black",
           label=f"simulated {VERIFY_BLEND:.0%} blend")
ax.set_yscale("log")
plain_log_ticks(ax.yaxis)
ax.set_xlabel("coding-agent share of tasks (%); the rest are summaries")
ax.set_ylabel("$ per 1,000 tasks (average task of the blend)")
ax.set_title(f"{MODEL}: cost of an average task as the mix shifts")
ax.grid(True, which="both", alpha=0.3)
ax.legend(fontsize=8, ncol=2)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## What the numbers say
#
# Computed from the capacity searches above.

# %%
for name in CLASSES:
    column = per_task[name].dropna().sort_values()
    if column.empty:
        print(f"{name}: no chip met the SLOs.")
        continue
    best, runner = column.index[0], (column.index[1] if len(column) > 1 else None)
    missing = [chip for chip in CHIPS if chip not in column.index]
    print(f"{name}: cheapest on {best} at ${column[best] * 1e3:.3f} per 1,000 tasks"
          + (f", {column[runner] / column[best]:.2f}× cheaper than {runner}" if runner else "")
          + f"; dearest {column.index[-1]} at ${column.iloc[-1] * 1e3:.3f}"
          + (f"; {', '.join(missing)} never met the SLOs" if missing else "") + ".")

winners = [(share, min((c for c in CHIPS if np.isfinite(blend[c][i])),
                       key=lambda c, i=i: blend[c][i], default=None))
           for i, share in enumerate(shares)]
regions = []
for share, chip in winners:
    if not regions or regions[-1][1] != chip:
        regions.append([share, chip, share])
    regions[-1][2] = share
print("Cheapest chip by coding-agent share of tasks: "
      + "; ".join(f"{lo:.0%}–{hi:.0%}: {chip}" for lo, chip, hi in regions) + ".")
if len(regions) > 1:
    print("So the winner depends on the mix: "
          + ", then ".join(chip for _, chip, _ in regions)
          + " as the work shifts from prefill to decode.")
else:
    print(f"One chip, {regions[0][1]}, is cheapest across every blend.")

for name in CLASSES:
    part = costs[(costs["class"] == name) & costs["usd_per_task"].notna()].set_index("chip")
    if part.empty:
        continue
    fastest, cheapest = part["median_itl_ms"].idxmin(), part["usd_per_task"].idxmin()
    if fastest != cheapest:
        print(f"{name}: the fastest streams come from {fastest} (median ITL "
              f"{part.loc[fastest, 'median_itl_ms']:.1f} ms against "
              f"{part.loc[cheapest, 'median_itl_ms']:.1f} ms on {cheapest}) at "
              f"{part.loc[fastest, 'usd_per_task'] / part.loc[cheapest, 'usd_per_task']:.1f}× "
              "the cost per task: speed per user and cost per task are different purchases.")

ratio = (per_task[coding] / per_task[summariser]).dropna()
if len(ratio):
    print(f"A coding-agent task costs {ratio.min():.1f}–{ratio.max():.1f}× a summary "
          f"(lowest on {ratio.idxmin()}, highest on {ratio.idxmax()}): its ~"
          f"{means[coding][1]:.0f} output tokens each need a decode step, while the "
          f"summary's ~{means[summariser][0]:.0f} prompt tokens go through in a few prefill chunks.")
checks = {c: verified[c] / (VERIFY_BLEND * per_task.loc[c, coding]
                            + (1 - VERIFY_BLEND) * per_task.loc[c, summariser])
          for c in verified if np.isfinite(verified[c])}
if checks:
    print(f"The simulated {VERIFY_BLEND:.0%} blend costs {min(checks.values()):.2f}–"
          f"{max(checks.values()):.2f}× what the straight line predicts "
          "(below 1: the two classes share a cluster better than either alone).")
