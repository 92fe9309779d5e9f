// The libvirt driver against a private libvirtd (testing/private_libvirtd.h)
// running real guests under TCG: the guest kit's sequence writer stamps
// record n into sector n of its first disk. The cut goes through
// engine::ExecuteCut exactly as the engine runs it, and libvirt's own view
// (virsh) is checked after each step.
#include "hypervisor/libvirt/libvirt_driver.h"

#include <condition_variable>
#include <filesystem>
#include <mutex>

#include "engine/cut_executor.h"
#include "guest_fixture.h"
#include "testing/guest_kit.h"
#include "testing/private_libvirtd.h"

namespace vmgroup::integration {
namespace {

using hypervisor::Overlay;
using hypervisor::RunState;
using hypervisor::libvirt::LibvirtDriver;

constexpr int kDomains = 3;
constexpr uint64_t kDiskBytes = 64 << 20;

Deadline Soon() { return Clock::now() + std::chrono::seconds(30); }

class LibvirtDriverTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    BuildGuestKit();
    auto d = testing::PrivateLibvirtd::Start(Env::Default(), dir_ / "libvirtd");
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    daemon_ = std::move(d).value();
  }
  static void TearDownTestSuite() { daemon_.reset(); }

  void SetUp() override {
    ASSERT_TRUE(daemon_) << "no libvirtd";
    auto driver = LibvirtDriver::Connect(Env::Default(), daemon_->uri());
    ASSERT_TRUE(driver.ok()) << driver.status().ToString();
    driver_ = std::move(driver).value();
  }
  void TearDown() override {
    vms_.clear();
    for (const auto& name : defined_) {
      (void)daemon_->Virsh({"destroy", name});
      (void)daemon_->Virsh({"undefine", name});
    }
  }

  std::string Image(const std::string& name) { return images_ / name; }

  // Defines (and starts) a writing guest with two fresh qcow2 disks; with
  // `agent`, its first disk holds ext4 and the guest writes files into it
  // beside its guest agent.
  std::string Define(const std::string& name, bool start = true, bool agent = false) {
    std::filesystem::create_directories(images_.path());
    testing::GuestDomain g{
        .name = name,
        .kernel = std::string(GUEST_KIT_DIR) + "/vmlinuz",
        .initrd = std::string(GUEST_KIT_DIR) + "/initrd.gz",
        .append = testing::GuestKernelArgs(agent ? "agent=1 writer=fs" : "writer=raw"),
        .serial_log = Image(name + ".serial"),
        .agent = agent};
    for (const char* disk : {"-a.qcow2", "-b.qcow2"}) {
      g.disks.push_back(Image(name + disk));
      EXPECT_TRUE(storage::QemuImg(Env::Default()).Create(g.disks.back(), kDiskBytes).ok());
    }
    if (agent) {
      EXPECT_TRUE(testing::MakeExt4Image(g.disks[0], kDiskBytes).ok());
    }
    auto uuid = daemon_->Define(g, start);
    EXPECT_TRUE(uuid.ok()) << uuid.status().ToString();
    defined_.push_back(name);
    return uuid.ok() ? *uuid : "";
  }

  // kDomains running writers, attached; their names are d0, d1, ...
  void StartGroup(const std::string& prefix) {
    for (int i = 0; i < kDomains; ++i) {
      const std::string name = prefix + std::to_string(i);
      const std::string uuid = Define(name);
      ASSERT_FALSE(uuid.empty());
      auto vm = driver_->Attach({.uuid = uuid}, 0);
      ASSERT_TRUE(vm.ok()) << vm.status().ToString();
      vms_.push_back(std::move(vm).value());
      names_.push_back(name);
    }
    for (const auto& name : names_) WaitForRecords(name, 20);
  }

