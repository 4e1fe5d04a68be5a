"""A real cluster for the tests: `phalanx scheduler` and `phalanx server`
processes from the build tree (as tests/testutil/process_cluster.h does),
configured from launch/configs/fashion-mnist-softmax.toml plus overrides. The
test's Python client is the cluster's one worker."""

import os
import select
import subprocess
import tempfile
import time

import pytest

SOURCE_DIR = os.environ.get(
    "PHX_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BINARY = os.environ.get("PHX_PHALANX_BINARY", os.path.join(SOURCE_DIR, "build", "phalanx"))
CONFIG = os.path.join(SOURCE_DIR, "launch", "configs", "fashion-mnist-softmax.toml")


class Cluster:
    def __init__(self, name, sets, servers=1, workers=1):
        self.dir = tempfile.mkdtemp(prefix=f"phalanx-py-{name}-")
        self.sets = list(sets) + [f"cluster.servers={servers}", f"cluster.workers={workers}"]
        self.procs = []
        self.scheduler = self._start(["scheduler", "--port", "0"], "scheduler", stdout=True)
        self.endpoint = self._read_endpoint(self.scheduler, 20.0)
        for s in range(servers):
            self._start(["server", "--scheduler", self.endpoint, "--rank", str(s)], f"server-{s}")

    def _args(self, head):
        args = [BINARY] + head + ["--config", CONFIG]
        for s in self.sets:
            args += ["--set", s]
        return args

    def _start(self, head, name, stdout=False):
        log = open(os.path.join(self.dir, name + ".log"), "wb")
        p = subprocess.Popen(self._args(head), stdout=subprocess.PIPE if stdout else log,
                             stderr=log, stdin=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    @staticmethod
    def _read_endpoint(p, timeout_s):
        deadline = time.monotonic() + timeout_s
        buf = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([p.stdout], [], [], 0.2)
            if not ready:
                continue
            chunk = os.read(p.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
            for line in buf.decode(errors="replace").splitlines():
                if line.startswith("PHX_ENDPOINT "):
                    return line.split(" ", 1)[1].strip()
        raise RuntimeError(f"the scheduler printed no PHX_ENDPOINT line: {buf!r}")

    def stop(self):
        for p in reversed(self.procs):
            p.kill()
        for p in self.procs:
            p.wait()


def make_cluster(request, name, sets):
    if not os.access(BINARY, os.X_OK):
        pytest.skip(f"no phalanx binary at {BINARY} (build it, or set PHX_PHALANX_BINARY)")
    c = Cluster(name, sets)
    request.addfinalizer(c.stop)
    return c


LR = 0.5
SGD = ["optimizer.kind=sgd", f"optimizer.learning_rate={LR}", "optimizer.momentum=0"]


@pytest.fixture(scope="module")
def async_cluster(request):
    return make_cluster(request, "async", SGD + ["cluster.mode=async"])


@pytest.fixture(scope="module")
def sync_cluster(request):
    return make_cluster(request, "sync", SGD + ["cluster.mode=sync"])
