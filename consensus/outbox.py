"""A mutable accumulator for one step's Output, frozen at the end of the step.

Handlers append to it in whatever order they run; the driver still honours the contract's
order (all persists durable before any send), so appending a persist after a send within
one step is fine.

One is built and frozen per engine step, so it is a plain slotted class (a dataclass with
four default factories cost more), and a step that produced nothing freezes to `NOTHING`.
"""

from __future__ import annotations

from consensus.types import NOTHING, Envelope, FetchRequest, Output
from protocol.sealed import SealedBlock


class Outbox:
    __slots__ = ("commit", "fetch", "persist", "send")

    def __init__(self) -> None:
        self.persist: list[tuple[bytes, bytes | None]] = []
        self.send: list[Envelope] = []
        self.commit: list[SealedBlock] = []
        self.fetch: list[FetchRequest] = []

    def freeze(self) -> Output:
        if not (self.persist or self.send or self.commit or self.fetch):
            return NOTHING
        return Output(
            persist=tuple(self.persist),
            send=tuple(self.send),
            commit=tuple(self.commit),
            fetch=tuple(self.fetch),
        )
