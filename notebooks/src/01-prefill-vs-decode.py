# ruff: noqa: E402 (the tagged parameters cell comes first, before the imports, by design)
# %% [markdown]
# # 01 · Prefill vs decode: the roofline in pictures
#
# **Question.** How long does one engine step take as the decode batch grows and as the prompt
# grows, on an H100, a B200, a Cerebras WSE-3, a Groq LPU and an AWS Trainium2 — and where does
# each phase stop waiting on memory and start waiting on arithmetic?
#
# A step's time in infersim's cost model is, per operator group, the larger of its FLOPs at the
# chip's achievable FLOP/s and its bytes at the achievable memory bandwidth, plus communication,
# a fixed per-step overhead and (on SRAM/dataflow machines) per-layer and per-hop latency floors.
# A kernel is compute-bound when its *arithmetic intensity* (FLOP per byte moved) exceeds the
# chip's *ridge point* (peak FLOP/s ÷ bandwidth). Everything below comes from the pure cost model
# (`infersim.cost`); nothing is simulated.
#
# Each chip runs the model on its smallest instance that holds the weights plus the KV cache of
# `SIZING_BATCH` sequences at `CONTEXT_TOKENS`: tensor parallelism inside a scale-up domain,
# pipeline stages beyond it (a 70B model takes a few GPUs, several WSE-3 wafers, or about a
# thousand LPUs). Larger decode batches are still costed, but drawn hollow where their KV cache
# would not fit on that instance. 16-bit weights are bf16, or fp16 on chips without a bf16 peak.

# %% tags=["parameters"]
MODEL = "llama-3.1-70b"
PRECISION = "bf16"
CHIPS = ["h100", "b200", "wse3", "lpu", "trainium2"]
CONTEXT_TOKENS = 2048          # KV entries each decoding sequence attends to
SIZING_BATCH = 32              # each instance holds the weights plus this many sequences' KV
BATCH_SIZES = [1, 2, 4, 8, 16, 32, 64, 128, 256]
PROMPT_LENGTHS = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768]
MEMORY_FRACTION = 0.9          # share of each chip's memory the engine may fill

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

import infersim.cost as cost
from infersim.hardware import load_hardware
from infersim.model import load_model
from infersim.report.plots import plain_log_ticks

model = load_model(MODEL)
hardware = {name: load_hardware(name) for name in CHIPS}
colors = dict(zip(CHIPS, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))


def precision_for(hw):
    """PRECISION, or its 16-bit twin where the chip lists only the other one (the LPU has fp16)."""
    twins = {"bf16": "fp16", "fp16": "bf16"}
    if PRECISION not in hw.peak_flops and twins.get(PRECISION) in hw.peak_flops:
        return twins[PRECISION]
    return PRECISION


def smallest_instance(hw, kv_tokens):
    """The smallest tp×pp instance of ``hw`` that holds the weights plus ``kv_tokens`` of KV.

    The layouts the vendors use: GPUs and Trainium split each layer over the chips of one
    scale-up domain (tensor parallelism, up to one KV head per chip so the cache is not
    replicated) and add pipeline stages only beyond that; SRAM machines (Cerebras, Groq) spread
    the layers over chips in sequence (pipeline stages, at most one per layer) and split layers
    only when that is not enough and the fabric allows it (a GroqNode's 8 chips; never across
    Cerebras wafers, which meet only over Ethernet).
    """
    precision = precision_for(hw)
    probe = cost.Deployment(model=model, hardware=hw, precision=precision)
    need = cost.min_chips(probe, MEMORY_FRACTION, kv_tokens=kv_tokens)

    def fits(tp, pp):
        dep = cost.Deployment(model=model, hardware=hw, precision=precision, tp=tp, pp=pp)
        return dep if cost.placement(dep, MEMORY_FRACTION).kv_capacity_tokens >= kv_tokens else None

    if hw.memory_kind == "sram":
        tp = 1
        while tp <= hw.tensor_parallel_chips:
            for pp in range(max(1, math.ceil(need / tp)), model.num_layers + 1):
                if dep := fits(tp, pp):
                    return dep
            tp *= 2
    else:
        tp_limit = min(hw.scaleup_domain_chips, model.num_kv_heads)
        tp = 1
        while tp < need and tp * 2 <= tp_limit:
            tp *= 2
        for pp in range(math.ceil(need / tp), model.num_layers + 1):
            if dep := fits(tp, pp):
                return dep
    raise ValueError(f"{model.name} with {kv_tokens} KV tokens fits no tp×pp layout of {hw.name}")


