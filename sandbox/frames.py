"""The frames that cross the sandbox's pipes, one format in every direction:

    magic (4 bytes) | u64 body length | body,    body = u32 header length | header JSON | blob

``REQUEST``: caller -> server, a job (blob: its codec payload). ``ANSWER``: server ->
caller, a job's outcome (blob: the child's codec result, forwarded as it came). ``RESULT``:
job child -> server, its status and result. Only the framing is checked on the way; the
blob is decoded by the caller (``codec``), never by the server.
"""
from __future__ import annotations

import json
import struct

REQUEST, ANSWER, RESULT = b"SBXQ", b"SBXA", b"SBXR"
HEAD_BYTES = 16  # magic, body length, header length
# An answer's status for a job that the host cannot start (no room or no permission for
# its temporary folder, no pipe, no process left): not the job's outcome, so the caller raises.
UNAVAILABLE = "unavailable"
_RESULT_STATUSES = ("ok", "error", "forbidden", "memory", "crashed", "timeout")


def pack(magic: bytes, header: dict, blob: bytes = b"") -> bytes:
    h = json.dumps(header).encode()
    return magic + struct.pack("<QI", 4 + len(h) + len(blob), len(h)) + h + blob


def unpack_head(head: bytes) -> tuple[bytes, int, int]:
    """(magic, body length, header length) of a frame's first ``HEAD_BYTES``."""
    body_len, header_len = struct.unpack("<QI", head[4:HEAD_BYTES])
    return head[:4], body_len, header_len


def parse_result(buf: bytes) -> tuple[str, str, bytes] | None:
    """(status, error, blob) when ``buf`` is exactly one well-formed ``RESULT`` frame, else None."""
    if len(buf) < 12 or buf[:4] != RESULT:
        return None
    (body_len,) = struct.unpack("<Q", buf[4:12])
    if len(buf) != 12 + body_len or body_len < 4:
        return None
    (hlen,) = struct.unpack("<I", buf[12:16])
    if 16 + hlen > len(buf):
        return None
    try:
        hdr = json.loads(buf[16 : 16 + hlen])
        status, error = str(hdr["status"]), str(hdr["error"])
    except Exception:
        return None
    if status not in _RESULT_STATUSES:
        return None
    return status, error, bytes(buf[16 + hlen :])
