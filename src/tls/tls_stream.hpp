#pragma once
// A TLS stream for connection<Stream> (net/stream.hpp): OpenSSL on the non-blocking socket
// through a socket BIO, as nginx does (one that reads and writes with tcp_stream's recv and
// send, so never raises SIGPIPE), with read-ahead (whole records per read) and released
// buffers (an idle connection holds no record buffer). The handshake happens inside the first
// reads (a connection in its handshake has received no request byte: it is fresh).
//
// What an edge-triggered loop needs of it: records that OpenSSL has already read raise no
// epoll event, so the stream says may_read() until a read wants the socket again; a read may
// want the socket writable (its handshake's answer did not fit) and a write may want it
// readable. Each OpenSSL call starts with an empty error queue, so that SSL_get_error() speaks
// of that call alone (forget_stale_errors()).

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "net/stream.hpp"
#include "net/tcp_stream.hpp"
#include "tls/endpoint.hpp"

namespace lameduck::detail {

class tls_stream {
 public:
  /// Takes ownership of a connected, non-blocking socket accepted on the endpoint's listener;
  /// if OpenSSL cannot make a session for it, every operation reports an error.
  tls_stream(int fd, tls_endpoint& endpoint) noexcept
      : tcp_(fd), ssl_(SSL_new(endpoint.certificates->default_context())) {
    BIO* bio = ssl_ && socket_bio_method() ? BIO_new(socket_bio_method()) : nullptr;
    if (bio) {
      BIO_set_fd(bio, fd, BIO_NOCLOSE);
      BIO_set_callback_arg(bio, reinterpret_cast<char*>(&tcp_));
      SSL_set_bio(ssl_, bio, bio);
      SSL_set_app_data(ssl_, &endpoint);
      SSL_set_accept_state(ssl_);
    } else {
      SSL_free(std::exchange(ssl_, nullptr));
      ERR_clear_error();
      failed_ = true;
    }
  }
  tls_stream(tls_stream&& o) noexcept
      : tcp_(std::move(o.tcp_)),
        ssl_(std::exchange(o.ssl_, nullptr)),
        readable_(o.readable_),
        read_wants_write_(o.read_wants_write_),
        sniffed_(o.sniffed_),
        data_read_(o.data_read_),
        handshake_counted_(o.handshake_counted_),
        failed_(o.failed_) {
    if (ssl_) BIO_set_callback_arg(SSL_get_rbio(ssl_), reinterpret_cast<char*>(&tcp_));
  }
  tls_stream& operator=(tls_stream&&) = delete;
  ~tls_stream() { close(); }

  int native_handle() const noexcept { return tcp_.native_handle(); }

  void on_ready(std::uint32_t events) noexcept {
    tcp_.on_ready(events);
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable_ = true;
    if ((events & EPOLLOUT) && read_wants_write_) readable_ = true;
  }

  bool may_read() const noexcept { return ssl_ ? readable_ : tcp_.may_read(); }

  // The handshake has begun (the ClientHello is read) and no request byte has come yet. Not
  // "until the handshake is finished": a client's Finished and its request may come in two
  // reads, and a drain between them would close a client on its way to a request (seen under
  // ThreadSanitizer, where the lifecycle suite's queued TLS clients lost their answer).
  bool opening() const noexcept { return ssl_ && sniffed_ && !data_read_; }

  io_result read(char* p, std::size_t n) noexcept {
    if (!ssl_) return failed_ ? io_result{0, io_status::error} : tcp_.read(p, n);
    if (!sniffed_) {
      if (io_result r = sniff(); r.status != io_status::ok) return r;
    }
    forget_stale_errors();
    std::size_t got = 0;
    if (SSL_read_ex(ssl_, p, n, &got) == 1) {
      // OpenSSL reads the socket through tcp_ (socket_bio_method()), which says !may_read()
      // once a read came back short, until the next edge: the socket is empty. Unless OpenSSL
      // holds more (or the client's end of stream came with the same edge: tcp_ reads on),
      // the next read waits for an edge, as tcp_stream's does: that saves a read that would
      // say EAGAIN, measured at 0.7 per keep-alive request.
      if (!tcp_.may_read() && !SSL_has_pending(ssl_)) readable_ = false;
      if (!handshake_counted_) count_handshake(false);
      data_read_ = true;
      return {got, io_status::ok};
    }
    const int e = SSL_get_error(ssl_, 0);
    switch (e) {
      case SSL_ERROR_WANT_READ:
      case SSL_ERROR_WANT_WRITE:
        readable_ = false;
        read_wants_write_ = e == SSL_ERROR_WANT_WRITE;
        if (!handshake_counted_) count_handshake(false);  // finished, no request byte yet?
        return {0, e == SSL_ERROR_WANT_READ ? io_status::want_read : io_status::want_write};
      case SSL_ERROR_ZERO_RETURN:  // close_notify, or (IGNORE_UNEXPECTED_EOF) a bare FIN
        return {0, io_status::eof};
      default:  // a reset, garbage instead of TLS, a failed handshake
        ERR_clear_error();
        if (!handshake_counted_) count_handshake(true);
        return {0, io_status::error};
    }
  }

