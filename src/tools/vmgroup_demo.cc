// vmgroup-demo: the engine end to end, on real QEMU. Defines a few tiny VMs
// (firmware only, two qcow2 disks each), groups them, takes two group
// snapshots, shows a snapshot that fails and is rolled back, and prints what
// happened. Everything lives in a temporary state directory that is removed
// at the end (or in --state-dir, which is kept).
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include "engine/engine.h"
#include "storage/qemu_img.h"
#include "testing/tiny_vms.h"

namespace {

using namespace vmgroup;

double Ms(int64_t us) { return static_cast<double>(us) / 1000.0; }

void PrintSnapshot(engine::Engine& e, const catalog::SnapshotRecord& s) {
  std::printf("  snapshot %s (%s), type %d: pause window %.2f ms, total %.1f ms\n", s.id.c_str(),
              s.name.c_str(), s.type, Ms(s.pause_window_us), Ms(s.duration_us));
  for (const auto& m : s.members) {
    auto vm = e.catalog().GetVm(m.vm_id);
    std::printf("    %-6s %-8s paused %.2f ms   disk0 now %s\n", vm->name.c_str(),
                catalog::PowerName(m.power_at_cut), Ms(m.pause_us),
                std::filesystem::path(m.disks[0].overlay).filename().c_str());
  }
}

int Fail(const Status& s) {
  std::fprintf(stderr, "vmgroup-demo: %s\n", s.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string state_dir;
  int n = 3;
  auto accel = hypervisor::qemu::Accel::kAuto;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--state-dir") && i + 1 < argc) {
      state_dir = argv[++i];
    } else if (!std::strcmp(argv[i], "--accel") && i + 1 < argc) {
      auto a = hypervisor::qemu::ParseAccel(argv[++i]);
      if (!a.ok()) return Fail(a.status());
      accel = *a;
    } else if (!std::strcmp(argv[i], "--vms") && i + 1 < argc) {
      n = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr,
                   "usage: vmgroup-demo [--state-dir DIR] [--vms N] [--accel auto|kvm|tcg]\n");
      return 2;
    }
  }
  const bool temporary = state_dir.empty();
  if (temporary) {
    char tmpl[] = "/tmp/vmgroup-demo-XXXXXX";
    if (!mkdtemp(tmpl)) return Fail(Status::IoError("cannot make a temporary directory"));
    state_dir = tmpl;
  }
  state_dir = std::filesystem::absolute(state_dir).string();

  auto opened = engine::Engine::Open({.state_dir = state_dir, .qemu = {.accel = accel}});
  if (!opened.ok()) return Fail(opened.status());
  engine::Engine& e = **opened;
  std::printf("state directory: %s\n", state_dir.c_str());

  std::printf("defining and starting %d VMs with 2 disks each...\n", n);
  auto group = testing::MakeTinyGroup(e, state_dir + "/images", "web", n, {});
  if (!group.ok()) return Fail(group.status());

  int rc = 0;
  for (int type : {2, 32768}) {
    auto snap = e.snapshots().Create({.collection_id = group->collection_id, .type = type});
    if (!snap.ok()) {
      rc = Fail(snap.status());
      break;
    }
    PrintSnapshot(e, *snap);
  }

  if (rc == 0) {
    std::printf("a snapshot with an impossible pause deadline (1 us) is rolled back:\n");
    auto strict = engine::SnapshotEngine(Env::Default(), &e.catalog(), &e.vms(), &e.collections(),
                                         {.pause_deadline = std::chrono::microseconds(1)});
    auto failed = strict.Create({.collection_id = group->collection_id});
    std::printf("  -> %s\n", failed.status().ToString().c_str());
    std::printf("  snapshots in the catalog: %zu; every VM still running on its images\n",
                e.catalog().ListSnapshots()->size());

    storage::QemuImg img(Env::Default());
    auto vm = e.catalog().GetVm(group->vm_ids[0]);
    auto chain = img.Chain(vm->disks[0]);
    std::printf("backing chain of %s disk 0 (top first):\n", vm->name.c_str());
    for (const auto& i : *chain) {
      std::printf("  %s\n", std::filesystem::path(i.filename).filename().c_str());
    }
  }

  Status stop = e.vms().StopAll();
  if (!stop.ok() && rc == 0) rc = Fail(stop);
  if (temporary) std::filesystem::remove_all(state_dir);
  return rc;
}
