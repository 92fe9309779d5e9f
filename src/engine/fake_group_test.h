// FakeGroupTest (tests only): an Engine over a hypervisor::fake::FakeDriver
// on a fresh state directory, for unit tests of the group operations and of
// recovery after a crash at any fault point. The VMs' disks are small real
// qcow2 files; their QEMUs are FakeVms. The same operations on QEMU are
// tested in tests/integration/.
//
// The engine's Env, outermost first: driver_.env() (the fake processes),
// dying_ (a crash: CrashAt), points_ (a failure: OnHit), Env::Default().
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/snapshot_plan.h"
#include "hypervisor/fake/dying_env.h"
#include "hypervisor/fake/fake_driver.h"
#include "storage/qemu_img.h"

namespace vmgroup::testing {
class TempDir;
}

namespace vmgroup::engine {

// Answers each fault point with what `OnHit`'s function says (OK without one).
class PointEnv final : public EnvWrapper {
 public:
  using Fn = std::function<Status(std::string_view point, std::string_view subject)>;
  PointEnv() : EnvWrapper(Env::Default()) {}
  void OnHit(Fn fn) {
    std::lock_guard l(mu_);
    fn_ = std::move(fn);
  }
  Status Hit(std::string_view point, std::string_view subject) override {
    Fn fn;
    {
      std::lock_guard l(mu_);
      fn = fn_;
    }
    return fn ? fn(point, subject) : Status::Ok();
  }

 private:
  std::mutex mu_;
  Fn fn_;
};

struct FakeGroup {
  std::string collection_id;
  std::vector<std::string> vm_ids;  // VMs "<prefix>0".. in that order
};

class FakeGroupTest : public ::testing::Test {
 protected:
  FakeGroupTest();
  ~FakeGroupTest() override;
  void SetUp() override { Open(); }

  // `name` in the test's own directory (the state directory is "state").
  std::string Path(const std::string& name) const;

  // (Re)opens engine_ on the state directory, with snapshot_options_:
  // recovery runs.
  void Open();
  // `n` VMs with one new 1 MiB disk each, started, in a new collection.
  FakeGroup MakeGroup(int n, const std::string& prefix = "vm");
  catalog::VmRecord Vm(const std::string& id);
  // Each VM's disks as the catalog has them now, by VM id.
  std::map<std::string, std::vector<std::string>> Disks(const FakeGroup& g);
  // A Complete snapshot of the group (a test failure if it cannot be taken).
  catalog::SnapshotRecord Snapshot(const FakeGroup& g, int type = kSnapshotRecovery);
  // The fake QEMU of VM `id` alive now, or null.
  std::shared_ptr<hypervisor::fake::FakeVm> Fake(const std::string& id);
  // Fails the step at fault point `point` with Failed("injected"), for
  // `subject` only when given, the first `times` times it is reached.
  void FailAt(std::string point, std::string subject = "", int times = 1);

  // Runs `op` on engine_ on a thread of its own, and kills the "process"
  // when it reaches fault point `point` (for `subject` only when given):
  // the engine is abandoned where it stands, its threads stopped, and a new
  // engine_ opened on the state directory (recovery runs). False, with a
  // test failure, when `op` ended without reaching the point.
  bool CrashAt(std::string_view point, const std::function<void(Engine&)>& op,
               const std::string& subject = "");

  // What the crash tests on QEMU check after recovery, and a clean engine
  // after any operation: no snapshot Incomplete or Destroying; each VM the
  // catalog says running has a fake QEMU, running (not paused), on the
  // catalog's images, and each VM off has none; each disk's chain, read
  // from the files, is its active image and the frozen images of its
  // snapshot history down to its base; no snapshot file in a run directory
  // that no record names; every recorded QEMU process is a VM's; no
  // tracking on a VM that no record names.
  void ExpectConsistent();

  std::unique_ptr<testing::TempDir> dir_;  // first made, last removed
  PointEnv points_;
  hypervisor::fake::DyingEnv dying_{&points_};
  hypervisor::fake::FakeDriver driver_{&dying_};
  storage::QemuImg img_{Env::Default()};
  SnapshotOptions snapshot_options_;  // the engine's, as Open opens it
  Peers* peers_ = nullptr;            // the engine's peers, as Open opens it
  std::unique_ptr<Engine> engine_;
};

}  // namespace vmgroup::engine