  void WaitForRecords(const std::string& name, int64_t at_least) {
    const auto deadline = Clock::now() + std::chrono::minutes(3);
    while (Acknowledged(Image(name + ".serial")) < at_least) {
      ASSERT_LT(Clock::now(), deadline) << name << " is not writing";
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  // Overlays (qemu-img, while the guests run) over both disks of every
  // member, opened; the cut's members.
  std::vector<engine::CutMember> PrepareCut(const std::string& tag) {
    std::vector<engine::CutMember> members;
    for (size_t i = 0; i < vms_.size(); ++i) {
      auto disks = vms_[i]->ActiveImages(Soon());
      EXPECT_TRUE(disks.ok()) << disks.status().ToString();
      if (!disks.ok()) return {};
      engine::CutMember m{.name = names_[i], .vm = vms_[i]};
      for (int d = 0; d < static_cast<int>(disks->size()); ++d) {
        Overlay o{.disk = d, .path = (*disks)[d] + "." + tag, .tag = tag, .base = (*disks)[d]};
        EXPECT_TRUE(storage::QemuImg(Env::Default()).CreateOverlay(o.base, o.path).ok());
        m.overlays.push_back(o);
      }
      Status opened = vms_[i]->OpenOverlays(m.overlays, Soon());
      EXPECT_TRUE(opened.ok()) << opened.ToString();
      members.push_back(std::move(m));
    }
    return members;
  }

  std::string Virsh(const std::vector<std::string>& args) {
    auto out = daemon_->Virsh(args);
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    return out.ok() ? *out : "";
  }
  // The image of each disk `virsh domblklist` lists, in order.
  static std::vector<std::string> Sources(const std::string& domblklist) {
    std::vector<std::string> out;
    std::istringstream lines(domblklist);
    for (std::string line; std::getline(lines, line);) {
      std::istringstream words(line);
      std::string target, source;
      if (words >> target >> source && source.starts_with("/")) out.push_back(source);
    }
    return out;
  }

  static inline testing::TempDir dir_;
  static inline std::unique_ptr<testing::PrivateLibvirtd> daemon_;
  testing::TempDir images_;
  std::unique_ptr<LibvirtDriver> driver_;
  std::vector<std::shared_ptr<hypervisor::Vm>> vms_;
  std::vector<std::string> names_, defined_;
};

TEST_F(LibvirtDriverTest, CutFreezesAGapFreePrefixAndLibvirtNamesTheOverlays) {
  ASSERT_NO_FATAL_FAILURE(StartGroup("cut"));
  auto members = PrepareCut("s1");
  ASSERT_EQ(members.size(), static_cast<size_t>(kDomains));

  const auto out = engine::ExecuteCut(Env::Default(), members, "", std::chrono::seconds(10));
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  ASSERT_TRUE(out.revert_status.ok()) << out.revert_status.ToString();
  std::printf("libvirt cut of %d domains x 2 disks: window %.2f ms; pauses:", kDomains,
              static_cast<double>(out.window_us) / 1000);
  for (const auto& t : out.timings) std::printf(" %.2f", static_cast<double>(t.pause_us) / 1000);
  std::printf(" ms\n");

  for (size_t i = 0; i < members.size(); ++i) {
    const auto& m = members[i];
    EXPECT_EQ(*vms_[i]->State(Soon()), RunState::kRunning);
    auto frozen = GapFreePrefix(m.overlays[0].base, images_ / "scratch.raw");
    ASSERT_TRUE(frozen.ok()) << frozen.status().ToString();
    EXPECT_GT(*frozen, 0) << m.name;
    const std::vector<std::string> overlays{m.overlays[0].path, m.overlays[1].path};
    EXPECT_EQ(Sources(Virsh({"domblklist", m.name})), overlays);
    EXPECT_EQ(*vms_[i]->ActiveImages(Soon()), overlays);
    const std::string persistent = Virsh({"dumpxml", "--inactive", m.name});
    for (const auto& o : overlays) EXPECT_NE(persistent.find(o), std::string::npos) << persistent;
    EXPECT_EQ(Virsh({"snapshot-list", "--name", m.name}).find_first_not_of(" \n"),
              std::string::npos);
  }

  // Undoing the switch merges what the guests wrote since into the bases.
  std::vector<int64_t> written;
  for (const auto& name : names_) {
    written.push_back(Acknowledged(Image(name + ".serial")));
  }
  for (size_t i = 0; i < members.size(); ++i) {
    Status reverted = vms_[i]->RevertOverlays(members[i].overlays);
    ASSERT_TRUE(reverted.ok()) << reverted.ToString();
    const std::vector<std::string> bases{members[i].overlays[0].base, members[i].overlays[1].base};
    EXPECT_EQ(Sources(Virsh({"domblklist", names_[i]})), bases);
    // A second revert finds nothing to undo.
    EXPECT_TRUE(vms_[i]->RevertOverlays(members[i].overlays).ok());
    ASSERT_TRUE(vms_[i]->Pause(Soon()).ok());  // QEMU's caches reach the file
    for (const auto& base : bases) {
      EXPECT_TRUE(storage::QemuImg(Env::Default()).Check(base).ok()) << base;
    }
    auto merged = GapFreePrefix(bases[0], images_ / "scratch.raw");
    ASSERT_TRUE(merged.ok()) << merged.status().ToString();
    EXPECT_GE(*merged, written[i]) << names_[i];
    ASSERT_TRUE(vms_[i]->Resume(Soon()).ok());
  }
}

TEST_F(LibvirtDriverTest, CommitImageMergesAnImageBelowTheTopAndTheTopItself) {
  const std::string uuid = Define("merge");
  ASSERT_FALSE(uuid.empty());
  auto vm = driver_->Attach({.uuid = uuid}, 0);
  ASSERT_TRUE(vm.ok()) << vm.status().ToString();
  vms_.push_back(std::move(vm).value());
  names_.push_back("merge");
  WaitForRecords("merge", 20);
  // base <- s1 <- s2, by two cuts.
  for (const char* tag : {"s1", "s2"}) {
    auto members = PrepareCut(tag);
    ASSERT_EQ(members.size(), 1u);
    const auto out = engine::ExecuteCut(Env::Default(), members, "", std::chrono::seconds(10));
    ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  }
  const std::string base = Image("merge-a.qcow2"), s1 = base + ".s1", s2 = s1 + ".s2";
  auto& v = *vms_[0];
  EXPECT_EQ(v.CommitImage(0, s2, base, Soon()).code(), Code::kInvalidArgument);  // not adjacent

  ASSERT_TRUE(v.CommitImage(0, s1, base, Soon()).ok());
  EXPECT_EQ(Sources(Virsh({"domblklist", "merge"}))[0], s2);
  auto chain = storage::QemuImg(Env::Default()).Chain(s2);
  ASSERT_TRUE(chain.ok()) << chain.status().ToString();
  ASSERT_EQ(chain->size(), 2u);  // s2 now reads through base
  EXPECT_EQ((*chain)[1].filename, base);

  const int64_t written = Acknowledged(Image("merge.serial"));
  ASSERT_TRUE(v.CommitImage(0, s2, base, Soon()).ok());
  EXPECT_EQ(Sources(Virsh({"domblklist", "merge"}))[0], base);
  ASSERT_TRUE(v.Pause(Soon()).ok());
  EXPECT_TRUE(storage::QemuImg(Env::Default()).Check(base).ok());
  auto merged = GapFreePrefix(base, images_ / "scratch.raw");
  ASSERT_TRUE(merged.ok()) << merged.status().ToString();
  EXPECT_GE(*merged, written);
  ASSERT_TRUE(v.Resume(Soon()).ok());
}

TEST_F(LibvirtDriverTest, AFailedMemberLeavesEveryDomainRunningOnItsOldImages) {
  ASSERT_NO_FATAL_FAILURE(StartGroup("fail"));
  auto members = PrepareCut("s1");
  ASSERT_EQ(members.size(), static_cast<size_t>(kDomains));
  std::vector<std::string> before;
  for (const auto& name : names_) before.push_back(Virsh({"domblklist", name}));
  auto unchanged = [&] {
    for (size_t i = 0; i < names_.size(); ++i) {
      EXPECT_EQ(Virsh({"domblklist", names_[i]}), before[i]);
      EXPECT_EQ(*vms_[i]->State(Soon()), RunState::kRunning) << names_[i];
    }
  };
  // A tracking that was not prepared (no checkpoint) is refused before
  // anyone pauses.
  const auto refused =
      engine::ExecuteCut(Env::Default(), members, "vmgroup-s1", std::chrono::seconds(10));
  EXPECT_EQ(refused.status.code(), Code::kInvalidState) << refused.status.ToString();
  EXPECT_EQ(refused.window_us, 0);
  unchanged();

  // The last member's second overlay disappears after it was checked: its
  // snapshot fails after the others switched.
  std::filesystem::remove(members.back().overlays[1].path);

  const auto out = engine::ExecuteCut(Env::Default(), members, "", std::chrono::seconds(10));
  EXPECT_FALSE(out.status.ok());
  EXPECT_NE(out.status.ToString().find("member fail2"), std::string::npos) << out.status.ToString();
  EXPECT_TRUE(out.revert_status.ok()) << out.revert_status.ToString();
  unchanged();
  // And they go on writing.
  for (const auto& name : names_) {
    WaitForRecords(name, Acknowledged(Image(name + ".serial")) + 5);
  }
}

TEST_F(LibvirtDriverTest, StartOnOtherDisksRedefinesThemWithoutBackingStore) {
  const std::string uuid = Define("redef", /*start=*/false);
  ASSERT_FALSE(uuid.empty());
  EXPECT_EQ(driver_->Attach({.uuid = uuid}, 0).status().code(), Code::kUnavailable);
  EXPECT_EQ(driver_->Attach({.uuid = "00000000-0000-4000-8000-000000000001"}, 0).status().code(),
            Code::kNotFound);

  // The hand-made revert: new overlays over the images, the domain started on them.
  std::vector<std::string> disks;
  for (const char* disk : {"-a.qcow2", "-b.qcow2"}) {
    disks.push_back(Image(std::string("redef") + disk + ".top"));
    ASSERT_TRUE(storage::QemuImg(Env::Default())
                    .CreateOverlay(Image(std::string("redef") + disk), disks.back())
                    .ok());
  }
  auto vm = driver_->Start({.uuid = uuid, .disks = disks}, nullptr);
  ASSERT_TRUE(vm.ok()) << vm.status().ToString();
  EXPECT_EQ((*vm)->pid(), 0);
  const std::string persistent = Virsh({"dumpxml", "--inactive", "redef"});
  EXPECT_EQ(persistent.find("backingStore"), std::string::npos) << persistent;
  EXPECT_EQ(Sources(Virsh({"domblklist", "redef"})), disks);
  // It boots from them: the guest writes into the new top.
  WaitForRecords("redef", 10);
  EXPECT_EQ(*(*vm)->State(Soon()), RunState::kRunning);
  EXPECT_EQ(driver_->Start({.uuid = uuid}, nullptr).status().code(), Code::kInvalidState);
}

TEST_F(LibvirtDriverTest, AGuardThawsFrozenGuestsThroughItsOwnConnection) {
  const std::string uuid = Define("frz", /*start=*/true, /*agent=*/true);
  ASSERT_FALSE(uuid.empty());
  auto attached = driver_->Attach({.uuid = uuid}, 0);
  ASSERT_TRUE(attached.ok()) << attached.status().ToString();
  std::shared_ptr<hypervisor::Vm> vm = std::move(attached).value();
  const auto ready_by = Clock::now() + std::chrono::minutes(3);
  while (!vm->OpenAgent(Soon()).ok()) {
    ASSERT_LT(Clock::now(), ready_by) << "the guest agent never answered";
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  WaitForRecords("frz", 100);

  // Its time is up: the guard thaws, and the guest writes on.
  auto frozen = vm->FreezeFilesystems(Soon());
  ASSERT_TRUE(frozen.ok()) << frozen.status().ToString();
  EXPECT_GT(*frozen, 0);
  auto guard = driver_->GuardThaw({vm}, std::chrono::seconds(1));
  ASSERT_TRUE(guard.ok()) << guard.status().ToString();
  WaitForRecords("frz", Acknowledged(Image("frz.serial")) + 100);
  EXPECT_EQ(*vm->ThawFilesystems(Soon()), 0);  // nothing was left frozen
  guard->reset();

  // Disarmed, it thaws nothing; ThawNow thaws at once.
  ASSERT_TRUE(vm->FreezeFilesystems(Soon()).ok());
  guard = driver_->GuardThaw({vm}, std::chrono::minutes(1));
  ASSERT_TRUE(guard.ok());
  (*guard)->Disarm();
  EXPECT_GT(*vm->ThawFilesystems(Soon()), 0);
  ASSERT_TRUE(vm->FreezeFilesystems(Soon()).ok());
  guard = driver_->GuardThaw({vm}, std::chrono::minutes(1));
  ASSERT_TRUE(guard.ok());
  (*guard)->ThawNow();
  EXPECT_EQ(*vm->ThawFilesystems(Soon()), 0);
  EXPECT_EQ(vm->FilesystemsFrozen(Soon()).status().code(), Code::kNotSupported);
}

TEST_F(LibvirtDriverTest, AResumeGuardResumesPausedDomainsThroughItsOwnConnection) {
  std::vector<std::shared_ptr<hypervisor::Vm>> vms;
  for (const char* name : {"rsm0", "rsm1"}) {
    const std::string uuid = Define(name);
    ASSERT_FALSE(uuid.empty());
    auto vm = driver_->Attach({.uuid = uuid}, 0);
    ASSERT_TRUE(vm.ok()) << vm.status().ToString();
    vms.push_back(std::move(vm).value());
  }
  auto both = [&](RunState want) {
    for (auto& vm : vms) {
      auto s = vm->State(Soon());
      if (!s.ok() || *s != want) return false;
    }
    return true;
  };
  auto pause_both = [&] {
    for (auto& vm : vms) ASSERT_TRUE(vm->Pause(Soon()).ok());
  };

  // Never disarmed: its time is up, it resumes both.
  pause_both();
  auto guard = driver_->GuardResume(vms, std::chrono::seconds(1));
  ASSERT_TRUE(guard.ok()) << guard.status().ToString();
  const auto until = Clock::now() + std::chrono::seconds(60);
  while (!both(RunState::kRunning) && Clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(both(RunState::kRunning)) << "the guard resumed them";
  guard->reset();

  // Disarmed, it resumes nothing; ResumeNow resumes both before it returns.
  pause_both();
  guard = driver_->GuardResume(vms, std::chrono::seconds(1));
  ASSERT_TRUE(guard.ok());
  (*guard)->Disarm();
  std::this_thread::sleep_for(std::chrono::seconds(2));  // past its time
  EXPECT_TRUE(both(RunState::kPaused)) << "a disarmed guard resumes nothing";
  guard = driver_->GuardResume(vms, std::chrono::minutes(1));
  ASSERT_TRUE(guard.ok());
  (*guard)->ResumeNow();
  EXPECT_TRUE(both(RunState::kRunning));
}

TEST_F(LibvirtDriverTest, ListAndWatchFollowDomainsDefinedAndUndefinedThroughVirsh) {
  std::mutex mu;
  std::condition_variable cv;
  int events = 0;
  driver_->Watch([&] {
    std::lock_guard lock(mu);
    ++events;
    cv.notify_all();
  });
  auto wait_event = [&](int seen) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(30), [&] { return events > seen; });
  };
  auto find = [&](const std::string& name) -> std::optional<hypervisor::DomainInfo> {
    auto list = driver_->List();
    EXPECT_TRUE(list.ok()) << list.status().ToString();
    for (const auto& d : list.ok() ? *list : std::vector<hypervisor::DomainInfo>{}) {
      if (d.name == name) return d;
    }
    return std::nullopt;
  };

  // A domain with a raw disk, defined by an operator.
  const std::string raw = Image("plain.raw");
  std::filesystem::create_directories(images_.path());
  ASSERT_TRUE(Env::Default()->Run({"qemu-img", "create", "-q", "-f", "raw", raw, "1M"}).ok());
  const std::string xml_path = Image("watched.xml");
  std::ofstream(xml_path) << "<domain type='qemu'><name>watched</name><memory unit='MiB'>64"
                             "</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os>"
                             "<devices><disk type='file' device='disk'><driver name='qemu' "
                             "type='raw'/><source file='" +
                                 raw +
                                 "'/><target dev='vda' bus='virtio'/></disk></devices>"
                                 "</domain>";
  int seen = events;
  Virsh({"define", xml_path});
  defined_.push_back("watched");
  ASSERT_TRUE(wait_event(seen));
  auto d = find("watched");
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->state, RunState::kShutoff);
  EXPECT_EQ(d->memory_mib, 64);
  EXPECT_EQ(d->unsupported,
            "disk vda is a raw image: only file-backed qcow2 disks are snapshotted");

  seen = events;
  Virsh({"undefine", "watched"});
  ASSERT_TRUE(wait_event(seen));
  EXPECT_FALSE(find("watched").has_value());
}

TEST_F(LibvirtDriverTest, ShutdownIsLibvirtsCleanShutdownAndWaitsUntilTheDomainIsOff) {
  const std::string uuid = Define("sd0");
  ASSERT_FALSE(uuid.empty());
  auto vm = driver_->Attach({.uuid = uuid}, 0);
  ASSERT_TRUE(vm.ok()) << vm.status().ToString();
  WaitForRecords("sd0", 20);
  Status s = (*vm)->Shutdown(Clock::now() + std::chrono::minutes(2));
  ASSERT_TRUE(s.ok()) << s.ToString();
  // Off once Shutdown returns, by the guest's own poweroff (the button it
  // acted on), not destroyed.
  EXPECT_EQ(Virsh({"domstate", "--reason", "sd0"}).substr(0, 19), "shut off (shutdown)");
  std::stringstream serial;
  serial << std::ifstream(Image("sd0.serial")).rdbuf();
  EXPECT_NE(serial.str().find("POWER-BUTTON"), std::string::npos) << serial.str();
}

TEST_F(LibvirtDriverTest, AShutdownNotDoneByItsDeadlineTimesOutAndTheDomainRunsOn) {
  const std::string uuid = Define("sd1");
  ASSERT_FALSE(uuid.empty());
  auto vm = driver_->Attach({.uuid = uuid}, 0);
  ASSERT_TRUE(vm.ok()) << vm.status().ToString();
  // Pressed while the guest still boots (its acpid is seconds away under
  // TCG), with a deadline far shorter than that: not off by then.
  Status s = (*vm)->Shutdown(Clock::now() + std::chrono::milliseconds(500));
  EXPECT_EQ(s.code(), Code::kTimeout) << s.ToString();
  EXPECT_EQ(Virsh({"domstate", "sd1"}).substr(0, 7), "running");
}

}  // namespace
}  // namespace vmgroup::integration
