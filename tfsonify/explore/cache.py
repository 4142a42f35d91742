"""A thread-safe least-recently-used cache bounded by the bytes it holds."""
from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from typing import Any, Hashable

import numpy as np

__all__ = ["LRUCache", "size_of"]


def size_of(value: Any) -> int:
    """Approximate bytes held by ``value`` (numpy arrays, bytes, str, and tuples/lists/dicts of them)."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes) + 112
    if isinstance(value, (bytes, bytearray, str)):
        return len(value) + 64
    if isinstance(value, (tuple, list)):
        return sum(size_of(v) for v in value) + 64
    if isinstance(value, dict):
        return sum(size_of(k) + size_of(v) for k, v in value.items()) + 64
    return sys.getsizeof(value)


class LRUCache:
    """Keep recently used values up to ``max_bytes`` in total; a value larger than that is not kept."""

    def __init__(self, max_bytes: int):
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0; received {max_bytes}")
        self.max_bytes = int(max_bytes)
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return default
            self._items.move_to_end(key)
            self.hits += 1
            return item[0]

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def put(self, key: Hashable, value: Any) -> Any:
        """Store ``value`` (evicting the least recently used); returns ``value``."""
        size = size_of(value)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            if size <= self.max_bytes:
                self._items[key] = (value, size)
                self.bytes += size
            while self.bytes > self.max_bytes and self._items:
                _, (_, evicted) = self._items.popitem(last=False)
                self.bytes -= evicted
        return value

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def stats(self) -> dict:
        with self._lock:
            return {"entries": len(self._items), "bytes": self.bytes, "max_bytes": self.max_bytes,
                    "hits": self.hits, "misses": self.misses}
