// Crash recovery and application consistency for libvirt domains: a private
// libvirtd (testing/private_libvirtd.h) runs a group of real guests under
// TCG; crash_helper, a separate process holding the engine as vmgroupd
// would (--libvirt URI), snapshots the group and is killed with SIGKILL at a
// fault point; the engine then opens the same state directory and the same
// connection again. Afterwards no domain may be left paused or frozen, no
// snapshot half-made, and libvirt (live and persistent XML), the catalog and
// the domains' actual top images must name the same files, every one of
// them clean by qemu-img check.
#include <signal.h>

#include <filesystem>
#include <regex>
#include <thread>

#include "engine/engine.h"
#include "engine/fault_points.h"
#include "guest_fixture.h"
#include "hypervisor/libvirt/libvirt_driver.h"
#include "testing/private_libvirtd.h"

namespace vmgroup::integration {
namespace {

using catalog::Consistency;
using catalog::SnapshotState;

constexpr uint64_t kDiskBytes = 64 << 20;
constexpr int kDomains = 3;
constexpr char kDiskOnly[] = "32768";

Deadline Soon() { return Clock::now() + std::chrono::seconds(30); }

// One group of writing domains per suite, shared by its tests (each test
// starts from where the last one left them: recovery must leave them fit
// for the next cut), with one state directory.
class LibvirtCrashFixture : public ::testing::Test {
 protected:
  // `workload`: the guest kit's writer ("writer=raw", or "agent=1
  // writer=fs" for ext4 guests with their agent).
  static void StartSuite(const std::string& prefix, bool agent) {
    BuildGuestKit();
    auto d = testing::PrivateLibvirtd::Start(Env::Default(), dir_ / "libvirtd");
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    libvirtd_ = std::move(d).value();
    auto driver = hypervisor::libvirt::LibvirtDriver::Connect(Env::Default(), libvirtd_->uri());
    ASSERT_TRUE(driver.ok()) << driver.status().ToString();
    driver_ = std::move(driver).value();
    std::filesystem::create_directories(dir_ / "images");
    for (int i = 0; i < kDomains; ++i) {
      const std::string name = prefix + std::to_string(i);
      testing::GuestDomain g{.name = name,
                             .kernel = std::string(GUEST_KIT_DIR) + "/vmlinuz",
                             .initrd = std::string(GUEST_KIT_DIR) + "/initrd.gz",
                             .append = std::string("console=ttyS0 panic=-1 quiet ") +
                                       (agent ? "agent=1 writer=fs" : "writer=raw"),
                             .serial_log = dir_ / ("images/" + name + ".serial"),
                             .agent = agent};
      for (const char* disk : {"-a.qcow2", "-b.qcow2"}) {
        g.disks.push_back(dir_ / ("images/" + name + disk));
        ASSERT_TRUE(storage::QemuImg(Env::Default()).Create(g.disks.back(), kDiskBytes).ok());
      }
      if (agent) {
        ASSERT_TRUE(testing::MakeExt4Image(g.disks[0], kDiskBytes).ok());
      }
      auto uuid = libvirtd_->Define(g, /*start=*/true);
      ASSERT_TRUE(uuid.ok()) << uuid.status().ToString();
      names_.push_back(name);
      uuids_.push_back(*uuid);
    }
    auto e = Open();
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    auto c =
        (*e)->collections().DefineCollection(prefix, "", catalog::CollectionType::kVirtualSystems);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    collection_ = *c;
    for (const auto& uuid : uuids_) ASSERT_TRUE((*e)->collections().AddMember(uuid, *c).ok());
  }
  static void TearDownTestSuite() {
    for (const auto& name : names_) {
      (void)libvirtd_->Virsh({"destroy", name});
      (void)libvirtd_->Virsh({"undefine", name});
    }
    names_.clear();
    uuids_.clear();
    driver_.reset();
    libvirtd_.reset();
  }

  void SetUp() override { ASSERT_TRUE(libvirtd_ && !collection_.empty()) << "no domains"; }
  void TearDown() override { engine_.reset(); }

  static Result<std::unique_ptr<engine::Engine>> Open() {
    return engine::Engine::Open({.state_dir = dir_ / "state",
                                 .qemu = testing::TestQemu(),
                                 .libvirt = {{libvirtd_->uri(), driver_.get()}}});
  }
  void OpenEngine() {
    auto e = Open();
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    engine_ = std::move(e).value();
  }

