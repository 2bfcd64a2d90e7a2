// The scrape: every family of docs/metrics.md, from a sample summed over the loops.

#include "metrics/server_metrics.hpp"

#include <span>
#include <string_view>

#include "metrics/exposition.hpp"

namespace lameduck::detail {

void loop_totals::add(const loop_counters& c) noexcept {
  accepted += c.accepted.load();
  rejected += c.rejected.load();
  received_bytes += c.received_bytes.load();
  sent_bytes += c.sent_bytes.load();
  for (std::size_t i = 0; i < responses.size(); ++i)
    responses[i] += c.responses[i].load();
  for (std::size_t i = 0; i < duration_buckets.size(); ++i)
    duration_buckets[i] += c.duration_buckets[i].load();
  duration_sum_ns += c.duration_sum_ns.load();
}

void loop_totals::add(const loop_totals& t) noexcept {
  accepted += t.accepted;
  rejected += t.rejected;
  received_bytes += t.received_bytes;
  sent_bytes += t.sent_bytes;
  for (std::size_t i = 0; i < responses.size(); ++i)
    responses[i] += t.responses[i];
  for (std::size_t i = 0; i < duration_buckets.size(); ++i)
    duration_buckets[i] += t.duration_buckets[i];
  duration_sum_ns += t.duration_sum_ns;
  closed += t.closed;
  aborted += t.aborted;
}

std::string write_server_metrics(const server_metrics_sample& s) {
  const loop_totals& t = s.totals;
  exposition_writer w;
  w.family("lameduck_connections", metric_type::gauge,
           "Open connections by state (docs/lifecycle.md): fresh, active, idle, upgraded, "
           "closing.");
  for (const auto state :
       {connection_state::fresh, connection_state::active, connection_state::idle,
        connection_state::upgraded, connection_state::closing}) {
    w.sample({{"state", to_string(state)}}, s.open[static_cast<std::size_t>(state)]);
  }
  w.family("lameduck_connections_max", metric_type::gauge,
           "Open connections allowed (limits.max_connections); past it a new one gets a 503.");
  w.sample(s.max_connections);
  w.family("lameduck_connections_accepted_total", metric_type::counter,
           "Connections accepted, those rejected over the limit included.");
  w.sample(t.accepted);
  w.family("lameduck_connections_rejected_total", metric_type::counter,
           "Connections answered 503 and closed at once because limits.max_connections were "
           "open.");
  w.sample(t.rejected);
  w.family("lameduck_connections_closed_total", metric_type::counter, "Connections closed.");
  w.sample(t.closed);

  w.family("lameduck_requests_total", metric_type::counter,
           "Responses sent, by status class; the error statuses the server answers itself "
           "(400, 408, 413, 414, 431, 503...) included.");
  for (std::size_t c = 1; c < t.responses.size(); ++c) {
    // The five classes of RFC 9110 always, so that rate() has a series to work on; others
    // (a handler may answer up to 999) once they occur.
    if (c > 5 && t.responses[c] == 0) continue;
    const char code[] = {static_cast<char>('0' + c), 'x', 'x', '\0'};
    w.sample({{"code", code}}, t.responses[c]);
  }
  w.family("lameduck_requests_aborted_total", metric_type::counter,
           "Requests whose response was cut off or never sent (the client left, a deadline or "
           "destroy closed the connection, a handler dropped a streamed response).");
  w.sample(t.aborted);
  w.family("lameduck_request_duration_seconds", metric_type::histogram,
           "Time from a request's first byte to its response being complete, for every "
           "response counted in lameduck_requests_total.");
  w.histogram({}, request_duration_bounds, t.duration_buckets,
              static_cast<double>(t.duration_sum_ns) / 1e9);

  w.family("lameduck_received_bytes_total", metric_type::counter,
           "Bytes of HTTP received from clients (decrypted, for HTTPS).");
  w.sample(t.received_bytes);
  w.family("lameduck_sent_bytes_total", metric_type::counter,
           "Bytes of HTTP sent to clients (before encryption, for HTTPS).");
  w.sample(t.sent_bytes);

  w.family("lameduck_ready", metric_type::gauge,
           "1 while the readiness endpoint answers 200: started, not stopping, and the "
           "application ready.");
  w.sample(s.ready ? 1 : 0);
  w.family("lameduck_draining", metric_type::gauge,
           "1 from the moment a graceful drain is ordered, its lame-duck delay included.");
  w.sample(s.draining ? 1 : 0);
  w.family("lameduck_lame_duck", metric_type::gauge,
           "1 during a drain's lame-duck delay: readiness says no, requests are still served.");
  w.sample(s.lame_duck ? 1 : 0);
  w.family("lameduck_stops_total", metric_type::counter,
           "Stops (drain, close or destroy) of this server completed: graceful, or forced when "
           "open connections were closed by force (destroy, or a drain's deadline).");
  w.sample({{"outcome", "graceful"}}, s.stops_graceful);
  w.sample({{"outcome", "forced"}}, s.stops_forced);
  return w.take();
}

}  // namespace lameduck::detail