kv_needed = SIZING_BATCH * (CONTEXT_TOKENS + 1)
instances = {name: smallest_instance(hw, kv_needed) for name, hw in hardware.items()}
kv_room = {name: cost.placement(dep, MEMORY_FRACTION).kv_capacity_tokens
           for name, dep in instances.items()}
ridge = {name: dep.hardware.ridge_point(dep.precision) for name, dep in instances.items()}
pd.DataFrame([
    {"chip": name, "instance": dep.describe(), "chips": dep.chips,
     "weights per chip (GB)": cost.placement(dep, MEMORY_FRACTION).weight_bytes_per_chip / 1e9,
     "memory": dep.hardware.memory_kind,
     f"max batch at {CONTEXT_TOKENS} ctx": kv_room[name] // (CONTEXT_TOKENS + 1),
     "ridge point (FLOP/B)": ridge[name],
     "instance $/h": dep.chips * dep.hardware.price_per_chip_hour}
    for name, dep in instances.items()
]).set_index("chip").round(2)

# %% [markdown]
# ## Step time against decode batch size and prompt length
#
# Left: one decode step of `n` sequences, each attending to `CONTEXT_TOKENS` cached tokens.
# Right: one prefill step of a single prompt from an empty cache (the time to first token of an
# unloaded instance, queueing aside). Markers show what binds the step: ● memory bandwidth,
# ▲ arithmetic, ■ latency (fixed overhead, latency floors and communication).

# %%
BOUND_MARKERS = {"memory": "o", "compute": "^", "latency": "s"}


def step_row(chip, dep, phase, size, batch, kv_tokens):
    step = cost.step_time(dep, batch)
    return {"chip": chip, "phase": phase, "size": size, "kv_fits": kv_tokens <= kv_room[chip],
            "time_ms": step.time_s * 1e3,
            "compute_ms": step.compute_s * 1e3, "memory_ms": step.memory_s * 1e3,
            "latency_ms": (step.comm_s + step.overhead_s) * 1e3, "bound": step.bound,
            "intensity": step.arithmetic_intensity,
            "flops_per_chip_s": step.flops / step.time_s / dep.chips}


rows = []
for chip, dep in instances.items():
    for n in BATCH_SIZES:
        rows.append(step_row(chip, dep, "decode", n,
                             cost.StepBatch(decode_kv_lens=(CONTEXT_TOKENS,) * n),
                             n * (CONTEXT_TOKENS + 1)))
    for p in PROMPT_LENGTHS:
        rows.append(step_row(chip, dep, "prefill", p, cost.StepBatch(prefill_new_tokens=(p,)), p))
steps = pd.DataFrame(rows)

fig, axes = plt.subplots(1, 2, figsize=(13, 5))
for ax, phase, xlabel in [(axes[0], "decode", "decode batch size (sequences)"),
                          (axes[1], "prefill", "prompt length (tokens)")]:
    for chip in CHIPS:
        part = steps[(steps.chip == chip) & (steps.phase == phase)]
        ax.plot(part["size"], part["time_ms"], color=colors[chip], label=instances[chip].describe())
        for bound, marker in BOUND_MARKERS.items():
            for fits in (True, False):
                hit = part[(part.bound == bound) & (part.kv_fits == fits)]
                ax.scatter(hit["size"], hit["time_ms"], marker=marker, s=28, zorder=3,
                           color=colors[chip] if fits else "white", edgecolor=colors[chip])
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    plain_log_ticks(ax.yaxis)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("time per step (ms)")
    ax.grid(True, which="both", alpha=0.3)
