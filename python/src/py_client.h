#pragma once
// PyClient: the Python-facing wrapper of worker::Client (phalanx._phalanx.Client).
// It converts and checks numpy arguments (a ValueError/TypeError, never a
// crash), turns a non-OK Status into a StatusError (bindings.cc raises it as
// phalanx.Error), and releases the GIL around every call that may wait on the
// network. The C++ client belongs to one thread; here any Python thread may
// call, and mu_ serialises them (taken only after the GIL is released, so no
// thread holding the GIL ever waits on it). Pulled rows are written by the
// C++ client straight into the numpy array that is returned: one copy, from
// the reply into the array, none in the binding.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>

#include "common/status.h"
#include "worker/client.h"

namespace phalanx::python {

namespace py = pybind11;

// A Status on its way to Python: exceptions are the edge's (bindings.cc).
struct StatusError : std::runtime_error {
  explicit StatusError(Status s) : std::runtime_error(s.ToString()), status(std::move(s)) {}
  Status status;
};

struct PyClientOptions {
  std::string scheduler;
  int rank = -1;
  std::string host = "127.0.0.1";
  int timeout_ms = 30000;  // registering and waiting for the cluster to form
  int request_timeout_ms = 120000;
  int heartbeat_ms = 300;
  std::map<uint32_t, uint32_t> dims;  // table -> row width, for pull without dim
};

class PyClient {
 public:
  explicit PyClient(const PyClientOptions& options);
  ~PyClient();

  py::array_t<float> Pull(uint32_t table, const py::object& keys, std::optional<uint32_t> dim,
                          int64_t min_version, const py::object& out, py::object* version);
  void Push(uint32_t table, const py::object& keys, const py::object& grads, int64_t round,
            bool all_servers);
  uint64_t PullAsync(uint32_t table, const py::object& keys, std::optional<uint32_t> dim,
                     int64_t min_version, const py::object& out);
  uint64_t PushAsync(uint32_t table, const py::object& keys, const py::object& grads, int64_t round,
                     bool all_servers);
  // The pulled array for a pull, None for a push.
  py::object Wait(uint64_t id, py::object* version);
  void Close();
  bool closed() const { return client_ == nullptr; }

  int rank() const;
  int32_t id() const;
  py::dict View() const;

 private:
  worker::Client& Live() const;
  uint32_t DimFor(uint32_t table, std::optional<uint32_t> dim) const;
  py::array_t<float> OutArray(const py::object& out, size_t rows, uint32_t dim) const;

  PyClientOptions options_;
  std::unique_ptr<worker::Client> client_;
  std::mutex mu_;
  // Arrays that pending pulls write into, kept alive until their Wait.
  std::map<uint64_t, py::array_t<float>> pending_pulls_;
};

}  // namespace phalanx::python
