// GroupFixture: an engine on a fresh state directory with helpers to build
// groups of tiny VMs and to check images against the catalog. Every VM it
// started is powered off in TearDown, by the engine (QMP quit, then SIGKILL
// by PID).
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <set>

#include "storage/qemu_img.h"
#include "testing/guest_io.h"
#include "testing/temp_dir.h"
#include "testing/tiny_vms.h"

namespace vmgroup::integration {

// Runs `fn(subject)` whenever the engine reaches fault point `point`; its
// status is the point's (an error fails that step).
class OnPointEnv : public EnvWrapper {
 public:
  using Fn = std::function<Status(std::string_view subject)>;
  OnPointEnv(std::string_view point, Fn fn)
      : EnvWrapper(Env::Default()), point_(point), fn_(std::move(fn)) {}
  Status Hit(std::string_view point, std::string_view subject) override {
    return point == point_ ? fn_(subject) : Status::Ok();
  }

 private:
  std::string point_;
  Fn fn_;
};

class GroupFixture : public ::testing::Test {
 protected:
  void SetUp() override { OpenEngine(); }
  // Stops every VM the catalog says is on, even when a test ended early
  // with the engine closed (a helper process may have started them).
  void TearDown() override {
    if (!engine_) OpenEngine();
    if (engine_) {
      EXPECT_TRUE(engine_->vms().StopAll().ok());
    }
  }

  // Opens the engine on the state directory, with `env` (kept by the
  // fixture until after the engine is gone) or the default Env.
  void OpenEngine(engine::SnapshotOptions snap = {}, std::unique_ptr<Env> env = nullptr) {
    engine_.reset();
    env_ = std::move(env);
    auto e = engine::Engine::Open(
        {.state_dir = dir_ / "state", .env = env_.get(), .qemu = qemu_, .snapshot = snap});
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    engine_ = std::move(e).value();
  }

  testing::TinyGroup MakeGroup(const std::string& prefix, int n, bool start = true) {
    auto g = testing::MakeTinyGroup(*engine_, dir_ / "images", prefix, n, {}, start);
    EXPECT_TRUE(g.ok()) << g.status().ToString();
    return g.ok() ? *g : testing::TinyGroup{};
  }

  catalog::VmRecord Vm(const std::string& id) { return *engine_->catalog().GetVm(id); }

  // A running group of `n` VMs with a snapshot of `type` between two
  // writes: `before(disk)` on every disk while the VMs are off, then they
  // start and the snapshot is taken, then `after(disk)` on every active
  // image (the VMs stopped for it and started again).
  testing::TinyGroup SnapshotBetween(const std::string& prefix, int n, int type,
                                     const std::function<void(const std::string&)>& before,
                                     const std::function<void(const std::string&)>& after,
                                     std::string* snapshot_id) {
    auto g = MakeGroup(prefix, n, /*start=*/false);
    for (const auto& id : g.vm_ids) {
      for (const auto& disk : Vm(id).disks) before(disk);
      EXPECT_TRUE(engine_->vms().Start(id).ok());
    }
    auto snap = engine_->snapshots().Create({.collection_id = g.collection_id, .type = type});
    EXPECT_TRUE(snap.ok()) << snap.status().ToString();
    *snapshot_id = snap.ok() ? snap->id : "";
    for (const auto& id : g.vm_ids) {
      EXPECT_TRUE(engine_->vms().Stop(id).ok());
      for (const auto& disk : Vm(id).disks) after(disk);
      EXPECT_TRUE(engine_->vms().Start(id).ok());
    }
    return g;
  }

  // What a VM runs on now, as QEMU reports it.
  std::vector<std::string> LiveImages(const std::string& id) {
    auto live = engine_->vms().Live(id);
    if (!live) return {};
    return *live->ActiveImages(Clock::now() + std::chrono::seconds(10));
  }

