"""phalanx.Client against a real scheduler and server (conftest.py)."""

import threading
import time

import numpy as np
import pytest

import phalanx
from conftest import LR

EMB = phalanx.EMBEDDING_TABLE
DIM = 16  # model.embedding_dim


@pytest.fixture(scope="module")
def client(async_cluster):
    with phalanx.Client(scheduler=async_cluster.endpoint, rank=0, dims={EMB: DIM},
                        timeout_ms=20000) as c:
        yield c


def keys_of(*ks):
    return np.array(ks, dtype=np.uint64)


def test_properties(client):
    assert client.rank == 0
    assert client.id >= 0
    assert client.num_servers == 1
    assert client.num_workers == 1
    assert client.view["servers"][0]["alive"]


def test_pull_initial_rows(client):
    rows = client.pull(EMB, keys_of(3, 7, 11))
    assert rows.dtype == np.float32 and rows.shape == (3, DIM)
    assert np.all(np.abs(rows) <= 0.01)  # tables.embedding_init_scale
    assert np.any(rows != 0)
    again = client.pull(EMB, [3, 7, 11])  # a list of ints works too
    np.testing.assert_array_equal(rows, again)


def test_pull_into_out_is_that_array(client):
    out = np.empty((2, DIM), dtype=np.float32)
    got = client.pull(EMB, keys_of(1, 2), out=out)
    assert got is out
    np.testing.assert_array_equal(out, client.pull(EMB, keys_of(1, 2)))


def test_push_applies_sgd(client):
    keys = keys_of(21, 22, 23)
    before = client.pull(EMB, keys)
    grads = np.arange(3 * DIM, dtype=np.float32).reshape(3, DIM) / 100
    client.push(EMB, keys, grads)
    after = client.pull(EMB, keys)
    np.testing.assert_allclose(after, before - LR * grads, rtol=1e-6, atol=1e-6)


def test_async_pull_push_and_wait(client):
    keys = keys_of(31, 32)
    before = client.wait(client.pull_async(EMB, keys))
    grads = np.ones((2, DIM), dtype=np.float32)
    assert client.wait(client.push_async(EMB, keys, grads)) is None
    rows, version = client.pull(EMB, keys, with_version=True)
    assert version >= 1
    np.testing.assert_allclose(rows, before - LR, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("grads, error", [
    (np.zeros((2, DIM), dtype=np.float64), TypeError),      # dtype
    (np.zeros((2, DIM), dtype=np.int32), TypeError),
    ([[0.0] * DIM] * 2, TypeError),                          # not an array
    (np.zeros((3, DIM), dtype=np.float32), ValueError),      # rows != keys
    (np.zeros((2 * DIM,), dtype=np.float32), ValueError),    # 1-D
    (np.zeros((2, DIM + 1), dtype=np.float32), ValueError),  # not the table's dim
    (np.zeros((2, 2 * DIM), dtype=np.float32)[:, ::2], ValueError),  # non-contiguous
    (np.zeros((DIM, 2), dtype=np.float32).T, ValueError),    # Fortran order
])
def test_bad_grads_raise(client, grads, error):
    with pytest.raises(error):
        client.push(EMB, keys_of(1, 2), grads)


@pytest.mark.parametrize("keys, error", [
    (np.array([1, 2], dtype=np.int64), TypeError),
    (np.array([1.0, 2.0]), TypeError),
    (np.array([[1, 2]], dtype=np.uint64), ValueError),
    (np.arange(4, dtype=np.uint64)[::2], ValueError),
    ([1, -2], ValueError),
    ([1, "x"], TypeError),
    ("12", TypeError),
])
def test_bad_keys_raise(client, keys, error):
    with pytest.raises(error):
        client.pull(EMB, keys)


def test_pull_needs_a_dim(client):
    with pytest.raises(ValueError, match="dim"):
        client.pull(7, keys_of(1))
    with pytest.raises(ValueError):
        client.pull(EMB, keys_of(1), dim=0)


def test_bad_out_raises(client):
    with pytest.raises(ValueError):
        client.pull(EMB, keys_of(1, 2), out=np.empty((2, DIM + 1), dtype=np.float32))
    ro = np.empty((2, DIM), dtype=np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        client.pull(EMB, keys_of(1, 2), out=ro)


def test_unknown_table_raises_not_found(client):
    with pytest.raises(phalanx.Error) as e:
        client.pull(5, keys_of(1), dim=4)
    assert e.value.code == "NotFound"
    assert isinstance(e.value, phalanx.NotFoundError)
    assert "unknown table 5" in e.value.message


def test_wrong_dim_is_refused_by_the_server(client):
    # Table 0 has no dims= entry, so the binding sends it and the server refuses.
    with pytest.raises(phalanx.Error) as e:
        client.push(phalanx.DENSE_TABLE, keys_of(0), np.zeros((1, 3), dtype=np.float32))
    assert e.value.code == "InvalidArgument"
    with pytest.raises(phalanx.Error):
        client.pull(phalanx.DENSE_TABLE, keys_of(0), dim=3)


def test_nan_gradient_is_refused(client):
    keys = keys_of(41)
    before = client.pull(EMB, keys)
    grads = np.full((1, DIM), np.nan, dtype=np.float32)
    with pytest.raises(phalanx.Error) as e:
        client.push(EMB, keys, grads)
    assert e.value.code == "InvalidArgument"
    np.testing.assert_array_equal(client.pull(EMB, keys), before)


def test_missing_scheduler_is_deadline_exceeded():
    start = time.monotonic()
    with pytest.raises(phalanx.DeadlineExceededError) as e:
        phalanx.Client(scheduler="tcp://127.0.0.1:9", timeout_ms=1000)
    assert e.value.code == "DeadlineExceeded"
    assert time.monotonic() - start < 20  # the 1 s timeout, not the 30 s default


def test_sync_rounds_dense_and_gil(sync_cluster):
    c = phalanx.Client(scheduler=sync_cluster.endpoint, rank=0, request_timeout_ms=1500)
    size = 300  # two dense rows of 256
    w0, v0 = c.pull_dense(size, with_version=True)
    assert w0.shape == (size,) and v0 == 0
    g = np.linspace(-1, 1, size, dtype=np.float32)
    c.push_dense(g, round=0)
    w1 = c.pull_dense(size, min_version=1)
    np.testing.assert_allclose(w1, w0 - LR * g, rtol=1e-5, atol=1e-6)

    # A pull for a round that never comes waits request_timeout_ms without
    # the GIL: another Python thread runs meanwhile.
    ticks = [0]
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks[0] += 1
            time.sleep(0.01)

    t = threading.Thread(target=tick)
    t.start()
    with pytest.raises(phalanx.Error) as e:
        c.pull_dense(size, min_version=100)
    stop.set()
    t.join()
    assert e.value.code == "DeadlineExceeded"
    assert ticks[0] > 0

    with pytest.raises(TypeError):
        c.push_dense(g.astype(np.float64))
    c.close()
    assert c.closed
    with pytest.raises(phalanx.Error) as e:
        c.pull_dense(size)
    assert e.value.code == "FailedPrecondition"
    c.close()  # twice is fine
