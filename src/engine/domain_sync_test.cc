// DomainSync and the engine's handling of libvirt domains, over a fake
// libvirt driver: which domains become which VMs, what follows an event,
// and what the engine refuses for them. libvirt itself is exercised by the
// integration tests against a private libvirtd.
#include "engine/domain_sync.h"

#include <gtest/gtest.h>

#include <future>

#include "engine/engine.h"
#include "engine/snapshot_plan.h"
#include "hypervisor/fake/fake_vm.h"
#include "storage/qemu_img.h"
#include "testing/temp_dir.h"

namespace vmgroup::engine {
namespace {

using hypervisor::DomainInfo;
using hypervisor::RunState;

constexpr char kUri[] = "qemu+test:///system";
constexpr char kWeb[] = "11111111-2222-3333-4444-555555555555";
constexpr char kDb[] = "66666666-7777-8888-9999-aaaaaaaaaaaa";

// A libvirt connection as the driver presents it: domains to list, a
// callback to fire, VMs handed out on Attach and Start.
class FakeLibvirt final : public hypervisor::Driver {
 public:
  void Set(std::vector<DomainInfo> domains) {
    std::lock_guard l(mu_);
    domains_ = std::move(domains);
  }
  void Fire() {
    std::function<void()> changed;
    {
      std::lock_guard l(mu_);
      changed = changed_;
    }
    if (changed) changed();
  }
  std::vector<std::string> started() {
    std::lock_guard l(mu_);
    return started_;
  }

  // `hook` runs on each listing once it is taken, before it is returned.
  void OnList(std::function<void()> hook) {
    std::lock_guard l(mu_);
    listed_ = std::move(hook);
  }

  Result<std::vector<DomainInfo>> List() override {
    std::vector<DomainInfo> listing;
    std::function<void()> hook;
    {
      std::lock_guard l(mu_);
      listing = domains_;
      hook = listed_;
    }
    if (hook) hook();
    return listing;
  }
  void Watch(std::function<void()> changed) override {
    std::lock_guard l(mu_);
    changed_ = std::move(changed);
  }
  Result<std::unique_ptr<hypervisor::Vm>> Start(const hypervisor::VmSpec& spec,
                                                const std::function<Status(int)>&) override {
    std::lock_guard l(mu_);
    started_.push_back(spec.uuid);
    return std::unique_ptr<hypervisor::Vm>(new hypervisor::fake::FakeVm(spec.disks));
  }
  Result<std::unique_ptr<hypervisor::Vm>> Attach(const hypervisor::VmSpec& spec, int) override {
    std::lock_guard l(mu_);
    for (const auto& d : domains_) {
      if (d.uuid != spec.uuid) continue;
      if (d.state == RunState::kShutoff) return Status::Unavailable(d.name + " is shut off");
      return std::unique_ptr<hypervisor::Vm>(new hypervisor::fake::FakeVm(d.disks, d.state));
    }
    return Status::NotFound(spec.uuid + " is not defined");
  }
  Result<std::unique_ptr<hypervisor::ThawGuard>> GuardThaw(
      const std::vector<std::shared_ptr<hypervisor::Vm>>&, Duration) override {
    return Status::NotSupported("no guests here");
  }

