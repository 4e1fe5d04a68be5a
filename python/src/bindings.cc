// The module phalanx._phalanx: PyClient's methods, and the translation of a
// StatusError into phalanx.Error (the Python class, defined in
// phalanx/errors.py, is looked up when the first error is raised).

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "python/src/py_client.h"

namespace py = pybind11;
using phalanx::python::PyClient;
using phalanx::python::PyClientOptions;
using phalanx::python::StatusError;

namespace {

void RaiseStatus(const StatusError& e) {
  py::object make = py::module_::import("phalanx.errors").attr("error_for");
  py::object exc = make(phalanx::StatusCodeName(e.status.code()), e.status.message());
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
}

}  // namespace

PYBIND11_MODULE(_phalanx, m) {
  m.doc() = "Phalanx worker client (C++ worker::Client); use the phalanx package";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StatusError& e) {
      RaiseStatus(e);
    }
  });

  py::class_<PyClient>(m, "Client")
      .def(
          py::init([](std::string scheduler, int rank, std::string host, int timeout_ms,
                      int request_timeout_ms, int heartbeat_ms, std::map<uint32_t, uint32_t> dims) {
            PyClientOptions o;
            o.scheduler = std::move(scheduler);
            o.rank = rank;
            o.host = std::move(host);
            o.timeout_ms = timeout_ms;
            o.request_timeout_ms = request_timeout_ms;
            o.heartbeat_ms = heartbeat_ms;
            o.dims = std::move(dims);
            return std::make_unique<PyClient>(o);
          }),
          py::arg("scheduler"), py::arg("rank") = -1, py::arg("host") = "127.0.0.1",
          py::arg("timeout_ms") = 30000, py::arg("request_timeout_ms") = 120000,
          py::arg("heartbeat_ms") = 300, py::arg("dims") = std::map<uint32_t, uint32_t>{})
      .def(
          "pull",
          [](PyClient& c, uint32_t table, const py::object& keys, std::optional<uint32_t> dim,
             int64_t min_version, const py::object& out, bool with_version) -> py::object {
            py::object version = py::none();
            py::array_t<float> a =
                c.Pull(table, keys, dim, min_version, out, with_version ? &version : nullptr);
            if (with_version) return py::make_tuple(a, version);
            return a;
          },
          py::arg("table"), py::arg("keys"), py::arg("dim") = py::none(),
          py::arg("min_version") = 0, py::arg("out") = py::none(), py::arg("with_version") = false)
      .def("push", &PyClient::Push, py::arg("table"), py::arg("keys"), py::arg("grads"),
           py::arg("round") = 0, py::arg("all_servers") = true)
      .def("pull_async", &PyClient::PullAsync, py::arg("table"), py::arg("keys"),
           py::arg("dim") = py::none(), py::arg("min_version") = 0, py::arg("out") = py::none())
      .def("push_async", &PyClient::PushAsync, py::arg("table"), py::arg("keys"), py::arg("grads"),
           py::arg("round") = 0, py::arg("all_servers") = true)
      .def(
          "wait",
          [](PyClient& c, uint64_t id, bool with_version) -> py::object {
            py::object version = py::none();
            py::object r = c.Wait(id, with_version ? &version : nullptr);
            if (with_version) return py::make_tuple(r, version);
            return r;
          },
          py::arg("id"), py::arg("with_version") = false)
      .def("close", &PyClient::Close)
      .def_property_readonly("closed", &PyClient::closed)
      .def_property_readonly("rank", &PyClient::rank)
      .def_property_readonly("id", &PyClient::id)
      .def_property_readonly("view", &PyClient::View)
      .def_property_readonly(
          "num_servers", [](const PyClient& c) { return c.View()["servers"].attr("__len__")(); })
      .def_property_readonly(
          "num_workers", [](const PyClient& c) { return c.View()["workers"].attr("__len__")(); });
}
