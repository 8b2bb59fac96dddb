# ruff: noqa: E402 (the tagged parameters cell comes first, before the imports, by design)
# %% [markdown]
# # 03 · Heterogeneous clusters against all-GPU baselines at equal cost
#
# **Question.** The seed pairings put each phase on the chip built for it: B200 prefill with Groq
# LPU decode, Trainium2 prefill with WSE-3 decode, WSE-3 prefill with GB200 NVL72 decode, and an
# NVL72 rack split between the phases. Against an all-H100 cluster that costs the same per hour
# and serves the same requests, what do they buy in TTFT, inter-token latency, goodput and cost
# per token? And what does the KV-cache link between the two pools cost each of them?
#
# Each pairing is a shipped scenario (`scenarios/*.yaml`). Its baselines spend the same dollars per
# hour on H100s (rounded down to whole instances): once colocated with chunked prefill, once split
# in the pairing's own ratio of prefill to decode spending, with the pairing's KV link (or, where
# the pairing keeps KV inside an NVLink domain, each prefill instance's own NICs, one 400 Gbit/s
# per GPU). The link study then reruns each pairing with its link bandwidth scaled.
#
# At equal hourly cost and equal load the bill is the same, so the comparison that matters is
# latency at the scenario's load and *capacity*: the highest arrival rate at which every SLO
# percentile still holds, every request completes and the planner's share of requests (90 % by
# default) meets every target on its own — the planner's verdict,
# `infersim.slo.slo_verdict` — found by doubling then bisecting the rate. Cost per
# million tokens is quoted at that rate, where each cluster is as busy as its SLOs allow.

# %% tags=["parameters"]
PAIRINGS = ["blackwell-prefill-lpu-decode", "trainium-prefill-wse3-decode",
            "cerebras-prefill-nvl72-decode", "nvl72-split"]
BASELINE_CHIP = "h100"
COLOCATED_CHUNK_TOKENS = 512    # step budget of the colocated baseline (chunked prefill)
KV_ROOM_TOKENS = 65536          # a baseline instance must hold this much KV besides the weights
LINK_SCALES = [0.05, 0.2, 1.0, 5.0]   # multiples of each pairing's KV-link bandwidth
REQUESTS = 300                  # requests per run at the scenario's own rate: small, for speed
LOAD_SECONDS = 15               # capacity search: each run offers this many seconds of arrivals
DOUBLINGS = 5                   # at most 2**DOUBLINGS × the scenario's rate
BISECTIONS = 4                  # then this many halvings of the bracket
SEED = 1

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

import infersim
import infersim.cost as cost
from infersim.report.plots import plain_log_ticks
from infersim.slo import slo_of, slo_verdict

baseline_hw = infersim.load_hardware(BASELINE_CHIP)


def run(scenario, overrides=(), requests=REQUESTS):
    """Simulate a scenario (a shipped name or a dict) with the notebook's seed."""
    return infersim.simulate(scenario, seed=SEED,
                             overrides=[*overrides, f"workload.requests={requests}"])


def describe_pools(data):
    return " + ".join(f"{p['instances']}×{p['tp'] * p['pp']} {p['hardware']} {p['role']}"
                      for p in data["pools"].values())


def max_sustainable_rate(scenario, base_rate, slo):
    """Highest rate (requests/s) at which ``scenario`` holds ``slo``; 0 if none found.

    Each run offers LOAD_SECONDS of arrivals, so a large cluster is loaded for as long as a
    small one (a fixed request count would be a short burst at high rates).
    """
    def holds(rate):
        requests = max(REQUESTS, math.ceil(rate * LOAD_SECONDS))
        summary = run(scenario, [f"workload.arrival.rate={rate:.6g}"], requests).summary
        return slo_verdict(summary, slo, requests)[0]

    lo, hi = 0.0, base_rate
    if holds(base_rate):
        lo, hi = base_rate, 2 * base_rate
        for _ in range(DOUBLINGS):
            if not holds(hi):
                break
            lo, hi = hi, 2 * hi
        else:
            return lo  # still holding at the top of the search: a lower bound
    for _ in range(BISECTIONS):
        mid = (lo + hi) / 2
        if holds(mid):
            lo = mid
        else:
            hi = mid
    return lo


