// A guest whose disk fills up: QEMU pauses it on the failed write
// ("io-error"). vmgroupd must show it so, with the reason, refuse to
// snapshot it, leave it paused across a restart, and resume it once there is
// room again.
//
// The disk image lives on a tiny tmpfs mounted in a mount namespace of the
// test's own (vmgroupd and its QEMU, the test's children, share it; nothing
// shows outside). The guest (tests/guest_kit, "writer=raw") writes records
// into new clusters until the tmpfs is full; growing the tmpfs afterwards
// makes the room.
#include <gmock/gmock.h>
#include <sched.h>
#include <sys/mount.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "../integration/guest_fixture.h"
#include "daemon_fixture.h"
#include "testing/guest_kit.h"

namespace vmgroup::e2e {
namespace {

using nlohmann::json;

class IoErrorTest : public DaemonFixture {
 protected:
  static void SetUpTestSuite() { integration::BuildGuestKit(); }

  void SetUp() override {
    // Our own mount namespace, mounts not propagated back: the tmpfs is seen
    // by this process and its children only.
    if (::unshare(CLONE_NEWNS) != 0 ||
        ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr)) {
      GTEST_SKIP() << "cannot make a mount namespace here (needs CAP_SYS_ADMIN)";
    }
    std::filesystem::create_directories(Small());
    // 512 KiB: the new image's 192 KiB of metadata, an L2 table and a few
    // data clusters, a few hundred of the guest's records.
    ASSERT_EQ(::mount("tmpfs", Small().c_str(), "tmpfs", 0, "size=512k"), 0);
    DaemonFixture::SetUp();
  }

  std::string Small() const { return dir_ / "small"; }
  std::string Image() const { return Small() + "/db.qcow2"; }

  // Grows the tmpfs the image lives on: the room the guest was missing.
  void MakeRoom() {
    ASSERT_EQ(::mount("tmpfs", Small().c_str(), "tmpfs", MS_REMOUNT, "size=64m"), 0);
  }

  // Creates VM db (id_) on an image on the tmpfs, its guest writing
  // records, and waits until QEMU has paused it on the full disk.
  void FilledGuest() {
    auto made = Env::Default()->Run({"qemu-img", "create", "-q", "-f", "qcow2", Image(), "64M"},
                                    std::chrono::minutes(1));
    EXPECT_TRUE(made.ok() && made->exit_code == 0) << (made.ok() ? made->err : "");
    id_ = Ok({"vm", "create", "db", "--memory", "128", "--disk", Image(), "--kernel",
              std::string(GUEST_KIT_DIR) + "/vmlinuz", "--initrd",
              std::string(GUEST_KIT_DIR) + "/initrd.gz", "--append",
              testing::GuestKernelArgs("writer=raw"), "--start"});
    while (!id_.empty() && id_.back() == '\n') id_.pop_back();
    WaitForState("io-error");
  }

  json Shown() { return json::parse(Ok({"vm", "show", "db", "--json"})); }

  // Waits (at most 5 minutes: TCG on a busy host) until `vm show db` says
  // `state`.
  void WaitForState(const std::string& state) {
    const auto deadline = Clock::now() + std::chrono::minutes(5);
    while (Shown()["state"] != state) {
      ASSERT_LT(Clock::now(), deadline)
          << "VM db never became " << state << "; it is " << Shown().dump() << "; serial log:\n"
          << SerialText();
      Env::Default()->SleepFor(std::chrono::milliseconds(200));
    }
  }

  std::string Serial() const { return StateDir() + "/vms/" + id_ + "/serial.log"; }
  std::string SerialText() const {
    std::ifstream in(Serial());
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  int64_t Acknowledged() const { return integration::Acknowledged(Serial()); }

  std::string id_;  // VM db's
};

// The reason as vmgroupd gives it for the image on the full tmpfs.
MATCHER_P(NamesTheFullDisk, image, "") {
  const std::string s = arg;
  return s.find("disk 0") != std::string::npos && s.find(image) != std::string::npos &&
         s.find("no space left on device") != std::string::npos;
}

TEST_F(IoErrorTest, AVmPausedOnAFullDiskIsShownSoAndCannotBeSnapshotted) {
  FilledGuest();
  if (HasFatalFailure()) return;

  // The CLI, human and JSON.
  json shown = Shown();
  EXPECT_EQ(shown["state"], "io-error");
  EXPECT_THAT(shown["reason"].get<std::string>(), NamesTheFullDisk(Image()));
  json listed = json::parse(Ok({"vm", "list", "--json"}));
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]["state"], "io-error");
  EXPECT_THAT(listed[0]["reason"].get<std::string>(), NamesTheFullDisk(Image()));
  const std::string table = Ok({"vm", "list"});
  EXPECT_NE(table.find("io-error"), std::string::npos) << table;
  EXPECT_THAT(table, NamesTheFullDisk(Image()));
  const std::string human = Ok({"vm", "show", "db"});
  EXPECT_THAT(human, NamesTheFullDisk(Image()));

