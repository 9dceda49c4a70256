"""Arrays kept for reuse between calls (triangle weights and masks), bounded in bytes.

Small constant arrays — the weights that project and scale a triangle, boolean triangle
masks, their copies in another dtype, order or device — cost a noticeable share of a
small matrix's gradient to rebuild, so they are kept.  Bounded by count alone, they held
hundreds of MB where the size of the matrices changes between calls (a growing data set):
a few hundred n × n arrays of order 300–600 (session 25).  So the cache keeps at most
``limit`` bytes, dropping the oldest entries first, and does not keep an array of more
than ``item_limit`` bytes: at that size building it is O(n²) beside the O(n³) work it
serves.
"""

from __future__ import annotations


class ArrayCache:
    __slots__ = ("limit", "item_limit", "_data", "_nbytes")

    def __init__(self, limit=16 << 20, item_limit=2 << 20):
        self.limit, self.item_limit = limit, item_limit
        self._data = {}                 # insertion-ordered: the oldest first
        self._nbytes = 0

    def get(self, key):
        return self._data.get(key)

    def put(self, key, value):
        """Keep ``value`` (an array) under ``key`` if it fits; returns it either way."""
        size = int(getattr(value, "nbytes", 0))
        if size > self.item_limit:
            return value
        old = self._data.pop(key, None)
        if old is not None:
            self._nbytes -= int(getattr(old, "nbytes", 0))
        while self._data and self._nbytes + size > self.limit:
            dropped = self._data.pop(next(iter(self._data)))
            self._nbytes -= int(getattr(dropped, "nbytes", 0))
        self._data[key] = value
        self._nbytes += size
        return value

    def __len__(self):
        return len(self._data)

    @property
    def nbytes(self):
        return self._nbytes

    def clear(self):
        self._data.clear()
        self._nbytes = 0
