#include "python/src/py_client.h"

#include <span>
#include <utility>

namespace phalanx::python {

namespace {

void ThrowIfError(const Status& s) {
  if (!s.ok()) throw StatusError(s);
}

// Keys as a C-contiguous uint64 array: a numpy array must already be one (no
// silent conversion of int64 or float keys); a Python sequence of ints is
// converted, refusing negative or too large values.
py::array_t<uint64_t> KeysArray(const py::object& keys) {
  if (py::isinstance<py::array>(keys)) {
    auto a = py::reinterpret_borrow<py::array>(keys);
    if (!py::array_t<uint64_t>::check_(a)) {
      throw py::type_error("keys must have dtype uint64, not " +
                           py::str(a.dtype()).cast<std::string>() +
                           " (use keys.astype(numpy.uint64))");
    }
    if (a.ndim() != 1) {
      throw py::value_error("keys must be 1-D, got " + std::to_string(a.ndim()) + " dimensions");
    }
    if (!(a.flags() & py::array::c_style)) {
      throw py::value_error("keys must be contiguous (use numpy.ascontiguousarray)");
    }
    return py::reinterpret_borrow<py::array_t<uint64_t>>(a);
  }
  if (py::isinstance<py::str>(keys) || py::isinstance<py::bytes>(keys) ||
      !py::isinstance<py::sequence>(keys)) {
    throw py::type_error("keys must be a uint64 numpy array or a sequence of ints");
  }
  auto seq = py::reinterpret_borrow<py::sequence>(keys);
  py::array_t<uint64_t> a(static_cast<py::ssize_t>(seq.size()));
  uint64_t* p = a.mutable_data();
  for (size_t i = 0; i < seq.size(); ++i) {
    py::object k = seq[i];
    if (!PyLong_Check(k.ptr()))
      throw py::type_error("keys[" + std::to_string(i) + "] is not an int");
    const unsigned long long v = PyLong_AsUnsignedLongLong(k.ptr());
    if (PyErr_Occurred()) {
      PyErr_Clear();
      throw py::value_error("keys[" + std::to_string(i) + "] = " + py::repr(k).cast<std::string>() +
                            " is not a uint64");
    }
    p[i] = v;
  }
  return a;
}

// Gradient rows: a C-contiguous float32 array of shape (keys, dim).
py::array_t<float> GradArray(const py::object& grads, size_t rows) {
  if (!py::isinstance<py::array>(grads)) {
    throw py::type_error("grads must be a numpy float32 array of shape (len(keys), dim)");
  }
  auto a = py::reinterpret_borrow<py::array>(grads);
  if (!py::array_t<float>::check_(a)) {
    throw py::type_error("grads must have dtype float32, not " +
                         py::str(a.dtype()).cast<std::string>() +
                         " (use grads.astype(numpy.float32))");
  }
  if (a.ndim() != 2 || static_cast<size_t>(a.shape(0)) != rows || a.shape(1) == 0) {
    throw py::value_error("grads must have shape (len(keys), dim) = (" + std::to_string(rows) +
                          ", dim > 0), got " + py::str(a.attr("shape")).cast<std::string>());
  }
  if (!(a.flags() & py::array::c_style)) {
    throw py::value_error("grads must be C-contiguous (use numpy.ascontiguousarray)");
  }
  return py::reinterpret_borrow<py::array_t<float>>(a);
}

py::dict NodeDict(const NodeInfo& n) {
  py::dict d;
  d["id"] = n.id;
  d["rank"] = n.rank;
  d["host"] = n.host;
  d["data_port"] = n.data_port;
  d["http_port"] = n.http_port;
  d["alive"] = n.alive;
  return d;
}

}  // namespace

PyClient::PyClient(const PyClientOptions& options) : options_(options) {
  worker::ClientOptions o;
  o.scheduler_endpoint = options.scheduler;
  o.requested_rank = options.rank;
  o.host = options.host;
  o.register_timeout_ms = options.timeout_ms;
  o.formation_timeout_ms = options.timeout_ms;
  o.request_timeout_ms = options.request_timeout_ms;
  o.heartbeat_ms = options.heartbeat_ms;
  if (options.scheduler.empty()) throw py::value_error("scheduler must be tcp://host:port");
  if (options.timeout_ms <= 0 || options.request_timeout_ms <= 0 || options.heartbeat_ms <= 0) {
    throw py::value_error("timeout_ms, request_timeout_ms and heartbeat_ms must be positive");
  }
  Result<std::unique_ptr<worker::Client>> c = Internal("unset");
  {
    py::gil_scoped_release nogil;
    c = worker::Client::Create(o);
  }
  ThrowIfError(c.status());
  client_ = std::move(c).value();
}

PyClient::~PyClient() {
  // Without Close: leave and disconnect now (quick; no network wait).
  if (client_) {
    client_->Leave();
    client_.reset();
  }
}

worker::Client& PyClient::Live() const {
  if (!client_) throw StatusError(FailedPrecondition("the client is closed"));
  return *client_;
}

uint32_t PyClient::DimFor(uint32_t table, std::optional<uint32_t> dim) const {
  if (dim) {
    if (*dim == 0) throw py::value_error("dim must be positive");
    return *dim;
  }
  auto it = options_.dims.find(table);
  if (it == options_.dims.end()) {
    throw py::value_error("no row width for table " + std::to_string(table) +
                          ": pass dim= or Client(dims={table: dim})");
  }
  return it->second;
}

py::array_t<float> PyClient::OutArray(const py::object& out, size_t rows, uint32_t dim) const {
  if (out.is_none()) {
    return py::array_t<float>({static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(dim)});
  }
  py::array_t<float> a = GradArray(out, rows);
  if (static_cast<uint32_t>(a.shape(1)) != dim) {
    throw py::value_error("out must have shape (" + std::to_string(rows) + ", " +
                          std::to_string(dim) + ")");
  }
  if (!a.writeable()) throw py::value_error("out is read-only");
  return a;
}

py::array_t<float> PyClient::Pull(uint32_t table, const py::object& keys,
                                  std::optional<uint32_t> dim, int64_t min_version,
                                  const py::object& out, py::object* version) {
  worker::Client& c = Live();
  const uint32_t d = DimFor(table, dim);
  py::array_t<uint64_t> k = KeysArray(keys);
  const size_t n = static_cast<size_t>(k.shape(0));
  py::array_t<float> result = OutArray(out, n, d);
  std::span<const uint64_t> ks(k.data(), n);
  float* dst = result.mutable_data();
  worker::PullResult r;
  Status s;
  {
    py::gil_scoped_release nogil;
    std::lock_guard lock(mu_);
    s = c.Pull(table, ks, d, min_version, dst, &r);
  }
  ThrowIfError(s);
  if (version) *version = py::int_(r.version);
  return result;
}

void PyClient::Push(uint32_t table, const py::object& keys, const py::object& grads, int64_t round,
                    bool all_servers) {
  worker::Client& c = Live();
  py::array_t<uint64_t> k = KeysArray(keys);
  const size_t n = static_cast<size_t>(k.shape(0));
  py::array_t<float> g = GradArray(grads, n);
  const auto d = static_cast<uint32_t>(g.shape(1));
  if (auto it = options_.dims.find(table); it != options_.dims.end() && it->second != d) {
    throw py::value_error("grads have " + std::to_string(d) + " columns but table " +
                          std::to_string(table) + " has dim " + std::to_string(it->second));
  }
  std::span<const uint64_t> ks(k.data(), n);
  const float* src = g.data();
  Status s;
  {
    py::gil_scoped_release nogil;
    std::lock_guard lock(mu_);
    s = c.Push(table, ks, d, src, round, all_servers);
  }
  ThrowIfError(s);
}

uint64_t PyClient::PullAsync(uint32_t table, const py::object& keys, std::optional<uint32_t> dim,
                             int64_t min_version, const py::object& out) {
  worker::Client& c = Live();
  const uint32_t d = DimFor(table, dim);
  py::array_t<uint64_t> k = KeysArray(keys);
  const size_t n = static_cast<size_t>(k.shape(0));
  py::array_t<float> result = OutArray(out, n, d);
  std::span<const uint64_t> ks(k.data(), n);
  float* dst = result.mutable_data();
  Result<uint64_t> id = Internal("unset");
  {
    py::gil_scoped_release nogil;
    std::lock_guard lock(mu_);
    id = c.PullAsync(table, ks, d, min_version, dst);
  }
  ThrowIfError(id.status());
  pending_pulls_.emplace(id.value(), std::move(result));
  return id.value();
}

uint64_t PyClient::PushAsync(uint32_t table, const py::object& keys, const py::object& grads,
                             int64_t round, bool all_servers) {
  worker::Client& c = Live();
  py::array_t<uint64_t> k = KeysArray(keys);
  const size_t n = static_cast<size_t>(k.shape(0));
  py::array_t<float> g = GradArray(grads, n);
  const auto d = static_cast<uint32_t>(g.shape(1));
  std::span<const uint64_t> ks(k.data(), n);
  const float* src = g.data();
  Result<uint64_t> id = Internal("unset");
  {
    py::gil_scoped_release nogil;
    std::lock_guard lock(mu_);
    id = c.PushAsync(table, ks, d, src, round, all_servers);  // copies the payload
  }
  ThrowIfError(id.status());
  return id.value();
}

py::object PyClient::Wait(uint64_t id, py::object* version) {
  worker::Client& c = Live();
  worker::PullResult r;
  Status s;
  {
    py::gil_scoped_release nogil;
    std::lock_guard lock(mu_);
    s = c.Wait(id, &r);
  }
  py::object result = py::none();
  if (auto it = pending_pulls_.find(id); it != pending_pulls_.end()) {
    result = std::move(it->second);
    pending_pulls_.erase(it);
  }
  ThrowIfError(s);
  if (version) *version = py::int_(r.version);
  return result;
}

void PyClient::Close() {
  if (!client_) return;
  std::unique_ptr<worker::Client> c = std::move(client_);
  {
    py::gil_scoped_release nogil;
    std::lock_guard lock(mu_);
    c->Leave();
    c.reset();
  }
  pending_pulls_.clear();  // after the client: nothing writes into them any more
}

int PyClient::rank() const { return Live().rank(); }
int32_t PyClient::id() const { return Live().id(); }

py::dict PyClient::View() const {
  const ClusterView v = Live().view();
  py::dict d;
  d["epoch"] = v.epoch;
  d["num_slots"] = v.num_slots;
  py::list servers, workers;
  for (const NodeInfo& n : v.servers) servers.append(NodeDict(n));
  for (const NodeInfo& n : v.workers) workers.append(NodeDict(n));
  d["servers"] = servers;
  d["workers"] = workers;
  return d;
}

}  // namespace phalanx::python
