// crash_helper (tests only): a separate process that the crash-recovery
// tests kill. Commands:
//   crash_helper STATE IMAGES setup N [KERNEL INITRD APPEND]
//       defines and starts N tiny VMs in a collection, prints its id, and
//       exits leaving the VMs running (as a daemon that stops would);
//   crash_helper STATE snapshot COLLECTION POINT [TYPE [CONSISTENCY]]
//       takes a snapshot of COLLECTION (SnapshotType TYPE, default 2;
//       ConsistencyLevel CONSISTENCY, default 2 crash) and ends itself with
//       SIGKILL when the protocol reaches fault point POINT (exit 3 if it
//       never does);
//   crash_helper STATE apply SNAPSHOT POINT
//   crash_helper STATE destroy SNAPSHOT POINT
//   crash_helper STATE convert SNAPSHOT POINT
//   crash_helper STATE start VM POINT
//       the same for applying, destroying or converting SNAPSHOT to a
//       reference point, or starting VM;
//   crash_helper STATE export SNAPSHOT POINT DIR
//       exports SNAPSHOT into DIR as vmgroupd does, as a job of a
//       JobManager (so that the catalog holds the job Running), and ends
//       itself at POINT;
//   crash_helper STATE restore DIR POINT
//       restores the export in DIR as new and ends itself at POINT;
//   crash_helper STATE backup COLLECTION POINT [REFPOINT]
//       begins a backup session of COLLECTION (the changes since REFPOINT
//       published when given), then ends it, and ends itself at POINT;
//       POINT "serving" is the moment the session serves, between the two
//       (a daemon that dies while readers read);
//   crash_helper guard AGENT_SOCKET
//       freezes the guest through that agent, arms a one-minute thaw guard
//       over its channel, then ends itself with SIGKILL, as a daemon that
//       dies with guests frozen;
//   crash_helper resume-guard MONITOR...
//       arms a one-minute resume guard over the QEMUs whose guard monitors
//       listen at MONITOR..., then ends itself with SIGKILL, as a daemon
//       that dies with its VMs paused.
//   crash_helper STATE span-group HOST:UUID...
//       defines a group whose members are those VMs of other hosts (each
//       joined to its host's part of the group) and prints its id;
//   crash_helper STATE span COLLECTION POINT
//       takes a snapshot across hosts of COLLECTION, as its coordinator,
//       and ends itself with SIGKILL at fault point POINT (span.*);
//   crash_helper STATE span-snapshot COLLECTION
//       takes a snapshot across hosts of COLLECTION and prints its id;
//   crash_helper STATE span-apply SNAPSHOT POINT
//       applies that snapshot across hosts, as its coordinator, and ends
//       itself with SIGKILL at fault point POINT (span.apply_*, span.host_applied);
//   crash_helper STATE span-recover
//       opens the engine (its recovery takes back what a dead coordinator
//       left), waits for that, and exits 0 once nothing is left, 1 if a
//       host could not be reached.
// Before any command, `--libvirt URI` opens the engine with that libvirt
// connection too (as vmgroupd --libvirt URI does), so that the command
// reaches its domains; `--peers DIR NAME=URL...--` gives it those peers,
// their passwords and CA in DIR (as vmgroupd --peer and --peer-credentials).
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>

#include "engine/engine.h"
#include "hypervisor/libvirt/libvirt_driver.h"
#include "hypervisor/qemu/guest_agent.h"
#include "hypervisor/qemu/resume_guard.h"
#include "hypervisor/qemu/thaw_guard.h"
#include "remote/cim_peers.h"
#include "services/jobs.h"
#include "testing/tiny_vms.h"

namespace {

using namespace vmgroup;

class CrashAtEnv : public EnvWrapper {
 public:
  explicit CrashAtEnv(std::string point) : EnvWrapper(Env::Default()), point_(std::move(point)) {}
  Status Hit(std::string_view point, std::string_view) override {
    if (point == point_) ::raise(SIGKILL);
    return Status::Ok();
  }

