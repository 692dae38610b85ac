"""The DRAM controller's exact results on fixed streams: cycles, commands, row hits and a digest of the
command trace, pinned so that speed work on llmsim.memory.kernels cannot change a single command.

The pinned values were produced by the controller before its event-skipping rewrite (the one that
matched DRAMsim3 command for command, docs/memory.md); every trace is also checked against the
timing table by the independent checker. A change that alters results on purpose must re-pin them
(and say why in its commit)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from llmsim.config.loader import load_yaml
from llmsim.config.memory import DramSpec
from llmsim.memory import DramModel, Requests, check_trace
from llmsim.memory.dram import _hash31

ROOT = Path(__file__).resolve().parents[1]


def _spec(name: str, controller: dict | None = None) -> DramSpec:
    raw = load_yaml(ROOT / "hw_configs" / "memory" / f"{name}.yaml", "hw_configs")
    if controller:
        raw = raw | {"controller": raw.get("controller", {}) | controller}
    return DramSpec.model_validate(raw)


def _requests(model: DramModel, stream: str, n: int) -> Requests:
    """The benchmark's streams (benchmarks/dram_vs_dramsim3.py), plus ``mixed``: random ops (MAC
    included where the memory has PIM) over few rows, channels and ranks, for conflicts and turnarounds."""
    s = model.spec
    i = np.arange(n, dtype=np.int64)
    write = np.zeros(n, dtype=np.int64)
    if stream == "mixed":
        rng = np.random.default_rng(7)
        ops = rng.integers(0, 3 if s.energy.mac_pj_per_bit is not None else 2, n)
        return Requests(*(np.asarray(a, dtype=np.int64) for a in (
            ops, rng.integers(0, s.channels, n), rng.integers(0, s.bank_groups, n),
            rng.integers(0, s.banks_per_group, n), rng.integers(0, 4, n), rng.integers(0, s.ranks, n))))
    if stream == "seq_read":
        idx = i
    elif stream == "seq_write":
        idx, write = i, np.ones(n, dtype=np.int64)
    elif stream == "random":
        idx = (_hash31(i, 0, 1) * 2147483648 + _hash31(i, 0, 2)) % ((1 << 30) // s.burst_bytes)
    elif stream == "stride_4KiB":
        idx = i * (4096 // s.burst_bytes) % (s.capacity_bytes // s.burst_bytes)
    else:  # mix_2r1w
        idx, write = i, (i % 3 == 2).astype(np.int64)
    r = model.map_bursts(idx)
    return Requests(write, r.channel, r.bank_group, r.bank, r.row, r.rank)


# (memory, controller overrides as sorted items, stream, requests)
CASES = [
    (mem, (), stream, n)
    for mem, n in (("hbm2", 40_000), ("ddr4", 12_000))
    for stream in ("seq_read", "seq_write", "random", "stride_4KiB", "mix_2r1w", "mixed")
] + [
    ("hbm2", (("page_policy", "closed"),), "mix_2r1w", 20_000),
    ("hbm2", (("page_policy", "adaptive"),), "mixed", 6_000),
    ("ddr4", (("scheduler", "fcfs"),), "mixed", 6_000),
    ("ddr4", (("page_policy", "adaptive"),), "stride_4KiB", 6_000),
    ("hbm3", (("refresh", "per_bank"),), "seq_read", 60_000),
    ("hbm3", (("refresh", "per_bank"),), "mixed", 8_000),
    ("lpddr5x", (), "mixed", 6_000),
    ("gddr6-aim", (), "mixed", 6_000),
    ("gddr6-aim", (("page_policy", "closed"),), "mixed", 4_000),
    ("ddr5", (), "random", 8_000),
    ("hbm2", (), "gen_seq_write", 30_000),
    ("ddr4", (), "gen_random", 8_000),
    ("gddr6", (), "gen_random", 8_000),
]


def outcome(case) -> list:
    mem, ctrl, stream, n = case
    m = DramModel(_spec(mem, dict(ctrl)))
    if stream.startswith("gen_"):  # generated inside the kernel (DramModel.stream's path)
        empty = np.zeros(0, np.int64)
        gen, op = {"gen_seq_write": (1, 1), "gen_random": (2, 0)}[stream]
        st = m._simulate(empty, empty, empty, empty, n, gen, 3, op, True, 8 * n, m.span_bursts(1 << 28))
    else:
        st = m.run(_requests(m, stream, n), trace=8 * n)
    tr = np.ascontiguousarray(m.last_trace, dtype=np.int64)
    assert len(tr) < 8 * n  # the whole trace was kept
    check_trace(m.spec, tr)
    return [st.cycles, [st.commands[k] for k in sorted(st.commands)], st.row_hits, st.row_misses, len(tr),
            hashlib.sha256(tr.tobytes()).hexdigest()[:16]]


PINNED = {
    ('hbm2', (), 'seq_read', 40000):
        [10687, [1314, 0, 0, 1186, 0, 40000, 16, 0, 0], 38694, 1306, 42516, '732a5bd3ead1367d'],
    ('hbm2', (), 'seq_write', 40000):
        [10684, [1314, 0, 0, 1186, 0, 0, 16, 0, 40000], 38694, 1306, 42516, 'e140755e95001d90'],
    ('hbm2', (), 'random', 40000):
        [42333, [40073, 0, 0, 39954, 0, 40000, 80, 0, 0], 32, 39968, 120107, '341c172d61bba9be'],
    ('hbm2', (), 'stride_4KiB', 40000):
        [81694, [40116, 0, 0, 40052, 0, 40000, 160, 0, 0], 0, 40000, 120328, 'eb6c78335c67500d'],
    ('hbm2', (), 'mix_2r1w', 40000):
        [12137, [1355, 0, 0, 1335, 0, 26667, 24, 0, 13333], 38653, 1347, 42714, '3d10875c04a7075e'],
    ('hbm2', (), 'mixed', 40000):
        [15908, [13857, 0, 0, 13856, 0, 19912, 32, 0, 20088], 26232, 13768, 67745, '8a3730aac64f0efa'],
    ('ddr4', (), 'seq_read', 12000):
        [72570, [102, 0, 0, 88, 0, 12000, 11, 0, 0], 11899, 101, 12201, '06af6e20454af09c'],
    ('ddr4', (), 'seq_write', 12000):
        [72387, [102, 0, 0, 88, 0, 0, 11, 0, 12000], 11898, 102, 12201, '8117cb8e4cf61b7a'],
    ('ddr4', (), 'random', 12000):
        [60112, [12024, 0, 0, 11992, 0, 12000, 9, 0, 0], 5, 11995, 36025, 'e4b389f7af40254c'],
    ('ddr4', (), 'stride_4KiB', 12000):
        [52139, [6086, 0, 0, 6054, 0, 12000, 8, 0, 0], 5982, 6018, 24148, '034d4a807495fd16'],
    ('ddr4', (), 'mix_2r1w', 12000):
        [69666, [103, 0, 0, 92, 0, 8000, 11, 0, 4000], 11898, 102, 12206, '8cc3529f0aa1d372'],
    ('ddr4', (), 'mixed', 12000):
        [54768, [5296, 0, 0, 5264, 0, 6064, 8, 0, 5936], 6756, 5244, 22568, '7c53cee6426ccada'],
    ('hbm2', (('page_policy', 'closed'),), 'mix_2r1w', 20000):
        [24076, [20072, 0, 0, 20072, 0, 13334, 48, 0, 6666], 0, 20000, 60192, '74d8e46dda0e4c53'],
    ('hbm2', (('page_policy', 'adaptive'),), 'mixed', 6000):
        [2607, [2397, 0, 0, 2397, 0, 3009, 0, 0, 2991], 3603, 2397, 10794, '13b9699133647f74'],
    ('ddr4', (('scheduler', 'fcfs'),), 'mixed', 6000):
        [31875, [4529, 0, 0, 4512, 0, 3009, 5, 0, 2991], 1486, 4514, 15046, '1928db26d295f86e'],
    ('ddr4', (('page_policy', 'adaptive'),), 'stride_4KiB', 6000):
        [25950, [3019, 0, 0, 3019, 0, 6000, 4, 0, 0], 2996, 3004, 12042, '59100ecf25104813'],
    ('hbm3', (('refresh', 'per_bank'),), 'seq_read', 60000):
        [3942, [2016, 0, 0, 1536, 0, 60000, 0, 320, 0], 58016, 1984, 63872, '2d3086253e19333d'],
    ('hbm3', (('refresh', 'per_bank'),), 'mixed', 8000):
        [1727, [3353, 0, 0, 2888, 0, 4024, 0, 128, 3976], 4663, 3337, 14369, '0a2822eb08998232'],
    ('lpddr5x', (), 'mixed', 6000):
        [2834, [2636, 0, 0, 2446, 0, 3009, 8, 0, 2991], 3377, 2623, 11090, 'd45e10605235a1ee'],
    ('gddr6-aim', (), 'mixed', 6000):
        [14140, [3041, 1851, 2044, 4829, 1820, 1998, 128, 0, 1958], 1020, 4980, 17669, 'ab4d72d7c9e1ffad'],
    ('gddr6-aim', (('page_policy', 'closed'),), 'mixed', 4000):
        [10706, [2656, 1373, 1373, 2656, 1373, 1313, 96, 0, 1314], 0, 4000, 12154, 'd72c8cc2214ff7af'],
    ('ddr5', (), 'random', 8000):
        [35706, [8034, 0, 0, 7970, 0, 8000, 10, 0, 0], 3, 7997, 24014, 'aa2a6f37399d17be'],
    ('hbm2', (), 'gen_seq_write', 30000):
        [8188, [982, 0, 0, 970, 0, 0, 16, 0, 30000], 29026, 974, 31968, '9db4e2e0fe99df72'],
    ('ddr4', (), 'gen_random', 8000):
        [41328, [8009, 0, 0, 7977, 0, 8000, 6, 0, 0], 14, 7986, 23992, '97ce4ea2afa7414f'],
    ('gddr6', (), 'gen_random', 8000):
        [50425, [8077, 0, 0, 8076, 0, 8000, 30, 0, 0], 13, 7987, 24183, '166cc2351500aecb'],
}


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join([c[0], *(f"{k}={v}" for k, v in c[1]), c[2]]))
def test_controller_results_are_pinned_command_for_command(case):
    assert outcome(case) == PINNED[case]
