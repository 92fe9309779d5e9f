// Test certificates (tests and benchmarks only): a throwaway CA and a server
// certificate it signs, made with certtool (gnutls-bin) into a directory,
// valid for two days.
#pragma once

#include <string>

#include "base/result.h"

namespace vmgroup::testing {

struct TestCerts {
  std::string ca;           // the CA's certificate, PEM: what clients trust
  std::string server_cert;  // the server's certificate, PEM
  std::string server_key;   // its key, PEM, mode 0600
};

// Makes a CA named `name` and a server certificate it signs for `host`
// (for "localhost": also for 127.0.0.1; an IPv4 or IPv6 address: also as
// an address, which clients connecting by address require), as files
// `name`-ca.pem, `name`-server.pem and `name`-server.key in `dir`.
Result<TestCerts> MakeTestCerts(const std::string& dir, const std::string& name = "test",
                                const std::string& host = "localhost");

}  // namespace vmgroup::testing
