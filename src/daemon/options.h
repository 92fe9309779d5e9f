// vmgroupd's command line: where state lives, where to listen, how to log.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "base/log.h"
#include "base/result.h"
#include "hypervisor/qemu/qemu_driver.h"

namespace vmgroup::daemon {

// One --listen: a unix socket or a TCP address.
struct Listen {
  std::string unix_path;  // for unix:PATH
  std::string host;       // for http://HOST:PORT
  int port = 0;
};

struct Options {
  std::string state_dir = "/var/lib/vmgroup";
  std::vector<Listen> listens;  // default: unix:/run/vmgroup/vmgroupd.sock
  // TCP without authentication; only with listeners bound to loopback.
  bool insecure_loopback = false;
  LogLevel log_level = LogLevel::kInfo;
  hypervisor::qemu::Accel accel = hypervisor::qemu::Accel::kAuto;
  // Longest guests stay frozen for an application-consistent snapshot
  // (engine::SnapshotOptions::freeze_bound).
  std::chrono::seconds freeze_bound{10};
  // Whom QEMU runs as when vmgroupd runs as root (QemuOptions::user); as
  // vmgroupd itself otherwise.
  std::string qemu_user = "vmgroup-qemu";
  bool help = false;
};

inline constexpr const char* kDefaultSocket = "/run/vmgroup/vmgroupd.sock";

// InvalidArgument with what to fix, for a bad command line or a TCP
// listener that would serve without authentication off loopback.
Result<Options> ParseOptions(const std::vector<std::string>& args);
Result<Listen> ParseListen(const std::string& text);
bool IsLoopback(const std::string& host);
std::string Usage();

}  // namespace vmgroup::daemon
