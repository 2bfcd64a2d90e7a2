#pragma once
// Certificates made at run time with OpenSSL, for the tests only: a CA of its own, and
// certificates it signs (ECDSA P-256 or RSA, any host names, expired or not yet valid, keys
// encrypted or not), written as PEM files into a temporary directory that goes with it.
// Nothing here is ever committed.

#include <chrono>
#include <string>
#include <vector>

namespace lameduck::testing {

/// What a certificate says and how its key is made.
struct certificate_spec {
  /// subjectAltName DNS entries (e.g. "localhost", "*.example.test").
  std::vector<std::string> dns_names{"localhost"};
  /// Adds IP:127.0.0.1 to subjectAltName.
  bool loopback_ip = true;
  /// "EC" (P-256) or "RSA" (2048 bits).
  std::string key_type = "EC";
  /// Validity, from now.
  std::chrono::hours valid_from{-1}, valid_until{24};
  /// Encrypts the key file with this password (AES-256-CBC); empty: unencrypted.
  std::string password;
};

/// A CA and the certificates it issued, in a directory removed with it.
class test_pki {
 public:
  test_pki();
  ~test_pki();
  test_pki(const test_pki&) = delete;
  test_pki& operator=(const test_pki&) = delete;

  /// Files of one issued certificate.
  struct issued {
    std::string certificate;  ///< PEM: the certificate (the chain file)
    std::string key;          ///< PEM: its private key
  };
  /// Issues a certificate named `name` (the common name, and the files' stem).
  issued issue(const std::string& name, const certificate_spec& spec = {});
  /// The CA's certificate, for clients to trust.
  const std::string& ca_file() const { return ca_file_; }
  /// The directory the files are in.
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_, ca_file_;
  void* ca_key_ = nullptr;   // EVP_PKEY*
  void* ca_cert_ = nullptr;  // X509*
};

}  // namespace lameduck::testing
