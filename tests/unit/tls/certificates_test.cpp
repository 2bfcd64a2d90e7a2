// Certificate sets (src/tls/certificates.hpp) from files the test makes: what a set checks
// before it is accepted, and which certificate a host name gets.

#include <gtest/gtest.h>
#include <openssl/x509.h>

#include <fstream>

#include "certificates.hpp"
#include "tls/certificates.hpp"

namespace lameduck::detail {
namespace {

using testing::certificate_spec;
using testing::test_pki;

// The common name of the certificate a context presents.
std::string name_of(SSL_CTX* ctx) {
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(SSL_CTX_get0_certificate(ctx)), NID_commonName,
                            cn, sizeof cn);
  return cn;
}

std::shared_ptr<const certificate_set> load(std::vector<test_pki::issued> certs, std::string& why,
                                            std::vector<std::string> passwords = {}) {
  tls_listen_options l;
  for (std::size_t i = 0; i < certs.size(); ++i)
    l.certificates.push_back(
        {certs[i].certificate, certs[i].key, i < passwords.size() ? passwords[i] : ""});
  return certificate_set::load(l, tls_options{}, why);
}

TEST(CertificateSet, ExactNamesThenOneLabelWildcardsThenTheFirst) {
  test_pki pki;
  certificate_spec wild;
  wild.dns_names = {"*.example.test", "exact.example.test"};
  certificate_spec other;
  other.dns_names = {"exact.example.test", "b.test"};  // the first certificate to claim wins
  std::string why;
  auto set = load({pki.issue("first"), pki.issue("wild", wild), pki.issue("other", other)}, why);
  ASSERT_TRUE(set) << why;
  EXPECT_EQ(name_of(set->select(nullptr)), "first");
  EXPECT_EQ(name_of(set->select("")), "first");
  EXPECT_EQ(name_of(set->select("localhost")), "first");
  EXPECT_EQ(name_of(set->select("a.example.test")), "wild");
  EXPECT_EQ(name_of(set->select("EXACT.example.TEST")), "wild");
  EXPECT_EQ(name_of(set->select("a.b.example.test")), "first");
  EXPECT_EQ(name_of(set->select(".example.test")), "first");
  EXPECT_EQ(name_of(set->select("b.test")), "other");
  EXPECT_EQ(name_of(set->select(std::string(300, 'a').c_str())), "first");
}

TEST(CertificateSet, AnEncryptedKeyNeedsItsPassword) {
  test_pki pki;
  certificate_spec locked;
  locked.password = "open sesame";
  auto files = pki.issue("locked", locked);
  std::string why;
  EXPECT_FALSE(load({files}, why));
  EXPECT_NE(why.find("cannot load the private key " + files.key), std::string::npos) << why;
  EXPECT_FALSE(load({files}, why, {"wrong"}));
  why.clear();
  EXPECT_TRUE(load({files}, why, {"open sesame"})) << why;
}

TEST(CertificateSet, EachFlawIsNamedWithItsFile) {
  test_pki pki;
  auto good = pki.issue("good");
  auto rsa = [&] {
    certificate_spec s;
    s.key_type = "RSA";
    return pki.issue("rsa", s);
  }();
  certificate_spec old;
  old.valid_from = std::chrono::hours(-48);
  old.valid_until = std::chrono::hours(-1);
  const std::string garbage = pki.dir() + "/garbage.pem";
  std::ofstream(garbage) << "nothing here\n";
  const std::pair<test_pki::issued, std::string> flaws[] = {
      {{pki.dir() + "/missing.crt", good.key},
       "cannot read the certificate chain " + pki.dir() + "/missing.crt: No such file"},
      {{good.certificate, pki.dir() + "/missing.key"}, "cannot read the private key"},
      {{garbage, good.key}, "cannot load the certificate chain " + garbage},
      {{good.certificate, garbage}, "cannot load the private key " + garbage},
      {{good.certificate, rsa.key}, "does not match the certificate in " + good.certificate},
      {pki.issue("old", old), "has expired"},
  };
  for (const auto& [files, expected] : flaws) {
    std::string why;
    EXPECT_FALSE(load({files}, why));
    EXPECT_NE(why.find(expected), std::string::npos) << why;
  }
  std::string why;
  EXPECT_FALSE(load({}, why));
  EXPECT_EQ(why, "no certificate");
}

}  // namespace
}  // namespace lameduck::detail
