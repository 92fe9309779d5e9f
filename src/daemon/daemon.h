// Daemon: vmgroupd assembled — the engine on its state directory (with
// recovery), the job manager, the Msvm_* providers on a CIM dispatcher,
// and the HTTP listeners. VMs are not stopped when the daemon stops: they
// run on, and the next start re-attaches to them.
#pragma once

#include <memory>
#include <vector>

#include "cim/dispatcher.h"
#include "cim/http_server.h"
#include "daemon/access.h"
#include "daemon/options.h"
#include "engine/engine.h"
#include "remote/cim_peers.h"
#include "services/jobs.h"

namespace vmgroup::daemon {

class Daemon {
 public:
  // Opens the state directory, recovers, and starts serving. Errors say
  // which part could not start; nothing is left listening then.
  static Result<std::unique_ptr<Daemon>> Start(const Options& options);
  // Stops listening, waits for the jobs in progress (a snapshot finishes
  // or rolls back: no VM stays paused) and closes the catalog.
  ~Daemon();

  // The ports the TCP listeners got, in --listen order.
  const std::vector<int>& tcp_ports() const { return tcp_ports_; }

 private:
  Daemon() = default;
  // The access policy and one listener per --listen.
  Status StartListeners(const Options& options);

  // Before the engine: it drives their domains until it is gone.
  std::vector<std::unique_ptr<hypervisor::Driver>> libvirt_;
  std::unique_ptr<hypervisor::qemu::QemuDriver> qemu_;  // the engine's: outlives it
  std::unique_ptr<remote::CimPeers> peers_;             // --peer: the engine's, outlives it
  std::unique_ptr<engine::Engine> engine_;
  std::unique_ptr<services::JobManager> jobs_;
  std::unique_ptr<cim::Dispatcher> dispatcher_;
  std::unique_ptr<Access> access_;  // read by the listeners' threads
  std::unique_ptr<cim::HttpServer> server_;
  std::vector<int> tcp_ports_;
};

}  // namespace vmgroup::daemon
