#pragma once
// What a worker keeps for each TLS listener, and what every handshake on it reaches through
// SSL_get_app_data(): the certificates new handshakes get (the worker's own reference,
// replaced by a message from a reload, so no handshake takes a lock) and the worker's copy of
// the listener's session-ticket keys.

#include <openssl/ssl.h>

#include <memory>
#include <utility>

#include <lameduck/options.hpp>

#include "metrics/counter.hpp"
#include "tls/certificates.hpp"
#include "tls/session_tickets.hpp"

namespace lameduck::detail {

struct tls_endpoint {
  tls_endpoint(std::shared_ptr<const certificate_set> c, const ticket_seed& seed)
      : certificates(std::move(c)), tickets(seed) {}

  std::shared_ptr<const certificate_set> certificates;
  ticket_keys tickets;
  /// Handshakes on this listener and worker, for the metrics (written by the worker's thread):
  /// completed in full, resumed from a session, and ended by an error.
  single_writer_counter handshakes_full, handshakes_resumed, handshakes_failed;
};

/// The endpoint of a handshake on one of its listeners.
inline tls_endpoint& endpoint_of(const SSL* ssl) noexcept {
  return *static_cast<tls_endpoint*>(SSL_get_app_data(ssl));
}

/// OpenSSL's socket BIO, except that it reads and writes through the tcp_stream its callback
/// argument points to: its writes never raise SIGPIPE (a client that resets its connection
/// while a response goes out must not kill the process that embeds the server, which may not
/// ignore SIGPIPE), and a read that empties the socket leaves that stream saying !may_read(),
/// as its own reads do.
const BIO_METHOD* socket_bio_method() noexcept;

/// Gives a context of a listener's certificate set the settings every handshake on the
/// listener shares (versions, ciphers, options, ALPN http/1.1, SNI selection, ticket keys from
/// the endpoint); false with `why` set if OpenSSL refuses one (a bad cipher list).
bool configure_context(SSL_CTX* ctx, const tls_options& settings, std::string& why);

}  // namespace lameduck::detail