axes[0].set_title(f"Decode step, {CONTEXT_TOKENS}-token context each")
axes[1].set_title("Prefill of one prompt")
bound_handles = [plt.Line2D([], [], color="grey", marker=m, linestyle="", label=f"{b}-bound")
                 for b, m in BOUND_MARKERS.items()]
bound_handles.append(plt.Line2D([], [], color="grey", marker="o", markerfacecolor="white",
                                linestyle="", label="KV cache would not fit"))
axes[0].legend(handles=bound_handles, loc="upper left", fontsize=8)
axes[1].legend(loc="upper left", fontsize=8)
fig.suptitle(f"{model.name} {PRECISION}: time per engine step on each chip's smallest instance")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The roofline
#
# Each panel is one chip: the roof is `min(peak FLOP/s, bandwidth × intensity)` per chip (solid:
# datasheet peaks; dashed: the calibrated achievable fractions the cost model uses). Each point is
# one step placed at its arithmetic intensity and the FLOP/s per chip it actually achieves (hollow:
# the batch's KV cache would not fit on the instance). A point on the sloped side is limited by
# bandwidth, one on the flat side by arithmetic; a point well below the roof loses its time to
# latency terms (fixed step overhead, per-layer and chip-hop floors, communication), which is
# where the SRAM machines' steps sit.

# %%
fig, axes = plt.subplots(1, len(CHIPS), figsize=(4 * len(CHIPS), 4.2), sharey=True)
axes = np.atleast_1d(axes)
intensity_axis = np.logspace(-0.5, 4.5, 200)
for ax, chip in zip(axes, CHIPS, strict=True):
    hw = hardware[chip]
    peak, bandwidth = hw.flops(instances[chip].precision), hw.memory_bandwidth
    ax.plot(intensity_axis, np.minimum(peak, bandwidth * intensity_axis) / 1e12, color="black",
            lw=1.2, label="datasheet roof")
    ax.plot(intensity_axis,
            np.minimum(peak * hw.compute_efficiency,
                       bandwidth * hw.memory_efficiency * intensity_axis) / 1e12,
            color="black", lw=1, ls="--", label="achievable roof")
    ax.axvline(ridge[chip], color="grey", lw=0.8, ls=":")
    for phase, marker in [("decode", "o"), ("prefill", "^")]:
        part = steps[(steps.chip == chip) & (steps.phase == phase)]
        ax.scatter(part["intensity"], part["flops_per_chip_s"] / 1e12, marker=marker,
                   color=[colors[chip] if fits else "white" for fits in part["kv_fits"]],
                   edgecolor=colors[chip] if phase == "decode" else "black", linewidth=0.6,
                   s=30, label=f"{phase} steps")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP/byte)")
    ax.set_title(f"{chip}: ridge {ridge[chip]:.0f} FLOP/B", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
axes[0].set_ylabel("achieved 16-bit TFLOP/s per chip" if PRECISION in ("bf16", "fp16")
                   else f"achieved {PRECISION} TFLOP/s per chip")
axes[0].legend(fontsize=8, loc="upper left")
fig.suptitle(f"{model.name} {PRECISION}: decode batches 1–{max(BATCH_SIZES)} and prompts "
             f"{min(PROMPT_LENGTHS)}–{max(PROMPT_LENGTHS)} tokens on the roofline")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Arithmetic intensity against each chip's ridge point
#
# A step's arithmetic intensity (solid) is mostly a property of the model and the batch; it differs
# between chips where the instance layout does (wide tensor parallelism replicates KV heads and
# adds activation traffic). Where it crosses the chip's ridge point (dotted, same colour), that
# phase turns from memory- to compute-bound on that chip. The
# crossings in the summary are found on a fine grid (every batch size, 200 prompt lengths) from
# the cost model's own verdict for each step.

# %%
def first_compute_bound(dep, sizes, make_batch):
    """Smallest size whose step the cost model calls compute-bound (arithmetic-limited operator
    groups outweigh both the bandwidth-limited ones and the latency terms), or None."""
    for size in sizes:
        if cost.step_time(dep, make_batch(size)).bound == "compute":
            return int(size)
    return None


fine_batches = range(1, max(BATCH_SIZES) + 1)
fine_prompts = np.unique(np.geomspace(1, max(PROMPT_LENGTHS), 200).astype(int))
crossings = {
    chip: {
        "decode": first_compute_bound(dep, fine_batches,
                                      lambda n: cost.StepBatch(decode_kv_lens=(CONTEXT_TOKENS,) * n)),
        "prefill": first_compute_bound(dep, fine_prompts,
                                       lambda p: cost.StepBatch(prefill_new_tokens=(int(p),))),
    }
    for chip, dep in instances.items()
}

fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), sharey=True)
for ax, phase, xlabel in [(axes[0], "decode", "decode batch size (sequences)"),
                          (axes[1], "prefill", "prompt length (tokens)")]:
    for chip in CHIPS:
        part = steps[(steps.chip == chip) & (steps.phase == phase)]
        ax.plot(part["size"], part["intensity"], color=colors[chip], marker=".", label=chip)
        ax.axhline(ridge[chip], color=colors[chip], ls=":", lw=1.5)
    # One label per group of ridges within 40 % of each other, so they do not overprint.
    groups = []
    for chip in sorted(CHIPS, key=ridge.get):
        if groups and ridge[chip] < 1.4 * ridge[groups[-1][0]]:
            groups[-1].append(chip)
        else:
            groups.append([chip])
    for group in groups:
        ax.annotate(" / ".join(group) + " ridge", (part["size"].iloc[-1], ridge[group[-1]]),
                    color=colors[group[-1]], fontsize=8, xytext=(0, 2),
                    textcoords="offset points", ha="right")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    plain_log_ticks(ax.yaxis)
    ax.set_xlabel(xlabel)
    ax.grid(True, which="both", alpha=0.3)
