// VmRegistry::AttachAll against the catalog's processes, with a fake Env
// (which processes exist, and since when; which signals are sent) and a fake
// driver: which recorded QEMU is adopted, which is ended by pid, and that a
// pid another process now uses is never signalled.
#include "engine/vm_registry.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <map>
#include <set>

#include "hypervisor/fake/fake_vm.h"
#include "testing/huge_pages_env.h"
#include "testing/temp_dir.h"

namespace vmgroup::engine {
namespace {

using catalog::Power;

// Processes by pid with their start times; a SIGTERM or SIGKILL ends one
// unless it ignores SIGTERM. No real process is ever signalled.
class ProcessTableEnv : public EnvWrapper {
 public:
  ProcessTableEnv() : EnvWrapper(Env::Default()) {}
  std::map<int, int64_t> started;  // pid -> start time
  std::set<int> ignore_term;
  std::vector<std::pair<int, int>> signals;  // (pid, signal) in order sent

  Result<int64_t> ProcessStartTime(int pid) override {
    auto it = started.find(pid);
    if (it == started.end()) return Status::Unavailable("no process " + std::to_string(pid));
    return it->second;
  }
  bool IsAlive(int pid) override { return started.count(pid) > 0; }
  Status Kill(int pid, int signal) override {
    signals.emplace_back(pid, signal);
    if (signal == SIGKILL || !ignore_term.count(pid)) started.erase(pid);
    return Status::Ok();
  }
  Status WaitGone(int pid, Duration) override {
    return IsAlive(pid) ? Status::Timeout("still running") : Status::Ok();
  }
};

// Attach answers for the pids in `answering`; Start is never called here.
class AttachOnlyDriver : public hypervisor::Driver {
 public:
  std::set<int> answering;
  std::vector<int> attached;  // pids Attach was asked for

  Result<std::unique_ptr<hypervisor::ThawGuard>> GuardThaw(
      const std::vector<std::shared_ptr<hypervisor::Vm>>&, Duration) override {
    return Status::Unavailable("not in this test");
  }
  Result<std::unique_ptr<hypervisor::Vm>> Start(const hypervisor::VmSpec&,
                                                const std::function<Status(int)>&) override {
    return Status::Unavailable("not in this test");
  }
  Result<std::unique_ptr<hypervisor::Vm>> Attach(const hypervisor::VmSpec& spec, int pid) override {
    attached.push_back(pid);
    if (!answering.count(pid)) return Status::Unavailable("no QEMU answers as " + spec.name);
    auto vm = std::make_unique<hypervisor::fake::FakeVm>(spec.disks);
    vm->set_pid(pid);
    return std::unique_ptr<hypervisor::Vm>(std::move(vm));
  }
};

class VmRegistryProcesses : public ::testing::Test {
 protected:
  void SetUp() override {
    catalog_ = std::move(catalog::Catalog::Open(dir_ / "c.db")).value();
    registry_ = std::make_unique<VmRegistry>(&env_, catalog_.get(), &driver_, dir_.path());
  }
  // A VM recorded as `power` with QEMU `pid`.
  void AddVm(const std::string& id, Power power, int pid) {
    ASSERT_TRUE(catalog_->InsertVm({.id = id, .name = id, .power = power, .pid = pid}).ok());
  }
  void Record(const std::string& vm, int pid, int64_t start_time) {
    ASSERT_TRUE(catalog_->InsertProcess({vm, pid, start_time}).ok());
  }

