#include "tls/session_tickets.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <cstring>
#include <string_view>
#include <system_error>

namespace lameduck::detail {

namespace {

using secret = std::array<unsigned char, 32>;

// HMAC-SHA256 of a label under a secret: the one-way step and the key derivation.
secret derive(const secret& from, std::string_view label) noexcept {
  secret out{};
  std::size_t size = 0;
  EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, from.data(), from.size(),
            reinterpret_cast<const unsigned char*>(label.data()), label.size(), out.data(),
            out.size(), &size);
  return out;
}

}  // namespace

ticket_seed ticket_seed::random(std::chrono::seconds period) {
  ticket_seed s;
  if (RAND_bytes(s.secret.data(), static_cast<int>(s.secret.size())) != 1 ||
      RAND_bytes(s.listener_id.data(), static_cast<int>(s.listener_id.size())) != 1) {
    throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again),
                            "lameduck: OpenSSL has no random bytes for session-ticket keys");
  }
  s.origin = std::chrono::steady_clock::now();
  s.period = period;
  return s;
}

ticket_keys::ticket_keys(const ticket_seed& seed) noexcept
    : listener_id_(seed.listener_id),
      origin_(seed.origin),
      period_length_(seed.period),
      secret_(seed.secret) {
  current_ = {derive(secret_, "lameduck ticket aes"), derive(secret_, "lameduck ticket mac")};
}

ticket_keys::~ticket_keys() {
  OPENSSL_cleanse(secret_.data(), secret_.size());
  OPENSSL_cleanse(&current_, sizeof current_);
  OPENSSL_cleanse(&previous_, sizeof previous_);
}

void ticket_keys::advance(std::chrono::steady_clock::time_point now) noexcept {
  const auto target = static_cast<std::uint64_t>((now - origin_) / period_length_);
  while (period_ < target) {
    previous_ = current_;
    has_previous_ = true;
    secret_ = derive(secret_, "lameduck ticket next");
    ++period_;
    current_ = {derive(secret_, "lameduck ticket aes"), derive(secret_, "lameduck ticket mac")};
  }
}

int ticket_keys::apply(const key& k, const unsigned char* iv, EVP_CIPHER_CTX* cipher,
                       EVP_MAC_CTX* mac, bool encrypting) noexcept {
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY,
                                        const_cast<unsigned char*>(k.mac.data()), k.mac.size()),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
      OSSL_PARAM_construct_end(),
  };
  const int ok = encrypting
                     ? EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, k.aes.data(), iv)
                     : EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, k.aes.data(), iv);
  return ok == 1 && EVP_MAC_CTX_set_params(mac, params) == 1;
}

int ticket_keys::encrypt(unsigned char name[16], unsigned char* iv, EVP_CIPHER_CTX* cipher,
                         EVP_MAC_CTX* mac, std::chrono::steady_clock::time_point now) noexcept {
  advance(now);
  std::memcpy(name, listener_id_.data(), 8);
  for (int i = 0; i < 8; ++i)
    name[8 + i] = static_cast<unsigned char>(period_ >> (56 - 8 * i));
  if (RAND_bytes(iv, 16) != 1) return -1;
  return apply(current_, iv, cipher, mac, true) ? 1 : -1;
}

int ticket_keys::decrypt(const unsigned char name[16], const unsigned char* iv,
                         EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac,
                         std::chrono::steady_clock::time_point now) noexcept {
  if (std::memcmp(name, listener_id_.data(), 8) != 0) return 0;
  std::uint64_t issued = 0;
  for (int i = 0; i < 8; ++i)
    issued = issued << 8 | name[8 + i];
  advance(now);
  if (issued == period_) return apply(current_, iv, cipher, mac, false) ? 1 : -1;
  if (has_previous_ && issued + 1 == period_) {
    return apply(previous_, iv, cipher, mac, false) ? 2 : -1;
  }
  return 0;
}

}  // namespace lameduck::detail
