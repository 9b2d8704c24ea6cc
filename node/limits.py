"""Node-level bounds: every pool, queue, batch and connection the node keeps has a cap here.

These are the defaults behind config.toml (node/config.py) and the hard ceilings a config
may not exceed. Protocol-level bounds (what a valid tx or block may be) live in
protocol/limits.py; the relations between the two are asserted at the bottom of this module,
so a change to one that breaks the other fails at import time, not in production.

Each name carries its unit last (`_bytes`, `_count`, `_s`, `_ms`, `_ticks`).
"""

from __future__ import annotations

from protocol import limits as protocol_limits

# --- mempool -------------------------------------------------------------------------------
# 20,000 txs is ~2.5 s of the whole machine's verify ceiling (~8,000 tx/s, DESIGN.md):
# enough to ride out a burst, small enough that a full pool empties within a few blocks.
mempool_txs_default = 20_000
mempool_bytes_default = 64 * 1024 * 1024  # 64 MiB of encoded txs
mempool_tx_bytes_default = protocol_limits.tx_bytes_max
# One signer may hold at most this many pending txs, so a single flooding agency cannot
# crowd out the others (geth CVE-2022-23328, RELIABILITY.md R4).
mempool_txs_per_signer_default = 2_000
# Hashes of txs whose signature this node has already checked: sized for ~25 s at the
# verify ceiling, so a tx verified on admission is still known when its block arrives.
verified_cache_size_default = 200_000
mempool_txs_max = 1_000_000  # ceiling a config may ask for
mempool_bytes_max = 2 * 1024 * 1024 * 1024  # 2 GiB
verified_cache_size_max = 5_000_000
# Signature checks of a batch run in a thread pool in chunks of this many txs; smaller
# batches are verified inline (cheaper than a thread hop).
verify_chunk_txs = 256
verify_inline_txs_max = 32
verify_workers_count = 2
add_batch_txs_max = 10_000  # one add_batch call (RPC broadcast_txs, one gossip frame batch)

# Standby txs (node/standby.py): gossiped txs a non-leader keeps raw, unchecked, in case it
# becomes the leader. ~6 s of the machine's verify ceiling; the byte bound caps a flood of
# large txs. Promotion on becoming leader runs through add_batch, this many txs at a time.
standby_txs_max = 50_000
standby_bytes_max = 32 * 1024 * 1024
standby_promote_batch_txs = 1_000
# A backup that sees no commit for a re-offer interval admits this many of its oldest
# standby txs, enough to give its engine pending work (StandbyKeeper.admit_waiting).
standby_idle_admit_txs = 256
# A backup verifies standby txs' signatures in the background as they arrive
# (StandbyVerifier), so the block carrying them finds them verified. Queue bound: ~2 s of
# the machine's verify ceiling; the overflow is skipped (counted) and verified by the block
# path instead. Drained this many txs per step (two verify-thread chunks).
standby_verify_queue_txs_max = 16_384
standby_verify_chunk_txs = 512

# --- consensus / block building ------------------------------------------------------------
block_max_txs_default = 2_000
block_max_bytes_default = 4 * 1024 * 1024
# block_max_bytes counts the txs' bytes; the encoded block adds a 4-byte length per tx and
# the header, and must stay within protocol_limits.block_bytes_max. Keep 64 KiB of slack.
block_max_bytes_ceiling = (
    protocol_limits.block_bytes_max - 4 * protocol_limits.block_txs_max - 64 * 1024
)
tick_ms_default = 20
tick_ms_min = 1
tick_ms_max = 1_000
block_interval_ms_default = 20

# A backup re-sends txs that waited a whole interval to the leader (which may have refused
# them while full), well inside a view-change timeout, so a busy leader is not suspected.
reoffer_interval_s = 0.5
reoffer_txs_max = 500  # per interval: duplicates cost the leader a hash and a lookup each

