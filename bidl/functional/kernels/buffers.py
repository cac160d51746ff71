"""Reused CPU buffers for the fused kernels' large outputs.

A fused LIF call writes outputs as large as its input (the spikes ``y`` forward, the input gradient
backward). Fresh large CPU allocations come from ``mmap`` and go back to the system when freed, so every
call faults its outputs in again, 4 KiB at a time; on [60, 16, 32, 40, 40] (196 MB per tensor, 2 cores)
those faults cost more than the kernels (forward+backward 187 ms against 80 ms with the outputs reused).
Asking for transparent huge pages instead (``madvise``) helped only while the kernel found free huge pages
at once: where memory was fragmented it compacted memory on the faulting thread and the same call took
260-330 ms.

:class:`BufferPool` hands out tensors over memory it keeps, and hands the same memory out again once
the tensor's storage is gone: the storage holds the only reference to a private handle object, whose
finaliser marks the memory free. Every tensor, view, storage object, numpy array or autograd record of
the tensor keeps the storage and so the memory in use; a storage moved to shared memory
(``share_memory_``) lets go of it. Tensors it hands out are ordinary tensors, not views, so in-place
operations and autograd treat them as fresh; like ``torch.from_numpy``'s, their storage cannot be resized.
It is what PyTorch's CUDA caching allocator does for GPU memory, for the few large buffers of these kernels
only: the pool holds at most ``max_bytes`` (the environment variable ``BIDL_KERNEL_POOL_MB``, default 2048;
0 turns it off), and :func:`release_buffers` gives back the memory nothing uses.

Example:
    >>> import torch
    >>> pool = BufferPool(max_bytes=1 << 30, min_bytes=0)
    >>> a = pool.empty([10, 100], torch.float32)
    >>> a_ptr = a.data_ptr()
    >>> b = pool.empty([10, 100], torch.float32)  # `a` is alive: a second buffer
    >>> b.data_ptr() != a_ptr
    True
    >>> del a
    >>> pool.empty([10, 100], torch.float32).data_ptr() == a_ptr  # `a` is gone: its buffer again
    True
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["BufferPool", "OUTPUT_POOL", "release_buffers", "default_pool_bytes"]

_ENV = "BIDL_KERNEL_POOL_MB"
_DEFAULT_MB = 2048
_MIN_BYTES = 1 << 20  # smaller allocations come from malloc's heap, which keeps its pages: nothing to gain


def default_pool_bytes() -> int:
    """``$BIDL_KERNEL_POOL_MB`` (MiB) in bytes, else 2048 MiB."""
    raw = os.environ.get(_ENV, str(_DEFAULT_MB))
    try:
        mb = int(raw)
    except ValueError:
        message = f"{_ENV}: expected a whole number of MiB (0 turns the pool off), got {raw!r}"
        raise ValueError(message) from None
    if mb < 0:
        raise ValueError(f"{_ENV}: expected a whole number of MiB >= 0, got {raw!r}")
    return mb << 20


class _Buffer:
    """A block of memory the pool owns; ``in_use`` while a storage over it exists."""

    __slots__ = ("memory", "nbytes", "in_use", "__weakref__")

    def __init__(self, nbytes: int):
        self.memory = torch.empty(nbytes, dtype=torch.uint8)
        self.nbytes = nbytes
        self.in_use = False

    def free(self) -> None:  # a finaliser: may run on any thread, takes no lock (one attribute store)
        self.in_use = False


def _contiguous_strides(shape: torch.Size) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


class BufferPool:
    """CPU tensors over memory the pool keeps and hands out again once their storage is gone.

    ``max_bytes`` bounds what the pool holds (in use or free); beyond it a request is a plain
    ``torch.empty`` that the pool forgets. Requests below ``min_bytes`` are always plain. Thread-safe."""

    def __init__(self, max_bytes: int | None = None, min_bytes: int = _MIN_BYTES):
        self.max_bytes = default_pool_bytes() if max_bytes is None else int(max_bytes)
        self.min_bytes = int(min_bytes)
        self._buffers: list[_Buffer] = []  # least recently handed out first
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def held_bytes(self) -> int:
        """Bytes the pool holds, in use or free."""
        with self._lock:
            return sum(buffer.nbytes for buffer in self._buffers)

    def empty(self, shape: Sequence[int], dtype: torch.dtype) -> Tensor:
        """A new contiguous CPU tensor of ``shape`` and ``dtype`` (not a view), contents undefined."""
        shape = torch.Size(shape)
        nbytes = shape.numel() * dtype.itemsize
        if nbytes < max(self.min_bytes, 1) or nbytes > self.max_bytes:
            return torch.empty(shape, dtype=dtype)
        with self._lock:
            buffer = self._take(nbytes)
            if buffer is None:
                return torch.empty(shape, dtype=dtype)
            buffer.in_use = True
        # the storage below holds the only reference to ``handle``; when the storage goes, so does the
        # handle, and its finaliser frees the buffer
        handle = buffer.memory.numpy().view()
        weakref.finalize(handle, buffer.free).atexit = False
        storage = torch.frombuffer(handle, dtype=dtype).untyped_storage()
        del handle
        return torch.empty(0, dtype=dtype).set_(storage, 0, shape, _contiguous_strides(shape))

    def _take(self, nbytes: int) -> _Buffer | None:
        for k, buffer in enumerate(self._buffers):
            if not buffer.in_use and buffer.nbytes == nbytes:
                self._buffers.append(self._buffers.pop(k))
                self.hits += 1
                return buffer
        self.misses += 1
        held = sum(buffer.nbytes for buffer in self._buffers)
        if held + nbytes > self.max_bytes:  # give back free buffers, least recently handed out first
            kept = []
            for buffer in self._buffers:
                if held + nbytes > self.max_bytes and not buffer.in_use:
                    held -= buffer.nbytes
                else:
                    kept.append(buffer)
            self._buffers = kept
        if held + nbytes > self.max_bytes:  # the buffers in use fill the pool: a plain allocation
            return None
        buffer = _Buffer(nbytes)
        self._buffers.append(buffer)
        return buffer

    def release(self) -> int:
        """Give back every buffer nothing uses; returns the bytes given back."""
        with self._lock:
            freed = sum(buffer.nbytes for buffer in self._buffers if not buffer.in_use)
            self._buffers = [buffer for buffer in self._buffers if buffer.in_use]
        return freed


OUTPUT_POOL = BufferPool()


def release_buffers() -> int:
    """Give back the fused kernels' free output buffers (:data:`OUTPUT_POOL`); returns the bytes."""
    return OUTPUT_POOL.release()
