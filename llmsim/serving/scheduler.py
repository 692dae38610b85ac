"""Iteration schedulers: which sequences run in the next engine step, and how many tokens each.

A sequence's ``pending`` tokens are those it must put through the model before it emits its next
token: the prompt when it arrives, one token per decode step, prompt + generated tokens after it
was preempted (vLLM's recompute). A policy is one class with :meth:`Policy.schedule`; the KV
block manager sits beside it and a policy that runs out of blocks for running decodes preempts
the most recently admitted sequence (vLLM's default), which returns to the head of the queue.

* ``vllm``: vLLM's continuous batching (v0 scheduler): admit waiting requests first-come
  first-served while the token budget, ``max_num_seqs`` and free blocks allow, running their whole
  prompts as a prefill-only step; otherwise one decode step for every running sequence.
* ``sarathi``: Sarathi-Serve's chunked prefill: every iteration runs all decodes, then fills the
  rest of a ``chunk_tokens`` budget with prefill chunks (running prefills first, then new ones).
* ``static``: a fixed batch: up to ``max_num_seqs`` waiting requests are prefilled together and
  decoded until the last one finishes; nothing joins the batch meanwhile.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import ClassVar

from llmsim.errors import ConfigError
from llmsim.serving.arrivals import Request
from llmsim.serving.kv import BlockManager


@dataclass(eq=False)
class Seq:
    req: Request
    computed: int = 0            # tokens in the KV cache
    generated: int = 0           # output tokens emitted
    first_scheduled_s: float | None = None
    first_token_s: float | None = None
    finish_s: float | None = None
    preemptions: int = 0
    energy_j: float = 0.0
    token_times: list[float] = field(default_factory=list, repr=False)

    @property
    def pending(self) -> int:
        return self.req.prompt + self.generated - self.computed

    @property
    def done(self) -> bool:
        return self.generated >= self.req.output


class Policy:
    name: ClassVar[str] = ""
    _registry: ClassVar[dict[str, type[Policy]]] = {}

    def __init_subclass__(cls, **kw) -> None:
        super().__init_subclass__(**kw)
        if cls.name in Policy._registry:
            raise TypeError(f"scheduler '{cls.name}' claimed twice")
        Policy._registry[cls.name] = cls

    def __init__(self, kv: BlockManager, max_seqs: int, budget: int):
        self.kv, self.max_seqs, self.budget = kv, max_seqs, budget
        self.waiting: deque[Seq] = deque()
        self.running: list[Seq] = []
        self.preemptions = 0

    def schedule(self) -> list[tuple[Seq, int]]:
        """The next step's (sequence, tokens) pairs; blocks for them are already held."""
        raise NotImplementedError

    def finished(self, s: Seq) -> None:
        self.running.remove(s)
        self.kv.release(s.req.id)

    # ---- shared mechanisms ----------------------------------------------------------------------
    def _preempt(self, victim: Seq) -> None:
        """Recompute preemption: drop the KV cache, requeue at the head."""
        self.running.remove(victim)
        self.kv.release(victim.req.id)
        victim.computed = 0
        victim.preemptions += 1
        self.preemptions += 1
        self.waiting.appendleft(victim)

    def _decodes(self, seqs: list[Seq]) -> list[tuple[Seq, int]]:
        """One token for each of ``seqs`` (running, pending 1), preempting the newest when blocks run out."""
        out = []
        for s in list(seqs):
            if s not in self.running:
                continue  # preempted below on behalf of an older sequence
            while not self.kv.grow(s.req.id, s.computed + 1):
                victim = self.running[-1]
                self._preempt(victim)
                if victim is s:
                    break
            if s in self.running:
                out.append((s, 1))
        return out

    def _admit(self, budget: int, chunked: bool, room: int) -> list[tuple[Seq, int]]:
        """First-come first-served admission of waiting requests within ``budget`` tokens."""
        out = []
        while self.waiting and budget > 0 and len(self.running) < room:
            s = self.waiting[0]
            n = min(s.pending, budget) if chunked else s.pending
            # keep a block for every running sequence's next token (admitting into a full cache
            # only to preempt on the next decode is thrash)
            if n > budget or self.kv.need(s.req.id, s.computed + n) + len(self.running) + 1 > self.kv.free:
                break
            self.kv.grow(s.req.id, s.computed + n)
            self.waiting.popleft()
            self.running.append(s)
            out.append((s, n))
            budget -= n
        return out


class Vllm(Policy):
    name = "vllm"

    def schedule(self) -> list[tuple[Seq, int]]:
        new = self._admit(self.budget, chunked=False, room=self.max_seqs)
        return new or self._decodes(self.running)


class Sarathi(Policy):
    name = "sarathi"

    def schedule(self) -> list[tuple[Seq, int]]:
        out = self._decodes([s for s in self.running if s.pending == 1])
        budget = self.budget - len(out)
        for s in [s for s in self.running if s.pending > 1]:
            n = min(s.pending, budget)
            if n <= 0 or not self.kv.grow(s.req.id, s.computed + n):
                break
            out.append((s, n))
            budget -= n
        return out + self._admit(budget, chunked=True, room=self.max_seqs)


class Static(Policy):
    name = "static"

    def schedule(self) -> list[tuple[Seq, int]]:
        if not self.running:
            return self._admit(1 << 62, chunked=False, room=self.max_seqs)
        return self._decodes(self.running)


def make_policy(name: str, kv: BlockManager, max_seqs: int, budget: int) -> Policy:
    try:
        return Policy._registry[name](kv, max_seqs, budget)
    except KeyError:
        raise ConfigError(f"--scheduler {name}: unknown (known: {', '.join(sorted(Policy._registry))})") from None
