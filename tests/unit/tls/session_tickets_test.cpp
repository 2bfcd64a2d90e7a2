// Session-ticket keys (src/tls/session_tickets.hpp) with OpenSSL's own cipher and MAC contexts,
// and the clock given by the test: every worker's copy agrees, a ticket is good for its period
// and the next (renewed), and no longer.

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <memory>

#include "tls/session_tickets.hpp"

namespace lameduck::detail {
namespace {

using namespace std::chrono_literals;

// What OpenSSL hands the callback, and what a ticket carries back.
struct contexts {
  std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> cipher{EVP_CIPHER_CTX_new(),
                                                                         EVP_CIPHER_CTX_free};
  std::unique_ptr<EVP_MAC, decltype(&EVP_MAC_free)> mac_algorithm{
      EVP_MAC_fetch(nullptr, "HMAC", nullptr), EVP_MAC_free};
  std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)> mac{
      EVP_MAC_CTX_new(mac_algorithm.get()), EVP_MAC_CTX_free};
};

struct ticket {
  unsigned char name[16];
  unsigned char iv[16];
  std::string sealed;  // "session" encrypted
  std::string tag;     // its MAC
};

ticket seal(ticket_keys& keys, std::chrono::steady_clock::time_point now) {
  ticket t{};
  contexts c;
  EXPECT_EQ(keys.encrypt(t.name, t.iv, c.cipher.get(), c.mac.get(), now), 1);
  unsigned char out[64];
  int n = 0, m = 0;
  EVP_EncryptUpdate(c.cipher.get(), out, &n, reinterpret_cast<const unsigned char*>("session"), 7);
  EVP_EncryptFinal_ex(c.cipher.get(), out + n, &m);
  t.sealed.assign(reinterpret_cast<char*>(out), n + m);
  EVP_MAC_init(c.mac.get(), nullptr, 0, nullptr);
  EVP_MAC_update(c.mac.get(), out, n + m);
  unsigned char tag[64];
  std::size_t size = 0;
  EVP_MAC_final(c.mac.get(), tag, &size, sizeof tag);
  t.tag.assign(reinterpret_cast<char*>(tag), size);
  return t;
}

// The callback's answer, and whether the keys it chose open the ticket.
std::pair<int, bool> open(ticket_keys& keys, const ticket& t,
                          std::chrono::steady_clock::time_point now) {
  contexts c;
  const int r = keys.decrypt(t.name, t.iv, c.cipher.get(), c.mac.get(), now);
  if (r <= 0) return {r, false};
  EVP_MAC_init(c.mac.get(), nullptr, 0, nullptr);
  EVP_MAC_update(c.mac.get(), reinterpret_cast<const unsigned char*>(t.sealed.data()),
                 t.sealed.size());
  unsigned char tag[64];
  std::size_t size = 0;
  EVP_MAC_final(c.mac.get(), tag, &size, sizeof tag);
  unsigned char out[64];
  int n = 0, m = 0;
  EVP_DecryptUpdate(c.cipher.get(), out, &n,
                    reinterpret_cast<const unsigned char*>(t.sealed.data()),
                    static_cast<int>(t.sealed.size()));
  const bool padded = EVP_DecryptFinal_ex(c.cipher.get(), out + n, &m) == 1;
  return {r, t.tag == std::string(reinterpret_cast<char*>(tag), size) && padded &&
                 std::string(reinterpret_cast<char*>(out), n + m) == "session"};
}

TEST(SessionTickets, EveryWorkersCopyOpensWhatAnotherSealed) {
  const auto seed = ticket_seed::random(3600s);
  ticket_keys a(seed), b(seed);
  const auto t = seal(a, seed.origin + 10s);
  EXPECT_EQ(open(b, t, seed.origin + 20s), std::pair(1, true));
}

TEST(SessionTickets, ATicketIsRenewedInTheNextPeriodAndRefusedAfter) {
  const auto seed = ticket_seed::random(3600s);
  ticket_keys sealer(seed), next(seed), late(seed);
  const auto t = seal(sealer, seed.origin + 3599s);
  EXPECT_EQ(open(next, t, seed.origin + 3600s + 3599s), std::pair(2, true));
  EXPECT_EQ(open(late, t, seed.origin + 7200s).first, 0);
  // A copy that has moved on has forgotten the old key even for a clock that goes back.
  EXPECT_EQ(open(late, t, seed.origin + 10s).first, 0);
}

TEST(SessionTickets, CopiesThatSkipPeriodsAgreeWithCopiesThatWalkedThem) {
  const auto seed = ticket_seed::random(60s);
  ticket_keys walker(seed), jumper(seed);
  for (int minute = 0; minute <= 10; ++minute)
    seal(walker, seed.origin + std::chrono::minutes(minute));
  const auto t = seal(walker, seed.origin + 10min + 1s);
  EXPECT_EQ(open(jumper, t, seed.origin + 10min + 2s), std::pair(1, true));
}

TEST(SessionTickets, AnotherListenersTicketIsNotTried) {
  const auto seed = ticket_seed::random(3600s);
  auto other = ticket_seed::random(3600s);
  other.origin = seed.origin;
  ticket_keys mine(seed), theirs(other);
  EXPECT_EQ(open(mine, seal(theirs, seed.origin), seed.origin).first, 0);
}

}  // namespace
}  // namespace lameduck::detail
