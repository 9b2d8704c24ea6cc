"""What the engine-driver tests' fake engines share."""

from __future__ import annotations

from consensus.types import EngineStatus, NodeId

# The status of a fake engine that leads and never offers a proposal slot: the driver reads
# it after every step, and these tests only need it to be well formed.
LEADER_STATUS = EngineStatus(
    kind="test",
    node_id=NodeId(0),
    committed_height=0,
    round=0,
    leader=NodeId(0),
    role="leader",
    proposal_slot=None,
)
