#include "common/metrics.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

namespace phalanx {
namespace {

enum MetricType { kCounterType = 0, kGaugeType = 1, kHistogramType = 2 };

const char* TypeName(int type) {
  switch (type) {
    case kCounterType:
      return "counter";
    case kGaugeType:
      return "gauge";
    default:
      return "histogram";
  }
}

bool IsNameChar(char c, bool first, bool allow_colon) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') return true;
  if (allow_colon && c == ':') return true;
  return !first && c >= '0' && c <= '9';
}

// Replaces characters a Prometheus name cannot hold, so a typo in a metric
// name degrades to an odd-looking series instead of an unparseable page.
std::string SanitizeName(std::string_view name, bool allow_colon) {
  std::string out(name);
  if (out.empty()) out = "_";
  for (size_t i = 0; i < out.size(); ++i) {
    if (!IsNameChar(out[i], i == 0, allow_colon)) out[i] = '_';
  }
  return out;
}

void AppendEscapedLabelValue(std::string_view v, std::string* out) {
  for (char c : v) {
    switch (c) {
      case '\\':
        *out += "\\\\";
        break;
      case '"':
        *out += "\\\"";
        break;
      case '\n':
        *out += "\\n";
        break;
      default:
        *out += c;
    }
  }
}

// HELP text escapes only backslash and newline (0.0.4 format).
std::string EscapeHelp(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// "{labels}" or "{labels,extra}" or "" when both are empty.
std::string LabelBlock(const std::string& labels, const std::string& extra = "") {
  if (labels.empty() && extra.empty()) return "";
  std::string out = "{" + labels;
  if (!labels.empty() && !extra.empty()) out += ",";
  return out + extra + "}";
}

}  // namespace

// ---- Histogram ------------------------------------------------------------

Histogram::Histogram(std::vector<double> upper_bounds) : bounds_(std::move(upper_bounds)) {
  std::erase_if(bounds_, [](double b) { return std::isnan(b) || (std::isinf(b) && b > 0); });
  std::sort(bounds_.begin(), bounds_.end());
  bounds_.erase(std::unique(bounds_.begin(), bounds_.end()), bounds_.end());
  buckets_ = std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1);
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double v) {
  // lower_bound finds the first bound >= v, i.e. the `le` bucket. NaN compares
  // false with everything, so it is sent to +Inf explicitly.
  size_t i = std::isnan(v)
                 ? bounds_.size()
                 : static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) -
                                       bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::bucket_counts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  for (size_t i = 0; i < out.size(); ++i) out[i] = buckets_[i].load(std::memory_order_relaxed);
  return out;
}

std::vector<double> DefaultLatencyBuckets() {
  return {1e-5,   2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2,
          2.5e-2, 5e-2,   0.1,  0.25, 0.5,    1,    2.5,  5,      10};
}

// ---- Formatting -----------------------------------------------------------

std::string FormatLabels(
    std::initializer_list<std::pair<std::string_view, std::string_view>> labels) {
  std::string out;
  for (const auto& [name, value] : labels) {
    if (!out.empty()) out += ',';
    out += SanitizeName(name, /*allow_colon=*/false);
    out += "=\"";
    AppendEscapedLabelValue(value, &out);
    out += '"';
  }
  return out;
}

std::string FormatPrometheusValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // Shortest representation that round-trips; always a valid Go ParseFloat
  // input ("0.25", "1e-05", "12345").
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  if (ec != std::errc()) return "NaN";  // cannot happen with 64 bytes
  return std::string(buf, end);
}

// ---- Registry ---------------------------------------------------------------

struct MetricsRegistry::Family {
  std::string name;
  std::string help;
  int type = kCounterType;
  // Keyed by the rendered label set; unique_ptr keeps references stable.
  std::map<std::string, std::unique_ptr<Counter>> counters;
  std::map<std::string, std::unique_ptr<Gauge>> gauges;
  std::map<std::string, std::unique_ptr<Histogram>> histograms;
};

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

MetricsRegistry::Family* MetricsRegistry::GetFamily(const std::string& name,
                                                    const std::string& help, int type) {
  std::string clean = SanitizeName(name, /*allow_colon=*/true);
  auto it = families_.find(clean);
  if (it == families_.end()) {
    auto family = std::make_unique<Family>();
    family->name = clean;
    family->help = help;
    family->type = type;
    it = families_.emplace(clean, std::move(family)).first;
  }
  if (it->second->type == type) return it->second.get();
  spdlog::error("metric '{}' requested as {} but registered as {}; returning an unexported {}",
                clean, TypeName(type), TypeName(it->second->type), TypeName(type));
  auto orphan = std::make_unique<Family>();
  orphan->name = clean;
  orphan->type = type;
  orphans_.push_back(std::move(orphan));
  return orphans_.back().get();
}

Counter& MetricsRegistry::GetCounter(const std::string& name, const std::string& help,
                                     const std::string& labels) {
  MutexLock lock(&mu_);
  auto& slot = GetFamily(name, help, kCounterType)->counters[labels];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& MetricsRegistry::GetGauge(const std::string& name, const std::string& help,
                                 const std::string& labels) {
  MutexLock lock(&mu_);
  auto& slot = GetFamily(name, help, kGaugeType)->gauges[labels];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

Histogram& MetricsRegistry::GetHistogram(const std::string& name, const std::string& help,
                                         const std::vector<double>& upper_bounds,
                                         const std::string& labels) {
  MutexLock lock(&mu_);
  auto& slot = GetFamily(name, help, kHistogramType)->histograms[labels];
  if (!slot) slot = std::make_unique<Histogram>(upper_bounds);
  return *slot;
}

std::string MetricsRegistry::RenderPrometheus() const {
  MutexLock lock(&mu_);
  std::string out;
  for (const auto& [name, family] : families_) {
    out += "# HELP " + name + " " + EscapeHelp(family->help) + "\n";
    out += "# TYPE " + name + " " + TypeName(family->type) + "\n";
    for (const auto& [labels, c] : family->counters) {
      out += name + LabelBlock(labels) + " " + std::to_string(c->value()) + "\n";
    }
    for (const auto& [labels, g] : family->gauges) {
      out += name + LabelBlock(labels) + " " + FormatPrometheusValue(g->value()) + "\n";
    }
    for (const auto& [labels, h] : family->histograms) {
      // _count is derived from the same bucket snapshot so that it always
      // equals the +Inf bucket, as Prometheus expects, even mid-update.
      std::vector<uint64_t> counts = h->bucket_counts();
      const std::vector<double>& bounds = h->upper_bounds();
      uint64_t cumulative = 0;
      for (size_t i = 0; i < counts.size(); ++i) {
        cumulative += counts[i];
        std::string le = i < bounds.size() ? FormatPrometheusValue(bounds[i]) : "+Inf";
        out += name + "_bucket" + LabelBlock(labels, "le=\"" + le + "\"") + " " +
               std::to_string(cumulative) + "\n";
      }
      out += name + "_sum" + LabelBlock(labels) + " " + FormatPrometheusValue(h->sum()) + "\n";
      out += name + "_count" + LabelBlock(labels) + " " + std::to_string(cumulative) + "\n";
    }
  }
  return out;
}

MetricsRegistry& MetricsRegistry::Global() {
  // Leaked on purpose: worker threads may still update metrics while static
  // destructors run at exit.
  static MetricsRegistry* const registry = new MetricsRegistry();
  return *registry;
}

}  // namespace phalanx
