#include "tls/certificates.hpp"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "tls/endpoint.hpp"

namespace lameduck::detail {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The DNS names a certificate is for: its subjectAltName entries, or, without any, its
// subject's common name (as clients did before RFC 6125).
std::vector<std::string> host_names(X509* leaf) {
  std::vector<std::string> names;
  auto* alt =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(leaf, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; alt && i < sk_GENERAL_NAME_num(alt); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(alt, i);
    if (n->type != GEN_DNS) continue;
    const ASN1_STRING* s = n->d.dNSName;
    names.push_back(lower({reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                           static_cast<std::size_t>(ASN1_STRING_length(s))}));
  }
  GENERAL_NAMES_free(alt);
  if (names.empty()) {
    char cn[256];
    const int n =
        X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, cn, sizeof cn);
    if (n > 0) names.push_back(lower({cn, static_cast<std::size_t>(n)}));
  }
  return names;
}

int give_password(char* buffer, int size, int, void* password) {
  const auto& p = *static_cast<const std::string*>(password);
  if (p.size() > static_cast<std::size_t>(size)) return -1;
  std::memcpy(buffer, p.data(), p.size());
  return static_cast<int>(p.size());
}

// Whether a file can be read; if not, `why` says so as the system does ("No such file...").
bool readable(const std::string& path, const char* what, std::string& why) {
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (!f) {
    why = std::string("cannot read the ") + what + " " + path + ": " + std::strerror(errno);
    return false;
  }
  std::fclose(f);
  return true;
}

// One certificate's context, or null with `why`.
tls_context load_one(const tls_certificate& c, const tls_options& settings, std::string& why) {
  if (!readable(c.certificate_chain_file, "certificate chain", why) ||
      !readable(c.private_key_file, "private key", why)) {
    return nullptr;
  }
  ERR_clear_error();
  tls_context ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) {
    why = "cannot create a TLS context: " + openssl_reason();
    return nullptr;
  }
  if (!configure_context(ctx.get(), settings, why)) return nullptr;
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), c.certificate_chain_file.c_str()) != 1) {
    why = "cannot load the certificate chain " + c.certificate_chain_file + ": " + openssl_reason();
    return nullptr;
  }
  SSL_CTX_set_default_passwd_cb(ctx.get(), give_password);
  SSL_CTX_set_default_passwd_cb_userdata(ctx.get(),
                                         const_cast<std::string*>(&c.private_key_password));
  const bool key_loaded =
      SSL_CTX_use_PrivateKey_file(ctx.get(), c.private_key_file.c_str(), SSL_FILETYPE_PEM) == 1;
  SSL_CTX_set_default_passwd_cb(ctx.get(), nullptr);  // the password is not kept
  SSL_CTX_set_default_passwd_cb_userdata(ctx.get(), nullptr);
  if (!key_loaded) {
    why = "cannot load the private key " + c.private_key_file + ": " + openssl_reason();
    return nullptr;
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    ERR_clear_error();
    why = "the private key " + c.private_key_file + " does not match the certificate in " +
          c.certificate_chain_file;
    return nullptr;
  }
  X509* leaf = SSL_CTX_get0_certificate(ctx.get());
  if (X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0) {
    why = "the certificate in " + c.certificate_chain_file + " has expired";
    return nullptr;
  }
  if (X509_cmp_current_time(X509_get0_notBefore(leaf)) >= 0) {
    why = "the certificate in " + c.certificate_chain_file + " is not valid yet";
    return nullptr;
  }
  return ctx;
}

}  // namespace

std::string openssl_reason() {
  const unsigned long e = ERR_peek_last_error();
  ERR_clear_error();
  if (e == 0) return "unknown error";
  const char* reason = ERR_reason_error_string(e);
  return reason ? reason : "error " + std::to_string(e);
}

std::shared_ptr<const certificate_set> certificate_set::load(const tls_listen_options& listener,
                                                             const tls_options& settings,
                                                             std::string& why) {
  auto set = std::make_shared<certificate_set>();
  if (listener.certificates.empty()) {
    why = "no certificate";
    return nullptr;
  }
  for (const auto& c : listener.certificates) {
    tls_context ctx = load_one(c, settings, why);
    if (!ctx) return nullptr;
    const auto names = host_names(SSL_CTX_get0_certificate(ctx.get()));
    if (names.empty()) {
      why = "the certificate in " + c.certificate_chain_file + " names no host";
      return nullptr;
    }
    for (const auto& name : names) {
      if (name.starts_with("*.")) {
        set->wildcard_.emplace_back(name.substr(2), ctx.get());
      } else {
        set->exact_.emplace_back(name, ctx.get());
      }
    }
    set->contexts_.push_back(std::move(ctx));
  }
  // Sorted by name, the first certificate's claim first (stable).
  for (auto* names : {&set->exact_, &set->wildcard_}) {
    std::stable_sort(names->begin(), names->end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
  }
  return set;
}

SSL_CTX* certificate_set::select(const char* host_name) const noexcept {
  if (!host_name) return default_context();
  char name[256];  // a DNS name is at most 253 characters
  const std::size_t n = std::strlen(host_name);
  if (n == 0 || n >= sizeof name) return default_context();
  for (std::size_t i = 0; i < n; ++i)
    name[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(host_name[i])));
  const std::string_view host(name, n);
  auto find = [](const auto& names, std::string_view key) -> SSL_CTX* {
    auto it =
        std::lower_bound(names.begin(), names.end(), key,
                         [](const auto& entry, std::string_view k) { return entry.first < k; });
    return it != names.end() && it->first == key ? it->second : nullptr;
  };
  if (SSL_CTX* c = find(exact_, host)) return c;
  const auto dot = host.find('.');
  if (dot != std::string_view::npos && dot > 0) {
    if (SSL_CTX* c = find(wildcard_, host.substr(dot + 1))) return c;
  }
  return default_context();
}

}  // namespace lameduck::detail
