"""Phalanx from Python: the worker client over the C++ parameter servers.

    import numpy as np, phalanx
    with phalanx.Client(scheduler="tcp://127.0.0.1:5555", dims={1: 16}) as c:
        rows = c.pull(phalanx.EMBEDDING_TABLE, np.array([3, 7], dtype=np.uint64))
        c.push(phalanx.EMBEDDING_TABLE, np.array([3, 7], dtype=np.uint64), grads)

``pull`` returns a float32 array of shape (len(keys), dim) that the C++ client
filled directly from the servers' replies (no copy in the binding); pass
``out=`` to reuse an array. ``push`` takes a C-contiguous float32 array of
shape (len(keys), dim). Wrong dtypes raise TypeError, wrong shapes or
non-contiguous arrays ValueError; a Status from the cluster raises
``phalanx.Error`` (``.code``, ``.message``; one subclass per code). The GIL
is released while a call waits on the network.
"""

from . import _phalanx
from .errors import *  # noqa: F401,F403  (Error and one subclass per StatusCode)
from .errors import Error

# The tables of `phalanx server` (worker/trainer.h): the model's dense
# parameters, in rows of tables.dense_row_dim floats, and the embedding rows.
DENSE_TABLE = 0
EMBEDDING_TABLE = 1
DEFAULT_DENSE_ROW_DIM = 256

try:
    import numpy as _np
except ImportError:  # pragma: no cover - numpy is a dependency of the module
    _np = None


class Client(_phalanx.Client):
    """A worker of a Phalanx cluster (see the module docstring).

    Client(scheduler="tcp://host:port", rank=-1, host="127.0.0.1",
           timeout_ms=30000, request_timeout_ms=120000, heartbeat_ms=300,
           dims={table: row_width})

    Registering and waiting for the cluster to form take at most timeout_ms
    (DeadlineExceededError otherwise); each request at most
    request_timeout_ms. Methods: pull, push, pull_async/push_async + wait,
    pull_dense/push_dense, close (also on leaving a ``with`` block).
    Properties: rank, id, num_servers, num_workers, view, closed.
    """

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        if self.closed:
            return "<phalanx.Client closed>"
        return f"<phalanx.Client rank={self.rank} id={self.id} servers={self.num_servers}>"

    def pull_dense(self, size, row_dim=DEFAULT_DENSE_ROW_DIM, min_version=0,
                   table=DENSE_TABLE, with_version=False):
        """The first `size` dense parameters, as a 1-D float32 view (no copy)
        of the rows 0..ceil(size/row_dim)-1 of `table`."""
        rows = _dense_rows(size, row_dim)
        keys = _np.arange(rows, dtype=_np.uint64)
        got = self.pull(table, keys, dim=row_dim, min_version=min_version, with_version=True)
        flat = got[0].reshape(-1)[:size]
        return (flat, got[1]) if with_version else flat

    def push_dense(self, grad, row_dim=DEFAULT_DENSE_ROW_DIM, round=0, table=DENSE_TABLE):
        """Pushes a 1-D float32 gradient of the dense parameters (padded with
        zeros to whole rows: one copy when its size is not a multiple of
        row_dim, none otherwise)."""
        if not isinstance(grad, _np.ndarray):
            raise TypeError("grad must be a 1-D numpy float32 array")
        if grad.dtype != _np.float32:
            raise TypeError(f"grad must have dtype float32, not {grad.dtype}")
        if grad.ndim != 1:
            raise ValueError(f"grad must be 1-D, got shape {grad.shape}")
        if not grad.flags.c_contiguous:
            raise ValueError("grad must be contiguous (use numpy.ascontiguousarray)")
        rows = _dense_rows(grad.size, row_dim)
        if grad.size == rows * row_dim:
            g = grad.reshape(rows, row_dim)
        else:
            g = _np.zeros((rows, row_dim), dtype=_np.float32)
            g.reshape(-1)[: grad.size] = grad
        self.push(table, _np.arange(rows, dtype=_np.uint64), g, round=round)


def _dense_rows(size, row_dim):
    if int(size) <= 0 or int(row_dim) <= 0:
        raise ValueError("size and row_dim must be positive")
    return (int(size) + int(row_dim) - 1) // int(row_dim)


__all__ = ["Client", "Error", "DENSE_TABLE", "EMBEDDING_TABLE", "DEFAULT_DENSE_ROW_DIM"]
