"""A mutable accumulator for one step's Output, frozen at the end of the step.

Handlers append to it in whatever order they run; the driver still honours the contract's
order (all persists durable before any send), so appending a persist after a send within
one step is fine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from consensus.types import Envelope, FetchRequest, Output
from protocol.sealed import SealedBlock


@dataclass(slots=True)
class Outbox:
    persist: list[tuple[bytes, bytes | None]] = field(default_factory=list)
    send: list[Envelope] = field(default_factory=list)
    commit: list[SealedBlock] = field(default_factory=list)
    fetch: list[FetchRequest] = field(default_factory=list)

    def freeze(self) -> Output:
        return Output(
            persist=tuple(self.persist),
            send=tuple(self.send),
            commit=tuple(self.commit),
            fetch=tuple(self.fetch),
        )