  // CIM: Paused, Critical failure, Degraded, and the reason.
  CommandOutput cim = Wbem("gi",
                           "Msvm_ComputerSystem.CreationClassName=\"Msvm_ComputerSystem\","
                           "Name=\"" +
                               id_ + "\"");
  EXPECT_EQ(Field(cim.out, "EnabledState"), "32768") << cim.out;
  EXPECT_EQ(Field(cim.out, "HealthState"), "25") << cim.out;
  EXPECT_EQ(Field(cim.out, "OperationalStatus"), "3") << cim.out;
  EXPECT_THAT(Field(cim.out, "StatusDescriptions"), ::testing::HasSubstr("Paused-Critical"));
  EXPECT_THAT(cim.out, NamesTheFullDisk(Image()));

  // A snapshot is refused with that reason, and nothing is made.
  Ok({"group", "create", "g"});
  Ok({"group", "add", "g", "db"});
  CommandOutput snap = Cli({"snapshot", "create", "g", "--name", "s"});
  EXPECT_NE(snap.exit_code, 0);
  EXPECT_THAT(snap.err, ::testing::HasSubstr("VM db is paused by QEMU on an I/O error"));
  EXPECT_THAT(snap.err, NamesTheFullDisk(Image()));
  EXPECT_EQ(json::parse(Ok({"snapshot", "list", "g", "--json"})).size(), 0u);
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(StateDir() + "/vms/" + id_)) {
    if (e.path().extension() == ".qcow2") files.push_back(e.path());
  }
  EXPECT_TRUE(files.empty()) << "an overlay was made: " << files[0];
  EXPECT_EQ(Shown()["state"], "io-error") << "the refused snapshot changed the VM";
}

TEST_F(IoErrorTest, ResumeRetriesAndTheGuestWritesOnOnceThereIsRoom) {
  FilledGuest();
  if (HasFatalFailure()) return;

  // Still full: QEMU retries the write, and pauses the VM again.
  CommandOutput early = Cli({"vm", "resume", "db"});
  if (early.exit_code != 0) {
    EXPECT_THAT(early.err, ::testing::HasSubstr("paused again on an I/O error"));
    EXPECT_THAT(early.err, NamesTheFullDisk(Image()));
  }
  WaitForState("io-error");
  if (HasFatalFailure()) return;

  MakeRoom();
  const int64_t before = Acknowledged();
  Ok({"vm", "resume", "db"});
  EXPECT_EQ(Shown()["state"], "running");
  EXPECT_EQ(Shown()["reason"], "");
  // The guest goes on writing: 100 records more, acknowledged.
  const auto deadline = Clock::now() + std::chrono::minutes(5);
  while (Acknowledged() < before + 100) {
    ASSERT_EQ(Shown()["state"], "running") << SerialText();
    ASSERT_LT(Clock::now(), deadline) << "the guest does not write; serial log:\n" << SerialText();
    Env::Default()->SleepFor(std::chrono::milliseconds(200));
  }
}

TEST_F(IoErrorTest, RecoveryLeavesItPausedAndSaysWhy) {
  FilledGuest();
  if (HasFatalFailure()) return;

  StopDaemon(SIGKILL);
  const size_t before = LogText().size();
  StartDaemon();
  const std::string log = LogText().substr(before);
  EXPECT_THAT(log, ::testing::HasSubstr("paused by QEMU on an I/O error: VM db: disk 0"));
  EXPECT_THAT(log, NamesTheFullDisk(Image()));
  EXPECT_THAT(log, ::testing::Not(::testing::HasSubstr("VMs resumed")))
      << "resumed, it would only retry into the same error";
  EXPECT_EQ(Shown()["state"], "io-error");
  EXPECT_THAT(Shown()["reason"].get<std::string>(), NamesTheFullDisk(Image()));
}

}  // namespace
}  // namespace vmgroup::e2e
