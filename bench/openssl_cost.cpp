// Benchmark helper (not a test): what OpenSSL itself costs a TLS 1.3 server per keep-alive
// request, with N connections served in turn, and nothing else: no kernel, no sockets, no
// lameduck. Built and run by bench/openssl_cost.sh, which explains the figures.
//
// Server and clients live in this process and talk through memory BIOs. The server's SSL_CTX
// is set up as lameduck's (src/tls/endpoint.cpp): TLS 1.3 with an ECDSA P-256 certificate,
// read-ahead, SSL_MODE_RELEASE_BUFFERS, one ticket, no renegotiation. Each request is one
// client record in (SSL_read) and one response record out (SSL_write); only those two server
// calls are timed. Between two requests on one connection, the other N - 1 connections'
// requests run, client side included, so the state of every connection competes for the
// cache as on a busy server (whose kernel and application compete for it too).
//
// Usage: openssl_cost N REQUESTS  ->  one line: "N ns_per_request"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "openssl_cost: %s\n", what);
  ERR_print_errors_fp(stderr);
  std::exit(1);
}

// A self-signed ECDSA P-256 certificate, made here.
void use_new_certificate(SSL_CTX* ctx) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  if (key == nullptr || cert == nullptr) fail("cannot make a key");
  X509_set_version(cert, X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  X509_set_pubkey(cert, key);
  if (X509_sign(cert, key, EVP_sha256()) == 0) fail("cannot sign the certificate");
  if (SSL_CTX_use_certificate(ctx, cert) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1)
    fail("cannot use the certificate");
  X509_free(cert);
  EVP_PKEY_free(key);
}

struct connection {
  SSL* server = nullptr;
  SSL* client = nullptr;
  BIO* to_server = nullptr;    // the server's read BIO
  BIO* from_server = nullptr;  // the server's write BIO
  BIO* to_client = nullptr;
  BIO* from_client = nullptr;
};

void carry(BIO* from, BIO* to) {
  char buffer[20000];
  int n;
  while ((n = BIO_read(from, buffer, sizeof buffer)) > 0)
    BIO_write(to, buffer, n);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: openssl_cost CONNECTIONS REQUESTS\n");
    return 2;
  }
  const int n = std::atoi(argv[1]);
  const long requests = std::atol(argv[2]);
  if (n <= 0 || requests <= 0) {
    std::fprintf(stderr, "openssl_cost: CONNECTIONS and REQUESTS must be positive\n");
    return 2;
  }

  SSL_CTX* server_ctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX* client_ctx = SSL_CTX_new(TLS_client_method());
  if (server_ctx == nullptr || client_ctx == nullptr) fail("SSL_CTX_new");
  SSL_CTX_set_min_proto_version(server_ctx, TLS1_3_VERSION);
  SSL_CTX_set_options(server_ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_mode(server_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                   SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_read_ahead(server_ctx, 1);
  SSL_CTX_set_num_tickets(server_ctx, 1);
  use_new_certificate(server_ctx);

  std::vector<connection> connections(static_cast<std::size_t>(n));
  for (connection& c : connections) {
    c.server = SSL_new(server_ctx);
    c.client = SSL_new(client_ctx);
    c.to_server = BIO_new(BIO_s_mem());
    c.from_server = BIO_new(BIO_s_mem());
    c.to_client = BIO_new(BIO_s_mem());
    c.from_client = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(c.to_server, -1);  // empty is "try again", not the end
    BIO_set_mem_eof_return(c.to_client, -1);
    SSL_set_bio(c.server, c.to_server, c.from_server);
    SSL_set_bio(c.client, c.to_client, c.from_client);
    SSL_set_accept_state(c.server);
    SSL_set_connect_state(c.client);
    for (int step = 0; step < 4; ++step) {
      SSL_do_handshake(c.client);
      carry(c.from_client, c.to_server);
      SSL_do_handshake(c.server);
      carry(c.from_server, c.to_client);
    }
    char ticket[64];
    SSL_read(c.client, ticket, sizeof ticket);  // takes in the ticket; nothing else comes
    ERR_clear_error();
    if (!SSL_is_init_finished(c.server)) fail("a handshake did not finish");
  }

  const std::string request = "GET / HTTP/1.1\r\nHost: 127.0.0.1:8443\r\n\r\n";
  const std::string response =
      "HTTP/1.1 200 OK\r\nContent-Length: 14\r\nContent-Type: text/plain\r\n"
      "Date: Wed, 02 Dec 2026 07:00:00 GMT\r\n\r\nHello, World!\n";
  char buffer[16384];
  double timed_ns = 0;
  long timed = 0;
  const long rounds = (requests + n - 1) / n + 1;  // the first round warms up, untimed
  for (long round = 0; round < rounds; ++round) {
    for (connection& c : connections) {
      SSL_write(c.client, request.data(), static_cast<int>(request.size()));
      carry(c.from_client, c.to_server);
      const auto began = std::chrono::steady_clock::now();
      ERR_clear_error();  // as lameduck does before each call
      const int got = SSL_read(c.server, buffer, sizeof buffer);
      ERR_clear_error();
      const int sent = SSL_write(c.server, response.data(), static_cast<int>(response.size()));
      const auto ended = std::chrono::steady_clock::now();
      if (got != static_cast<int>(request.size()) || sent != static_cast<int>(response.size()))
        fail("a request or response went astray");
      if (round > 0) {
        timed_ns += std::chrono::duration<double, std::nano>(ended - began).count();
        ++timed;
      }
      carry(c.from_server, c.to_client);
      SSL_read(c.client, buffer, sizeof buffer);
      ERR_clear_error();
    }
  }
  std::printf("%d %.0f\n", n, timed_ns / static_cast<double>(timed));
  for (connection& c : connections) {
    SSL_free(c.server);
    SSL_free(c.client);
  }
  SSL_CTX_free(server_ctx);
  SSL_CTX_free(client_ctx);
}
