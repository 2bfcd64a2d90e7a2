#pragma once
// The certificates a TLS listener presents: one OpenSSL context per certificate, all with the
// listener's protocol settings, chosen per handshake by the client's SNI host name. A set is
// built and checked whole, away from the event loops, and never changes afterwards: a reload
// builds a new one, and each loop switches to it by message (tls/endpoint.hpp).

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <lameduck/options.hpp>

namespace lameduck::detail {

/// Frees an SSL_CTX when the last set or connection that uses it lets go.
struct ssl_ctx_free {
  void operator()(SSL_CTX* ctx) const noexcept { SSL_CTX_free(ctx); }
};
using tls_context = std::unique_ptr<SSL_CTX, ssl_ctx_free>;

class certificate_set {
 public:
  /// Reads and checks every certificate of a listener: the chain parses, the key (decrypted
  /// with its password) matches the certificate, the certificate is valid now and names at
  /// least one host. Null, with `why` naming the file and the reason, when one fails.
  static std::shared_ptr<const certificate_set> load(const tls_listen_options& listener,
                                                     const tls_options& settings, std::string& why);

  /// The context a handshake starts with: the first certificate's.
  SSL_CTX* default_context() const noexcept { return contexts_.front().get(); }
  /// The context for a client's SNI host name (null: none sent): an exact name, else a
  /// wildcard for its first label, else the default.
  SSL_CTX* select(const char* host_name) const noexcept;

 private:
  std::vector<tls_context> contexts_;
  // Lower-case names, sorted; a wildcard "*.example.com" is kept as "example.com" in its own
  // list. The first certificate to claim a name has it.
  std::vector<std::pair<std::string, SSL_CTX*>> exact_, wildcard_;
};

/// OpenSSL's most recent error as one line, and the error queue cleared.
std::string openssl_reason();

}  // namespace lameduck::detail