# --- RPC -----------------------------------------------------------------------------------
# CometBFT's defaults (RELIABILITY.md A10), except the batch cap: our clients batch on
# purpose through broadcast_txs, so JSON-RPC batches stay small.
rpc_body_bytes_default = 1_000_000
rpc_body_bytes_max = 64 * 1024 * 1024
rpc_batch_default = 10
rpc_batch_max = 1_000
rpc_open_connections_default = 900
rpc_commit_timeout_s_default = 10.0
rpc_commit_timeout_s_max = 600.0
rpc_subscription_clients_default = 100

# --- p2p -----------------------------------------------------------------------------------
p2p_peers_default = 50
p2p_send_queue_default = 1_024  # frames per peer
# A PBFT VIEW-CHANGE carries the prepared blocks above the stable checkpoint, so one frame
# must hold several blocks (consensus/pbft/codec.py caps a message at 4 blocks' worth).
# Frames are length-checked before any allocation, so the cap costs memory only when used.
p2p_frame_bytes_default = 4 * protocol_limits.block_bytes_max + 64 * 1024
p2p_handshake_timeout_s_default = 10.0
p2p_dial_timeout_s_default = 3.0
p2p_backoff_s_min_default = 0.1
p2p_backoff_s_max_default = 10.0

# --- CLI -----------------------------------------------------------------------------------
cli_expiry_heights = 1_000  # CLI txs expire this many heights after the latest one
cli_meta_pairs_max = 32
cli_document_bytes_max = 1024 * 1024 * 1024  # a file hashed by `notary anchor --file`
testnet_nodes_max = 64
testnet_agencies_max = 64

# --- relations to protocol/limits.py -------------------------------------------------------
assert mempool_tx_bytes_default >= protocol_limits.tx_bytes_max, "pool must take any valid tx"
assert block_max_txs_default <= protocol_limits.block_txs_max
assert block_max_bytes_default <= block_max_bytes_ceiling < protocol_limits.block_bytes_max
assert p2p_frame_bytes_default > protocol_limits.block_bytes_max, "a frame must carry a block"
assert rpc_body_bytes_default > 2 * protocol_limits.tx_bytes_max, "base64 of one tx must fit"
assert mempool_bytes_default >= block_max_bytes_default, "a full pool must fill a block"
assert mempool_txs_default >= block_max_txs_default
assert verified_cache_size_default >= 2 * mempool_txs_default, "cache outlives the pool"
assert testnet_nodes_max <= protocol_limits.validators_max
assert verify_inline_txs_max <= verify_chunk_txs <= add_batch_txs_max
assert standby_bytes_max >= protocol_limits.tx_bytes_max, "standby must take any valid tx"
assert 1 <= standby_promote_batch_txs <= add_batch_txs_max
assert 1 <= standby_idle_admit_txs <= standby_txs_max
assert 1 <= standby_verify_chunk_txs <= standby_verify_queue_txs_max
assert standby_verify_chunk_txs <= add_batch_txs_max

# --- engine driver and commit pipeline (node/driver.py, node/commits.py) -------------------
# Consensus messages from peers waiting for the engine; a full inbox drops and counts
# (PBFT recovers lost messages through its timers; a peer cannot make us buffer more).
consensus_inbox_max = 10_000
# Sealed blocks waiting to execute; the driver awaits room, so a slow disk slows consensus.
commit_queue_blocks_max = 64
# broadcast_tx_commit callers waiting on one node (the RPC layer caps its own share lower).
commit_waiters_max = 10_000

# Txs of other validators' in-flight blocks held out of our proposals (node/carried.py),
# per height: four blocks' worth (competing blocks after view changes). Heights are bounded
# by the engine's window, so the total is bounded too. Past the per-height bound a tx is not
# held; execution still refuses a second copy of it as a replay.
held_txs_per_height_max = 4 * protocol_limits.block_txs_max
held_heights_ahead_max = 256  # >= the PBFT watermark window and the Raft in-flight window
