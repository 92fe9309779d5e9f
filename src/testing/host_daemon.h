// A vmgroupd inside a NetHost (tests only): HTTPS at the host's address,
// with a test certificate naming that address and a CA of its own; PAM
// admitting root with kPassword through a copy of /etc/shadow that only
// this daemon sees (bind-mounted in a mount namespace of its own), so the
// machine's accounts stay untouched; --admin-group root (over TCP, groups
// decide); TCG; its own state directory. The test's child, tied to it, and
// ended by pid, with the QEMUs of its VMs.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/env.h"
#include "testing/net_hosts.h"

namespace vmgroup::testing {

class HostDaemon {
 public:
  static constexpr const char* kPassword = "s3cret";

  struct Binaries {
    std::string vmgroupd;
    std::string vmgroup;  // the CLI, for Cli
  };

  // Starts vmgroupd inside `host` on https://<its address>:<a free port>,
  // its files under `dir` (state, log, certificates, shadow), and waits
  // until it serves. Failed with its log when it does not.
  // `more_args` are vmgroupd's too (a coordinator's --peer options).
  static Result<std::unique_ptr<HostDaemon>> Start(const NetHost& host, const std::string& dir,
                                                   const Binaries& bin,
                                                   std::vector<std::string> more_args = {});
  // Starts it again after Stop, with the same options and state.
  Status Restart();

  // The options of a vmgroupd that coordinates `peers` (by peer name):
  // --peer NAME=<its endpoint> each, and --peer-credentials `dir`, made
  // here with each peer's password file and ca.pem holding their CAs.
  static Result<std::vector<std::string>> CoordinatorArgs(
      const std::map<std::string, const HostDaemon*>& peers, const std::string& dir);
  // Stop(SIGKILL) if it runs; then the QEMUs of its VMs (a daemon leaves
  // them running on any stop) are ended by pid.
  ~HostDaemon();
  HostDaemon(const HostDaemon&) = delete;
  HostDaemon& operator=(const HostDaemon&) = delete;

  // Sends `signal` to the daemon and waits until it is gone.
  Status Stop(int signal);

  int pid() const { return pid_; }
  int port() const { return port_; }
  const std::string& address() const { return address_; }
  const std::string& ca() const { return ca_; }  // the CA that vouches for it
  std::string state_dir() const { return dir_ + "/state"; }
  std::string log() const { return dir_ + "/vmgroupd.log"; }  // what it logged
  // "https://root@<address>:<port>", with kPassword.
  std::string Endpoint() const;

  // `vmgroup ARGS` against the daemon as root, at `address` (its own when
  // empty), from the test's namespace or from inside `from`.
  Result<CommandOutput> Cli(const std::vector<std::string>& args, const NetHost* from = nullptr,
                            const std::string& address = "") const;

  // `vmgroup ARGS --json` against it, parsed. Failed with what the CLI
  // said when it fails.
  Result<nlohmann::json> Json(std::vector<std::string> args) const;

  // Group "app" (under `group_id` when not empty) of running VMs named
  // `names`, each made by `vm create NAME <vm_options> --start` (default:
  // 64 MiB, a new 16 MiB disk, no OS); their ids, in that order.
  Result<std::vector<std::string>> MakeGroup(const std::vector<std::string>& names,
                                             const std::string& group_id = "",
                                             const std::vector<std::string>& vm_options = {
                                                 "--memory", "64", "--disk", "16M"}) const;

  // What QEMU itself says of VM `vm_id` ("running", "paused", ...), through
  // the monitor vmgroupd keeps for its resume guard (free while no guard is
  // armed): the truth, whatever the daemon records.
  std::string QemuStatus(const std::string& vm_id) const;

 private:
  HostDaemon() = default;

  // Runs vmgroupd (argv_) and waits until it serves.
  Status Launch();

  const NetHost* host_ = nullptr;
  std::vector<std::string> argv_;  // vmgroupd's command, inside the host
  std::string dir_, address_, ca_, vmgroup_;
  int pid_ = 0;
  int port_ = 0;
};

}  // namespace vmgroup::testing