def row(pairing, label, result):
    s, requests = result.summary, result.requests
    done = requests[requests["completed"]]
    handoff_ms = (done["decode_start_at"] - done["prefill_end_at"]) * 1e3
    good = s["request_goodput"] * s["duration"]
    return {
        "pairing": pairing, "cluster": label,
        "pools": describe_pools(result.scenario.resolved()),
        "chips": s["cost"]["chips"], "dollars_per_hour": s["cost"]["dollars_per_hour"],
        "failed": s["failed"],
        "p99_ttft_ms": s["p99_ttft_ms"], "median_itl_ms": s["median_itl_ms"],
        "p99_itl_ms": s["p99_itl_ms"], "p99_tpot_ms": s["p99_tpot_ms"],
        "p99_handoff_ms": float(np.percentile(handoff_ms, 99)) if len(done) else np.nan,
        "request_throughput": s["request_throughput"], "request_goodput": s["request_goodput"],
        "usd_per_m_input": s["cost"]["usd_per_million_input_tokens"],
        "usd_per_m_output": s["cost"]["usd_per_million_output_tokens"],
        "usd_per_1k_good_requests": (s["cost"]["cost_usd"] / good * 1e3 if good else np.nan),
    }

# %% [markdown]
# ## Equal-cost H100 baselines
#
# A baseline instance is the fewest H100s in tensor parallel (powers of two inside one 8-GPU
# board) that hold the model plus `KV_ROOM_TOKENS` of KV cache; the budget buys as many such
# instances as it can. The table shows what each cluster is and what it costs per hour.

# %%
def baseline_tp(model_name, precision):
    model = infersim.load_model(model_name)
    tp = 1
    while tp <= baseline_hw.scaleup_domain_chips:
        dep = cost.Deployment(model=model, hardware=baseline_hw, precision=precision, tp=tp)
        if cost.placement(dep).kv_capacity_tokens >= KV_ROOM_TOKENS:
            return tp
        tp *= 2
    raise ValueError(f"{model_name} does not fit one {BASELINE_CHIP} board")


def baselines(pairing_result):
    """Two all-H100 scenarios (as dicts) costing at most the pairing's dollars per hour."""
    data = pairing_result.scenario.resolved()
    budget = pairing_result.summary["cost"]["dollars_per_hour"]
    tp = baseline_tp(data["model"], data["precision"])
    instances = math.floor(budget / (tp * baseline_hw.price_per_chip_hour))
    common = {k: v for k, v in data.items() if k not in ("pools", "links", "name")}
    out = {}
    colocated = {**common, "name": f"{data['name']}-h100-colocated", "links": [], "pools": {
        "unified": {"role": "mixed", "hardware": BASELINE_CHIP, "instances": instances, "tp": tp,
                    "chunked_prefill": True, "max_batch_tokens": COLOCATED_CHUNK_TOKENS}}}
    out[f"{BASELINE_CHIP} colocated"] = colocated
    pools = pairing_result.summary["cost"]["pools"]
    prefill_spend = sum(p["dollars_per_hour"] for p in pools.values() if p["role"] == "prefill")
    share = prefill_spend / budget
    prefill_n = min(max(1, round(instances * share)), instances - 1)
    if prefill_n >= 1 and instances - prefill_n >= 1:
        if data["links"]:
            links = [{**data["links"][0], "between": ["prefill", "decode"]}]
        else:  # the pairing kept KV inside a scale-up domain; H100s ship it over their NICs,
            # each prefill instance over its own (one per GPU)
            links = [{"between": ["prefill", "decode"], "latency": baseline_hw.scaleout_latency_s,
                      "bandwidth": baseline_hw.scaleout_bandwidth * tp, "per": "instance"}]
        out[f"{BASELINE_CHIP} split"] = {
            **common, "name": f"{data['name']}-h100-split", "links": links, "pools": {
                "prefill": {"role": "prefill", "hardware": BASELINE_CHIP, "instances": prefill_n,
                            "tp": tp, "max_batch_tokens": 16384},
                "decode": {"role": "decode", "hardware": BASELINE_CHIP,
                           "instances": instances - prefill_n, "tp": tp, "max_batch_size": 256}}}
    return out


def with_capacity(entry, scenario, result):
    base_rate = result.scenario.workload.arrival.rate
    rate = max_sustainable_rate(scenario, base_rate, slo_of(result.scenario))
    s = result.summary
    tokens_per_request = (s["total_input_tokens"] + s["total_output_tokens"]) / s["completed"]
    usd_per_m = (s["cost"]["dollars_per_hour"] / (rate * 3600 * tokens_per_request) * 1e6
                 if rate else np.nan)
    return {**entry, "scenario_rate": base_rate, "max_rate": rate,
            "usd_per_m_tokens_at_max_rate": usd_per_m}


