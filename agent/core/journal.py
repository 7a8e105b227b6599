"""Append-only journal records: length and CRC per record, recovery stops at the first bad one.

Bytes in, records out: the core never touches files. A record is 4 bytes of length,
4 bytes of CRC-32 (big-endian) and the payload. A power cut in the middle of an append
leaves a short or mismatching last record, which recovery drops, keeping all before it.
No record is empty: zeroed storage (whose eight zero bytes would pass as an empty record
with a matching CRC) is found as damage at its first byte.
"""

import binascii
import struct

from agent.core.compat import const
from agent.core.errors import InputError, PayloadTooLargeError

HEADER = const(8)
MAX_RECORD = const(4096)


def encode(payload: bytes) -> bytes:
    if not payload:
        raise InputError("a journal record cannot be empty")
    if len(payload) > MAX_RECORD:
        raise PayloadTooLargeError("journal record of %d bytes is larger than %d" % (len(payload), MAX_RECORD))
    return struct.pack(">II", len(payload), binascii.crc32(payload) & 0xFFFFFFFF) + payload


def decode(data: bytes) -> tuple:
    """(records, good_length, problem): the payloads of all good records from the start,
    how many bytes they take, and why decoding stopped early (or None)."""
    records = []
    pos = 0
    problem = None
    while pos < len(data):
        if len(data) - pos < HEADER:
            problem = "a record header is cut off at byte %d" % pos
            break
        length, crc = struct.unpack(">II", data[pos : pos + HEADER])
        if length == 0:
            problem = "the record at byte %d is empty (zeroed storage?)" % pos
            break
        if length > MAX_RECORD:
            problem = "record at byte %d claims %d bytes" % (pos, length)
            break
        end = pos + HEADER + length
        if end > len(data):
            problem = "the record at byte %d is cut off" % pos
            break
        payload = bytes(data[pos + HEADER : end])
        if binascii.crc32(payload) & 0xFFFFFFFF != crc:
            problem = "the record at byte %d fails its checksum" % pos
            break
        records.append(payload)
        pos = end
    return records, pos, problem
