#pragma once
// Session-ticket keys for a TLS listener, without a lock and without messages between loops.
// Every worker keeps its own copy, started from the listener's seed; the key for a period is
// derived from a secret that moves one way (HMAC) each period, so every copy derives the same
// keys from the clock alone, and a secret once left behind is overwritten: tickets older than
// two periods can no longer be opened, even by someone who later reads the process's memory.
// The keys belong to the listener, so a certificate reload keeps them (OpenSSL's own keys die
// with each context, which would send every client back to a full handshake).

#include <openssl/evp.h>

#include <array>
#include <chrono>
#include <cstdint>

namespace lameduck::detail {

/// What every copy of a listener's keys starts from.
struct ticket_seed {
  std::array<unsigned char, 32> secret{};
  /// The first half of every key name: a ticket from another listener, or from before a
  /// restart, is not even tried.
  std::array<unsigned char, 8> listener_id{};
  std::chrono::steady_clock::time_point origin{};
  /// A key encrypts for one period, and decrypts (asking for a new ticket) for one more.
  std::chrono::seconds period{};

  /// A seed from OpenSSL's random generator; throws std::system_error if it has none.
  static ticket_seed random(std::chrono::seconds period);
};

class ticket_keys {
 public:
  explicit ticket_keys(const ticket_seed& seed) noexcept;
  ~ticket_keys();
  ticket_keys(const ticket_keys&) = delete;
  ticket_keys& operator=(const ticket_keys&) = delete;

  /// OpenSSL's ticket-key callback (SSL_CTX_set_tlsext_ticket_key_evp_cb) when it encrypts:
  /// names the key, fills the IV and keys both contexts; 1, or -1 on failure.
  int encrypt(unsigned char name[16], unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac,
              std::chrono::steady_clock::time_point now) noexcept;
  /// ... and when it decrypts: 1 (current key), 2 (last period's key: issue a new ticket),
  /// 0 (unknown or expired key: full handshake) or -1 on failure.
  int decrypt(const unsigned char name[16], const unsigned char* iv, EVP_CIPHER_CTX* cipher,
              EVP_MAC_CTX* mac, std::chrono::steady_clock::time_point now) noexcept;

 private:
  struct key {
    std::array<unsigned char, 32> aes{};
    std::array<unsigned char, 32> mac{};
  };
  void advance(std::chrono::steady_clock::time_point now) noexcept;
  static int apply(const key& k, const unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac,
                   bool encrypting) noexcept;

  const std::array<unsigned char, 8> listener_id_;
  const std::chrono::steady_clock::time_point origin_;
  const std::chrono::steady_clock::duration period_length_;
  std::array<unsigned char, 32> secret_;  // the current period's
  std::uint64_t period_ = 0;
  key current_, previous_;
  bool has_previous_ = false;
};

}  // namespace lameduck::detail