  io_result write(const char* p, std::size_t n) noexcept {
    if (!ssl_) return failed_ ? io_result{0, io_status::error} : tcp_.write(p, n);
    forget_stale_errors();
    std::size_t sent = 0;
    if (SSL_write_ex(ssl_, p, n, &sent) == 1) return {sent, io_status::ok};
    switch (SSL_get_error(ssl_, 0)) {
      case SSL_ERROR_WANT_WRITE:
        return {0, io_status::want_write};
      case SSL_ERROR_WANT_READ:  // a handshake message must be read first
        return {0, io_status::want_read};
      default:
        ERR_clear_error();
        return {0, io_status::error};
    }
  }

  // One close_notify, then the FIN; the peer's close_notify is never waited for (the lingering
  // reads that follow take it, or whatever comes, as the end).
  io_result shutdown_send() noexcept {
    if (!ssl_) return failed_ ? io_result{0, io_status::error} : tcp_.shutdown_send();
    if (SSL_is_init_finished(ssl_)) {
      forget_stale_errors();
      if (SSL_shutdown(ssl_) < 0) {
        const int e = SSL_get_error(ssl_, -1);
        if (e == SSL_ERROR_WANT_WRITE) return {0, io_status::want_write};
        if (e == SSL_ERROR_WANT_READ) return {0, io_status::want_read};
        ERR_clear_error();  // the peer is gone: the FIN below is all that is left to send
      }
    }
    return tcp_.shutdown_send();
  }

  // Sends nothing (no close_notify): this is destroy's close, and the end of every other one.
  void close() noexcept {
    if (ssl_) SSL_free(std::exchange(ssl_, nullptr));
    tcp_.close();
  }

 private:
  // Counts the handshake once, for the metrics: when it has finished, in full or resumed, or
  // when an error ends it before.
  void count_handshake(bool error) noexcept {
    tls_endpoint& e = endpoint_of(ssl_);
    if (SSL_is_init_finished(ssl_)) {
      (SSL_session_reused(ssl_) ? e.handshakes_resumed : e.handshakes_full).add();
    } else if (error) {
      e.handshakes_failed.add();
    } else {
      return;  // still in progress
    }
    handshake_counted_ = true;
  }

  // Empties the thread's error queue if something (a handler's own use of OpenSSL, say) left an
  // error in it. SSL_get_error() looks at the queue with ERR_peek_error(), so this is all it
  // needs; ERR_clear_error() alone resets every one of the queue's 16 slots, whether used or not:
  // 840 instructions a call, twice per keep-alive request, 8.5 % of the process's user-space
  // instructions per HTTPS request (callgrind, 6,400 requests on 64 connections: 19,761 per
  // request before, 18,376 after).
  static void forget_stale_errors() noexcept {
    if (ERR_peek_error() != 0) ERR_clear_error();
  }

  // Before the first byte goes to OpenSSL: a TLS connection starts with a handshake record
  // (22); a letter is a plain-text request (a method) on the wrong port, which is told so in
  // plain text: from here on the stream is plain TCP. Anything else is left to OpenSSL to
  // refuse.
  io_result sniff() noexcept {
    unsigned char first = 0;
    const ssize_t r = ::recv(tcp_.native_handle(), &first, 1, MSG_PEEK);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      readable_ = false;
      return {0, io_status::want_read};
    }
    if (r < 0) return {0, io_status::error};
    if (r == 0) return {0, io_status::eof};
    sniffed_ = true;
    if ((first | 0x20) >= 'a' && (first | 0x20) <= 'z') {
      SSL_free(std::exchange(ssl_, nullptr));
      return {0, io_status::other_protocol};
    }
    return {};
  }

  tcp_stream tcp_;  // the socket, which OpenSSL reads and writes; the stream once it turns plain
  SSL* ssl_;
  bool readable_ = false;           // a read may find something without a new edge
  bool read_wants_write_ = false;   // the last read waits for the socket to be writable
  bool sniffed_ = false;            // the first byte was seen
  bool data_read_ = false;          // a byte of data has come through the session
  bool handshake_counted_ = false;  // for the metrics: finished or failed
  bool failed_ = false;             // no session could be made
};

static_assert(stream<tls_stream>);

}  // namespace lameduck::detail
