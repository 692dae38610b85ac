"""Ragged batches: per-request prompt lengths, costed padded to the longest and packed.

Padded: the ordinary ``batch × longest`` generation (every sequence pays for the longest prompt
and, in decode, attends as many keys as the longest). Packed: token-wise ops on the real tokens
only, attention per sequence at its own length (:func:`llmsim.graph.ragged.lower_ragged`). The
padding waste is reported both as tokens (1 − Σ lengths / (batch × longest)) and as time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmsim.config.model import ModelSpec
from llmsim.config.scenario import Scenario
from llmsim.devices.base import Fidelity
from llmsim.engine import make_device, resolved_config, simulate
from llmsim.engine.simulate import simulate_step
from llmsim.errors import ConfigError
from llmsim.graph.ragged import lower_ragged

OPTION = "--prompts"


def parse_prompts(text: str) -> list[int]:
    """``128,512,900`` or a file holding the lengths (commas, spaces or newlines between them)."""
    raw = text
    if not text.replace(",", "").replace(" ", "").isdigit() and Path(text).is_file():
        raw = Path(text).read_text()
    parts = [p for p in raw.replace("\n", ",").replace(" ", ",").split(",") if p.strip()]
    try:
        lens = [int(p) for p in parts]
    except ValueError:
        raise ConfigError(f"{OPTION} '{text[:60]}': expected comma-separated prompt lengths or a file of them") \
            from None
    if not lens or any(n <= 0 for n in lens):
        raise ConfigError(f"{OPTION} '{text[:60]}': prompt lengths must be positive integers")
    return lens


@dataclass(frozen=True)
class Side:
    ttft_s: float
    tpot_s: float
    total_s: float
    energy_j: float


@dataclass(frozen=True)
class RaggedResult:
    prompts: tuple[int, ...]
    padded: Side
    packed: Side
    config: dict[str, Any]

    @property
    def padding_token_fraction(self) -> float:
        """Share of the padded batch's prompt tokens that are padding."""
        return 1.0 - sum(self.prompts) / (len(self.prompts) * max(self.prompts))

    @property
    def padding_time_fraction(self) -> float:
        """Share of the padded generation's time that packing saves."""
        return 1.0 - self.packed.total_s / self.padded.total_s

    def to_dict(self) -> dict[str, Any]:
        side = lambda s: {"ttft_s": s.ttft_s, "tpot_s": s.tpot_s, "total_s": s.total_s, "energy_j": s.energy_j}  # noqa: E731
        return {"prompts": list(self.prompts), "padded": side(self.padded), "packed": side(self.packed),
                "padding_token_fraction": self.padding_token_fraction,
                "padding_time_fraction": self.padding_time_fraction, "config": self.config}


def simulate_ragged(hw: Any, model: ModelSpec, sc: Scenario, prompts: list[int],
                    fidelity: Fidelity = "cycle") -> RaggedResult:
    """Generate ``sc.gen`` tokens for each of ``len(prompts)`` requests, padded and packed."""
    padded_sc = sc.model_copy(update={"batch": len(prompts), "prompt": max(prompts)})
    pad = simulate(hw, model, padded_sc, fidelity)
    dev = make_device(hw, model, padded_sc, fidelity)
    steps = [simulate_step(lower_ragged(model, padded_sc, prompts, prompts, "prefill"), dev)]
    for k in range(1, sc.gen):
        steps.append(simulate_step(lower_ragged(model, padded_sc, [1] * len(prompts), [n + k for n in prompts],
                                                "decode", step=k), dev))
    dec = steps[1:]
    packed = Side(steps[0].latency_s, sum(s.latency_s for s in dec) / len(dec) if dec else 0.0,
                  sum(s.latency_s for s in steps), sum(s.energy_j for s in steps))
    padded = Side(pad.ttft_s, pad.tpot_s, pad.total_s, pad.energy_j)
    cfg = resolved_config(hw, model, padded_sc, fidelity) | {"prompts": list(prompts)}
    return RaggedResult(tuple(prompts), padded, packed, cfg)
