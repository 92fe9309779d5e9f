#include "testing/test_certs.h"

#include <arpa/inet.h>
#include <sys/stat.h>

#include "base/env.h"

namespace vmgroup::testing {
namespace {

Status Certtool(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"certtool"};
  argv.insert(argv.end(), args.begin(), args.end());
  VMG_ASSIGN_OR_RETURN(CommandOutput r, Env::Default()->Run(argv, std::chrono::minutes(1)));
  if (r.exit_code != 0) return Status::Failed("certtool " + args[0] + ": " + r.err);
  return Status::Ok();
}

// The address a client checks the certificate for when it connects to
// `host` by address (which it matches against iPAddress names only), "" for
// a name.
std::string IpAddressOf(const std::string& host) {
  if (host == "localhost") return "127.0.0.1";
  in6_addr any{};
  const bool numeric = ::inet_pton(AF_INET, host.c_str(), &any) == 1 ||
                       ::inet_pton(AF_INET6, host.c_str(), &any) == 1;
  return numeric ? host : "";
}

}  // namespace

Result<TestCerts> MakeTestCerts(const std::string& dir, const std::string& name,
                                const std::string& host) {
  const std::string base = dir + "/" + name;
  TestCerts c{base + "-ca.pem", base + "-server.pem", base + "-server.key"};
  const std::string ca_key = base + "-ca.key", ca_info = base + "-ca.info",
                    server_info = base + "-server.info";
  Env* env = Env::Default();
  VMG_RETURN_IF_ERROR(env->WriteFile(
      ca_info, "cn = \"vmgroup " + name + " CA\"\nca\ncert_signing_key\nexpiration_days = 2\n"));
  const std::string ip = IpAddressOf(host);
  VMG_RETURN_IF_ERROR(env->WriteFile(
      server_info, "cn = \"" + host + "\"\ndns_name = \"" + host + "\"\n" +
                       (ip.empty() ? "" : "ip_address = \"" + ip + "\"\n") +
                       "tls_www_server\nsigning_key\nencryption_key\nexpiration_days = 2\n"));
  // ECDSA P-256: a handshake costs the server a small fraction of what an
  // RSA-3072 signature does, which matters on a loaded 2-core machine.
  VMG_RETURN_IF_ERROR(Certtool({"--generate-privkey", "--key-type=ecdsa", "--outfile", ca_key}));
  VMG_RETURN_IF_ERROR(Certtool({"--generate-self-signed", "--load-privkey", ca_key, "--template",
                                ca_info, "--outfile", c.ca}));
  VMG_RETURN_IF_ERROR(
      Certtool({"--generate-privkey", "--key-type=ecdsa", "--outfile", c.server_key}));
  VMG_RETURN_IF_ERROR(Certtool({"--generate-certificate", "--load-privkey", c.server_key,
                                "--load-ca-certificate", c.ca, "--load-ca-privkey", ca_key,
                                "--template", server_info, "--outfile", c.server_cert}));
  if (::chmod(c.server_key.c_str(), 0600) != 0) return Status::IoError("chmod " + c.server_key);
  return c;
}

}  // namespace vmgroup::testing
