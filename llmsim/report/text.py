"""Plain-text output of saved results: the run summary the CLI prints, and ``llmsim explain``.

Reads result dicts (:meth:`llmsim.engine.result.SimResult.to_dict`); never simulates.
"""

from __future__ import annotations

from typing import Any

LEGEND = ("TTFT = time to first token (the prefill step); TPOT = mean time per output token over the decode "
          "steps; 'per token' divides by batch x gen generated tokens")

#: energy component names -> meaning; a name not listed is a compute unit or an on-chip level of the preset
ENERGY_COMPONENTS: dict[str, str] = {
    "compute": "arithmetic on the main compute unit (FLOPs x energy_pj_per_flop)",
    "vector": "arithmetic on the vector unit (norms, softmax, activations)",
    "asic": "arithmetic on the PIM controller ASIC (non-linear ops, reductions)",
    "bank_mac": "arithmetic in the DRAM bank MAC units (PIM)",
    "sram": "on-chip SRAM/cache traffic (bytes x energy_pj_per_byte); cache levels appear by name (l1, l2, ...)",
    "dram_act_pre": "DRAM row activate + precharge commands (act_pj per ACT)",
    "dram_rd": "DRAM column reads, core + periphery (rd_pj_per_bit)",
    "dram_wr": "DRAM column writes, core + periphery (wr_pj_per_bit)",
    "dram_mac_rd": "PIM all-bank MAC reads inside the DRAM (mac_pj_per_bit)",
    "dram_io": "DRAM data-pin interface, DQ (io_pj_per_bit)",
    "dram_refresh": "DRAM refresh commands (ref_pj per REF)",
    "dram_background": "DRAM standby power (background_mw) x step wall time",
    "static": "static/leakage power of the chip (static_power_w) x step wall time",
    "host_link": "transfers over the host link (PCIe, PIM host bus) (energy_pj_per_bit)",
    "host": "host CPU work of framework dispatch",
}

TOPICS: dict[str, str] = {
    "metrics": LEGEND + ".\ntokens/s = batch x gen / total time. total = TTFT + the sum of all decode steps.\n"
               "'time by op kind' attributes each instant of a step to the ops running then ('idle': none).",
    "energy": "Energy is split by component (J); the components add up to the total:\n" + "\n".join(
        f"  {k:<16} {v}" for k, v in ENERGY_COMPONENTS.items())
        + "\n  (other names)    a compute unit or on-chip level named in the hardware preset, or (analytic fidelity) "
          "a memory level of bytes_by_level: its bytes x its energy per byte",
    "memory": "memory_footprint in every run and step result (a step: its batch at its prompt, or at its context "
              "+ 1 tokens): capacity, weights, KV cache (batch x (prompt + gen) tokens), "
              "activations (largest single-op activation working set of prefill) and free bytes; max_batch is the "
              "largest batch that fits at this context, max_context the longest context at this batch "
              "(max_context_limit says whether memory or the model's max_positions limits it).",
    "eager": "In eager mode the host dispatches every kernel (framework.eager_dispatch_s per kernel). When that "
             "host time exceeds the device time the run is host-bound: TTFT and TPOT both equal the dispatch "
             "time of one step's kernels. --mode graph (CUDA graphs) removes most of it.",
}


def fmt_s(s: float) -> str:
    for unit, k in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if s >= k or unit == "ns":
            return f"{s / k:.3f} {unit}"
    return f"{s} s"


def fmt_j(j: float) -> str:
    for unit, k in (("J", 1.0), ("mJ", 1e-3), ("uJ", 1e-6), ("nJ", 1e-9)):
        if j >= k or unit == "nJ":
            return f"{j / k:.3f} {unit}"
    return f"{j} J"


def _gb(b: float) -> str:
    return f"{b / 1e9:.2f} GB"


def host_bound_share(d: dict[str, Any]) -> float:
    """Share of the run's wall time the host unit was busy (0 when the device has no host unit)."""
    total = d.get("total_s") or 0.0
    return d.get("busy_by_unit_s", {}).get("host", 0.0) / total if total else 0.0


def memory_line(m: dict[str, Any]) -> str:
    """One line of :func:`llmsim.engine.footprint.memory_footprint`: where main memory goes, what fits."""
    return (f"  memory: weights {_gb(m['weights_bytes'])}, KV cache {_gb(m['kv_cache_bytes'])}, "
            f"activations {_gb(m['activations_bytes'])}, free {_gb(m['free_bytes'])} of "
            f"{_gb(m['capacity_bytes'])}; fits batch <= {m['max_batch']} at this context, context <= "
            f"{m['max_context']} at this batch ({m['max_context_limit']})")


def run_summary(d: dict[str, Any], title: str) -> list[str]:
    """The lines ``llmsim run`` prints for a run result dict."""
    lines = [title,
             f"  TTFT            {fmt_s(d['ttft_s'])}",
             f"  TPOT            {fmt_s(d['tpot_s'])}",
             f"  total           {fmt_s(d['total_s'])}  ({d['tokens_per_s']:.1f} tokens/s)",
             f"  energy          {fmt_j(d['energy_j'])}  ({fmt_j(d['energy_per_token_j'])} per token)",
             f"  ({LEGEND}; `llmsim explain energy` names the energy components)"]
    e = d["energy_breakdown_j"]
    tot = sum(e.values()) or 1.0
    lines.append("  energy by component: " + ", ".join(
        f"{k} {100 * v / tot:.1f}%" for k, v in sorted(e.items(), key=lambda kv: -kv[1]) if v > 0))
    lat = d["latency_breakdown_s"]
    lines.append("  time by op kind:     " + ", ".join(
        f"{k} {100 * v / d['total_s']:.1f}%" for k, v in sorted(lat.items(), key=lambda kv: -kv[1]) if v > 0))
    bw = d.get("achieved_bandwidth_bytes_per_s", {})
    if bw:
        lines.append("  achieved bandwidth:  " + ", ".join(
            f"{k} {v / 1e9:.1f} GB/s" for k, v in sorted(bw.items(), key=lambda kv: -kv[1]) if v > 0))
    st = d.get("stats", {})
    if st.get("row_hits", 0) + st.get("row_misses", 0) > 0:
        cmds = {k[5:]: v for k, v in st.items() if k.startswith("dram_") and v}
        lines.append(f"  DRAM: row-buffer hit rate {100 * st['row_hits'] / (st['row_hits'] + st['row_misses']):.2f}%, "
                     "commands " + ", ".join(f"{k} {v:.3g}" for k, v in sorted(cmds.items())))
    m = d.get("memory_footprint") or {}
    if m:
        lines.append(memory_line(m))
    share = host_bound_share(d)
    if d.get("config", {}).get("scenario", {}).get("mode") == "eager" and share > 0.9:
        lines.append(f"  host-bound: eager dispatch keeps the host busy {100 * share:.0f}% of the time, so TTFT and "
                     "TPOT reflect kernel launches, not the device; try --mode graph (`llmsim explain eager`)")
    lines.append("  top ops by time:")
    for row in d["top_ops"][:6]:
        lines.append(f"    {row['op']:<28} {fmt_s(row['seconds']):>12}  {100 * row['seconds'] / d['total_s']:5.1f}%")
    return lines