rows, shipped = [], {}
for pairing in PAIRINGS:
    shipped[pairing] = run(pairing)
    rows.append(with_capacity(row(pairing, "pairing", shipped[pairing]), pairing,
                              shipped[pairing]))
    for label, scenario in baselines(shipped[pairing]).items():
        result = run(scenario)
        rows.append(with_capacity(row(pairing, label, result), scenario, result))
table = pd.DataFrame(rows)
display(table[["pairing", "cluster", "pools", "chips", "dollars_per_hour"]]
        .set_index(["pairing", "cluster"]).round(2))

# %% [markdown]
# ## Latency, goodput and cost, pairing against baselines
#
# One group of bars per pairing; each scenario keeps its own workload and SLO (black marks: each
# pairing's target). Top: latency at the scenario's own rate. Bottom: capacity, and the cost per
# million tokens when running at it.

# %%
clusters = list(dict.fromkeys(table["cluster"]))
colors = dict(zip(clusters, ["#d62728", "#1f77b4", "#7fb3e0"], strict=False))
slos = {p: infersim.load_scenario(p).slo for p in PAIRINGS}
x = np.arange(len(PAIRINGS))
width = 0.8 / len(clusters)
fig, axes = plt.subplots(2, 2, figsize=(14, 9))
panels = [(axes[0, 0], "p99_ttft_ms", "p99 TTFT (ms)", "ttft_ms"),
          (axes[0, 1], "p99_tpot_ms", "p99 TPOT (ms per output token)", "itl_ms"),
          (axes[1, 0], "max_rate", "max sustainable rate (requests/s)", None),
          (axes[1, 1], "usd_per_m_tokens_at_max_rate", "$ per million tokens (in + out)", None)]
for ax, column, label, slo_key in panels:
    for i, cluster in enumerate(clusters):
        offsets = x + (i - (len(clusters) - 1) / 2) * width
        values = np.array([table[(table.pairing == p) & (table.cluster == cluster)][column].mean()
                           for p in PAIRINGS])
        shown = np.where(values > 0, values, np.nan)  # no bar on a log axis for "none"
        ax.bar(offsets, shown, width, color=colors[cluster], label=cluster)
        for offset, value in zip(offsets, values, strict=True):
            if not value > 0:
                ax.annotate("none", (offset, 0), xycoords=("data", "axes fraction"),
                            xytext=(0, 4), textcoords="offset points", ha="center",
                            rotation=90, fontsize=8, color=colors[cluster])
    if slo_key:
        targets = [getattr(slos[p], slo_key) for p in PAIRINGS]
        ax.hlines(targets, x - 0.45, x + 0.45, color="black", lw=1.5, label="SLO target")
    ax.set_yscale("log")
    plain_log_ticks(ax.yaxis)
    ax.set_xticks(x, [p.replace("-", "\n", 2) for p in PAIRINGS], fontsize=8)
    ax.set_ylabel(label)
    ax.grid(True, axis="y", which="both", alpha=0.3)
axes[0, 0].set_title("Time to first token")
axes[0, 1].set_title("Time per output token (the SLO mark is the ITL target)")
axes[1, 0].set_title("Capacity: highest rate within every SLO")
axes[1, 1].set_title("Cost per million tokens at that rate")
handles, labels = axes[0, 0].get_legend_handles_labels()
fig.legend(handles, labels, loc="upper center", ncol=len(labels), bbox_to_anchor=(0.5, 0.955))
fig.suptitle(f"Seed pairings against {BASELINE_CHIP.upper()} clusters of equal hourly cost")
fig.tight_layout(rect=(0, 0, 1, 0.93))
plt.show()

# %% [markdown]
# ## What the KV link costs
#
# After prefill the request's KV cache crosses the link to its decode instance (the *hand-off*:
# from the end of prefill to the start of decoding, the transfer and any wait for a decode slot).
# With the shipped engines (`first_token_from: decode`) the client's first token comes from the
# decode instance, so the hand-off is part of TTFT, not a gap before the second token; a link
# too slow for the KV stream therefore shows in TTFT and goodput, while the inter-token gaps stay
# those of the decode pool. Every transfer on a link shares its bandwidth. The pairings with a
# network link are rerun with that bandwidth scaled; the NVL72 split, whose KV never leaves the
# rack's NVLink, is rerun once with the KV sent over the GB200s' NICs instead (each prefill
# instance over its own chips' NICs: scale-out bandwidth is per chip).

