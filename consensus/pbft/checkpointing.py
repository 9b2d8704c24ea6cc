"""Execution notices, checkpoints and garbage collection (PBFT §4.3) for the engine.

The node executes committed blocks and reports each with `BlockExecuted`. The engine keeps
the recent executions (the exec-field check of a pre-prepare at seq needs seq - P) and the
committed block hashes its link rule needs, both bounded by about 2L entries. At every
multiple of K it signs a CHECKPOINT; a quorum of matching ones (checkpoint.py) is stable:
the log below it, the durable votes and certificates below it and the old executions go,
the watermarks move, and if the quorum is ahead of us we fetch up to it.

A stable checkpoint that disagrees with our own committed block or app hash means our chain
or our execution is wrong (f is exceeded, or the application is not deterministic): that is
the "environment lying" kind of failure, and the node stops on the assertion.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from consensus.outbox import Outbox
from consensus.pbft import durable
from consensus.pbft import messages as m
from consensus.pbft.checkpoint import StableCheckpoint
from consensus.types import BlockExecuted

if TYPE_CHECKING:
    from consensus.pbft.engine import PbftEngine

log = logging.getLogger(__name__)


class Checkpointing:
    def __init__(self, engine: PbftEngine) -> None:
        self.engine = engine
        self.own_checkpoint: m.Checkpoint | None = None  # re-sent while we are stalled

    def remember_execution(self, notice: BlockExecuted) -> None:
        engine = self.engine
        engine.executed[notice.height] = notice
        engine.executed_height = max(engine.executed_height, notice.height)
        if notice.height >= engine.log.low:
            engine.chain_hashes.setdefault(notice.height, notice.block_hash)
        window = engine.config.watermark_window_seqs
        keep = window + engine.config.pipeline_depth
        floor = max(
            min(engine.executed_height - keep, engine.log.low - engine.config.pipeline_depth),
            engine.executed_height - 2 * window,
        )
        for height in [h for h in engine.executed if h < floor]:
            del engine.executed[height]
        self.trim_chain_hashes()

    def trim_chain_hashes(self) -> None:
        engine = self.engine
        window = engine.config.watermark_window_seqs
        if len(engine.chain_hashes) <= 2 * window:
            return
        floor = max(
            min(engine.log.low, engine.committed_height - window),
            engine.committed_height - 2 * window + 1,
        )
        engine.chain_hashes = {h: d for h, d in engine.chain_hashes.items() if h >= floor}

    def on_executed(self, notice: BlockExecuted, out: Outbox) -> None:
        engine = self.engine
        assert notice.height <= engine.committed_height, "executed a block we did not commit"
        assert engine.chain_hashes.get(notice.height, notice.block_hash) == notice.block_hash
        self.remember_execution(notice)
        interval = engine.config.checkpoint_interval_seqs
        if notice.height % interval == 0 and notice.height > engine.checkpoints.stable.seq:
            checkpoint = m.make_checkpoint(
                engine.key,
                chain_id=engine.config.chain_id,
                seq=notice.height,
                block_hash=notice.block_hash,
                app_hash=notice.app_hash,
                replica=engine.me,
            )
            self.own_checkpoint = checkpoint
            engine.broadcast(checkpoint, out)
            self.on_checkpoint(checkpoint, out)

    def on_checkpoint(self, checkpoint: m.Checkpoint, out: Outbox) -> None:
        engine = self.engine
        if checkpoint.seq <= engine.checkpoints.stable.seq:
            engine.ignored(checkpoint, "at or below the stable checkpoint")
            return
        stable = engine.checkpoints.add(checkpoint)
        if stable is not None:
            mine = engine.executed.get(stable.seq)
            assert mine is None or mine.app_hash == stable.app_hash, "our state diverged"
            self.adopt_stable(stable, out)

    def adopt_stable(self, stable: StableCheckpoint, out: Outbox) -> None:
        """A new stable checkpoint (§4.3): move the watermarks, GC the log and records."""
        engine = self.engine
        old_low = engine.log.low
        assert stable.seq > old_low
        known = engine.chain_hashes.get(stable.seq)
        assert known is None or known == stable.block_hash, "a quorum checkpointed another chain"
        engine.checkpoints.make_stable(stable)
        engine.log.advance(stable.seq)
        out.persist.append(durable.stable_record(stable))
        # Records exist only for seqs that were inside the old window.
        gc_to = min(stable.seq, old_low + engine.config.watermark_window_seqs)
        out.persist.extend(durable.deletes_up_to(old_low, gc_to))
        for seq in [seq for seq in engine.pending if seq <= stable.seq]:
            del engine.pending[seq]
        # Votes at or below it are never consulted again (nothing at or below h enters the
        # log) and their records were just deleted: without this they grew with every block
        # of a view.
        engine.votes = {key: digest for key, digest in engine.votes.items() if key[1] > stable.seq}
        keep_from = stable.seq - engine.config.pipeline_depth
        engine.executed = {h: e for h, e in engine.executed.items() if h >= keep_from}
        engine.chain_hashes = {
            h: digest
            for h, digest in engine.chain_hashes.items()
            if h >= stable.seq or h == engine.committed_height
        }
        engine.next_seq = max(engine.next_seq, stable.seq + 1)
        engine.replay_wanted = True
        log.info("node=%d view=%d checkpoint stable seq=%d", engine.me, engine.view, stable.seq)
        engine.recovery.want_blocks(stable.seq, out)