  // crash_helper snapshots the group with fault point `point` killing it;
  // the engine must be closed meanwhile.
  void SnapshotKilledAt(std::string_view point, const std::string& consistency) {
    HelperKilledAt(point, {"snapshot", collection_, std::string(point), kDiskOnly, consistency});
  }
  // crash_helper runs `command` (crash_helper.cc) and is killed at `point`.
  void HelperKilledAt(std::string_view point, const std::vector<std::string>& command) {
    std::vector<std::string> argv = {CRASH_HELPER, "--libvirt", libvirtd_->uri(), dir_ / "state"};
    argv.insert(argv.end(), command.begin(), command.end());
    auto r = Env::Default()->Run(argv, std::chrono::minutes(3));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    // Killed by its own SIGKILL at the point, not ended by an exception.
    ASSERT_EQ(r->exit_code, -1) << "the helper should have been killed at " << point << ": "
                                << r->err;
    ASSERT_EQ(r->err.find("terminate called"), std::string::npos) << r->err;
  }

  std::string Serial(size_t i) const { return dir_ / ("images/" + names_[i] + ".serial"); }
  void WaitForRecords(size_t i, int64_t at_least) {
    const auto deadline = Clock::now() + std::chrono::minutes(3);
    while (Acknowledged(Serial(i)) < at_least) {
      ASSERT_LT(Clock::now(), deadline) << names_[i] << " does not write";
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  // Every domain writes on: 10 more records than it had acknowledged.
  void ExpectAllWrite() {
    for (size_t i = 0; i < names_.size(); ++i) WaitForRecords(i, Acknowledged(Serial(i)) + 10);
  }

  std::string Virsh(const std::vector<std::string>& args) {
    auto out = libvirtd_->Virsh(args);
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    return out.ok() ? *out : "";
  }
  std::string DomState(const std::string& name) {
    std::string s = Virsh({"domstate", name});
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
  }
  // The images `virsh domblklist` names, in order (`extra`: e.g. --inactive).
  std::vector<std::string> Sources(const std::string& name, const std::string& extra = "") {
    std::vector<std::string> args = {"domblklist", name};
    if (!extra.empty()) args.push_back(extra);
    std::vector<std::string> out;
    std::istringstream lines(Virsh(args));
    for (std::string line; std::getline(lines, line);) {
      std::istringstream words(line);
      std::string target, source;
      if (words >> target >> source && source.starts_with("/")) out.push_back(source);
    }
    return out;
  }
  static bool CheckClean(const std::string& image) {
    auto r = Env::Default()->Run({"qemu-img", "check", "-U", image}, std::chrono::minutes(1));
    return r.ok() && r->exit_code == 0;
  }

  // What recovery must leave whatever the point: every domain runs (the
  // whole group ran before), the live XML, the persistent XML, the catalog
  // and the domain's actual top images agree; no snapshot is half-made;
  // every image is clean; a completed snapshot's frozen first disks hold a
  // gap-free prefix of the records (raw writers only).
  void ExpectConsistent(bool raw_writer) {
    auto snapshots = engine_->catalog().ListSnapshots(collection_);
    ASSERT_TRUE(snapshots.ok());
    for (const auto& s : *snapshots) {
      EXPECT_EQ(s.state, SnapshotState::kComplete) << "snapshot " << s.id << " half-made";
      for (const auto& m : s.members) {
        for (const auto& d : m.disks) {
          EXPECT_TRUE(CheckClean(d.frozen_image)) << d.frozen_image;
        }
        if (raw_writer && !m.disks.empty()) {
          auto prefix = GapFreePrefix(m.disks[0].frozen_image, dir_ / "scratch.raw");
          EXPECT_TRUE(prefix.ok()) << m.disks[0].frozen_image << ": " << prefix.status().ToString();
        }
      }
    }
    for (size_t i = 0; i < names_.size(); ++i) {
      const std::string& name = names_[i];
      EXPECT_EQ(DomState(name), "running") << name;
      auto vm = engine_->catalog().GetVm(uuids_[i]);
      ASSERT_TRUE(vm.ok()) << vm.status().ToString();
      EXPECT_EQ(vm->power, catalog::Power::kRunning) << name;
      const auto live = Sources(name);
      EXPECT_EQ(live, vm->disks) << name << ": libvirt's live XML against the catalog";
      EXPECT_EQ(Sources(name, "--inactive"), live) << name << ": persistent against live XML";
      auto handle = engine_->vms().Live(uuids_[i]);
      ASSERT_TRUE(handle) << name;
      auto active = handle->ActiveImages(Soon());
      ASSERT_TRUE(active.ok()) << active.status().ToString();
      EXPECT_EQ(*active, vm->disks) << name;
      Status clean = libvirtd_->CheckClean(name, vm->disks);
      EXPECT_TRUE(clean.ok()) << clean.ToString();
      EXPECT_EQ(Virsh({"snapshot-list", name, "--name"}).find_first_not_of("\n "),
                std::string::npos)
          << name << ": libvirt snapshot metadata left";
    }
  }

  size_t SnapshotCount() {
    auto s = engine_->catalog().ListSnapshots(collection_);
    EXPECT_TRUE(s.ok());
    return s.ok() ? s->size() : 0;
  }

  static inline testing::TempDir dir_;
  static inline std::unique_ptr<testing::PrivateLibvirtd> libvirtd_;
  static inline std::unique_ptr<hypervisor::libvirt::LibvirtDriver> driver_;
  static inline std::vector<std::string> names_, uuids_;
  static inline std::string collection_;
  std::unique_ptr<engine::Engine> engine_;
};

class LibvirtCrashTest : public LibvirtCrashFixture,
                         public ::testing::WithParamInterface<std::string_view> {
 protected:
  static void SetUpTestSuite() { StartSuite("crash", /*agent=*/false); }
};

TEST_P(LibvirtCrashTest, KilledAtAFaultPointLeavesDomainsRunningAndLibvirtTruthful) {
  const std::string_view point = GetParam();
  OpenEngine();
  const size_t before = SnapshotCount();
  for (size_t i = 0; i < names_.size(); ++i) WaitForRecords(i, Acknowledged(Serial(i)) + 5);
  engine_.reset();

  SnapshotKilledAt(point, "2");
  if (point == engine::fault::kMemberSwitched) {
    // The case libvirt itself never heals: a client died with domains it
    // suspended.
    int paused = 0;
    for (const auto& name : names_) paused += DomState(name) == "paused";
    EXPECT_GT(paused, 0) << "the helper died inside the pause";
  }

  OpenEngine();
  const auto& report = engine_->recovery();
  EXPECT_TRUE(report.problems.ok()) << report.problems.ToString();
  EXPECT_TRUE(report.gone_vms.empty()) << report.Summary();
  if (point != engine::fault::kCommitted) {
    EXPECT_EQ(report.completed.size() + report.rolled_back.size(), 1u) << report.Summary();
  }
  const size_t after = SnapshotCount();
  if (point == engine::fault::kCutDone || point == engine::fault::kCommitted) {
    EXPECT_EQ(after, before + 1) << "the cut took effect everywhere: kept";
  } else if (point != engine::fault::kMemberSwitched) {
    EXPECT_EQ(after, before) << "no member had switched: rolled back";
  }
  ExpectConsistent(/*raw_writer=*/true);
  ExpectAllWrite();

  // And the group can be cut again.
  auto again = engine_->snapshots().Create({.collection_id = collection_, .type = 32768});
  EXPECT_TRUE(again.ok()) << again.status().ToString();
  ExpectConsistent(/*raw_writer=*/true);
}

INSTANTIATE_TEST_SUITE_P(AtEveryFaultPoint, LibvirtCrashTest,
                         ::testing::ValuesIn(engine::fault::kAll), [](const auto& param_info) {
                           std::string n(param_info.param);
                           for (auto& c : n) {
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return n;
                         });

// Killed while applying a snapshot of the group, one domain paused by its
// operator: before the commit (domains destroyed and defined on new
// overlays) recovery defines them on their old images again and starts
// them; after it, recovery starts them on the applied images. Either way
// every domain runs again as before (the paused one paused, without having
// run) and libvirt names the images the catalog does.
class LibvirtApplyCrashTest : public LibvirtCrashFixture,
                              public ::testing::WithParamInterface<std::string_view> {
 protected:
  static void SetUpTestSuite() { StartSuite("apply", /*agent=*/false); }
  static std::string BackingOf(const std::string& image) {
    auto info = storage::QemuImg(Env::Default()).Info(image);
    return info.ok() ? info->backing_filename : "";
  }
};

TEST_P(LibvirtApplyCrashTest, KilledWhileApplyingEveryDomainRunsAgainAsBefore) {
  const std::string_view point = GetParam();
  const bool committed = point == engine::fault::kApplyCommitted;
  OpenEngine();
  for (size_t i = 0; i < names_.size(); ++i) WaitForRecords(i, Acknowledged(Serial(i)) + 5);
  auto s = engine_->snapshots().Create({.collection_id = collection_, .type = 32768});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  for (size_t i = 0; i < names_.size(); ++i) WaitForRecords(i, Acknowledged(Serial(i)) + 5);
  ASSERT_TRUE(engine_->vms().Pause(uuids_[0]).ok());
  std::vector<std::vector<std::string>> before;
  for (const auto& uuid : uuids_) before.push_back(engine_->catalog().GetVm(uuid)->disks);
  engine_.reset();

  HelperKilledAt(point, {"apply", s->id, std::string(point)});

  OpenEngine();
  const auto& report = engine_->recovery();
  EXPECT_TRUE(report.problems.ok()) << report.problems.ToString();
  EXPECT_EQ(report.applies_undone.size(), committed ? 0u : 1u) << report.Summary();
  EXPECT_EQ(report.applies_finished.size(), committed ? 1u : 0u) << report.Summary();
  EXPECT_TRUE(engine_->catalog().ListApplyIntents()->empty());
  EXPECT_EQ(DomState(names_[0]), "paused") << "started again paused, as it was";
  EXPECT_EQ(engine_->catalog().GetVm(uuids_[0])->power, catalog::Power::kPaused);
  for (size_t i = 0; i < names_.size(); ++i) {
    const auto disks = engine_->catalog().GetVm(uuids_[i])->disks;
    const auto& member = s->members.at(i);
    ASSERT_EQ(member.vm_id, uuids_[i]);
    for (size_t d = 0; d < disks.size(); ++d) {
      if (committed) {
        EXPECT_EQ(BackingOf(disks[d]), member.disks.at(d).frozen_image) << names_[i];
      } else {
        EXPECT_EQ(disks[d], before[i][d]) << names_[i] << ": undone, on its old images";
      }
    }
  }
  ASSERT_TRUE(engine_->vms().Resume(uuids_[0]).ok());
  ExpectConsistent(/*raw_writer=*/true);
  ExpectAllWrite();
}

INSTANTIATE_TEST_SUITE_P(BeforeAndAfterTheCommit, LibvirtApplyCrashTest,
                         ::testing::Values(engine::fault::kApplyPrepared,
                                           engine::fault::kApplyCommitted),
                         [](const auto& param_info) {
                           return param_info.param == engine::fault::kApplyPrepared ? "prepared"
                                                                                    : "committed";
                         });

// Killed inside the pause, and the operator destroys the suspended domains
// before vmgroupd starts again (what libvirt users do with a domain stuck
// paused): the switched members' overlays are merged offline, and libvirt's
// persistent definition must name the images the catalog does, so that the
// domains start again with every acknowledged record.
class LibvirtCrashThenDestroyTest : public LibvirtCrashFixture {
 protected:
  static void SetUpTestSuite() { StartSuite("off", /*agent=*/false); }
};

TEST_F(LibvirtCrashThenDestroyTest, DomainsDestroyedWhileSuspendedStartOnTheirRecordedImages) {
  for (size_t i = 0; i < names_.size(); ++i) WaitForRecords(i, 20);
  SnapshotKilledAt(engine::fault::kMemberSwitched, "2");
  std::vector<int64_t> acknowledged;
  for (size_t i = 0; i < names_.size(); ++i) {
    acknowledged.push_back(Acknowledged(Serial(i)));
    Virsh({"destroy", names_[i]});
  }

  OpenEngine();
  const auto& report = engine_->recovery();
  EXPECT_TRUE(report.problems.ok()) << report.problems.ToString();
  EXPECT_EQ(report.rolled_back.size(), 1u) << report.Summary();
  EXPECT_EQ(SnapshotCount(), 0u);
  for (size_t i = 0; i < names_.size(); ++i) {
    const std::string& name = names_[i];
    auto vm = engine_->catalog().GetVm(uuids_[i]);
    ASSERT_TRUE(vm.ok());
    EXPECT_EQ(vm->power, catalog::Power::kOff) << name;
    EXPECT_EQ(Sources(name, "--inactive"), vm->disks) << name << ": persistent XML against catalog";
    for (const auto& image : vm->disks) {
      EXPECT_TRUE(std::filesystem::exists(image)) << image;
      EXPECT_TRUE(CheckClean(image)) << image;
    }
    auto prefix = GapFreePrefix(vm->disks.at(0), dir_ / "scratch.raw");
    ASSERT_TRUE(prefix.ok()) << name << ": " << prefix.status().ToString();
    EXPECT_GE(*prefix, acknowledged[i]) << name << ": acknowledged records lost";
  }
  engine_.reset();
  for (const auto& name : names_) {
    auto started = libvirtd_->Virsh({"start", name});
    EXPECT_TRUE(started.ok()) << name << ": " << started.status().ToString();
  }
}

// Application consistency (ConsistencyLevel 1) on ext4 guests writing files
// beside their guest agent.
class LibvirtAppConsistencyTest : public LibvirtCrashFixture {
 protected:
  static void SetUpTestSuite() { StartSuite("app", /*agent=*/true); }
  void SetUp() override {
    LibvirtCrashFixture::SetUp();
    OpenEngine();
    const auto ready_by = Clock::now() + std::chrono::minutes(3);
    for (const auto& uuid : uuids_) {
      while (!engine_->vms().Live(uuid)->OpenAgent(Soon()).ok()) {
        ASSERT_LT(Clock::now(), ready_by) << "the guest agent never answered";
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
      }
    }
    for (size_t i = 0; i < names_.size(); ++i) WaitForRecords(i, Acknowledged(Serial(i)) + 20);
  }
  // e2fsck -fn of `image`'s filesystem, read beside the running guest.
  int Fsck(const std::string& image) {
    const std::string raw = dir_ / "fsck.raw";
    std::filesystem::remove(raw);
    auto c = Env::Default()->Run({"qemu-img", "convert", "-U", "-O", "raw", image, raw},
                                 std::chrono::minutes(1));
    if (!c.ok() || c->exit_code != 0) return -1;
    auto fsck = Env::Default()->Run({"e2fsck", "-fn", raw}, std::chrono::minutes(1));
    std::filesystem::remove(raw);
    return fsck.ok() ? fsck->exit_code : -1;
  }
};

TEST_F(LibvirtAppConsistencyTest, EveryFrozenFirstDiskIsCleanAndNoGuestStaysFrozen) {
  auto made = engine_->snapshots().Create(
      {.collection_id = collection_, .type = 32768, .consistency = Consistency::kApplication});
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  auto s = engine_->catalog().GetSnapshot(made->id);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->state, SnapshotState::kComplete);
  EXPECT_GT(s->freeze_window_us, 0);
  ASSERT_EQ(s->members.size(), names_.size());
  for (const auto& m : s->members) {
    EXPECT_EQ(m.consistency, Consistency::kApplication) << m.vm_id;
    EXPECT_EQ(Fsck(m.disks.at(0).frozen_image), 0) << "e2fsck -fn of " << m.disks[0].frozen_image;
  }
  ExpectConsistent(/*raw_writer=*/false);
  ExpectAllWrite();  // the fs writer blocks while its guest is frozen
}

TEST_F(LibvirtAppConsistencyTest, KilledWhileGuestsAreFrozenTheGuardThawsThem) {
  const size_t before = SnapshotCount();
  engine_.reset();
  SnapshotKilledAt(engine::fault::kFrozen, "1");
  // No engine runs now: only the thaw guard can thaw them, and the fs
  // writer blocks while its guest is frozen.
  ExpectAllWrite();

  OpenEngine();
  const auto& report = engine_->recovery();
  EXPECT_TRUE(report.problems.ok()) << report.problems.ToString();
  EXPECT_EQ(report.rolled_back.size(), 1u) << report.Summary();
  EXPECT_EQ(SnapshotCount(), before);
  ExpectConsistent(/*raw_writer=*/false);
}

}  // namespace
}  // namespace vmgroup::integration
