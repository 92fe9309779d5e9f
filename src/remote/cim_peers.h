// The other hosts this vmgroupd reaches (engine::Peers, issue 20), from its
// configuration: each peer a name and the endpoint of its vmgroupd
// (vmgroupd's --peer NAME=URL), reached over CIM-XML as one of that host's
// administrators.
//
// The credentials live beside the configuration, not in it (a URL shows in
// ps and in logs), in one directory (--peer-credentials):
//   DIR/NAME.password  the password of the endpoint's USER on the peer,
//                      on the first line; read at each call, so a changed
//                      file is used without a restart. Needed only by an
//                      endpoint that names a user (https://USER@HOST:PORT).
//   DIR/ca.pem         the CA(s) the peers' certificates must be signed
//                      by; absent: the system's CA store.
//
// Join and Leave keep the peer's part of a group: a collection of the
// group's id on the peer (engine/peers.h), through its
// Msvm_CollectionManagementService, each as a whole bounded by
// Options::timeout, so that a peer that vanished fails within it.
//
// Thread-safe: the table is fixed at construction and each call opens its
// own connection.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "base/env.h"
#include "cim/client.h"
#include "engine/peers.h"
#include "engine/spanning_cut.h"  // CutHost, which Connect returns

namespace vmgroup::remote {

class CimPeers final : public engine::Peers {
 public:
  struct Options {
    // Peer name -> endpoint, as cim::HttpClient::Create takes it
    // (https://USER@HOST[:PORT]; http:// and unix:PATH for tests), with no
    // password in it.
    std::map<std::string, std::string> endpoints;
    // Where NAME.password and ca.pem are (see above).
    std::string credentials_dir = "/etc/vmgroup/peers";
    // How long a Join or a Leave may take as a whole.
    Duration timeout = std::chrono::seconds(30);
  };

  // REQUIRES: `env` outlives this.
  CimPeers(Env* env, Options options) : env_(env), options_(std::move(options)) {}

  Status Known(const std::string& host) override;
  // A CimCutHost named "host NAME", with the credentials read now.
  Result<std::unique_ptr<engine::CutHost>> Connect(const std::string& host) override;
  Status Join(const std::string& host, const std::string& group_id, const std::string& group_name,
              const std::string& vm_id) override;
  Status Leave(const std::string& host, const std::string& group_id,
               const std::string& vm_id) override;

  // What reaching `host` takes now: its password read from its file (for an
  // endpoint with a user) and the CA file when there is one. NotFound as
  // Known says; the file's error (FileNotFound when it is missing) naming
  // the file and what it must hold; InvalidArgument for an empty one.
  Result<cim::HttpClient::Options> Credentials(const std::string& host);

  // The password file of peer `host`.
  std::string PasswordFile(const std::string& host) const {
    return options_.credentials_dir + "/" + host + ".password";
  }

 private:
  // The endpoint of `host`; NotFound as Known says.
  Result<std::string> Endpoint(const std::string& host);
  // A client of `host`'s vmgroupd, with the credentials read now.
  Result<std::unique_ptr<cim::CimClient>> Client(const std::string& host);

  Env* const env_;
  const Options options_;
};

}  // namespace vmgroup::remote
