"""When gossip batches leave: a peer sent nothing for a flush interval gets a caller's txs
at once (a client's call is already a batch; waiting would only add latency), while a
busy peer's txs wait for the flush, so a peer gets at most ~2 batches per interval."""

from __future__ import annotations

from p2p.gossip import GossipLimits, TxGossip
from tests.p2p.p2p_helpers import RecordingTransport
from tests.p2p.test_p2p_gossip_resend import PEER, sent_txs

INTERVAL_S = 0.01


def paced_gossip() -> tuple[TxGossip, RecordingTransport, list[float]]:
    clock = [100.0]
    transport = RecordingTransport([PEER])
    gossip = TxGossip(
        transport,
        channel_id=2,
        on_txs=lambda _peer, _txs: None,
        limits=GossipLimits(flush_interval_s=INTERVAL_S),
        clock=lambda: clock[0],
    )
    return gossip, transport, clock


def test_an_idle_peer_gets_a_call_s_txs_at_once_a_busy_one_at_the_next_flush() -> None:
    gossip, transport, clock = paced_gossip()
    assert gossip.add_many([b"a1", b"a2", b"a3"]) == 3
    assert [txs for _peer, txs in transport.sent] == [[b"a1", b"a2", b"a3"]], "no wait"
    clock[0] += INTERVAL_S / 2
    assert gossip.add_many([b"b1", b"b2"]) == 2
    assert len(transport.sent) == 1, "sent to half an interval ago: it waits for the flush"
    clock[0] += INTERVAL_S / 2
    gossip.flush()
    assert [txs for _peer, txs in transport.sent][1:] == [[b"b1", b"b2"]]
    clock[0] += INTERVAL_S / 2
    gossip.flush()  # nothing pending, but the last batch is recent: still paced
    assert gossip.add(b"c1")
    assert len(transport.sent) == 2
    clock[0] += INTERVAL_S
    gossip.flush()
    clock[0] += INTERVAL_S
    assert gossip.add(b"d1")
    assert sent_txs(transport) == [b"a1", b"a2", b"a3", b"b1", b"b2", b"c1", b"d1"]
    assert [txs for _peer, txs in transport.sent][-1] == [b"d1"], "idle again: at once"