 private:
  std::string point_;
};

// The engine of a coordinator of snapshots across hosts on `state`. What is
// killed is the coordinator, at a point; a lease that ran out first on a
// loaded machine would end its snapshot before it (the hosts resume by
// themselves within it all the same): 5 s.
Result<std::unique_ptr<engine::Engine>> OpenCoordinator(const char* state, Env* env,
                                                        engine::Peers* peers) {
  engine::SnapshotOptions snapshot;
  snapshot.host_lease = std::chrono::seconds(5);
  return engine::Engine::Open({.state_dir = state,
                               .env = env,
                               .qemu = testing::TestQemu(),
                               .snapshot = snapshot,
                               .peers = peers});
}

int Fail(const Status& s) {
  std::fprintf(stderr, "crash_helper: %s\n", s.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::unique_ptr<hypervisor::libvirt::LibvirtDriver> libvirt;
  std::map<std::string, hypervisor::Driver*> connections;
  if (argc >= 3 && std::string(argv[1]) == "--libvirt") {
    // Its own Env: the engine's fault points are the ones the tests aim at.
    auto driver = hypervisor::libvirt::LibvirtDriver::Connect(Env::Default(), argv[2]);
    if (!driver.ok()) return Fail(driver.status());
    libvirt = std::move(driver).value();
    connections[argv[2]] = libvirt.get();
    argv[2] = argv[0];
    argv += 2;
    argc -= 2;
  }
  std::unique_ptr<remote::CimPeers> peers;
  if (argc >= 3 && std::string(argv[1]) == "--peers") {
    remote::CimPeers::Options o{.credentials_dir = argv[2]};
    int used = 2;
    while (used + 1 < argc && std::string(argv[used + 1]) != "--") {
      const std::string peer = argv[++used];
      o.endpoints[peer.substr(0, peer.find('='))] = peer.substr(peer.find('=') + 1);
    }
    ++used;  // the "--"
    peers = std::make_unique<remote::CimPeers>(Env::Default(), std::move(o));
    argv[used] = argv[0];
    argv += used;
    argc -= used;
  }
  if (argc >= 4 && std::string(argv[2]) == "span-group") {
    auto e = engine::Engine::Open(
        {.state_dir = argv[1], .qemu = testing::TestQemu(), .peers = peers.get()});
    if (!e.ok()) return Fail(e.status());
    auto id =
        (*e)->collections().DefineCollection("app", "", catalog::CollectionType::kVirtualSystems);
    if (!id.ok()) return Fail(id.status());
    for (int i = 3; i < argc; ++i) {
      const std::string m = argv[i];
      const size_t colon = m.find(':');
      Status added =
          (*e)->collections().AddRemoteMember({m.substr(0, colon), m.substr(colon + 1)}, *id);
      if (!added.ok()) return Fail(added);
    }
    std::printf("%s\n", id->c_str());
    return 0;
  }
  if (argc == 4 && std::string(argv[2]) == "span-snapshot") {
    auto e = OpenCoordinator(argv[1], Env::Default(), peers.get());
    if (!e.ok()) return Fail(e.status());
    auto s = (*e)->snapshots().Create({.collection_id = argv[3]});
    if (!s.ok()) return Fail(s.status());
    std::printf("%s\n", s->id.c_str());
    return 0;
  }
  if (argc == 5 && (std::string(argv[2]) == "span" || std::string(argv[2]) == "span-apply")) {
    CrashAtEnv env(argv[4]);
    auto e = OpenCoordinator(argv[1], &env, peers.get());
    if (!e.ok()) return Fail(e.status());
    engine::SnapshotEngine& snapshots = (*e)->snapshots();
    Status s = std::string(argv[2]) == "span"
                   ? snapshots.Create({.collection_id = argv[3]}).status()
                   : snapshots.Apply({.snapshot_id = argv[3]}).status();
    if (!s.ok()) return Fail(s);
    return 3;
  }
  if (argc == 3 && std::string(argv[2]) == "span-recover") {
    auto e = engine::Engine::Open(
        {.state_dir = argv[1], .qemu = testing::TestQemu(), .peers = peers.get()});
    if (!e.ok()) return Fail(e.status());
    // After the pass Open started in the background (Recover waits for it).
    const int left = (*e)->snapshots().spanning().Recover();
    std::printf("%d left\n", left);
    return left == 0 ? 0 : 1;
  }
  if (argc == 3 && std::string(argv[1]) == "guard") {
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    auto agent = hypervisor::qemu::GuestAgent::Connect(Env::Default(), argv[2], deadline);
    if (!agent.ok()) return Fail(agent.status());
    if (auto frozen = (*agent)->Freeze(deadline); !frozen.ok()) return Fail(frozen.status());
    auto guard = hypervisor::qemu::StartThawGuard({(*agent)->fd()}, std::chrono::minutes(1));
    if (!guard.ok()) return Fail(guard.status());
    ::raise(SIGKILL);
  }
  if (argc >= 3 && std::string(argv[1]) == "resume-guard") {
    const std::vector<std::string> monitors(argv + 2, argv + argc);
    auto guard = hypervisor::qemu::StartResumeGuard(
        Env::Default(), monitors, std::chrono::minutes(1), Clock::now() + std::chrono::seconds(30));
    if (!guard.ok()) return Fail(guard.status());
    ::raise(SIGKILL);
  }
  if (argc >= 5 && std::string(argv[3]) == "setup") {
    auto e = engine::Engine::Open(
        {.state_dir = argv[1], .qemu = testing::TestQemu(), .libvirt = connections});
    if (!e.ok()) return Fail(e.status());
    testing::TinyVmOptions opts;
    if (argc >= 8) {
      opts = {
          .disks = 1,
          .disk_bytes = 64 << 20,
          .config = {.memory_mib = 128, .kernel = argv[5], .initrd = argv[6], .append = argv[7]}};
    }
    auto g = testing::MakeTinyGroup(**e, argv[2], "c", std::atoi(argv[4]), opts);
    if (!g.ok()) return Fail(g.status());
    std::printf("%s\n", g->collection_id.c_str());
    return 0;
  }
  if (argc == 6 && std::string(argv[2]) == "export") {
    CrashAtEnv env(argv[4]);
    auto e = engine::Engine::Open(
        {.state_dir = argv[1], .env = &env, .qemu = testing::TestQemu(), .libvirt = connections});
    if (!e.ok()) return Fail(e.status());
    engine::ExportRequest req{.snapshot_id = argv[3], .directory = argv[5]};
    Status s;
    {
      services::JobManager jobs(Env::Default(), &(*e)->catalog());
      auto job = jobs.Start(
          62, "Export group snapshot to " + req.directory, false,
          [](const Status&) { return 32768u; },
          [&](services::JobControl&) -> Result<std::vector<std::string>> {
            s = (*e)->snapshots().Export(req).status();
            return std::vector<std::string>{};
          },
          "Msvm_SnapshotCollection:" + req.snapshot_id);
      if (!job.ok()) return Fail(job.status());
    }  // waits for the job
    if (!s.ok()) return Fail(s);
    return 3;
  }
  if (argc == 5 && std::string(argv[2]) == "restore") {
    CrashAtEnv env(argv[4]);
    auto e = engine::Engine::Open(
        {.state_dir = argv[1], .env = &env, .qemu = testing::TestQemu(), .libvirt = connections});
    if (!e.ok()) return Fail(e.status());
    Status s = (*e)->restorer().Restore({.directory = argv[3], .as_new = true}).status();
    if (!s.ok()) return Fail(s);
    return 3;
  }
  if ((argc == 5 || argc == 6) && std::string(argv[2]) == "backup") {
    CrashAtEnv env(argv[4]);
    auto e = engine::Engine::Open(
        {.state_dir = argv[1], .env = &env, .qemu = testing::TestQemu(), .libvirt = connections});
    if (!e.ok()) return Fail(e.status());
    auto& backups = (*e)->snapshots().backups();
    auto s =
        backups.Begin({.collection_id = argv[3], .incremental_from = argc == 6 ? argv[5] : ""});
    if (!s.ok()) return Fail(s.status());
    if (std::string(argv[4]) == "serving") ::raise(SIGKILL);
    if (auto ended = backups.End({.id = s->id}); !ended.ok()) return Fail(ended.status());
    return 3;
  }
  const std::string verb = argc >= 5 && argc <= 7 ? argv[2] : "";
  const int type = argc >= 6 ? std::atoi(argv[5]) : 2;
  const auto consistency = static_cast<catalog::Consistency>(argc == 7 ? std::atoi(argv[6]) : 2);
  if (verb == "snapshot" || verb == "apply" || verb == "destroy" || verb == "convert" ||
      verb == "start") {
    CrashAtEnv env(argv[4]);
    auto e = engine::Engine::Open(
        {.state_dir = argv[1], .env = &env, .qemu = testing::TestQemu(), .libvirt = connections});
    if (!e.ok()) return Fail(e.status());
    auto& engine = (*e)->snapshots();
    Status s =
        verb == "snapshot"
            ? engine.Create({.collection_id = argv[3], .type = type, .consistency = consistency})
                  .status()
        : verb == "apply"   ? engine.Apply({.snapshot_id = argv[3]}).status()
        : verb == "destroy" ? engine.Destroy({.snapshot_id = argv[3]})
        : verb == "convert" ? engine.ConvertToReferencePoint(argv[3], "").status()
                            : (*e)->vms().Start(argv[3]);
    if (!s.ok()) return Fail(s);
    return 3;
  }
  std::fprintf(stderr, "usage: see crash_helper.cc\n");
  return 2;
}