  // True if no thread of the VM's QEMU is left at real-time priority (the
  // cut raises them only while the group is paused, and the threads QEMU
  // starts meanwhile, I/O workers that outlive it, are not raised).
  bool SchedulingIsNormal(const std::string& id) {
    const int pid = engine_->vms().Live(id)->pid();
    auto threads = Env::Default()->Threads(pid);
    if (!threads.ok() || !Env::Default()->GetScheduling(pid).ok()) return false;
    for (const auto& t : *threads) {
      auto s = Env::Default()->GetScheduling(t.tid);
      if (s.ok() && s->realtime) return false;  // not ok: a worker gone since the listing
    }
    return true;
  }

  // Writes byte `pattern` over 64 KiB at offset 1 MiB of an image no QEMU
  // has open.
  void Stamp(const std::string& image, int pattern = 0x5a) {
    auto r = Env::Default()->Run(
        {"qemu-io", "-c", "write -P " + std::to_string(pattern) + " 1M 64k", image});
    ASSERT_TRUE(r.ok() && r->exit_code == 0) << (r.ok() ? r->err : r.status().ToString());
  }
  // True if that pattern reads back through the chain of the image.
  bool StampReadable(const std::string& image, int pattern = 0x5a) {
    auto r = Env::Default()->Run(
        {"qemu-io", "-r", "-U", "-c", "read -P " + std::to_string(pattern) + " 1M 64k", image});
    return r.ok() && r->exit_code == 0 &&
           r->out.find("Pattern verification failed") == std::string::npos;
  }

  // The guest data `image` holds itself, not through its backing chain.
  uint64_t OwnData(const std::string& image) { return *img_.OwnDataBytes(image); }

  // qemu-img compare: the same guest-visible content.
  bool SameContent(const std::string& a, const std::string& b) {
    auto r = Env::Default()->Run({"qemu-img", "compare", "-U", a, b});
    return r.ok() && r->exit_code == 0;
  }

  // The VM's run state as QEMU reports it; kOther, with a failure that says
  // why, when the VM has no live QEMU or it cannot be asked.
  hypervisor::RunState LiveState(const std::string& id) {
    auto live = engine_->vms().Live(id);
    if (!live) {
      ADD_FAILURE() << "VM " << id << " has no live QEMU";
      return hypervisor::RunState::kOther;
    }
    auto state = live->State(Clock::now() + std::chrono::seconds(10));
    if (!state.ok()) {
      ADD_FAILURE() << "state of VM " << id << ": " << state.status().ToString();
      return hypervisor::RunState::kOther;
    }
    return *state;
  }

  // The chain of each disk of a VM, as qemu-img reads the files: file names
  // from the active image down.
  std::vector<std::vector<std::string>> Chains(const std::string& id) {
    std::vector<std::vector<std::string>> out;
    for (const auto& disk : Vm(id).disks) {
      auto chain = img_.Chain(disk);
      EXPECT_TRUE(chain.ok()) << chain.status().ToString();
      std::vector<std::string> files;
      if (chain.ok()) {
        for (const auto& i : *chain) files.push_back(i.filename);
      }
      out.push_back(files);
    }
    return out;
  }

  // Every file in a VM's run directory.
  std::set<std::string> RunFiles(const std::string& id) {
    std::set<std::string> names;
    auto list = Env::Default()->ListDir(engine_->vms().RunDir(id));
    if (list.ok()) names.insert(list->begin(), list->end());
    return names;
  }