# %%
link_rows = []
for pairing in PAIRINGS:
    data = shipped[pairing].scenario.resolved()
    if data["links"]:
        base_bw = data["links"][0]["bandwidth"]
        for scale in LINK_SCALES:
            result = run(pairing, [f"links.0.bandwidth={base_bw * scale:.6g} B/s"])
            link_rows.append({**row(pairing, f"×{scale:g}", result), "scale": scale,
                              "bandwidth_gb_s": base_bw * scale / 1e9})
    else:
        link_rows.append({**row(pairing, "NVLink (shipped)", shipped[pairing]), "scale": np.nan,
                          "bandwidth_gb_s": np.nan})
        prefill = next(name for name, p in data["pools"].items() if p["role"] == "prefill")
        decode = next(name for name, p in data["pools"].items() if p["role"] == "decode")
        hw = infersim.load_hardware(data["pools"][prefill]["hardware"])
        # NICs are per chip: each prefill instance sends over its own chips' NICs
        chips = data["pools"][prefill]["tp"] * data["pools"][prefill]["pp"]
        nic = {**data, "links": [{"between": [prefill, decode],
                                  "bandwidth": hw.scaleout_bandwidth * chips,
                                  "latency": hw.scaleout_latency_s, "per": "instance"}],
               "pools": {name: {**p, "scaleup_domain": None}
                         for name, p in data["pools"].items()}}
        result = run(nic)
        link_rows.append({**row(pairing, "NICs instead of NVLink", result), "scale": np.nan,
                          "bandwidth_gb_s": hw.scaleout_bandwidth * chips / 1e9})
links = pd.DataFrame(link_rows)

scaled = links[links.scale.notna()]
fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
for pairing, part in scaled.groupby("pairing", sort=False):
    for ax, column in zip(axes, ["p99_handoff_ms", "p99_ttft_ms", "request_goodput"],
                          strict=True):
        line, = ax.plot(part["bandwidth_gb_s"], part[column], marker="o", label=pairing)
        as_shipped = part[part.scale == 1.0]
        ax.scatter(as_shipped["bandwidth_gb_s"], as_shipped[column], marker="*", s=180,
                   color=line.get_color(), edgecolor="black", zorder=3)
for ax, label, title in [(axes[0], "p99 hand-off, prefill end to decode start (ms)",
                          "KV hand-off"),
                         (axes[1], "p99 TTFT (ms; includes the hand-off)",
                          "Time to first token"),
                         (axes[2], "goodput (requests/s meeting every SLO)", "Goodput")]:
    ax.set_xscale("log")
    ax.set_xlabel("KV link bandwidth (GB/s, one direction, shared)")
    ax.set_ylabel(label)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
for ax in axes[:2]:
    ax.set_yscale("log")
    plain_log_ticks(ax.yaxis)
axes[0].scatter([], [], marker="*", s=120, color="white", edgecolor="black", label="as shipped")
axes[0].legend(fontsize=8)
fig.suptitle("What the KV link costs: each pairing rerun with its link bandwidth scaled")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## What the numbers say
#
# Computed from the runs above.

