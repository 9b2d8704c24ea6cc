"""The p2p package's own error types.

Everything a peer can make go wrong (bad bytes, bad keys, bad MACs, silence) surfaces as a
subclass of `P2PError`, carrying a short `reason` that doubles as the metrics label. The
manager catches `P2PError` at the edge of each connection, counts it and closes that
connection; nothing a peer sends can raise anything else into the node.
"""

from __future__ import annotations


class P2PError(Exception):
    """Base class. `reason` is a short, bounded-cardinality label for metrics."""

    reason = "p2p_error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class FrameError(P2PError):
    """The byte stream does not follow the framing rules."""

    reason = "bad_frame"


class FrameTooLarge(FrameError):
    """A length prefix above the cap. Raised before any of the body is read or allocated."""

    reason = "oversized_frame"


class FrameTruncated(FrameError):
    """The stream ended inside a frame."""

    reason = "truncated_frame"


class HandshakeError(P2PError):
    """The peer did not complete the authenticated handshake (reason says why)."""

    reason = "bad_handshake"


class AuthenticationError(P2PError):
    """A sealed frame failed ChaCha20-Poly1305 authentication: altered, replayed, reordered."""

    reason = "bad_mac"


class PeerTimeout(P2PError):
    """The peer was silent for longer than a read or handshake deadline."""

    reason = "timeout"


class PeerClosed(P2PError):
    """The peer closed the stream cleanly between frames."""

    reason = "peer_closed"