axes[0].set_ylabel("arithmetic intensity (FLOP/byte)")
axes[0].set_title(f"Decode, {CONTEXT_TOKENS}-token contexts")
axes[1].set_title("Prefill of one prompt")
axes[0].legend(fontsize=8, loc="upper left", title="step intensity")
fig.suptitle(f"{model.name} {PRECISION}: step intensity against each chip's ridge point")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## What the numbers say
#
# The table and the sentences below are computed from the cost model on every run, so they follow
# the parameters and the hardware profiles.

# %%
def by_size(chip, phase, size):
    row = steps[(steps.chip == chip) & (steps.phase == phase) & (steps["size"] == size)]
    return row.iloc[0]


long_prompt = max(PROMPT_LENGTHS)
summary = pd.DataFrame([
    {"chip": chip,
     "chips per instance": instances[chip].chips,
     f"max batch at {CONTEXT_TOKENS} ctx": kv_room[chip] // (CONTEXT_TOKENS + 1),
     "ridge (FLOP/B)": ridge[chip],
     "decode step, batch 1 (ms)": by_size(chip, "decode", 1)["time_ms"],
     "batch-1 bound": by_size(chip, "decode", 1)["bound"],
     f"decode step, batch {max(BATCH_SIZES)} (ms)": by_size(chip, "decode", max(BATCH_SIZES))["time_ms"],
     f"prefill {long_prompt} tok (ms)": by_size(chip, "prefill", long_prompt)["time_ms"],
     "decode compute-bound from batch": crossings[chip]["decode"],
     "prefill compute-bound from tokens": crossings[chip]["prefill"]}
    for chip in CHIPS
]).set_index("chip")
display(summary.round(2))

def chip_list(chips):
    return ", ".join(chips) if chips else "none"


def instance(chip):
    return f"{chip} ({instances[chip].chips} chips)"