# %%
display(table.drop(columns=["pools"]).set_index(["pairing", "cluster"]).round(3))
pairing_wins = 0
for pairing in PAIRINGS:
    part = table[table.pairing == pairing].set_index("cluster")
    pair = part.loc["pairing"]
    others = part.drop(index="pairing")
    print(f"{pairing} (${pair['dollars_per_hour']:.0f}/h: {pair['pools']}):")
    fastest = part["median_itl_ms"].idxmin()
    print(f"  fastest streams: {fastest} (median ITL {part.loc[fastest, 'median_itl_ms']:.1f} ms,"
          f" {1e3 / part.loc[fastest, 'median_itl_ms']:.0f} tokens/s per user)"
          + (f"; the pairing's are {pair['median_itl_ms'] / part['median_itl_ms'].min():.1f}× "
             "slower" if fastest != "pairing" else
             f", {others['median_itl_ms'].min() / pair['median_itl_ms']:.1f}× faster than the "
             f"best {BASELINE_CHIP} cluster") + ".")
    def capacity(cluster, part=part):
        rate = part.loc[cluster, "max_rate"]
        if rate == 0:
            return (f"{cluster}: none (misses its SLOs even at "
                    f"{part.loc[cluster, 'scenario_rate'] / 2 ** BISECTIONS:.2g} requests/s)")
        capped = rate >= part.loc[cluster, "scenario_rate"] * 2 ** DOUBLINGS
        return f"{cluster} {rate:.1f}" + (" (top of the search)" if capped else "")

    top = part["max_rate"].max()
    leaders = [c for c in part.index if top > 0 and part.loc[c, "max_rate"] >= 0.97 * top]
    print("  capacity within the SLOs, requests/s: "
          + "; ".join(capacity(c) for c in part.index) + ".")
    if "pairing" in leaders:
        pairing_wins += 1
    priced = part["usd_per_m_tokens_at_max_rate"].dropna()
    if len(priced):
        cheapest = priced.idxmin()
        note = ("" if cheapest == "pairing" else
                f"; the pairing's cost ${pair['usd_per_m_tokens_at_max_rate']:.3f}"
                if np.isfinite(pair["usd_per_m_tokens_at_max_rate"]) else
                "; the pairing never met its SLOs")
        print(f"  cheapest tokens at capacity: {cheapest}, "
              f"${priced[cheapest]:.3f} per million{note}.")
print(f"The pairing has the most capacity for its money (within 3 %) in {pairing_wins} of "
      f"{len(PAIRINGS)} cases.")

for pairing, part in links.groupby("pairing", sort=False):
    data = shipped[pairing].scenario.resolved()
    kv_per_token = infersim.load_model(data["model"]).kv_bytes_per_token(data["precision"])
    done = shipped[pairing].requests
    done = done[done["completed"]]
    # Every prompt's KV crosses the link once: the bandwidth below which it can never keep up.
    needed = (data["workload"]["arrival"]["rate"] * done["prompt_tokens"].mean()
              * kv_per_token)
    if part["scale"].notna().any():
        base = part[part.scale == 1.0].iloc[0] if (part.scale == 1.0).any() else part.iloc[-1]
        worst = part.loc[part["bandwidth_gb_s"].idxmin()]
        change = (worst["request_goodput"] / base["request_goodput"] - 1
                  if base["request_goodput"] else np.nan)
        one_ms = done["prompt_tokens"].mean() * kv_per_token / (worst["bandwidth_gb_s"] * 1e9) * 1e3
        ttft_target = shipped[pairing].scenario.slo.ttft_ms
        if worst["bandwidth_gb_s"] * 1e9 < needed:
            why = " — the link is saturated and transfers queue without bound."
        elif ttft_target:
            why = (f": the link keeps up; one mean prompt's KV takes {one_ms:.0f} ms to cross, "
                   f"{one_ms / ttft_target:.0%} of the {ttft_target:g} ms TTFT target it counts "
                   f"against (p99 TTFT {worst['p99_ttft_ms']:.0f} ms against "
                   f"{base['p99_ttft_ms']:.0f} ms as shipped).")
        else:
            why = "."
        print(f"{pairing}: the KV stream needs {needed / 1e9:.1f} GB/s on average "
              f"(the link as shipped: {base['bandwidth_gb_s']:.0f} GB/s, "
              f"{needed / (base['bandwidth_gb_s'] * 1e9):.0%} busy). At "
              f"{worst['bandwidth_gb_s']:.1f} GB/s (×{worst['scale']:g}) the p99 hand-off is "
              f"{worst['p99_handoff_ms']:.1f} ms against {base['p99_handoff_ms']:.1f} ms, and "
              f"goodput changes by {change:+.0%}{why}")
    else:
        nv = part[part.cluster == "NVLink (shipped)"].iloc[0]
        nic = part[part.cluster == "NICs instead of NVLink"].iloc[0]
        print(f"{pairing}: the KV stream needs {needed / 1e9:.1f} GB/s on average; moving it off "
              f"NVLink onto the prefill GPUs' NICs ({nic['bandwidth_gb_s']:.0f} GB/s per "
              f"prefill instance) "
              f"takes the p99 hand-off from {nv['p99_handoff_ms']:.2f} to "
              f"{nic['p99_handoff_ms']:.2f} ms; goodput {nv['request_goodput']:.2f} → "
              f"{nic['request_goodput']:.2f} requests/s.")
