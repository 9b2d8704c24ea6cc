"""Checks the mutation check found unguarded (docs/MUTATION-CHECK.md).

Each test pins a rule whose mutant no other test caught: every nested signature of a
VIEW-CHANGE counts, not only the first one (a forged certificate or checkpoint proof is how
a faulty replica would smuggle a block or a garbage-collection point into NEW-VIEW), and
the engine itself refuses a PRE-PREPARE signed by a backup even if the edge let it through.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from consensus.pbft import messages as m
from consensus.types import NodeId, Received
from tests.consensus.pbft.pbft_harness import CHAIN_ID, Router


def _spoiled(signature: bytes) -> bytes:
    return bytes([signature[0] ^ 0x01]) + signature[1:]


def _view_change_with_certificate_and_proof() -> tuple[Router, m.ViewChange]:
    """A real VIEW-CHANGE from replica 1 with a stable checkpoint (seq 4) and a prepared
    certificate (seq 5) in it."""
    router = Router(4, checkpoint_interval=2, window=8)
    router.run_blocks(4)
    router.drop = lambda source, target, message: isinstance(message, m.Commit)
    router.propose(router.primary())
    router.deliver_all()
    router.start_view_change(1, 1)
    view_change = next(
        envelope.message
        for envelope in router.outputs[1][-1].send
        if isinstance(envelope.message, m.ViewChange)
    )
    assert view_change.checkpoint_seq == 4
    assert len(view_change.checkpoint_proof) >= router.validators.quorum
    assert [certificate.seq for certificate in view_change.prepared] == [5]
    assert router.codec.invalid(view_change, NodeId(1)) is None
    return router, view_change


ROUTER, VIEW_CHANGE = _view_change_with_certificate_and_proof()
PREPARES = VIEW_CHANGE.prepared[0].prepares
PROOF = VIEW_CHANGE.checkpoint_proof


@pytest.mark.parametrize("index", range(len(PREPARES)))
def test_every_prepare_signature_of_a_certificate_is_checked(index: int) -> None:
    certificate = VIEW_CHANGE.prepared[0]
    prepares = list(certificate.prepares)
    prepares[index] = replace(prepares[index], signature=_spoiled(prepares[index].signature))
    forged = replace(VIEW_CHANGE, prepared=(replace(certificate, prepares=tuple(prepares)),))
    resigned = m.sign_message(ROUTER.keys[1], CHAIN_ID, forged)
    reason = ROUTER.codec.invalid(resigned, NodeId(1))
    assert reason is not None
    assert "signature" in reason


@pytest.mark.parametrize("index", range(len(PROOF)))
def test_every_checkpoint_signature_of_a_stable_proof_is_checked(index: int) -> None:
    proof = list(PROOF)
    proof[index] = replace(proof[index], signature=_spoiled(proof[index].signature))
    forged = replace(VIEW_CHANGE, checkpoint_proof=tuple(proof))
    resigned = m.sign_message(ROUTER.keys[1], CHAIN_ID, forged)
    reason = ROUTER.codec.invalid(resigned, NodeId(1))
    assert reason is not None
    assert "signature" in reason


def test_engine_refuses_a_pre_prepare_signed_by_a_backup() -> None:
    # §4.2: only the primary of the view assigns seqs. The driver runs codec.invalid first,
    # which also says so, but the engine must not rely on it: a backup re-signing the
    # primary's own block (proposer field intact) is refused and gets no PREPARE.
    router = Router(4)
    block = router.make_block(0)
    pre_prepare = m.make_pre_prepare(
        router.keys[2], chain_id=CHAIN_ID, view=0, seq=block.height, block=block, replica=2
    )
    output = router.step(1, Received(sender=NodeId(2), message=pre_prepare))
    assert output.send == ()
    engine = router.engine(1)
    assert engine.counters["pre_prepares_rejected"] == 1
    slot = engine.log.get(block.height)
    assert slot is None or slot.pre_prepare is None
    # The same block from the primary is taken: the refusal was about the signer.
    genuine = m.make_pre_prepare(
        router.keys[0], chain_id=CHAIN_ID, view=0, seq=block.height, block=block, replica=0
    )
    output = router.step(1, Received(sender=NodeId(0), message=genuine))
    assert [type(envelope.message) for envelope in output.send] == [m.Prepare]
