#include "tls/endpoint.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>

#include <chrono>
#include <cstddef>

#include "net/stream.hpp"
#include "net/tcp_stream.hpp"

namespace lameduck::detail {

namespace {

// The one protocol a connection speaks: HTTP/1.1 (RFC 7301).
int select_http11(SSL*, const unsigned char** out, unsigned char* out_size, const unsigned char* in,
                  unsigned int in_size, void*) {
  static const unsigned char http11[] = "\x08http/1.1";
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, out_size, http11, sizeof http11 - 1, in, in_size) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;  // a client without http/1.1 in its list still gets HTTP/1.1
  }
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

// Called for every ClientHello, with or without SNI: the handshake moves to the endpoint's
// current set, so a reload between the accept and the ClientHello is already in effect.
int select_certificate(SSL* ssl, int*, void*) {
  SSL_CTX* chosen =
      endpoint_of(ssl).certificates->select(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name));
  if (chosen != SSL_get_SSL_CTX(ssl)) SSL_set_SSL_CTX(ssl, chosen);
  return SSL_TLSEXT_ERR_OK;
}

int ticket_key(SSL* ssl, unsigned char name[16], unsigned char* iv, EVP_CIPHER_CTX* cipher,
               EVP_MAC_CTX* mac, int encrypting) {
  ticket_keys& keys = endpoint_of(ssl).tickets;
  const auto now = std::chrono::steady_clock::now();
  if (encrypting) return keys.encrypt(name, iv, cipher, mac, now);
  const int r = keys.decrypt(name, iv, cipher, mac, now);
  // TLS 1.3 clients use a ticket once (RFC 8446, C.4): a resumption that issues none sends
  // the next connection back to a full handshake. Measured: 0 of 8,606 resumed connections got
  // a new ticket before this, against every one of nginx's.
  return r == 1 && SSL_version(ssl) == TLS1_3_VERSION ? 2 : r;
}

// kTLS's bits among the BIO's flags (OpenSSL 3.0's include/internal/bio.h): its control
// records (alerts) go out, and with kTLS receiving every record comes in, through
// sendmsg()/recvmsg() with the record type, which the socket BIO's own write and read do.
constexpr int ktls_control_message = 0x1000;  // BIO_FLAGS_KTLS_TX_CTRL_MSG
constexpr int ktls_receive = 0x2000;          // BIO_FLAGS_KTLS_RX

tcp_stream& stream_of(BIO* b) noexcept {
  return *reinterpret_cast<tcp_stream*>(BIO_get_callback_arg(b));
}

int write_through_stream(BIO* b, const char* data, int size) {
  if (BIO_test_flags(b, ktls_control_message)) {
    return BIO_meth_get_write(const_cast<BIO_METHOD*>(BIO_s_socket()))(b, data, size);
  }
  BIO_clear_retry_flags(b);
  const io_result r = stream_of(b).write(data, static_cast<std::size_t>(size));
  if (r.status == io_status::ok) return static_cast<int>(r.bytes);
  if (r.status == io_status::want_write) BIO_set_retry_write(b);
  return -1;  // errno says why
}

// The socket BIO's read did read(2), which costs the kernel more than tcp_stream's recv (the
// file layer's checks and fsnotify): 2.2 % of the server's samples were vfs_read alone
// (perf, wrk -c64 over TLS 1.3).
int read_through_stream(BIO* b, char* data, int size) {
  if (BIO_test_flags(b, ktls_receive)) {
    return BIO_meth_get_read(const_cast<BIO_METHOD*>(BIO_s_socket()))(b, data, size);
  }
  BIO_clear_retry_flags(b);
  const io_result r = stream_of(b).read(data, static_cast<std::size_t>(size));
  switch (r.status) {
    case io_status::ok:
      return static_cast<int>(r.bytes);
    case io_status::eof:  // SSL_OP_IGNORE_UNEXPECTED_EOF asks BIO_eof() whether it was one
      BIO_set_flags(b, BIO_FLAGS_IN_EOF);
      return 0;
    case io_status::want_read:
      BIO_set_retry_read(b);
      return -1;
    default:
      return -1;  // errno says why
  }
}

BIO_METHOD* make_socket_bio_method() {
  auto* base = const_cast<BIO_METHOD*>(BIO_s_socket());
  BIO_METHOD* m = BIO_meth_new(BIO_TYPE_SOCKET, "lameduck socket");
  if (!m) return nullptr;
  BIO_meth_set_write(m, write_through_stream);
  BIO_meth_set_read(m, read_through_stream);
  BIO_meth_set_puts(m, BIO_meth_get_puts(base));
  BIO_meth_set_ctrl(m, BIO_meth_get_ctrl(base));
  BIO_meth_set_create(m, BIO_meth_get_create(base));
  BIO_meth_set_destroy(m, BIO_meth_get_destroy(base));
  return m;
}

}  // namespace

const BIO_METHOD* socket_bio_method() noexcept {
  static BIO_METHOD* const method = make_socket_bio_method();  // for the process's lifetime
  return method;
}

bool configure_context(SSL_CTX* ctx, const tls_options& settings, std::string& why) {
  SSL_CTX_set_min_proto_version(ctx, settings.min_version);
  if (SSL_CTX_set_cipher_list(ctx, settings.ciphers.c_str()) != 1) {
    why = "tls.ciphers: no usable cipher in \"" + settings.ciphers + "\"";
    ERR_clear_error();
    return false;
  }
  if (!settings.ciphersuites.empty() &&
      SSL_CTX_set_ciphersuites(ctx, settings.ciphersuites.c_str()) != 1) {
    why = "tls.ciphersuites: no usable cipher suite in \"" + settings.ciphersuites + "\"";
    ERR_clear_error();
    return false;
  }
  std::uint64_t options = SSL_OP_NO_RENEGOTIATION |
                          // A client that closes without close_notify is an ordinary end of
                          // stream, as over TCP, not an error.
                          SSL_OP_IGNORE_UNEXPECTED_EOF;
  if (settings.kernel_tls) options |= SSL_OP_ENABLE_KTLS;
  if (settings.session_lifetime.count() == 0) options |= SSL_OP_NO_TICKET;
  SSL_CTX_set_options(ctx, options);
  // Partial writes and a buffer that moves between retries: a connection's output grows while
  // a write waits for room. Released buffers: an idle connection holds no record buffers.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  // A whole record (or several) per read from the socket, not its 5-byte header first.
  SSL_CTX_set_read_ahead(ctx, 1);
  SSL_CTX_set_alpn_select_cb(ctx, select_http11, nullptr);
  SSL_CTX_set_tlsext_servername_callback(ctx, select_certificate);
  // Sessions live in tickets only: no cache to lock or to grow. Every context of the
  // listener has the same id, so a handshake that SNI moved to another one still resumes.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  static const unsigned char session_id[] = "lameduck";
  SSL_CTX_set_session_id_context(ctx, session_id, sizeof session_id - 1);
  if (settings.session_lifetime.count() > 0) {
    SSL_CTX_set_timeout(ctx, static_cast<long>(settings.session_lifetime.count()));
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key);
    // One ticket per full handshake, not OpenSSL's two (a resumption renews its own): a TLS
    // 1.3 client uses each ticket once, one per connection. The second cost 180,000
    // instructions, 6.5 % of a full handshake (callgrind, 200 handshakes: 2.80 M each, 2.62 M).
    SSL_CTX_set_num_tickets(ctx, 1);
  } else {
    SSL_CTX_set_num_tickets(ctx, 0);
  }
  return true;
}

}  // namespace lameduck::detail
