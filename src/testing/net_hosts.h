// Several "hosts" on one machine (tests and benchmarks only): each NetHost
// is a network namespace of its own, joined to the test's namespace by a
// veth pair, so that a vmgroupd per host talks to the others over real
// TCP, and a host can vanish (its link set down) and come back.
//
// Nothing is named globally: a host's namespace is held by one process of
// ours (no `ip netns add`), and ends, with its links, when that process and
// whatever runs inside it are gone, so a crashed test leaves nothing behind.
// Uses ip (iproute2) and nsenter/unshare (util-linux).
//
//   test's namespace (EnterPrivateNetwork: lo up, forwarding on)
//     vh<pid1> 10.77.1.1/24 ──veth── eth0 10.77.1.2/24  host 1
//     vh<pid2> 10.77.2.1/24 ──veth── eth0 10.77.2.2/24  host 2
// Each host's default route goes through its test-side address, so hosts
// reach each other through the test's namespace.
//
// Thread-safety: a NetHost is used from one thread at a time.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/env.h"

namespace vmgroup::testing {

// Puts this process into a fresh network namespace of its own, with lo up
// and IPv4 forwarding on (between its NetHosts), so nothing the test does
// touches the machine's network: ports, addresses and links made from now
// on are the test's alone. Call it first, e.g. from a gtest Environment's
// SetUp. InvalidState when this process already runs a second thread (the
// kernel moves the calling thread alone: threads started before stay
// outside); Failed when the kernel refuses (not root) or ip fails.
// REQUIRES: root (CAP_SYS_ADMIN); no thread started yet.
Status EnterPrivateNetwork(Env* env);

// A host's addresses: its own on its end of the veth pair, and the test's
// on the other end (the host's gateway), both in one /`prefix` network.
struct NetHostAddresses {
  std::string test_side;
  std::string host_side;
  int prefix = 24;
};
// 10.77.<index>.1 on the test's side, 10.77.<index>.2 on the host's.
// REQUIRES: 1 <= index <= 254.
NetHostAddresses AddressesOf(int index);

class NetHost {
 public:
  // Starts the holder (`unshare --net sleep infinity`, our child, which
  // the kernel ends when this process dies: TiedToThisProcess), makes
  // the veth pair (vh<holder pid> here, eth0 in the host), gives both ends
  // their addresses and brings them and the host's lo up, with the host's
  // default route through `a.test_side`. Failed with ip's message when a
  // step fails (what was made goes with the holder).
  // REQUIRES: root.
  static Result<std::unique_ptr<NetHost>> Start(Env* env, const NetHostAddresses& a);
  // Ends the holder by its pid and waits until it and the link are gone.
  // The namespace and both links vanish with it, unless a process started
  // through Command() still runs: end those first.
  ~NetHost();
  NetHost(const NetHost&) = delete;
  NetHost& operator=(const NetHost&) = delete;

  // The host's address, what a client connects to.
  const std::string& address() const { return addresses_.host_side; }
  // The test-side end of the veth pair, as `ip link` shows it here.
  const std::string& link() const { return link_; }
  // The process holding the namespace.
  int holder_pid() const { return holder_pid_; }

  // `argv` run inside the host: nsenter --net=/proc/<holder>/ns/net --
  // argv... nsenter execs argv, so the pid Env::Spawn returns for it is
  // argv's own, to end by that pid. A long-lived `argv` holds the namespace
  // too: tie it to this process (TiedToThisProcess) so that a test that
  // dies leaves nothing.
  std::vector<std::string> Command(const std::vector<std::string>& argv) const;

  // The host's end of the link down (the host vanishes: packets to it are
  // lost) or up again (its default route restored). Failed with ip's
  // message.
  Status SetLinkUp(bool up);

 private:
  NetHost(Env* env, NetHostAddresses a, int holder_pid);
  // Runs `ip args...` here, or inside the host when `inside`.
  Status Ip(const std::vector<std::string>& args, bool inside);
  Status Configure();

  Env* env_;
  NetHostAddresses addresses_;
  int holder_pid_;
  std::string link_;
};

}  // namespace vmgroup::testing
