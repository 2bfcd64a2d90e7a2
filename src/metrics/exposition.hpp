#pragma once
// Prometheus's text exposition format, version 0.0.4: what a scrape of a metrics endpoint
// reads. Only the writing: no I/O and no HTTP, so the server's endpoint and the supervisor's
// share it, and tests check its output from memory.
//
// A family is announced once (# HELP, # TYPE) and its samples follow it; label values and
// HELP text are escaped as the format says (a backslash, a newline and, in label values, a
// double quote), numbers are written so that they read back exactly. Names are checked: a
// bad one is a programmer's mistake, and a scrape with one fails as a whole in Prometheus.

#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

namespace lameduck::detail {

/// The Content-Type of a scrape in this format.
inline constexpr std::string_view exposition_content_type =
    "text/plain; version=0.0.4; charset=utf-8";

/// The kind of a family, as its # TYPE line says it.
enum class metric_type : std::uint8_t {
  counter,    ///< only goes up (a restart starts it again); its name ends in "_total"
  gauge,      ///< goes up and down
  histogram,  ///< observations counted in buckets, with their sum and count
};

/// One label of a sample: a name (checked) and any UTF-8 value (escaped).
struct metric_label {
  std::string_view name;
  std::string_view value;
};

/// Labels of one sample, in the order written.
using metric_labels = std::initializer_list<metric_label>;

/// Writes families and their samples to a string, in the order called. Throws
/// std::invalid_argument for a name the format does not allow and std::logic_error for a
/// sample that does not fit its family (before any family, or a histogram's samples written
/// as a plain one or the other way round).
class exposition_writer {
 public:
  /// Starts a family: its # HELP (escaped) and # TYPE lines. A counter's name should end in
  /// "_total"; a histogram's is the base of its "_bucket", "_sum" and "_count" samples.
  void family(std::string_view name, metric_type type, std::string_view help);

  /// A sample of the current counter or gauge family, without labels.
  void sample(double value) { sample({}, value); }
  /// A sample of the current counter or gauge family.
  void sample(metric_labels labels, double value);
  /// As sample(double), for a count: written exactly, whatever its size.
  template <std::integral T>
  void sample(T value) {
    sample({}, value);
  }
  /// As sample(labels, double), for a count: written exactly, whatever its size.
  template <std::integral T>
  void sample(metric_labels labels, T value) {
    if constexpr (std::signed_integral<T>) {
      write_sample(labels, static_cast<std::int64_t>(value));
    } else {
      write_sample(labels, static_cast<std::uint64_t>(value));
    }
  }

  /// The samples of one histogram of the current histogram family: for each bucket's upper
  /// bound (finite, strictly increasing; "+Inf" is added) the observations that fell in it
  /// and not in the one before, then those above the last bound (so `counts` has one entry
  /// more than `upper_bounds`), and the sum of every observation. Writes the cumulative
  /// `_bucket{le="..."}` samples, `_sum` and `_count`.
  void histogram(metric_labels labels, std::span<const double> upper_bounds,
                 std::span<const std::uint64_t> counts, double sum);

  /// What has been written so far.
  const std::string& text() const noexcept { return out_; }
  /// Takes what has been written, leaving the writer empty.
  std::string take() noexcept;

 private:
  void write_sample(metric_labels labels, std::int64_t value);
  void write_sample(metric_labels labels, std::uint64_t value);
  // Writes NAME[SUFFIX]{LABELS[,le="LE"]} and the space before the value.
  void begin_sample(std::string_view suffix, metric_labels labels, std::string_view le = {});
  void expect_plain_family() const;

  std::string out_;
  std::string family_;  // the current family's name; empty before the first
  metric_type type_ = metric_type::gauge;
};

/// Whether a metric name is one the format allows: [a-zA-Z_:][a-zA-Z0-9_:]*.
bool valid_metric_name(std::string_view name) noexcept;
/// Whether a label name is one the format allows: [a-zA-Z_][a-zA-Z0-9_]*, not starting "__"
/// (reserved for Prometheus itself).
bool valid_label_name(std::string_view name) noexcept;

/// A value as the format writes it: integers without a fraction, "+Inf", "-Inf", "NaN", and
/// otherwise the shortest text that reads back as the same double.
std::string format_metric_value(double value);

}  // namespace lameduck::detail
