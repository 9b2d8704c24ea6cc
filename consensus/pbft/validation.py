"""The block checks a backup makes before accepting a PRE-PREPARE (§4.2), as pure functions.

Stateless checks and signatures happened at the edge (codec.py); transaction signatures are
the node's job before it hands the engine a message. What is left needs engine state: who
the primary is, and what this replica executed at seq - P (the header attests it).
"""

from __future__ import annotations

from collections.abc import Mapping

from consensus.pbft.config import PbftConfig
from consensus.types import BlockExecuted
from protocol.block import Block
from protocol.crypto import ZERO_HASH

WAIT_FOR_EXECUTION = "wait for execution"  # not a rejection: check again after BlockExecuted


def block_invalid(
    block: Block,
    *,
    seq: int,
    config: PbftConfig,
    primary: int,
    validators_hash: bytes,
    executed: Mapping[int, BlockExecuted],
    executed_height: int,
) -> str | None:
    """None if `block` may be pre-prepared at `seq` by `primary`; WAIT_FOR_EXECUTION if the
    exec fields cannot be checked yet; otherwise the reason it is refused."""
    header = block.header
    if (reason := block.invalid()) is not None:
        return reason
    if header.height != seq or header.chain_id != config.chain_id:
        return "block is for another height or chain"
    if header.proposer != config.validators.public_keys[primary]:
        return "block proposer is not the primary"
    if header.validators_hash != validators_hash:
        return "block names another validator set"
    return exec_fields_invalid(
        block,
        pipeline_depth=config.pipeline_depth,
        executed=executed,
        executed_height=executed_height,
    )


def exec_fields_invalid(
    block: Block,
    *,
    pipeline_depth: int,
    executed: Mapping[int, BlockExecuted],
    executed_height: int,
) -> str | None:
    """The header of h attests the execution of h - P (protocol/block.py)."""
    header = block.header
    exec_height = block.height - pipeline_depth
    if exec_height <= 0:
        expected = (0, ZERO_HASH, ZERO_HASH)
    elif exec_height > executed_height:
        return WAIT_FOR_EXECUTION
    elif (notice := executed.get(exec_height)) is None:
        return f"execution of height {exec_height} is no longer known here"
    else:
        expected = (exec_height, notice.app_hash, notice.results_root)
    actual = (header.exec_height, header.exec_app_hash, header.exec_results_root)
    return None if actual == expected else "exec fields disagree with our execution"
