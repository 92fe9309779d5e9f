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
//   crash_helper STATE start VM POINT
//       the same for starting VM (fault point vm.started);
//   crash_helper STATE apply SNAPSHOT POINT
//   crash_helper STATE destroy SNAPSHOT POINT
//       the same for applying or destroying SNAPSHOT;
//   crash_helper guard AGENT_SOCKET
//       freezes the guest through that agent, arms a one-minute thaw guard
//       over its channel, then ends itself with SIGKILL, as a daemon that
//       dies with guests frozen.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "engine/engine.h"
#include "hypervisor/qemu/guest_agent.h"
#include "hypervisor/qemu/thaw_guard.h"
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

int Fail(const Status& s) {
  std::fprintf(stderr, "crash_helper: %s\n", s.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "guard") {
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    auto agent = hypervisor::qemu::GuestAgent::Connect(argv[2], deadline);
    if (!agent.ok()) return Fail(agent.status());
    if (auto frozen = (*agent)->Freeze(deadline); !frozen.ok()) return Fail(frozen.status());
    auto guard = hypervisor::qemu::StartThawGuard({(*agent)->fd()}, std::chrono::minutes(1));
    if (!guard.ok()) return Fail(guard.status());
    ::raise(SIGKILL);
  }
  if (argc >= 5 && std::string(argv[3]) == "setup") {
    auto e = engine::Engine::Open({.state_dir = argv[1], .qemu = testing::TestQemu()});
    if (!e.ok()) return Fail(e.status());
    testing::TinyVmOptions opts;
    if (argc >= 8) {
      opts = {.disks = 1,
              .disk_bytes = 64 << 20,
              .memory_mib = 128,
              .kernel = argv[5],
              .initrd = argv[6],
              .append = argv[7]};
    }
    auto g = testing::MakeTinyGroup(**e, argv[2], "c", std::atoi(argv[4]), opts);
    if (!g.ok()) return Fail(g.status());
    std::printf("%s\n", g->collection_id.c_str());
    return 0;
  }
  const std::string verb = argc >= 5 && argc <= 7 ? argv[2] : "";
  const int type = argc >= 6 ? std::atoi(argv[5]) : 2;
  const auto consistency = static_cast<catalog::Consistency>(argc == 7 ? std::atoi(argv[6]) : 2);
  if (verb == "start") {
    CrashAtEnv env(argv[4]);
    auto e = engine::Engine::Open({.state_dir = argv[1], .env = &env, .qemu = testing::TestQemu()});
    if (!e.ok()) return Fail(e.status());
    if (Status s = (*e)->vms().Start(argv[3]); !s.ok()) return Fail(s);
    return 3;
  }
  if (verb == "snapshot" || verb == "apply" || verb == "destroy") {
    CrashAtEnv env(argv[4]);
    auto e = engine::Engine::Open({.state_dir = argv[1], .env = &env, .qemu = testing::TestQemu()});
    if (!e.ok()) return Fail(e.status());
    auto& engine = (*e)->snapshots();
    Status s =
        verb == "snapshot"
            ? engine.Create({.collection_id = argv[3], .type = type, .consistency = consistency})
                  .status()
        : verb == "apply" ? engine.Apply({.snapshot_id = argv[3]}).status()
                          : engine.Destroy({.snapshot_id = argv[3]});
    if (!s.ok()) return Fail(s);
    return 3;
  }
  std::fprintf(stderr, "usage: see crash_helper.cc\n");
  return 2;
}