  // The catalog and the images agree: each disk's chain, read from the
  // files, is the disk's overlays from the newest snapshot down to its base
  // image, each image passes qemu-img check (but the active image of a VM
  // that runs: a writing guest's QEMU may still hold its metadata in its
  // cache), and the run directory holds no overlay the catalog does not
  // know.
  void ExpectCatalogMatchesDisk(const std::string& vm_id) {
    catalog::VmRecord vm = Vm(vm_id);
    auto snapshots = engine_->catalog().ListSnapshots();
    ASSERT_TRUE(snapshots.ok());
    std::set<std::string> known_images;
    for (const auto& s : *snapshots) {
      EXPECT_EQ(s.state, catalog::SnapshotState::kComplete) << s.id;
      for (const auto& m : s.members) {
        for (const auto& d : m.disks) known_images.insert({d.overlay, d.frozen_image});
      }
    }
    for (size_t i = 0; i < vm.disks.size(); ++i) {
      auto chain = img_.Chain(vm.disks[i]);
      ASSERT_TRUE(chain.ok()) << chain.status().ToString();
      // Walk the snapshot parents of this VM: each one froze the image below.
      std::string expect_top = vm.disks[i];
      std::string member = vm.current_snapshot;
      size_t depth = 0;
      for (const auto& image : *chain) {
        EXPECT_EQ(image.filename, expect_top) << "disk " << i << " depth " << depth;
        if (depth > 0 || vm.power == catalog::Power::kOff) {
          EXPECT_TRUE(img_.Check(image.filename).ok()) << image.filename;
        }
        if (member.empty()) break;
        bool found = false;
        for (const auto& s : *snapshots) {
          for (const auto& m : s.members) {
            if (m.id != member) continue;
            expect_top = m.disks[i].frozen_image;
            member = m.parent_id;
            found = true;
          }
        }
        ASSERT_TRUE(found) << "snapshot member " << member << " is not in the catalog";
        ++depth;
      }
      EXPECT_TRUE(member.empty()) << "chain shorter than the snapshot history";
    }
    // No file the catalog does not know, no image it knows that is missing.
    known_images.insert(vm.disks.begin(), vm.disks.end());
    for (const auto& name : RunFiles(vm_id)) {
      if (name.rfind("disk", 0) != 0) continue;
      EXPECT_TRUE(known_images.count(engine_->vms().RunDir(vm_id) + "/" + name))
          << "stray file " << name;
    }
    for (const auto& s : *snapshots) {
      for (const auto& m : s.members) {
        if (m.vm_id != vm_id) continue;
        for (const auto& d : m.disks) {
          EXPECT_TRUE(Env::Default()->FileExists(d.frozen_image)) << d.frozen_image;
          EXPECT_TRUE(d.overlay.empty() || Env::Default()->FileExists(d.overlay)) << d.overlay;
        }
      }
    }
  }

  testing::TempDir dir_;
  storage::QemuImg img_{Env::Default()};
  // How OpenEngine has QEMU run; a test may change it before SetUp.
  hypervisor::qemu::QemuOptions qemu_ = testing::TestQemu();
  std::unique_ptr<Env> env_;  // declared before engine_: outlives it
  std::unique_ptr<engine::Engine> engine_;
};

// Two firmware VMs (no guest writes of their own), "<prefix>0" and
// "<prefix>1", one 8 MiB disk each, whose disks the test changes through a
// second monitor, first with 0x11 over their first 4 MiB: what an export
// or a backup session must hold is known exactly.
class WrittenGroupFixture : public GroupFixture {
 protected:
  explicit WrittenGroupFixture(std::string prefix) : prefix_(std::move(prefix)) {}
  void SetUp() override {
    GroupFixture::SetUp();
    auto g = testing::MakeTinyGroup(*engine_, dir_ / "images", prefix_, 2,
                                    {.disks = 1, .disk_bytes = 8 << 20, .guest_monitor = true});
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    g_ = *g;
    Write(0x11, 0, 4 << 20);
  }
  // Writes `pattern` into every member's disk, as the guests would.
  void Write(int pattern, uint64_t at, uint64_t length) {
    for (size_t i = 0; i < g_.vm_ids.size(); ++i) {
      Status s = testing::WriteAsGuest(
          testing::GuestMonitorPath(dir_ / "images", prefix_ + std::to_string(i)), 0, pattern, at,
          length);
      ASSERT_TRUE(s.ok()) << s.ToString();
    }
  }

  const std::string prefix_;
  testing::TinyGroup g_;
};

}  // namespace vmgroup::integration
