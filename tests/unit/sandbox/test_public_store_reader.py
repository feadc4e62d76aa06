"""The stored object reader tarfile streams from: any chunking, any read sizes, same bytes."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from services.sandbox.node.public_store import _Reader
from services.storage.base import ObjectInfo, StoredObject


@given(
    chunks=st.lists(st.binary(max_size=64), max_size=20),
    sizes=st.lists(st.integers(min_value=-1, max_value=100), min_size=1, max_size=50),
)
def test_reads_return_the_bytes_in_order_and_full_sized(chunks, sizes) -> None:
    data = b"".join(chunks)
    # The store's own check passes: the info is the bytes' own.
    info = ObjectInfo("k", len(data), hashlib.sha256(data).hexdigest())
    reader = _Reader(StoredObject(info, iter(chunks)))
    out = b""
    for size in sizes:
        got = reader.read(size)
        left = len(data) - len(out)
        assert len(got) == (left if size < 0 else min(size, left))
        out += got
    out += reader.read()
    assert out == data and reader.read(10) == b""
