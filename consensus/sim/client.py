"""The simulated client: signs real txs with deterministic keys and remembers every one it
submitted, which is what the validity checker compares committed txs against."""

from __future__ import annotations

import random

from protocol.crypto import SigningKey
from protocol.tx import Tx, sign_tx

CLIENT_TX_KIND = "sim.noop"
CLIENT_KEYS = 4
EXPIRY_HEIGHT = 1 << 40  # never expires in a simulation


class SimClient:
    def __init__(self, rng: random.Random, *, chain_id: str, seed: int) -> None:
        self._rng = rng
        self._chain_id = chain_id
        self._seed = seed
        self._keys = tuple(
            SigningKey.from_secret(f"sim-client-{index}".encode()) for index in range(CLIENT_KEYS)
        )
        self._next_nonce = [0] * CLIENT_KEYS
        self.submitted: dict[bytes, Tx] = {}  # tx hash -> tx, in submission order

    def new_tx(self) -> tuple[bytes, Tx]:
        """A fresh signed tx from a randomly chosen client key."""
        index = self._rng.randrange(CLIENT_KEYS)
        nonce = self._next_nonce[index]
        self._next_nonce[index] += 1
        tx = sign_tx(
            self._keys[index],
            chain_id=self._chain_id,
            nonce=nonce,
            expiry_height=EXPIRY_HEIGHT,
            kind=CLIENT_TX_KIND,
            body=f"seed={self._seed} key={index} nonce={nonce}".encode(),
        )
        tx_hash = tx.hash()
        self.submitted[tx_hash] = tx
        return tx_hash, tx

    def old_tx(self) -> tuple[bytes, Tx] | None:
        """A tx submitted before, for resubmission (exercises duplicate inclusion)."""
        if not self.submitted:
            return None
        tx_hash = self._rng.choice(list(self.submitted))
        return tx_hash, self.submitted[tx_hash]
