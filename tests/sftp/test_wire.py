"""The SSH wire under the SFTP server: the input buffer.

protocols/sftp/inbuf.py stands in for asyncssh's input ``bytes`` on bulk
transfers (the big uploads of tests/sftp/test_sftp.py go through it).
"""

from __future__ import annotations

import os

from protocols.sftp.inbuf import InputBuffer


def test_input_buffer_slices_as_bytes_do() -> None:
    data = os.urandom(300)
    buf, ref = InputBuffer(data), data
    for cut in (16, 100, 0, 150):
        assert len(buf) == len(ref) and bool(buf) == bool(ref)
        assert buf[:cut] == ref[:cut] and buf[3:cut] == ref[3:cut]
        assert buf.find(ref[40:44]) == ref.find(ref[40:44])
        buf, ref = buf[cut:], ref[cut:]
    more = os.urandom(50)
    buf, ref = buf + more, ref + more
    assert buf.tobytes() == ref
    assert buf[len(ref):].tobytes() == b"" and not buf[len(ref):]
