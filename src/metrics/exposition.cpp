// The text exposition format 0.0.4, as Prometheus's own parsers read it
// (https://prometheus.io/docs/instrumenting/exposition_formats/).

#include "metrics/exposition.hpp"

#include <charconv>
#include <cmath>
#include <stdexcept>
#include <system_error>

namespace lameduck::detail {

namespace {

bool name_start(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

bool name_char(char c) noexcept {
  return name_start(c) || (c >= '0' && c <= '9');
}

// HELP text escapes a backslash and a newline; a label value a double quote as well.
void append_escaped(std::string& out, std::string_view s, bool quote) {
  for (const char c : s) {
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
}

template <class T>
void append_number(std::string& out, T value) {
  char buffer[32];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  out.append(buffer, end);
}

std::string_view type_name(metric_type t) noexcept {
  switch (t) {
    case metric_type::counter:
      return "counter";
    case metric_type::gauge:
      return "gauge";
    case metric_type::histogram:
      return "histogram";
  }
  return "untyped";
}

}  // namespace

bool valid_metric_name(std::string_view name) noexcept {
  if (name.empty() || !(name_start(name[0]) || name[0] == ':')) return false;
  for (const char c : name) {
    if (!name_char(c) && c != ':') return false;
  }
  return true;
}

bool valid_label_name(std::string_view name) noexcept {
  if (name.empty() || !name_start(name[0]) || name.starts_with("__")) return false;
  for (const char c : name) {
    if (!name_char(c)) return false;
  }
  return true;
}

std::string format_metric_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  std::string out;
  append_number(out, value);  // shortest round trip: 1 is "1", 0.005 is "0.005"
  return out;
}

void exposition_writer::family(std::string_view name, metric_type type, std::string_view help) {
  if (!valid_metric_name(name)) {
    throw std::invalid_argument("metric name not allowed: \"" + std::string(name) + "\"");
  }
  family_ = name;
  type_ = type;
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  append_escaped(out_, help, false);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type_name(type);
  out_ += '\n';
}

void exposition_writer::expect_plain_family() const {
  if (family_.empty()) throw std::logic_error("metric sample before any family");
  if (type_ == metric_type::histogram) {
    throw std::logic_error("plain sample in histogram family " + family_);
  }
}

void exposition_writer::begin_sample(std::string_view suffix, metric_labels labels,
                                     std::string_view le) {
  out_ += family_;
  out_ += suffix;
  if (labels.size() != 0 || !le.empty()) {
    char separator = '{';
    for (const auto& [name, value] : labels) {
      if (!valid_label_name(name) || (type_ == metric_type::histogram && name == "le")) {
        throw std::invalid_argument("label name not allowed: \"" + std::string(name) + "\"");
      }
      out_ += separator;
      out_ += name;
      out_ += "=\"";
      append_escaped(out_, value, true);
      out_ += '"';
      separator = ',';
    }
    if (!le.empty()) {
      out_ += separator;
      out_ += "le=\"";
      out_ += le;
      out_ += '"';
    }
    out_ += '}';
  }
  out_ += ' ';
}

void exposition_writer::sample(metric_labels labels, double value) {
  expect_plain_family();
  begin_sample({}, labels);
  out_ += format_metric_value(value);
  out_ += '\n';
}

void exposition_writer::write_sample(metric_labels labels, std::int64_t value) {
  expect_plain_family();
  begin_sample({}, labels);
  append_number(out_, value);
  out_ += '\n';
}

void exposition_writer::write_sample(metric_labels labels, std::uint64_t value) {
  expect_plain_family();
  begin_sample({}, labels);
  append_number(out_, value);
  out_ += '\n';
}

void exposition_writer::histogram(metric_labels labels, std::span<const double> upper_bounds,
                                  std::span<const std::uint64_t> counts, double sum) {
  if (family_.empty() || type_ != metric_type::histogram) {
    throw std::logic_error("histogram sample outside a histogram family");
  }
  if (counts.size() != upper_bounds.size() + 1) {
    throw std::invalid_argument("histogram needs one count per bucket and one above the last");
  }
  for (std::size_t i = 0; i < upper_bounds.size(); ++i) {
    if (!std::isfinite(upper_bounds[i]) || (i > 0 && upper_bounds[i] <= upper_bounds[i - 1])) {
      throw std::invalid_argument("histogram bounds must be finite and strictly increasing");
    }
  }
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < upper_bounds.size(); ++i) {
    cumulative += counts[i];
    begin_sample("_bucket", labels, format_metric_value(upper_bounds[i]));
    append_number(out_, cumulative);
    out_ += '\n';
  }
  cumulative += counts.back();
  begin_sample("_bucket", labels, "+Inf");
  append_number(out_, cumulative);
  out_ += '\n';
  begin_sample("_sum", labels);
  out_ += format_metric_value(sum);
  out_ += '\n';
  begin_sample("_count", labels);
  append_number(out_, cumulative);
  out_ += '\n';
}

std::string exposition_writer::take() noexcept {
  std::string out = std::move(out_);
  out_.clear();
  family_.clear();
  return out;
}

}  // namespace lameduck::detail