 private:
  std::mutex mu_;
  std::vector<DomainInfo> domains_;
  std::function<void()> changed_;
  std::function<void()> listed_;
  std::vector<std::string> started_;
};

// Where the domains' images are: small qcow2 images (a snapshot's checks
// look for them, its overlays are made on them).
const std::string& Images() {
  static const testing::TempDir dir;
  static const bool made = [] {
    storage::QemuImg img(Env::Default());
    for (const char* f : {"web-a.qcow2", "web-b.qcow2", "db.qcow2"}) {
      if (!img.Create(dir / f, 1 << 20).ok()) return false;
    }
    return true;
  }();
  EXPECT_TRUE(made);
  return dir.path();
}

DomainInfo Web(RunState state = RunState::kRunning) {
  return {.uuid = kWeb,
          .name = "web",
          .memory_mib = 512,
          .vcpus = 2,
          .state = state,
          .disks = {Images() + "/web-a.qcow2", Images() + "/web-b.qcow2"},
          .unsupported = ""};
}
DomainInfo Db(RunState state = RunState::kShutoff) {
  return {.uuid = kDb,
          .name = "db",
          .memory_mib = 1024,
          .vcpus = 1,
          .state = state,
          .disks = {Images() + "/db.qcow2"},
          .unsupported = ""};
}

class DomainSyncTest : public ::testing::Test {
 protected:
  std::unique_ptr<Engine> Open() {
    // TCG named: these tests start no QEMU, and auto would probe KVM (accel_probe.h).
    auto e = Engine::Open({.state_dir = dir_.path(),
                           .qemu = {.accel = hypervisor::qemu::Accel::kTcg},
                           .libvirt = {{kUri, &libvirt_}}});
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return e.ok() ? std::move(e).value() : nullptr;
  }
  // The catalog's record of `id` once `done` holds for it (the sync runs
  // on its own thread after an event): at most 10 s.
  catalog::VmRecord Await(Engine& e, const std::string& id,
                          const std::function<bool(const Result<catalog::VmRecord>&)>& done) {
    const auto until = Clock::now() + std::chrono::seconds(10);
    auto vm = e.catalog().GetVm(id);
    while (!done(vm) && Clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      vm = e.catalog().GetVm(id);
    }
    return vm.ok() ? *vm : catalog::VmRecord{};
  }

