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

#include <algorithm>
#include <filesystem>
#include <regex>
#include <set>
#include <thread>
#include <tuple>

#include "engine/engine.h"
#include "engine/export_layout.h"
#include "engine/fault_points.h"
#include "engine/snapshot_plan.h"
#include "guest_fixture.h"
#include "hypervisor/libvirt/libvirt_driver.h"
#include "testing/guest_kit.h"
#include "testing/private_libvirtd.h"

namespace vmgroup::integration {
namespace {

using catalog::Consistency;
using catalog::SnapshotState;

constexpr uint64_t kDiskBytes = 64 << 20;
constexpr int kDomains = 3;
constexpr std::string_view kDiskOnly = "32768", kRecovery = "2";

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
      testing::GuestDomain g{
          .name = name,
          .kernel = std::string(GUEST_KIT_DIR) + "/vmlinuz",
          .initrd = std::string(GUEST_KIT_DIR) + "/initrd.gz",
          .append = testing::GuestKernelArgs(agent ? "agent=1 writer=fs" : "writer=raw"),
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
  void SnapshotKilledAt(std::string_view point, const std::string& consistency,
                        const std::string& type = std::string(kDiskOnly)) {
    HelperKilledAt(point, {"snapshot", collection_, std::string(point), type, consistency});
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
      ASSERT_LT(Clock::now(), deadline) << names_[i] << " does not write\n"
                                        << libvirtd_->DomainReport(names_[i], Serial(i));
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
  // A disk-only snapshot of the group between writes (5 records before and
  // after it), then the first domain paused by its operator.
  void SnapshotThenPauseTheFirst(catalog::SnapshotRecord* out) {
    for (size_t i = 0; i < names_.size(); ++i) WaitForRecords(i, Acknowledged(Serial(i)) + 5);
    auto s = engine_->snapshots().Create({.collection_id = collection_, .type = 32768});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    *out = *s;
    for (size_t i = 0; i < names_.size(); ++i) WaitForRecords(i, Acknowledged(Serial(i)) + 5);
    ASSERT_TRUE(engine_->vms().Pause(uuids_[0]).ok());
  }
  static std::string BackingOf(const std::string& image) {
    auto info = storage::QemuImg(Env::Default()).Info(image);
    return info.ok() ? info->backing_filename : "";
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
      EXPECT_EQ(OwnCheckpoints(name), RecordedTrackings())
          << name << ": vmgroup's checkpoints against the records (none stray, none lost)";
    }
  }
  // The domain's checkpoints in vmgroup's namespace, and all of them.
  std::set<std::string> Checkpoints(const std::string& name) {
    std::set<std::string> out;
    std::istringstream lines(Virsh({"checkpoint-list", name, "--name"}));
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty()) out.insert(line);
    }
    return out;
  }
  std::set<std::string> OwnCheckpoints(const std::string& name) {
    std::set<std::string> out;
    for (const auto& c : Checkpoints(name)) {
      if (c.starts_with("vmgroup-")) out.insert(c);
    }
    return out;
  }
  // What the catalog names: each recovery snapshot's tracking and each
  // reference point's.
  std::set<std::string> RecordedTrackings() {
    std::set<std::string> out;
    auto snapshots = engine_->catalog().ListSnapshots(collection_);
    EXPECT_TRUE(snapshots.ok());
    for (const auto& s : snapshots.ok() ? *snapshots : std::vector<catalog::SnapshotRecord>{}) {
      if (s.type == engine::kSnapshotRecovery) out.insert("vmgroup-" + s.tag);
    }
    auto rps = engine_->catalog().ListReferencePoints(collection_);
    EXPECT_TRUE(rps.ok());
    for (const auto& rp : rps.ok() ? *rps : std::vector<catalog::ReferencePointRecord>{}) {
      out.insert(rp.bitmap);
    }
    return out;
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

// A fault point and the SnapshotType the helper takes: disk-only, and
// recovery (with a libvirt checkpoint per member, made before the pause).
using CrashCase = std::tuple<std::string_view, std::string_view>;

class LibvirtCrashTest : public LibvirtCrashFixture,
                         public ::testing::WithParamInterface<CrashCase> {
 protected:
  static void SetUpTestSuite() { StartSuite("crash", /*agent=*/false); }
};

TEST_P(LibvirtCrashTest, KilledAtAFaultPointLeavesDomainsRunningAndLibvirtTruthful) {
  const auto [point, type] = GetParam();
  OpenEngine();
  const size_t before = SnapshotCount();
  for (size_t i = 0; i < names_.size(); ++i) WaitForRecords(i, Acknowledged(Serial(i)) + 5);
  engine_.reset();

  SnapshotKilledAt(point, "2", std::string(type));
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
  auto again = engine_->snapshots().Create(
      {.collection_id = collection_,
       .type = type == kRecovery ? engine::kSnapshotRecovery : engine::kSnapshotDiskOnly});
  EXPECT_TRUE(again.ok()) << again.status().ToString();
  ExpectConsistent(/*raw_writer=*/true);
}

INSTANTIATE_TEST_SUITE_P(AtEveryFaultPoint, LibvirtCrashTest,
                         ::testing::Combine(::testing::ValuesIn(engine::fault::kAll),
                                            ::testing::Values(kDiskOnly, kRecovery)),
                         [](const auto& param_info) {
                           std::string n(std::get<0>(param_info.param));
                           for (auto& c : n) {
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return n + (std::get<1>(param_info.param) == kRecovery ? "_recovery"
                                                                                  : "_disk_only");
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
};

TEST_P(LibvirtApplyCrashTest, KilledWhileApplyingEveryDomainRunsAgainAsBefore) {
  const std::string_view point = GetParam();
  const bool committed = point == engine::fault::kApplyCommitted;
  OpenEngine();
  catalog::SnapshotRecord snapshot;
  ASSERT_NO_FATAL_FAILURE(SnapshotThenPauseTheFirst(&snapshot));
  const catalog::SnapshotRecord* s = &snapshot;
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

// This host's part of an apply across hosts, of domains that ran (one
// paused by its operator): prepared, it is held (the domains shut off) also
// across a restart of vmgroupd, whose recovery leaves it be; committed
// after the restart, every domain starts again as it was (the paused one
// paused) on new overlays of the snapshot's images. The coordinator's
// side: spanning_snapshots_test, net_hosts_test.
class LibvirtHeldApplyTest : public LibvirtCrashFixture {
 protected:
  static void SetUpTestSuite() { StartSuite("held", /*agent=*/false); }
};

TEST_F(LibvirtHeldApplyTest, APartHeldAcrossARestartStartsTheDomainsAgainOnceCommitted) {
  OpenEngine();
  catalog::SnapshotRecord snapshot;
  ASSERT_NO_FATAL_FAILURE(SnapshotThenPauseTheFirst(&snapshot));
  const catalog::SnapshotRecord* s = &snapshot;
  ASSERT_TRUE(engine_->snapshots().host_applies().Prepare(s->id).ok());
  for (const auto& name : names_) EXPECT_EQ(DomState(name), "shut off") << name;

  engine_.reset();
  OpenEngine();
  EXPECT_EQ(engine_->recovery().applies_held, std::vector<std::string>{s->id})
      << engine_->recovery().Summary();
  for (const auto& name : names_) EXPECT_EQ(DomState(name), "shut off") << name;
  engine::HostApplies& applies = engine_->snapshots().host_applies();
  EXPECT_EQ(applies.CheckNotHeld(uuids_[1], "starting it").code(), Code::kInvalidState);

  ASSERT_TRUE(applies.Commit(s->id).ok());
  EXPECT_EQ(DomState(names_[0]), "paused") << "started again paused, as it was";
  for (size_t i = 0; i < names_.size(); ++i) {
    if (i > 0) {
      EXPECT_EQ(DomState(names_[i]), "running") << names_[i];
    }
    const auto disks = engine_->catalog().GetVm(uuids_[i])->disks;
    const auto& member = s->members.at(i);
    ASSERT_EQ(member.vm_id, uuids_[i]);
    for (size_t d = 0; d < disks.size(); ++d) {
      EXPECT_EQ(BackingOf(disks[d]), member.disks.at(d).frozen_image) << names_[i];
    }
  }
  EXPECT_TRUE(engine_->catalog().ListApplyIntents()->empty());
  ASSERT_TRUE(engine_->vms().Resume(uuids_[0]).ok());
  ExpectConsistent(/*raw_writer=*/true);
  ExpectAllWrite();
}

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

// Change tracking through libvirt checkpoints: recovery snapshots, a
// reference point and an incremental export of writing domains.
class LibvirtTrackingTest : public LibvirtCrashFixture {
 protected:
  static void SetUpTestSuite() { StartSuite("track", /*agent=*/false); }
  void SetUp() override {
    LibvirtCrashFixture::SetUp();
    OpenEngine();
  }
  catalog::SnapshotRecord Recovery() {
    for (size_t i = 0; i < names_.size(); ++i) WaitForRecords(i, Acknowledged(Serial(i)) + 20);
    auto s = engine_->snapshots().Create(
        {.collection_id = collection_, .type = engine::kSnapshotRecovery});
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? *s : catalog::SnapshotRecord{};
  }
  uint64_t OwnBytes(const std::string& image) {
    auto n = storage::QemuImg(Env::Default()).OwnDataBytes(image);
    EXPECT_TRUE(n.ok()) << image << ": " << n.status().ToString();
    return n.ok() ? *n : 0;
  }
};

TEST_F(LibvirtTrackingTest, RecoverySnapshotsTrackChangesForAnIncrementalExport) {
  // Another tool's checkpoint, which vmgroup must never touch.
  Virsh({"checkpoint-create-as", names_[0], "other-tool"});
  ASSERT_TRUE(Checkpoints(names_[0]).count("other-tool"));
  // Three clusters of records (512 bytes each) before the first cut: what
  // the incremental export leaves out.
  for (size_t i = 0; i < names_.size(); ++i) WaitForRecords(i, 400);

  const auto s1 = Recovery();
  ASSERT_EQ(s1.members.size(), names_.size());
  const std::string c1 = "vmgroup-" + s1.tag;
  for (const auto& name : names_) {
    EXPECT_EQ(OwnCheckpoints(name), std::set<std::string>{c1}) << name;
  }
  ExpectConsistent(/*raw_writer=*/true);
  const std::string full = dir_ / "exports/full";
  auto exported = engine_->snapshots().Export({.snapshot_id = s1.id, .directory = full});
  ASSERT_TRUE(exported.ok()) << exported.status().ToString();

  auto rp = engine_->snapshots().ConvertToReferencePoint(s1.id);
  ASSERT_TRUE(rp.ok()) << rp.status().ToString();
  EXPECT_EQ(rp->bitmap, c1) << "the reference point keeps the cut's checkpoint";
  for (const auto& name : names_) EXPECT_EQ(OwnCheckpoints(name), std::set<std::string>{c1});
  ExpectConsistent(/*raw_writer=*/true);

  // Writes since the reference point, then a second recovery snapshot.
  const auto s2 = Recovery();
  ASSERT_EQ(s2.members.size(), names_.size());
  const std::string c2 = "vmgroup-" + s2.tag;
  for (const auto& name : names_) {
    EXPECT_EQ(OwnCheckpoints(name), (std::set<std::string>{c1, c2})) << name;
  }
  const std::string inc = dir_ / "exports/inc";
  auto incremental =
      engine_->snapshots().Export({.snapshot_id = s2.id, .directory = inc, .base = rp->id});
  ASSERT_TRUE(incremental.ok()) << incremental.status().ToString();
  EXPECT_EQ(incremental->base.reference_point_id, rp->id);
  const std::string full2 = dir_ / "exports/full2";
  ASSERT_TRUE(engine_->snapshots().Export({.snapshot_id = s2.id, .directory = full2}).ok());
  for (const auto& m : s2.members) {
    for (const auto& d : m.disks) {
      const std::string file = inc + "/" + engine::ExportDiskFile(m.vm_id, d.index);
      const std::string whole = full2 + "/" + engine::ExportDiskFile(m.vm_id, d.index);
      // The base export below the incremental reads as the frozen image.
      auto same = Env::Default()->Run({"qemu-img", "compare", "-U", file, d.frozen_image},
                                      std::chrono::minutes(2));
      ASSERT_TRUE(same.ok());
      EXPECT_EQ(same->exit_code, 0)
          << file << " against " << d.frozen_image << ": " << same->out << same->err;
      if (d.index == 0) {
        EXPECT_LT(OwnBytes(file), OwnBytes(whole)) << file << ": only what changed";
      }
    }
    auto prefix = GapFreePrefix(m.disks.at(0).frozen_image, dir_ / "scratch.raw");
    EXPECT_TRUE(prefix.ok()) << prefix.status().ToString();
  }

  // The second snapshot goes, and its checkpoint with it; the reference
  // point's stays. The reference point's export path works too.
  ASSERT_TRUE(engine_->snapshots().Destroy({s2.id}).ok());
  for (const auto& name : names_) EXPECT_EQ(OwnCheckpoints(name), std::set<std::string>{c1});
  auto again =
      engine_->snapshots().ExportReferencePoint(rp->id, {.directory = dir_ / "exports/rp"});
  EXPECT_TRUE(again.ok()) << again.status().ToString();
  for (const auto& name : names_) EXPECT_EQ(OwnCheckpoints(name), std::set<std::string>{c1});

  // Deleting the reference point deletes vmgroup's checkpoints only.
  ASSERT_TRUE(engine_->snapshots().DestroyReferencePoint(rp->id).ok());
  for (const auto& name : names_) EXPECT_TRUE(OwnCheckpoints(name).empty()) << name;
  EXPECT_TRUE(Checkpoints(names_[0]).count("other-tool")) << "another tool's checkpoint stays";
  ExpectConsistent(/*raw_writer=*/true);
  ExpectAllWrite();
}

// A backup session of libvirt domains: each frozen image served offline
// (hypervisor/libvirt/frozen_serving.h), read by nbdcopy as it was at the
// cut, with the reference point's checkpoint as the changes' context;
// libvirt's own job slot stays free (a snapshot of the domains goes on while
// it serves), the checkpoints stay libvirt's, and nothing of the session is
// left once it ends into the next reference point.
TEST_F(LibvirtTrackingTest, ABackupSessionServesTheDomainsCutWithTheCheckpointsChanges) {
  for (size_t i = 0; i < names_.size(); ++i) WaitForRecords(i, 400);
  const auto s1 = Recovery();
  ASSERT_EQ(s1.members.size(), names_.size());
  const std::string c1 = "vmgroup-" + s1.tag;
  auto rp = engine_->snapshots().ConvertToReferencePoint(s1.id);
  ASSERT_TRUE(rp.ok()) << rp.status().ToString();
  for (size_t i = 0; i < names_.size(); ++i) WaitForRecords(i, Acknowledged(Serial(i)) + 20);

  auto& backups = engine_->snapshots().backups();
  auto s = backups.Begin({.collection_id = collection_, .incremental_from = rp->id});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto taken = engine_->catalog().GetSnapshot(s->snapshot_id);
  ASSERT_TRUE(taken.ok());
  ASSERT_EQ(s->members.size(), taken->members.size());
  std::vector<std::string> files;
  for (size_t i = 0; i < s->members.size(); ++i) {
    const engine::BackupMember& m = s->members[i];
    for (const auto& d : m.disks) {
      EXPECT_EQ(d.context, "qemu:dirty-bitmap:" + c1) << d.full_read_reason;
      files.push_back(d.socket);
      files.push_back(d.socket + ".pid");
      const std::string copy = dir_ / ("copy-" + m.vm_name + "-" + std::to_string(d.index));
      auto r = Env::Default()->Run({"nbdcopy", d.uri, copy}, std::chrono::minutes(2));
      ASSERT_TRUE(r.ok() && r->exit_code == 0) << (r.ok() ? r->err : r.status().ToString());
      auto same = Env::Default()->Run(
          {"qemu-img", "compare", "-U", copy, taken->members[i].disks.at(d.index).frozen_image});
      ASSERT_TRUE(same.ok());
      EXPECT_EQ(same->exit_code, 0) << m.vm_name << " disk " << d.index << ": " << same->out;
      auto changes = backups.Changes(s->id, m.vm_id, d.index, 0, 0);
      ASSERT_TRUE(changes.ok()) << changes.status().ToString();
      if (d.index == 0) {
        EXPECT_FALSE(changes->ranges.empty()) << "the guest wrote since the point";
      }
    }
  }
  // libvirt's one job slot per domain is not the session's: a snapshot of
  // the domains is taken and destroyed while it serves.
  const auto between = Recovery();
  ASSERT_FALSE(between.id.empty());
  ASSERT_TRUE(engine_->snapshots().Destroy({between.id}).ok());

  auto rp2 = backups.End({.id = s->id, .to_reference_point = true});
  ASSERT_TRUE(rp2.ok() && rp2->has_value()) << rp2.status().ToString();
  EXPECT_EQ((*rp2)->bitmap, "vmgroup-" + taken->tag);
  for (const auto& name : names_) {
    EXPECT_EQ(OwnCheckpoints(name), (std::set<std::string>{c1, (*rp2)->bitmap})) << name;
  }
  for (const auto& f : files) EXPECT_FALSE(std::filesystem::exists(f)) << f;
  EXPECT_TRUE(backups.List().empty());
  ExpectConsistent(/*raw_writer=*/true);
}

TEST_F(LibvirtTrackingTest, StandardSnapshotsOfDomainsAreRefusedAndChangeNothing) {
  const size_t before = SnapshotCount();
  Status refused = engine_->snapshots()
                       .Create({.collection_id = collection_, .type = engine::kSnapshotStandard})
                       .status();
  EXPECT_EQ(refused.code(), Code::kNotSupported) << refused.ToString();
  EXPECT_EQ(SnapshotCount(), before);
  ExpectConsistent(/*raw_writer=*/true);
}

TEST_F(LibvirtTrackingTest, AShutOffDomainsCheckpointGoesWithItsBitmaps) {
  const auto s1 = Recovery();
  ASSERT_EQ(s1.members.size(), names_.size());
  auto rp = engine_->snapshots().ConvertToReferencePoint(s1.id);
  ASSERT_TRUE(rp.ok()) << rp.status().ToString();
  // The first domain is shut off; libvirt keeps its checkpoint, and the
  // bitmaps are in its images.
  ASSERT_TRUE(engine_->vms().Stop(uuids_[0]).ok());
  auto vm = engine_->catalog().GetVm(uuids_[0]);
  ASSERT_TRUE(vm.ok());
  auto marked = [&] {
    int n = 0;
    for (const auto& disk : vm->disks) {
      auto chain = storage::QemuImg(Env::Default()).Chain(disk);
      EXPECT_TRUE(chain.ok()) << chain.status().ToString();
      for (const auto& image : chain.ok() ? *chain : std::vector<storage::ImageInfo>{}) {
        n += static_cast<int>(std::count(image.bitmaps.begin(), image.bitmaps.end(), rp->bitmap));
      }
    }
    return n;
  };
  EXPECT_EQ(OwnCheckpoints(names_[0]), std::set<std::string>{rp->bitmap});
  EXPECT_GT(marked(), 0);

  ASSERT_TRUE(engine_->snapshots().DestroyReferencePoint(rp->id).ok());
  EXPECT_TRUE(OwnCheckpoints(names_[0]).empty()) << "deleted while the domain is off";
  EXPECT_EQ(marked(), 0) << "and its bitmaps taken out of the images";
  for (size_t i = 1; i < names_.size(); ++i) EXPECT_TRUE(OwnCheckpoints(names_[i]).empty());

  // (It boots again: its writer starts over, so no ExpectAllWrite here.)
  ASSERT_TRUE(engine_->vms().Start(uuids_[0]).ok());
  ExpectConsistent(/*raw_writer=*/true);
}

}  // namespace
}  // namespace vmgroup::integration
