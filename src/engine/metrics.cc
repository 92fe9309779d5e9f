#include "engine/metrics.h"

#include <algorithm>
#include <charconv>

namespace vmgroup::engine {
namespace {

// A sample value as Prometheus's own clients write it (Go's 'g' format):
// the shortest text that reads back as the same double, with an exponent
// only below 1e-4 or for large values (0.0005, not 5e-04).
std::string Number(double v) {
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general);
  return ec == std::errc() ? std::string(buf, end) : "NaN";
}

// Escapes `text` for a label value (quote too) or a HELP line.
std::string Escape(std::string_view text, bool quote) {
  std::string out;
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

// {a="x",b="y"}, with `extra` (le) last; empty for no labels at all.
std::string LabelText(const MetricLabels& labels, const std::string& extra = "") {
  std::string out;
  for (const auto& [name, value] : labels) {
    out += (out.empty() ? "" : ",") + name + "=\"" + Escape(value, true) + "\"";
  }
  if (!extra.empty()) out += (out.empty() ? "" : ",") + extra;
  return out.empty() ? out : "{" + out + "}";
}

}  // namespace

void MetricsRegistry::DeclareCounter(std::string name, std::string help) {
  std::lock_guard lock(mu_);
  families_.push_back({std::move(name), std::move(help), Kind::kCounter, {}, {}});
}

void MetricsRegistry::DeclareGauge(std::string name, std::string help) {
  std::lock_guard lock(mu_);
  families_.push_back({std::move(name), std::move(help), Kind::kGauge, {}, {}});
}

void MetricsRegistry::DeclareHistogram(std::string name, std::string help,
                                       std::vector<double> bounds) {
  std::lock_guard lock(mu_);
  families_.push_back({std::move(name), std::move(help), Kind::kHistogram, std::move(bounds), {}});
}

MetricsRegistry::Series* MetricsRegistry::Find(std::string_view name, Kind kind,
                                               const MetricLabels& labels) {
  for (auto& f : families_) {
    if (f.name != name) continue;
    if (f.kind != kind) return nullptr;
    Series& s = f.series[labels];
    if (kind == Kind::kHistogram && s.count.empty()) s.count.assign(f.bounds.size() + 1, 0);
    return &s;
  }
  return nullptr;
}

void MetricsRegistry::Add(std::string_view counter, const MetricLabels& labels, double amount) {
  std::lock_guard lock(mu_);
  if (Series* s = Find(counter, Kind::kCounter, labels)) s->value += amount;
}

void MetricsRegistry::Set(std::string_view gauge, const MetricLabels& labels, double value) {
  std::lock_guard lock(mu_);
  if (Series* s = Find(gauge, Kind::kGauge, labels)) s->value = value;
}

void MetricsRegistry::Observe(std::string_view histogram, const MetricLabels& labels,
                              double value) {
  std::lock_guard lock(mu_);
  for (const auto& f : families_) {
    if (f.name != histogram || f.kind != Kind::kHistogram) continue;
    // The first bucket whose bound holds the value (le: less or equal).
    const size_t bucket =
        std::lower_bound(f.bounds.begin(), f.bounds.end(), value) - f.bounds.begin();
    Series* s = Find(histogram, Kind::kHistogram, labels);
    s->value += value;
    ++s->count[bucket];
    return;
  }
}

std::string MetricsRegistry::Render() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& f : families_) {
    static constexpr const char* kTypes[] = {"counter", "gauge", "histogram"};
    out += "# HELP " + f.name + " " + Escape(f.help, false) + "\n";
    out += "# TYPE " + f.name + " " + kTypes[static_cast<int>(f.kind)] + "\n";
    for (const auto& [labels, s] : f.series) {
      if (f.kind != Kind::kHistogram) {
        out += f.name + LabelText(labels) + " " + Number(s.value) + "\n";
        continue;
      }
      uint64_t cumulative = 0;
      for (size_t i = 0; i < s.count.size(); ++i) {
        cumulative += s.count[i];
        const std::string le = i < f.bounds.size() ? Number(f.bounds[i]) : "+Inf";
        out += f.name + "_bucket" + LabelText(labels, "le=\"" + le + "\"") + " " +
               std::to_string(cumulative) + "\n";
      }
      out += f.name + "_sum" + LabelText(labels) + " " + Number(s.value) + "\n";
      out += f.name + "_count" + LabelText(labels) + " " + std::to_string(cumulative) + "\n";
    }
  }
  return out;
}

}  // namespace vmgroup::engine
