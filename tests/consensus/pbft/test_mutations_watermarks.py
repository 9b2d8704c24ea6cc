"""The high watermark H = h + L at a backup, exactly at the boundary (docs/MUTATION-CHECK.md).

The off-by-one mutants on H were each killed by one or two scenario tests; this pins the
boundary itself (§4.3): a backup uses a PRE-PREPARE for seq = H and buffers one for H + 1
(Fabric #1119: the primary may have moved its watermarks first), without ever making a
log slot outside (h, H].
"""

from __future__ import annotations

from consensus.pbft import messages as m
from consensus.types import NodeId, Received
from protocol.block import make_block
from protocol.crypto import ZERO_HASH, sha256
from tests.consensus.pbft.pbft_harness import CHAIN_ID, Router

WINDOW = 8  # L; h = 0 here, so H = 8


def _pre_prepare(router: Router, seq: int) -> m.PrePrepare:
    """The primary's PRE-PREPARE for `seq`; with P = L, seq = H attests genesis execution,
    and seq = H + 1 attests height 1, which nobody executed (it must not matter: it waits)."""
    exec_height = max(0, seq - WINDOW)
    block = make_block(
        chain_id=CHAIN_ID,
        height=seq,
        prev_hash=sha256(b"elsewhere"),
        time_ms=1000 * seq,
        proposer=router.keys[0].public_key,
        txs=(),
        validators_hash=router.validators.hash(),
        exec_height=exec_height,
        exec_app_hash=sha256(b"app") if exec_height else ZERO_HASH,
        exec_results_root=sha256(b"results") if exec_height else ZERO_HASH,
    )
    return m.make_pre_prepare(
        router.keys[0], chain_id=CHAIN_ID, view=0, seq=seq, block=block, replica=0
    )


def test_backup_uses_a_pre_prepare_at_h_plus_l_and_buffers_one_at_h_plus_l_plus_1() -> None:
    router = Router(4, checkpoint_interval=4, window=WINDOW, pipeline_depth=WINDOW)
    engine = router.engine(1)
    assert (engine.log.low, engine.log.high) == (0, WINDOW)
    at_high = _pre_prepare(router, WINDOW)
    router.step(1, Received(sender=NodeId(0), message=at_high))
    slot = engine.log.get(WINDOW)
    assert slot is not None
    assert slot.pre_prepare == at_high
    assert engine.counters["future_buffered"] == 0
    above = _pre_prepare(router, WINDOW + 1)
    router.step(1, Received(sender=NodeId(0), message=above))
    assert engine.log.get(WINDOW + 1) is None
    assert engine.counters["future_buffered"] == 1
    assert engine.future.held_by(0) == 1
    assert max(engine.log.seqs()) == WINDOW