  testing::TempDir dir_;
  FakeLibvirt libvirt_;
};

TEST_F(DomainSyncTest, EveryDomainBecomesAVmOfItsConnection) {
  libvirt_.Set({Web(), Db()});
  auto e = Open();
  ASSERT_TRUE(e);
  auto web = e->catalog().GetVm(kWeb);
  ASSERT_TRUE(web.ok()) << web.status().ToString();
  EXPECT_EQ(web->name, "web");
  EXPECT_EQ(web->libvirt_uri, kUri);
  EXPECT_EQ(web->config.memory_mib, 512);
  EXPECT_EQ(web->config.vcpus, 2);
  EXPECT_EQ(web->power, catalog::Power::kRunning);
  EXPECT_EQ(web->disks, Web().disks);
  EXPECT_NE(e->vms().Live(kWeb), nullptr);
  auto db = e->catalog().GetVm(kDb);
  ASSERT_TRUE(db.ok());
  EXPECT_EQ(db->power, catalog::Power::kOff);
  EXPECT_EQ(e->vms().Live(kDb), nullptr);
}

TEST_F(DomainSyncTest, RenamesStopsStartsAndUndefinesAreFollowed) {
  libvirt_.Set({Web(), Db()});
  auto e = Open();
  ASSERT_TRUE(e);
  DomainInfo renamed = Web(RunState::kShutoff);
  renamed.name = "frontend";
  libvirt_.Set({renamed, Db(RunState::kPaused)});
  libvirt_.Fire();
  auto web = Await(*e, kWeb, [](const auto& vm) { return vm.ok() && vm->name == "frontend"; });
  EXPECT_EQ(web.power, catalog::Power::kOff);
  EXPECT_EQ(e->vms().Live(kWeb), nullptr);
  auto db =
      Await(*e, kDb, [](const auto& vm) { return vm.ok() && vm->power != catalog::Power::kOff; });
  EXPECT_EQ(db.power, catalog::Power::kPaused);
  EXPECT_NE(e->vms().Live(kDb), nullptr);

  libvirt_.Set({Db(RunState::kPaused)});
  libvirt_.Fire();
  Await(*e, kWeb, [](const auto& vm) { return !vm.ok(); });
  EXPECT_EQ(e->catalog().GetVm(kWeb).status().code(), Code::kNotFound);
}

TEST_F(DomainSyncTest, ADomainWithTheIdOfAnotherVmIsIgnored) {
  {
    auto e = Open();
    ASSERT_TRUE(e);
    ASSERT_TRUE(e->catalog().InsertVm({.id = kWeb, .name = "own", .disks = {"/own.qcow2"}}).ok());
  }
  libvirt_.Set({Web()});
  auto e = Open();
  ASSERT_TRUE(e);
  auto own = e->catalog().GetVm(kWeb);
  ASSERT_TRUE(own.ok());
  EXPECT_EQ(own->name, "own");
  EXPECT_EQ(own->libvirt_uri, "");
  EXPECT_EQ(own->disks, std::vector<std::string>{"/own.qcow2"});
}

TEST_F(DomainSyncTest, StartGoesThroughTheDomainsConnectionAndUndefineIsRefused) {
  libvirt_.Set({Db()});
  auto e = Open();
  ASSERT_TRUE(e);
  ASSERT_TRUE(e->vms().Start(kDb).ok());
  EXPECT_EQ(libvirt_.started(), std::vector<std::string>{kDb});
  ASSERT_TRUE(e->vms().Stop(kDb).ok());
  Status s = e->vms().Undefine(kDb);
  EXPECT_EQ(s.code(), Code::kInvalidState);
  EXPECT_NE(s.message().find("virsh undefine"), std::string::npos) << s.ToString();
  EXPECT_TRUE(e->catalog().GetVm(kDb).ok());
}

TEST_F(DomainSyncTest, StandardSnapshotsOfDomainsAndUnsupportedDomainsAreRefused) {
  DomainInfo odd = Db(RunState::kRunning);
  odd.unsupported = "disk vdb is a network disk (rbd)";
  libvirt_.Set({Web(), odd});
  auto e = Open();
  ASSERT_TRUE(e);
  auto web = e->collections().DefineCollection("web", "", catalog::CollectionType::kVirtualSystems);
  ASSERT_TRUE(web.ok()) << web.status().ToString();
  ASSERT_TRUE(e->collections().AddMember(kWeb, *web).ok());
  Status standard = e->snapshots().Validate({.collection_id = *web, .type = kSnapshotStandard});
  EXPECT_EQ(standard.code(), Code::kNotSupported);
  EXPECT_NE(standard.message().find("with memory"), std::string::npos) << standard.ToString();
  EXPECT_TRUE(e->snapshots().Validate({.collection_id = *web, .type = kSnapshotDiskOnly}).ok());
  EXPECT_TRUE(e->snapshots().Validate({.collection_id = *web, .type = kSnapshotRecovery}).ok());

  ASSERT_TRUE(e->collections().AddMember(kDb, *web).ok());
  Status refused = e->snapshots().Validate({.collection_id = *web, .type = kSnapshotDiskOnly});
  EXPECT_EQ(refused.code(), Code::kNotSupported);
  EXPECT_NE(refused.message().find("network disk (rbd)"), std::string::npos) << refused.ToString();
}

// libvirt lists a domain paused while a cut holds it; that listing, ready
// only once the cut has ended, is not recorded (the VM would show paused,
// and the next operation refuse it, until something else made libvirt
// list again): the operation's end leads to a listing that is.
TEST_F(DomainSyncTest, AListingTakenWhileAnOperationHeldADomainWaitsForTheNextOne) {
  libvirt_.Set({Web()});
  auto e = Open();
  ASSERT_TRUE(e);
  auto group =
      e->collections().DefineCollection("web", "", catalog::CollectionType::kVirtualSystems);
  ASSERT_TRUE(group.ok()) << group.status().ToString();
  ASSERT_TRUE(e->collections().AddMember(kWeb, *group).ok());

  std::promise<void> taken, go, next;
  std::shared_future<void> gone = go.get_future().share();
  int listings = 0;
  catalog::Power before_next = catalog::Power::kOff;
  libvirt_.OnList([&] {
    if (++listings == 1) {
      taken.set_value();
      gone.wait_for(std::chrono::seconds(10));  // bounded: a failed step below ends the test
    } else if (listings == 2) {
      before_next = e->catalog().GetVm(kWeb)->power;
      next.set_value();
    }
  });
  libvirt_.Set({Web(RunState::kPaused)});
  libvirt_.Fire();
  ASSERT_EQ(taken.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
  // The operation that held it ends before the listing is returned.
  auto snap = e->snapshots().Create({.collection_id = *group, .type = kSnapshotDiskOnly});
  DomainInfo running = Web();
  running.disks = e->catalog().GetVm(kWeb)->disks;
  libvirt_.Set({running});
  go.set_value();
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();

  ASSERT_EQ(next.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready)
      << "the operation's end leads to a listing";
  EXPECT_EQ(before_next, catalog::Power::kRunning) << "the listing taken during it is not recorded";
  auto web = Await(*e, kWeb, [](const auto& vm) { return vm.ok() && vm->disks != Web().disks; });
  EXPECT_EQ(web.power, catalog::Power::kRunning);
  EXPECT_EQ(web.disks, running.disks);
  libvirt_.OnList({});
}

}  // namespace
}  // namespace vmgroup::engine
