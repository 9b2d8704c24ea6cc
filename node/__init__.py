"""Wiring: config, genesis, keys, mempool, the engine driver, execution, RPC, metrics, CLI."""
