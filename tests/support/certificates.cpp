#include "certificates.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <stdexcept>

namespace lameduck::testing {

namespace {

EVP_PKEY* make_key(const std::string& type) {
  EVP_PKEY* k = type == "RSA" ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", std::size_t{2048})
                              : EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  if (!k) throw std::runtime_error("test_pki: cannot make a " + type + " key");
  return k;
}

void add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (!e) throw std::runtime_error("test_pki: bad extension " + value);
  X509_add_ext(cert, e, -1);
  X509_EXTENSION_free(e);
}

// An unsigned certificate for key, from issuer (itself when issuer is null).
X509* make_certificate(const std::string& name, EVP_PKEY* key, X509* issuer,
                       std::chrono::hours from, std::chrono::hours until) {
  X509* c = X509_new();
  X509_set_version(c, 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(c), std::chrono::seconds(from).count());
  X509_gmtime_adj(X509_getm_notAfter(c), std::chrono::seconds(until).count());
  X509_set_pubkey(c, key);
  X509_NAME* subject = X509_get_subject_name(c);
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1, 0);
  X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : subject);
  return c;
}

void write_file(const std::string& path, const std::function<int(FILE*)>& write) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (!f || write(f) != 1) throw std::runtime_error("test_pki: cannot write " + path);
  std::fclose(f);
}

}  // namespace

test_pki::test_pki() {
  char tmpl[] = "/tmp/lameduck-test-pki-XXXXXX";
  if (!::mkdtemp(tmpl)) throw std::runtime_error("test_pki: mkdtemp failed");
  dir_ = tmpl;
  EVP_PKEY* key = make_key("EC");
  X509* ca = make_certificate("lameduck test CA", key, nullptr, std::chrono::hours(-1),
                              std::chrono::hours(24 * 30));
  add_extension(ca, ca, NID_basic_constraints, "critical,CA:TRUE");
  add_extension(ca, ca, NID_key_usage, "critical,keyCertSign,cRLSign");
  X509_sign(ca, key, EVP_sha256());
  ca_file_ = dir_ + "/ca.pem";
  write_file(ca_file_, [&](FILE* f) { return PEM_write_X509(f, ca); });
  ca_key_ = key;
  ca_cert_ = ca;
}

test_pki::~test_pki() {
  EVP_PKEY_free(static_cast<EVP_PKEY*>(ca_key_));
  X509_free(static_cast<X509*>(ca_cert_));
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

test_pki::issued test_pki::issue(const std::string& name, const certificate_spec& spec) {
  auto* ca = static_cast<X509*>(ca_cert_);
  auto* ca_key = static_cast<EVP_PKEY*>(ca_key_);
  EVP_PKEY* key = make_key(spec.key_type);
  X509* c = make_certificate(name, key, ca, spec.valid_from, spec.valid_until);
  std::string alt;
  for (const auto& n : spec.dns_names)
    alt += (alt.empty() ? "DNS:" : ",DNS:") + n;
  if (spec.loopback_ip) alt += alt.empty() ? "IP:127.0.0.1" : ",IP:127.0.0.1";
  if (!alt.empty()) add_extension(c, ca, NID_subject_alt_name, alt);
  add_extension(c, ca, NID_basic_constraints, "critical,CA:FALSE");
  add_extension(c, ca, NID_ext_key_usage, "serverAuth");
  X509_sign(c, ca_key, EVP_sha256());
  issued out{dir_ + "/" + name + ".crt", dir_ + "/" + name + ".key"};
  write_file(out.certificate, [&](FILE* f) { return PEM_write_X509(f, c); });
  write_file(out.key, [&](FILE* f) {
    if (spec.password.empty()) {
      return PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
    }
    return PEM_write_PrivateKey(f, key, EVP_aes_256_cbc(),
                                reinterpret_cast<const unsigned char*>(spec.password.data()),
                                static_cast<int>(spec.password.size()), nullptr, nullptr);
  });
  X509_free(c);
  EVP_PKEY_free(key);
  return out;
}

}  // namespace lameduck::testing