batch1 = summary["decode step, batch 1 (ms)"]
batch1_intensity = {chip: by_size(chip, "decode", 1)["intensity"] for chip in CHIPS}
for verdict in ("memory", "latency", "compute"):
    chips = [chip for chip in CHIPS if summary.loc[chip, "batch-1 bound"] == verdict]
    if not chips:
        continue
    detail = ", ".join(f"{c}: {batch1_intensity[c]:.1f} vs ridge {ridge[c]:.1f} FLOP/B"
                       for c in chips)
    why = {"memory": "streaming the weights and the cache is what takes the time",
           "latency": "the fixed step overhead, per-layer and chip-hop latency floors and "
                      "communication outweigh both arithmetic and memory traffic",
           "compute": "even one token per sequence saturates the arithmetic units"}[verdict]
    print(f"Single-stream decode is {verdict}-bound on {chip_list(chips)} ({detail}): {why}.")

below = [chip for chip in CHIPS if batch1_intensity[chip] < ridge[chip]]
above = [chip for chip in CHIPS if batch1_intensity[chip] >= ridge[chip]]
if above:
    print(f"On {chip_list(above)} the ridge point is so low (SRAM bandwidth) that intensity alone "
          "does not tell the bound; the roofline's latency floors decide instead.")
crossing = {chip: crossings[chip]["decode"] for chip in CHIPS if crossings[chip]["decode"]}
never = [chip for chip in CHIPS if crossings[chip]["decode"] is None]
if never:
    print(f"With {CONTEXT_TOKENS}-token contexts decode never turns compute-bound up to batch "
          f"{max(BATCH_SIZES)} on {chip_list(never)}: every extra sequence adds its own KV reads, "
          "so batching amortises the weights but not the cache.")
if crossing:
    room = summary[f"max batch at {CONTEXT_TOKENS} ctx"]

    def fits_note(chip, n):
        return "" if n <= room[chip] else f" (beyond its KV room of {room[chip]})"

    order = sorted(crossing.items(), key=lambda item: item[1])
    print(f"With {CONTEXT_TOKENS}-token contexts decode turns compute-bound from batch "
          + ", ".join(f"{n} on {chip}{fits_note(chip, n)}" for chip, n in order) + ".")
prefill_cross = {chip: crossings[chip]["prefill"] for chip in CHIPS}
print("Prefill turns compute-bound from about "
      + ", ".join(f"{p} prompt tokens on {chip}" if p else f"never (≤ {long_prompt}) on {chip}"
                  for chip, p in prefill_cross.items()) + ".")
if all(prefill_cross.values()):
    print(f"So a single prompt longer than {max(prefill_cross.values())} tokens keeps the "
          "arithmetic units of every chip here busy, while a decode batch must reach "
          f"{min(crossing.values(), default='more than ' + str(max(BATCH_SIZES)))} or more "
          "sequences to do the same: the asymmetry that motivates disaggregation.")
print(f"Fastest single-stream decode step: {instance(batch1.idxmin())}, "
      f"{batch1.min():.2f} ms or {1e3 / batch1.min():.0f} tokens/s per user; "
      f"slowest: {instance(batch1.idxmax())}, {batch1.max():.2f} ms.")
prefill_long = summary[f"prefill {long_prompt} tok (ms)"]
print(f"Fastest {long_prompt}-token prefill: {instance(prefill_long.idxmin())}, "
      f"{prefill_long.min():.0f} ms; slowest: {instance(prefill_long.idxmax())}, "
      f"{prefill_long.max():.0f} ms.")
sram = [chip for chip in CHIPS if hardware[chip].memory_kind == "sram"]
hbm = [chip for chip in CHIPS if hardware[chip].memory_kind != "sram"]
if sram and hbm:
    room = summary[f"max batch at {CONTEXT_TOKENS} ctx"]
    print(f"SRAM machines ({chip_list(sram)}) hold weights and cache on chip: their instances "
          f"take {', '.join(str(instances[c].chips) for c in sram)} chips and fit "
          f"{', '.join(str(room[c]) for c in sram)} sequences of {CONTEXT_TOKENS} tokens, against "
          f"{room[hbm].min()}–{room[hbm].max()} on the HBM instances.")
print("Instances differ in size (each is its chip's smallest that holds the model and "
      f"{SIZING_BATCH} sequences' KV cache); notebook 04 compares chips per dollar.")