  testing::TempDir dir_;
  ProcessTableEnv env_;
  AttachOnlyDriver driver_;
  std::unique_ptr<catalog::Catalog> catalog_;
  std::unique_ptr<VmRegistry> registry_;
};

TEST_F(VmRegistryProcesses, ARecordedPidThatAnotherProcessUsesNowIsNeverSignalled) {
  // VM a's QEMU and a QEMU started for VM b died with the host's daemon;
  // their pids went to other processes, which started later.
  AddVm("a", Power::kRunning, 4242);
  Record("a", 4242, 100);
  AddVm("b", Power::kOff, 0);
  Record("b", 4343, 200);
  env_.started = {{4242, 9100}, {4343, 9200}};
  driver_.answering = {4242};  // even a process that would answer is not taken

  auto gone = registry_->AttachAll();
  ASSERT_TRUE(gone.ok()) << gone.status().ToString();
  EXPECT_TRUE(env_.signals.empty()) << "signalled pid " << env_.signals[0].first;
  EXPECT_TRUE(driver_.attached.empty()) << "attached to another process";
  EXPECT_EQ(*gone, std::vector<std::string>{"a"});
  EXPECT_EQ(catalog_->GetVm("a")->power, Power::kOff);
  EXPECT_EQ(registry_->Live("a"), nullptr);
  EXPECT_TRUE(catalog_->ListProcesses()->empty()) << "both records are forgotten";
  EXPECT_EQ(env_.started.size(), 2u);
}

TEST_F(VmRegistryProcesses, TheVmsOwnQemuIsAdoptedAndEveryOtherRecordedOneEndedByPid) {
  AddVm("a", Power::kRunning, 4242);
  Record("a", 4242, 100);
  Record("a", 4250, 150);  // started for an apply that never committed
  AddVm("b", Power::kOff, 0);
  Record("b", 4343, 200);  // ignores SIGTERM
  env_.started = {{4242, 100}, {4250, 150}, {4343, 200}};
  env_.ignore_term = {4343};
  driver_.answering = {4242};

  auto gone = registry_->AttachAll();
  ASSERT_TRUE(gone.ok()) << gone.status().ToString();
  EXPECT_TRUE(gone->empty());
  ASSERT_NE(registry_->Live("a"), nullptr);
  EXPECT_EQ(registry_->Live("a")->pid(), 4242);
  EXPECT_EQ(env_.signals,
            (std::vector<std::pair<int, int>>{{4250, SIGTERM}, {4343, SIGTERM}, {4343, SIGKILL}}));
  EXPECT_EQ(*catalog_->ListProcesses(), (std::vector<catalog::ProcessRecord>{{"a", 4242, 100}}));
}

TEST_F(VmRegistryProcesses, AnOwnQemuThatRunsButNeverAnswersIsEndedAndTheVmOff) {
  AddVm("a", Power::kRunning, 4242);
  Record("a", 4242, 100);
  env_.started = {{4242, 100}};

  auto gone = registry_->AttachAll();
  ASSERT_TRUE(gone.ok()) << gone.status().ToString();
  EXPECT_EQ(*gone, std::vector<std::string>{"a"});
  EXPECT_EQ(env_.signals, (std::vector<std::pair<int, int>>{{4242, SIGTERM}}));
  EXPECT_EQ(catalog_->GetVm("a")->power, Power::kOff);
  EXPECT_TRUE(catalog_->ListProcesses()->empty());
}

TEST_F(VmRegistryProcesses, AQemuFromBeforeProcessesWereRecordedIsAdoptedAndRecorded) {
  AddVm("a", Power::kRunning, 4242);  // a catalog of schema 8 knew the pid only
  env_.started = {{4242, 100}};
  driver_.answering = {4242};

  auto gone = registry_->AttachAll();
  ASSERT_TRUE(gone.ok()) << gone.status().ToString();
  EXPECT_TRUE(gone->empty());
  EXPECT_TRUE(env_.signals.empty());
  EXPECT_EQ(*catalog_->ListProcesses(), (std::vector<catalog::ProcessRecord>{{"a", 4242, 100}}));
}

// A thaw guard that counts its disarms.
class CountingGuard : public hypervisor::ThawGuard {
 public:
  explicit CountingGuard(int* disarmed) : disarmed_(disarmed) {}
  void Disarm() override { ++*disarmed_; }
  void ThawNow() override {}

