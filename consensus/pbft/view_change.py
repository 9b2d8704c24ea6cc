"""NEW-VIEW's set O as a pure function of the VIEW-CHANGEs in V (PBFT §4.4).

The new primary computes the plan to build its NEW-VIEW; every backup recomputes it from the
NEW-VIEW's V and rejects the NEW-VIEW if its re-proposals differ. Both sides call the same
function, so they can only disagree if the primary lies.

    min-s  the highest stable checkpoint seq in V (its proof was checked by the codec);
    O      for seq = min-s + 1, min-s + 2, ...: the block of the highest-view certificate
           for seq in V, as long as there is one and it links (prev_hash) to the block
           chosen for seq - 1 (the checkpoint's block for min-s + 1). O ends at the first
           seq where that fails; max-s is its last seq.

The paper fills seqs without a certificate with null requests up to the highest certificate
in V. Blocks must chain, so instead O is the longest linked prefix, and the new primary
proposes afresh above it. Nothing committed is cut off: with the chain-link prepare rule (a
replica prepares, and counts itself prepared for, seq only when seq - 1 is committed with
hash prev_hash or prepared in the same view with digest prev_hash), a block committed at n
was prepared at quorum - f honest replicas in some view w, each of which had n - 1 prepared
in w with the block's prev_hash; by the standard PBFT argument that digest is the
highest-view certificate at n - 1 in every later V, and so on down to min-s. So every
committed block above min-s lies inside the linked prefix (docs/PBFT.md, "The chain link").
What lies beyond the first gap or broken link was never committed and may be dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from consensus.pbft.messages import Checkpoint, PreparedCertificate, ViewChange
from protocol.block import Block


@dataclass(frozen=True, slots=True, kw_only=True)
class NewViewPlan:
    view: int
    checkpoint_seq: int  # min-s
    checkpoint_block_hash: bytes
    checkpoint_app_hash: bytes
    checkpoint_proof: tuple[Checkpoint, ...]
    blocks: tuple[Block, ...]  # O: blocks for seqs min-s + 1 .. max-s, in order

    @property
    def max_seq(self) -> int:
        return self.checkpoint_seq + len(self.blocks)

    @property
    def digests(self) -> tuple[tuple[int, bytes], ...]:
        return tuple((block.height, block.hash()) for block in self.blocks)

    @property
    def last_hash(self) -> bytes:
        """The hash the first normal-case proposal of the view links to."""
        return self.blocks[-1].hash() if self.blocks else self.checkpoint_block_hash


def plan_new_view(
    view_changes: Sequence[ViewChange], *, view: int, quorum: int
) -> NewViewPlan | str:
    """The plan for `view` from V, or the reason V cannot start it."""
    senders = {view_change.replica for view_change in view_changes}
    if len(senders) != len(view_changes) or len(senders) < quorum:
        return f"need view-changes from {quorum} distinct replicas, have {len(senders)}"
    if any(view_change.new_view != view for view_change in view_changes):
        return "a view-change is for another view"
    base = max(view_changes, key=lambda vc: (vc.checkpoint_seq, vc.replica))
    best = _highest_view_certificates(view_changes, above=base.checkpoint_seq)
    if isinstance(best, str):
        return best
    blocks: list[Block] = []
    previous_hash = base.checkpoint_block_hash
    seq = base.checkpoint_seq + 1
    while (certificate := best.get(seq)) is not None:
        block = certificate.pre_prepare.block
        if block.header.prev_hash != previous_hash:
            break
        blocks.append(block)
        previous_hash = block.hash()
        seq += 1
    return NewViewPlan(
        view=view,
        checkpoint_seq=base.checkpoint_seq,
        checkpoint_block_hash=base.checkpoint_block_hash,
        checkpoint_app_hash=base.checkpoint_app_hash,
        checkpoint_proof=base.checkpoint_proof,
        blocks=tuple(blocks),
    )


def _highest_view_certificates(
    view_changes: Sequence[ViewChange], *, above: int
) -> dict[int, PreparedCertificate] | str:
    """The highest-view certificate per seq above `above`. Two digests certified in one
    view at one seq would need two quorums without an honest replica in common."""
    best: dict[int, PreparedCertificate] = {}
    for view_change in view_changes:
        for certificate in view_change.prepared:
            if certificate.seq <= above:
                continue
            current = best.get(certificate.seq)
            if current is None or certificate.view > current.view:
                best[certificate.seq] = certificate
            elif certificate.view == current.view and certificate.digest != current.digest:
                return f"two digests prepared at seq {certificate.seq} in view {current.view}"
    return best
