"""Per-tx execution results and the block's results root.

Result layout: u32 code | bytes16 log (UTF-8, <= 1 KiB) | bytes32 data (<= 1 KiB).
code 0 is success; other codes are listed in docs/SERVICES.md. results_root is the
RFC 6962 Merkle root over SHA-256 of each encoded result, in tx order, and is attested by
the header `pipeline_depth` heights later (protocol/block.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol import limits, merkle
from protocol.crypto import sha256
from protocol.encoding import DecodeError, Reader, Writer

CODE_OK = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class TxResult:
    code: int
    log: str = ""
    data: bytes = b""

    @property
    def ok(self) -> bool:
        return self.code == CODE_OK

    def encode(self) -> bytes:
        log = self.log.encode("utf-8")[: limits.results_data_bytes_max]
        data = self.data[: limits.results_data_bytes_max]
        writer = Writer().u32(self.code).u16(len(log)).raw(log).bytes32(data)
        return writer.finish()

    def hash(self) -> bytes:
        return sha256(self.encode())


def decode_result(reader: Reader) -> TxResult:
    code = reader.u32("code")
    log_size = reader.u16("log.length")
    if log_size > limits.results_data_bytes_max:
        raise DecodeError("result log too long")
    try:
        log = reader.fixed(log_size, "log").decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("result log is not UTF-8") from None
    data = reader.bytes32("data", max_bytes=limits.results_data_bytes_max)
    return TxResult(code=code, log=log, data=data)


def encode_results(results: list[TxResult] | tuple[TxResult, ...]) -> bytes:
    writer = Writer().u32(len(results))
    for result in results:
        writer.raw(result.encode())
    return writer.finish()


def decode_results(data: bytes) -> tuple[TxResult, ...]:
    reader = Reader(data)
    count = reader.u32("count")
    if count > limits.block_txs_max:
        raise DecodeError(f"{count} results, max {limits.block_txs_max}")
    results = tuple(decode_result(reader) for _ in range(count))
    reader.finish("results")
    return results


def results_root(results: list[TxResult] | tuple[TxResult, ...]) -> bytes:
    return merkle.root([result.hash() for result in results])