 private:
  int* disarmed_;
};

// Records the VMs it is asked to guard.
class GuardingDriver : public AttachOnlyDriver {
 public:
  std::vector<hypervisor::Vm*> guarded;
  int disarmed = 0;
  Result<std::unique_ptr<hypervisor::ThawGuard>> GuardThaw(
      const std::vector<std::shared_ptr<hypervisor::Vm>>& vms, Duration) override {
    for (const auto& vm : vms) guarded.push_back(vm.get());
    return std::unique_ptr<hypervisor::ThawGuard>(new CountingGuard(&disarmed));
  }
};

TEST(VmRegistryGuard, EachVmIsGuardedByTheDriverItLivesOnAndOneDisarmReachesEveryGuard) {
  testing::TempDir dir;
  auto catalog = std::move(catalog::Catalog::Open(dir / "c.db")).value();
  GuardingDriver own, libvirt;
  VmRegistry registry(Env::Default(), catalog.get(), &own, dir.path());
  registry.AddConnection("test:///default", &libvirt);
  for (const char* id : {"own", "domain"}) {
    catalog::VmRecord vm{.id = id, .name = id, .power = Power::kRunning};
    if (std::string(id) == "domain") vm.libvirt_uri = "test:///default";
    ASSERT_TRUE(catalog->InsertVm(vm).ok());
    registry.Adopt(id, std::make_unique<hypervisor::fake::FakeVm>(std::vector<std::string>{}));
  }
  auto guard =
      registry.GuardThaw({registry.Live("own"), registry.Live("domain")}, std::chrono::seconds(1));
  ASSERT_TRUE(guard.ok()) << guard.status().ToString();
  EXPECT_EQ(own.guarded, std::vector<hypervisor::Vm*>{registry.Live("own").get()});
  EXPECT_EQ(libvirt.guarded, std::vector<hypervisor::Vm*>{registry.Live("domain").get()});
  (*guard)->Disarm();
  EXPECT_EQ(own.disarmed, 1);
  EXPECT_EQ(libvirt.disarmed, 1);

  std::shared_ptr<hypervisor::Vm> stranger =
      std::make_shared<hypervisor::fake::FakeVm>(std::vector<std::string>{});
  EXPECT_EQ(registry.GuardThaw({stranger}, std::chrono::seconds(1)).status().code(),
            Code::kInvalidArgument);
}

// RAM on huge pages: a size that is not whole pages, and a host without
// the pages free, are refused before anything is made.
TEST(VmRegistryHugePages, DefineRefusesOddSizesAndTooFewFreePagesBeforeMakingAnything) {
  testing::TempDir dir;
  auto catalog = std::move(catalog::Catalog::Open(dir / "c.db")).value();
  AttachOnlyDriver driver;
  testing::HugePagesEnv env;
  VmRegistry registry(&env, catalog.get(), &driver, dir.path());
  VmDefinition def{.name = "db",
                   .id = "6f1c0e1a-8d2b-4c3e-9f4a-5b6c7d8e9f01",
                   .config = {.memory_mib = 128, .hugepages = true},
                   .disks = {DiskSpec::New(1 << 20)}};
  auto nothing_made = [&] {
    EXPECT_EQ(catalog->ListVms()->size(), 0u);
    EXPECT_FALSE(env.FileExists(registry.RunDir(def.id) + "/base0.qcow2"));
  };

  env.Set(/*pool=*/64, /*free=*/64);
  def.config.memory_mib = 129;
  auto odd = registry.Define(def);
  EXPECT_EQ(odd.status().code(), Code::kInvalidArgument);
  EXPECT_NE(odd.status().message().find("multiple of 2 MiB"), std::string::npos)
      << odd.status().message();
  nothing_made();

  def.config.memory_mib = 128;
  env.Set(/*pool=*/63, /*free=*/63);
  auto short_of_pages = registry.Define(def);
  EXPECT_EQ(short_of_pages.status().code(), Code::kUnavailable);
  EXPECT_NE(short_of_pages.status().message().find("needs 64 free 2 MiB pages"), std::string::npos)
      << short_of_pages.status().message();
  EXPECT_NE(short_of_pages.status().message().find("vm.nr_hugepages=64"), std::string::npos)
      << short_of_pages.status().message();
  nothing_made();

  // An ordinary VM of that size is not the pool's business.
  VmDefinition plain = def;
  plain.name = "plain";
  plain.id = "";
  plain.config = {.memory_mib = 129};
  EXPECT_TRUE(registry.Define(plain).ok());

  env.Set(/*pool=*/64, /*free=*/64);
  auto made = registry.Define(def);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  EXPECT_TRUE(catalog->GetVm(*made)->config.hugepages);
}

}  // namespace
}  // namespace vmgroup::engine
