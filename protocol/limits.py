"""Protocol-level bounds, enforced by the decoders. Node-level bounds (queues, pools,
connections) live in node/limits.py; relations between the two are asserted there."""

chain_id_bytes_max = 50
kind_bytes_max = 64
tx_body_bytes_max = 64 * 1024  # one service payload
tx_bytes_max = tx_body_bytes_max + 512  # body plus the fixed fields of a tx
block_txs_max = 10_000  # txs in one block
block_bytes_max = 8 * 1024 * 1024  # one encoded block, txs included
validators_max = 256  # seal bitmaps and indices use u16
merkle_proof_depth_max = 64
results_data_bytes_max = 1024  # per-tx result payload (log / data) kept in the block results

assert tx_bytes_max < block_bytes_max
assert block_txs_max < (1 << 32)
assert validators_max <= (1 << 16)
