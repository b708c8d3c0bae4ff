"""Message type bytes as ints, for comparing against ``Frame.type`` and ``FrameBatch.index`` in hot loops.

Frontend and backend reuse letters with different meanings (``D`` is Describe from a
client and DataRow from a server), hence two namespaces. Bind them to locals in a loop.
"""

from __future__ import annotations

from typing import Final


class FrontendType:
    """Type bytes of messages a client sends."""

    BIND: Final = 0x42  # B
    CLOSE: Final = 0x43  # C
    COPY_DATA: Final = 0x64  # d
    COPY_DONE: Final = 0x63  # c
    COPY_FAIL: Final = 0x66  # f
    DESCRIBE: Final = 0x44  # D
    EXECUTE: Final = 0x45  # E
    FLUSH: Final = 0x48  # H
    FUNCTION_CALL: Final = 0x46  # F
    PARSE: Final = 0x50  # P
    AUTH_RESPONSE: Final = 0x70  # p: password, SASL or GSS response
    QUERY: Final = 0x51  # Q
    SYNC: Final = 0x53  # S
    TERMINATE: Final = 0x58  # X


class BackendType:
    """Type bytes of messages a server sends."""

    AUTHENTICATION: Final = 0x52  # R
    BACKEND_KEY_DATA: Final = 0x4B  # K
    PARSE_COMPLETE: Final = 0x31  # 1
    BIND_COMPLETE: Final = 0x32  # 2
    CLOSE_COMPLETE: Final = 0x33  # 3
    COMMAND_COMPLETE: Final = 0x43  # C
    COPY_DATA: Final = 0x64  # d
    COPY_DONE: Final = 0x63  # c
    COPY_IN_RESPONSE: Final = 0x47  # G
    COPY_OUT_RESPONSE: Final = 0x48  # H
    COPY_BOTH_RESPONSE: Final = 0x57  # W
    DATA_ROW: Final = 0x44  # D
    EMPTY_QUERY_RESPONSE: Final = 0x49  # I
    ERROR_RESPONSE: Final = 0x45  # E
    FUNCTION_CALL_RESPONSE: Final = 0x56  # V
    NEGOTIATE_PROTOCOL_VERSION: Final = 0x76  # v
    NO_DATA: Final = 0x6E  # n
    NOTICE_RESPONSE: Final = 0x4E  # N
    NOTIFICATION_RESPONSE: Final = 0x41  # A
    PARAMETER_DESCRIPTION: Final = 0x74  # t
    PARAMETER_STATUS: Final = 0x53  # S
    PORTAL_SUSPENDED: Final = 0x73  # s
    READY_FOR_QUERY: Final = 0x5A  # Z
    ROW_DESCRIPTION: Final = 0x54  # T
