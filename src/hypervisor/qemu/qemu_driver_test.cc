// The QEMU driver against real QEMU (a firmware-only VM: no guest needed to
// exercise the block layer).
#include "hypervisor/qemu/qemu_driver.h"

#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <functional>
#include <sstream>
#include <thread>

#include "base/huge_pages.h"
#include "hypervisor/fake/fake_vm.h"
#include "hypervisor/qemu/qemu_vm.h"
#include "hypervisor/qemu/qmp_commands.h"
#include "storage/qemu_img.h"
#include "testing/guest_io.h"
#include "testing/huge_page_pool.h"
#include "testing/huge_pages_env.h"
#include "testing/process_status.h"
#include "testing/temp_dir.h"
#include "testing/tiny_vms.h"

namespace vmgroup::hypervisor::qemu {
namespace {

Deadline Soon() { return Clock::now() + std::chrono::seconds(10); }

std::string NbdUri(const std::string& socket, const std::string& export_name) {
  return "nbd+unix:///" + export_name + "?socket=" + socket;
}

// The extents of NBD metadata context `context` of an export that
// `nbdinfo --map` reports with flag 1 (a dirty bitmap's "dirty"), as
// (offset, length).
Result<std::vector<std::pair<uint64_t, uint64_t>>> MarkedExtents(const std::string& uri,
                                                                 const std::string& context) {
  VMG_ASSIGN_OR_RETURN(auto r, Env::Default()->Run({"nbdinfo", "--map=" + context, uri}));
  if (r.exit_code != 0) return Status::Failed("nbdinfo: " + r.err);
  std::vector<std::pair<uint64_t, uint64_t>> marked;
  std::istringstream lines(r.out);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    uint64_t offset = 0, length = 0, type = 0;
    if (!(fields >> offset >> length >> type)) return Status::Failed("nbdinfo said: " + line);
    if (type & 1) marked.emplace_back(offset, length);
  }
  return marked;
}

// The block exports the QEMU behind monitor `monitor` lists.
size_t ExportsOf(const std::string& monitor) {
  auto qmp = QmpClient::Connect(Env::Default(), monitor, Soon());
  if (!qmp.ok()) return SIZE_MAX;
  auto exports = qmp::QueryBlockExports(**qmp, Soon());
  return exports.ok() ? exports->size() : SIZE_MAX;
}

class QemuDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 2; ++i) {
      ASSERT_TRUE(img_.Create(dir_ / ("d" + std::to_string(i) + ".qcow2"), 16 << 20).ok());
    }
    spec_.uuid = "5c2f3c8e-1111-4a4a-8b8b-000000000001";
    spec_.name = "t1";
    spec_.config.memory_mib = 64;
    spec_.disks = {dir_ / "d0.qcow2", dir_ / "d1.qcow2"};
    spec_.run_dir = dir_.path();
  }
  void TearDown() override {
    if (vm_) {
      EXPECT_TRUE(vm_->PowerOff().ok());
    }
    // A test that failed midway may have dropped its handle: end QEMU by PID.
    if (pid_ > 0 && Env::Default()->IsAlive(pid_)) {
      (void)Env::Default()->Kill(pid_, SIGKILL);
      (void)Env::Default()->WaitGone(pid_, std::chrono::seconds(10));
    }
  }
  void StartVm() {
    auto vm = driver_->Start(spec_, {});
    ASSERT_TRUE(vm.ok()) << vm.status().ToString();
    vm_ = std::move(vm).value();
    pid_ = vm_->pid();
  }
  // StartVm from a thread whose signals are set as vmgroupd sets its own:
  // SIGTERM and SIGINT blocked (it waits for them), SIGPIPE ignored.
  void StartVmAsTheDaemonWould() {
    struct sigaction ignore {
    }, before{};
    ignore.sa_handler = SIG_IGN;
    ASSERT_EQ(::sigaction(SIGPIPE, &ignore, &before), 0);
    std::thread([this] {
      sigset_t stop;
      sigemptyset(&stop);
      sigaddset(&stop, SIGTERM);
      sigaddset(&stop, SIGINT);
      pthread_sigmask(SIG_BLOCK, &stop, nullptr);
      StartVm();
    }).join();
    ASSERT_EQ(::sigaction(SIGPIPE, &before, nullptr), 0);
  }
  // The cut's send/await pair, as one call (after PrepareTracking, as the
  // engine calls it, when the switch starts a tracking).
  Status Switch(const std::vector<Overlay>& overlays, const std::string& bitmap, bool pause = false,
                bool* paused = nullptr) {
    bool p = false;
    if (!bitmap.empty()) VMG_RETURN_IF_ERROR(vm_->PrepareTracking(overlays, bitmap, Soon()));
    VMG_RETURN_IF_ERROR(vm_->SendSwitch(overlays, bitmap, pause, Soon()));
    Status s = vm_->AwaitSwitch(Soon(), &p);
    if (paused) *paused = p;
    return s;
  }
  // A save that cannot be written (prepared at `path`): reported, the file
  // gone, and QEMU fully alive afterwards (QEMU 7.2 wedges when a background
  // snapshot's stream breaks: the driver must never let it break).
  void ExpectSaveFailsAndTheVmRunsOn(const std::string& path) {
    ASSERT_TRUE(vm_->Pause(Soon()).ok());
    ASSERT_TRUE(vm_->SendResume(Soon(), /*save_state=*/true).ok());
    (void)vm_->AwaitResume(Soon());  // QEMU may resume before the write fails
    Status saved = vm_->AwaitStateSaved(Soon());
    EXPECT_EQ(saved.code(), Code::kIoError) << saved.ToString();
    EXPECT_NE(saved.message().find(path), std::string::npos) << saved.message();
    EXPECT_FALSE(Env::Default()->FileExists(path));
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // a wedge shows by now
    auto state = vm_->State(Soon());
    ASSERT_TRUE(state.ok()) << state.status().ToString();
    EXPECT_EQ(*state, RunState::kRunning);
    const auto t0 = Clock::now();
    ASSERT_TRUE(vm_->PowerOff().ok());
    vm_.reset();
    EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5)) << "QEMU quit when asked";
  }
  // Starts the VM and switches it to new overlays "s1" (returned in
  // `overlays`), paused; then a daemon that dies mid-revert sends `revert`
  // on a connection of its own, and the VM is attached again.
  void SwitchThenDieMidRevert(std::vector<Overlay>* overlays,
                              const std::function<Status(QmpClient&)>& revert) {
    StartVm();
    *overlays = MakeOverlays("s1");
    ASSERT_TRUE(vm_->OpenOverlays(*overlays, Soon()).ok());
    ASSERT_TRUE(Switch(*overlays, "", /*pause=*/true).ok());
    vm_.reset();
    {
      auto qmp = QmpClient::Connect(Env::Default(), QemuDriver::MonitorPath(spec_), Soon());
      ASSERT_TRUE(qmp.ok()) << qmp.status().ToString();
      Status sent = revert(**qmp);
      ASSERT_TRUE(sent.ok()) << sent.ToString();
    }
    auto again = driver_->Attach(spec_, pid_);
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    vm_ = std::move(again).value();
  }
  // With a memory state prepared: a cut to new overlays `tag` (returned in
  // `overlays`) that saves it as the VM runs on, then the VM powered off.
  void CutSavingStateThenPowerOff(const std::string& tag, std::vector<Overlay>* overlays) {
    *overlays = MakeOverlays(tag);
    ASSERT_TRUE(vm_->OpenOverlays(*overlays, Soon()).ok());
    ASSERT_TRUE(Switch(*overlays, "", /*pause=*/true).ok());
    ASSERT_TRUE(vm_->SendResume(Soon(), /*save_state=*/true).ok());
    ASSERT_TRUE(vm_->AwaitResume(Soon()).ok());
    EXPECT_EQ(*vm_->State(Soon()), RunState::kRunning) << "running while the RAM streams out";
    ASSERT_TRUE(vm_->AwaitStateSaved(Soon()).ok());
    ASSERT_TRUE(vm_->PowerOff().ok());
    vm_.reset();
  }
  // Starts the VM on `overlays` from memory state `state`: paused where it
  // was taken, running once resumed.
  void StartFromState(const std::vector<Overlay>& overlays, const std::string& state) {
    spec_.disks = {overlays[0].path, overlays[1].path};
    spec_.incoming = state;
    StartVm();
    EXPECT_EQ(*vm_->State(Soon()), RunState::kPaused) << "loaded, waiting to be resumed";
    ASSERT_TRUE(vm_->Resume(Soon()).ok());
    EXPECT_EQ(*vm_->State(Soon()), RunState::kRunning);
  }
  std::vector<Overlay> MakeOverlays(const std::string& tag) {
    std::vector<Overlay> overlays;
    for (int i = 0; i < 2; ++i) {
      std::string path = dir_ / ("d" + std::to_string(i) + "-" + tag + ".qcow2");
      EXPECT_TRUE(img_.CreateOverlay(spec_.disks[i], path).ok());
      overlays.push_back({i, path, tag, spec_.disks[i]});
    }
    return overlays;
  }

  testing::TempDir dir_;
  int pid_ = 0;
  storage::QemuImg img_{Env::Default()};
  std::unique_ptr<QemuDriver> driver_ = *QemuDriver::Create(Env::Default(), testing::TestQemu());
  VmSpec spec_;
  std::unique_ptr<Vm> vm_;
};

// A VM of another driver handed to this one's guard is refused by name,
// never cast and read as a QEMU.
TEST_F(QemuDriverTest, AGuardRefusesAVmThatIsNotOneOfItsQemus) {
  auto stranger = std::make_shared<fake::FakeVm>(std::vector<std::string>{"/x.qcow2"});
  auto guard = driver_->GuardThaw({stranger}, std::chrono::seconds(1));
  EXPECT_EQ(guard.status().code(), Code::kInvalidArgument);
  EXPECT_NE(guard.status().message().find("not one of vmgroupd's own QEMUs"), std::string::npos)
      << guard.status().message();
}

TEST_F(QemuDriverTest, PauseResumeAndState) {
  StartVm();
  EXPECT_EQ(*vm_->State(Soon()), RunState::kRunning);
  ASSERT_TRUE(vm_->Pause(Soon()).ok());
  EXPECT_EQ(*vm_->State(Soon()), RunState::kPaused);
  ASSERT_TRUE(vm_->Resume(Soon()).ok());
  EXPECT_EQ(*vm_->State(Soon()), RunState::kRunning);
}

// Started paused, the guest waits before its first instruction until it is
// resumed (QEMU's "prelaunch" reads as paused).
TEST_F(QemuDriverTest, AVmStartedPausedRunsOnlyOnceResumed) {
  spec_.paused = true;
  StartVm();
  EXPECT_EQ(*vm_->State(Soon()), RunState::kPaused);
  ASSERT_TRUE(vm_->Resume(Soon()).ok());
  EXPECT_EQ(*vm_->State(Soon()), RunState::kRunning);
}

TEST_F(QemuDriverTest, AQemuStartedWhereSigtermIsBlockedEndsInOrderOnSigterm) {
  StartVmAsTheDaemonWould();
  ASSERT_TRUE(vm_);
  ASSERT_TRUE(Env::Default()->Kill(pid_, SIGTERM).ok());
  EXPECT_TRUE(Env::Default()->WaitGone(pid_, std::chrono::seconds(20)).ok())
      << "QEMU ignored SIGTERM";
  EXPECT_NE(Env::Default()->ReadFile(QemuDriver::LogPath(spec_))->find("terminating on signal 15"),
            std::string::npos)
      << "QEMU's own orderly exit";
  vm_.reset();
}

TEST_F(QemuDriverTest, QemuRunsSandboxedAndUnderRootAsItsOwnUser) {
  StartVm();
  EXPECT_EQ(testing::ProcessStatus(pid_, "Seccomp"), "2")
      << "a seccomp filter (-sandbox) is in place";
  EXPECT_EQ(testing::ProcessStatus(pid_, "NoNewPrivs"), "1");
  if (::geteuid() != 0) GTEST_SKIP() << "QEMU runs as its own user only under root";
  const passwd* user = ::getpwnam(testing::kQemuUser);
  ASSERT_NE(user, nullptr) << "scripts/install-deps.sh creates " << testing::kQemuUser;
  const std::string uid = std::to_string(user->pw_uid);
  EXPECT_EQ(testing::ProcessStatus(pid_, "Uid"), uid + "\t" + uid + "\t" + uid + "\t" + uid);
  EXPECT_EQ(testing::ProcessStatus(pid_, "CapEff"), "0000000000000000");
  EXPECT_EQ(testing::ProcessStatus(pid_, "CapBnd"), "0000000000000000");
  // It was handed the images it writes; the run directory it may only
  // pass through; its sockets and logs are the daemon's.
  struct stat st;
  ASSERT_EQ(::stat(spec_.disks[0].c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, user->pw_uid);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(::stat(spec_.run_dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_gid, user->pw_gid);
  EXPECT_EQ(st.st_mode & 07777, 0710u);
  for (const auto& file : {QemuDriver::MonitorPath(spec_), QemuDriver::SerialPath(spec_)}) {
    ASSERT_EQ(::stat(file.c_str(), &st), 0) << file;
    EXPECT_EQ(st.st_uid, 0u) << file;
  }
  // And through them it works: an overlay it is handed becomes its disk.
  auto overlays = MakeOverlays("s1");
  ASSERT_TRUE(vm_->OpenOverlays(overlays, Soon()).ok());
  ASSERT_TRUE(Switch(overlays, "cp1", /*pause=*/true).ok());
  ASSERT_TRUE(vm_->RevertOverlays(overlays).ok());
  ASSERT_TRUE(vm_->Resume(Soon()).ok());
}

TEST_F(QemuDriverTest, WhatIsHandedOverIsTheRunDirectorysImagesNeverWhatALinkNames) {
  if (::geteuid() != 0) GTEST_SKIP() << "QEMU runs as its own user only under root";
  const std::string secret = dir_ / "elsewhere/secret", notes = dir_ / "notes.txt";
  ASSERT_TRUE(Env::Default()->CreateDirs(dir_ / "elsewhere").ok());
  ASSERT_TRUE(Env::Default()->WriteFile(secret, "root's").ok());
  ASSERT_TRUE(Env::Default()->WriteFile(notes, "not an image").ok());
  ASSERT_EQ(::symlink(secret.c_str(), (dir_ / "link.qcow2").c_str()), 0);
  StartVm();
  struct stat st;
  for (const auto& file : {secret, notes}) {
    ASSERT_EQ(::stat(file.c_str(), &st), 0) << file;
    EXPECT_EQ(st.st_uid, 0u) << file;
  }
  ASSERT_EQ(::stat(spec_.disks[1].c_str(), &st), 0);
  EXPECT_NE(st.st_uid, 0u) << "the images are handed over";
}

TEST_F(QemuDriverTest, AnImageQemusUserCannotReadIsNamedWithThatUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "QEMU runs as its own user only under root";
  // An operator's template in a directory only root may enter.
  const std::string hidden = dir_ / "hidden", base = hidden + "/template.qcow2";
  ASSERT_TRUE(Env::Default()->CreateDirs(hidden).ok());
  ASSERT_EQ(::chmod(hidden.c_str(), 0700), 0);
  ASSERT_TRUE(img_.Create(base, 16 << 20).ok());
  ASSERT_TRUE(img_.CreateOverlay(base, dir_ / "on-template.qcow2").ok());
  spec_.disks[0] = dir_ / "on-template.qcow2";
  auto vm = driver_->Start(spec_, {});
  if (vm.ok()) vm_ = std::move(vm).value();  // for TearDown to power off
  ASSERT_FALSE(vm_) << "QEMU read a file its user may not";
  const std::string why = vm.status().message();
  EXPECT_NE(why.find(base), std::string::npos) << why;
  EXPECT_NE(why.find(std::string("user ") + testing::kQemuUser), std::string::npos) << why;
  struct stat st;
  ASSERT_EQ(::stat(base.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u) << "a template is left as it is";
}

TEST_F(QemuDriverTest, SwitchMakesOverlaysActiveWithBitmapAndRevertUndoesIt) {
  StartVm();
  auto overlays = MakeOverlays("s1");
  ASSERT_TRUE(vm_->OpenOverlays(overlays, Soon()).ok());
  bool paused = false;
  Status sw = Switch(overlays, "cp1", /*pause=*/true, &paused);
  ASSERT_TRUE(sw.ok()) << sw.ToString();
  EXPECT_TRUE(paused);
  EXPECT_EQ(*vm_->State(Soon()), RunState::kPaused);
  EXPECT_EQ(*vm_->ActiveImages(Soon()),
            (std::vector<std::string>{overlays[0].path, overlays[1].path}));

  ASSERT_TRUE(vm_->RevertOverlays(overlays).ok());
  EXPECT_EQ(*vm_->ActiveImages(Soon()), spec_.disks);
  EXPECT_TRUE(vm_->RevertOverlays(overlays).ok()) << "a second revert finds nothing to do";
  ASSERT_TRUE(vm_->SendResume(Soon(), false).ok());
  ASSERT_TRUE(vm_->AwaitResume(Soon()).ok());
  EXPECT_EQ(*vm_->State(Soon()), RunState::kRunning);
  // Once closed, the overlay can be switched to again under a new node.
  auto again = MakeOverlays("s2");
  ASSERT_TRUE(vm_->OpenOverlays(again, Soon()).ok());
  ASSERT_TRUE(Switch(again, "").ok());
  EXPECT_EQ(*vm_->State(Soon()), RunState::kRunning) << "no pause asked, none made";
  EXPECT_EQ((*vm_->ActiveImages(Soon()))[1], again[1].path);
}

TEST_F(QemuDriverTest, TheSwitchSaysWhenItsPauseWasAnswered) {
  StartVm();
  auto overlays = MakeOverlays("s1");
  ASSERT_TRUE(vm_->OpenOverlays(overlays, Soon()).ok());
  const Clock::time_point sent = Clock::now();
  ASSERT_TRUE(Switch(overlays, "", /*pause=*/true).ok());
  const Clock::time_point switched = Clock::now();
  EXPECT_GE(vm_->PauseAnsweredAt(), sent);
  EXPECT_LE(vm_->PauseAnsweredAt(), switched);
  ASSERT_TRUE(vm_->RevertOverlays(overlays).ok());
  auto again = MakeOverlays("s2");
  ASSERT_TRUE(vm_->OpenOverlays(again, Soon()).ok());
  ASSERT_TRUE(Switch(again, "").ok());
  EXPECT_EQ(vm_->PauseAnsweredAt(), Clock::time_point{}) << "no pause was sent";
  ASSERT_TRUE(vm_->Resume(Soon()).ok());
}

TEST_F(QemuDriverTest, BitmapPersistsInTheImageOnceQemuClosesIt) {
  StartVm();
  auto overlays = MakeOverlays("s1");
  ASSERT_TRUE(vm_->OpenOverlays(overlays, Soon()).ok());
  ASSERT_TRUE(Switch(overlays, "cp1").ok());
  ASSERT_TRUE(vm_->PowerOff().ok());
  vm_.reset();
  auto chain = img_.Chain(overlays[0].path);
  ASSERT_TRUE(chain.ok());
  ASSERT_EQ(chain->size(), 2u);
  EXPECT_EQ((*chain)[0].bitmaps, std::vector<std::string>{"cp1"});
  EXPECT_EQ((*chain)[1].filename, spec_.disks[0]);
  EXPECT_TRUE(img_.Check(overlays[0].path).ok());
}

TEST_F(QemuDriverTest, FailedTransactionSwitchesNothing) {
  StartVm();
  auto overlays = MakeOverlays("s1");
  ASSERT_TRUE(vm_->OpenOverlays(overlays, Soon()).ok());
  // The same overlay twice: QEMU refuses the second action, so neither applies.
  Status s = Switch({overlays[0], overlays[1], overlays[0]}, "");
  EXPECT_EQ(s.code(), Code::kFailed) << s.ToString();
  // QEMU's own explanation reaches the caller, prefixed with the command.
  EXPECT_NE(s.message().find("transaction: Node 'd0' is busy"), std::string::npos) << s.message();
  EXPECT_EQ(*vm_->ActiveImages(Soon()), spec_.disks);
  EXPECT_TRUE(vm_->RevertOverlays(overlays).ok()) << "closes the unused overlay nodes";
  // Closed: the same node names can be opened again.
  EXPECT_TRUE(vm_->OpenOverlays(overlays, Soon()).ok());
}

TEST_F(QemuDriverTest, CommitImageMergesAnInnerImageThenTheActiveOneWhileTheGuestRuns) {
  // d0.qcow2 <- d0-k.qcow2 <- d0-x.qcow2 (active): merge k into d0, then x.
  const std::string base = spec_.disks[0], k = dir_ / "d0-k.qcow2", x = dir_ / "d0-x.qcow2";
  auto write = [](const std::string& pattern, const std::string& at, const std::string& image) {
    auto r =
        Env::Default()->Run({"qemu-io", "-c", "write -P " + pattern + " " + at + " 64k", image});
    return r.ok() && r->exit_code == 0;
  };
  ASSERT_TRUE(img_.CreateOverlay(base, k).ok());
  ASSERT_TRUE(write("0x0b", "0", k));
  ASSERT_TRUE(img_.CreateOverlay(k, x).ok());
  ASSERT_TRUE(write("0x0c", "1M", x));
  spec_.disks[0] = x;
  StartVm();

  ASSERT_TRUE(vm_->CommitImage(0, k, base, Soon()).ok());
  EXPECT_EQ(img_.Info(x)->backing_filename, base) << "the image above must read through the base";
  EXPECT_EQ((*vm_->ActiveImages(Soon()))[0], x);
  EXPECT_EQ(vm_->CommitImage(0, k, base, Soon()).code(), Code::kInvalidArgument)
      << "k is out of the chain now";

  ASSERT_TRUE(vm_->CommitImage(0, x, base, Soon()).ok());
  EXPECT_EQ((*vm_->ActiveImages(Soon()))[0], base) << "an active merge pivots to the base";
  EXPECT_EQ(*vm_->State(Soon()), RunState::kRunning);
  // The former top node must be gone, or the base could take no overlay.
  auto after = MakeOverlays("after");
  ASSERT_TRUE(vm_->OpenOverlays(after, Soon()).ok());
  Status again = Switch(after, "");
  EXPECT_TRUE(again.ok()) << "a snapshot on the merged base: " << again.ToString();
  ASSERT_TRUE(vm_->PowerOff().ok());
  vm_.reset();
  auto same = Env::Default()->Run({"qemu-img", "compare", "-q", base, x});
  EXPECT_TRUE(same.ok() && same->exit_code == 0) << "the base must now read as x did";
  EXPECT_TRUE(img_.Check(base).ok());
}

TEST_F(QemuDriverTest, CopyMarkedCopiesWhatABitmapMarksAndNothingElse) {
  const std::string base = spec_.disks[0], full = dir_ / "full.qcow2",
                    target = dir_ / "changes.qcow2", monitor = dir_ / "q/test.sock";
  ASSERT_TRUE(img_.Convert(base, full, std::chrono::minutes(1)).ok());  // the base's copy
  ASSERT_TRUE(testing::MakeQemuWritableDir(dir_ / "q").ok());
  spec_.config.extra_args = testing::GuestMonitorArgs(monitor);
  StartVm();
  ASSERT_TRUE(vm_->KeepTracking(0, base, "rp", Soon()).ok());
  EXPECT_TRUE(vm_->KeepTracking(0, base, "rp", Soon()).ok()) << "a retry changes nothing";
  ASSERT_TRUE(testing::WriteAsGuest(monitor, 0, 0x22, 1 << 20, 1 << 20).ok());  // marked
  auto overlays = MakeOverlays("s2");
  ASSERT_TRUE(vm_->OpenOverlays(overlays, Soon()).ok());
  ASSERT_TRUE(Switch(overlays, "").ok());
  // After the cut: in the overlay, not copied.
  ASSERT_TRUE(testing::WriteAsGuest(monitor, 0, 0x33, 4 << 20, 1 << 20).ok());

  ASSERT_TRUE(img_.CreateOverlay(full, target).ok());
  ASSERT_TRUE(vm_->CopyMarked(0, base, "rp", target, Soon()).ok());
  auto same = Env::Default()->Run({"qemu-img", "compare", "-U", "-q", target, base});
  EXPECT_TRUE(same.ok() && same->exit_code == 0) << "the copy reads as the image at the cut";
  EXPECT_EQ(*img_.OwnDataBytes(target), uint64_t{1} << 20) << "only the marked megabyte";
  struct stat st;
  ASSERT_EQ(::stat(target.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, ::geteuid()) << "written through our descriptor, still ours";
  EXPECT_EQ(vm_->CopyMarked(0, base, "nope", target, Soon()).code(), Code::kNotFound);
  EXPECT_EQ(vm_->CopyMarked(0, dir_ / "other.qcow2", "rp", target, Soon()).code(),
            Code::kInvalidArgument);
  // A frozen image is read-only to QEMU: its bitmaps stay until it is
  // writable again. An active image's go at once.
  EXPECT_FALSE(vm_->DropTracking(0, base, "rp", Soon()).ok());
  const std::string top = overlays[0].path;
  ASSERT_TRUE(vm_->KeepTracking(0, top, "rp2", Soon()).ok());
  ASSERT_TRUE(vm_->DropTracking(0, top, "rp2", Soon()).ok());
  EXPECT_TRUE(vm_->DropTracking(0, top, "rp2", Soon()).ok()) << "already gone";
  EXPECT_EQ(vm_->CopyMarked(0, top, "rp2", target, Soon()).code(), Code::kNotFound);
  EXPECT_EQ(*vm_->State(Soon()), RunState::kRunning);
}

// The trackings of the active images stay out of the pause: OpenOverlays
// holds them in memory, the switch writes none of them, and FinishSwitch
// stores each in the image the switch froze, marking what it marked.
TEST_F(QemuDriverTest, TrackingsAreStoredInTheFrozenImagesAfterThePauseNotInIt) {
  const std::string monitor = dir_ / "q/test.sock", target = dir_ / "changes.qcow2";
  ASSERT_TRUE(testing::MakeQemuWritableDir(dir_ / "q").ok());
  spec_.config.extra_args = testing::GuestMonitorArgs(monitor);
  StartVm();
  auto s1 = MakeOverlays("s1");
  ASSERT_TRUE(vm_->OpenOverlays(s1, Soon()).ok());
  ASSERT_TRUE(Switch(s1, "vmgroup-s1", /*pause=*/true).ok());
  ASSERT_TRUE(vm_->Resume(Soon()).ok());
  ASSERT_TRUE(vm_->FinishSwitch(Soon()).ok());
  ASSERT_TRUE(testing::WriteAsGuest(monitor, 0, 0x22, 1 << 20, 1 << 20).ok());  // marked

  std::vector<Overlay> s2;
  for (int i = 0; i < 2; ++i) {
    const std::string path = dir_ / ("d" + std::to_string(i) + "-s2.qcow2");
    ASSERT_TRUE(img_.CreateOverlay(s1[i].path, path).ok());
    s2.push_back({i, path, "s2", s1[i].path});
  }
  ASSERT_TRUE(vm_->OpenOverlays(s2, Soon()).ok());
  ASSERT_TRUE(Switch(s2, "vmgroup-s2", /*pause=*/true).ok());
  ASSERT_TRUE(vm_->Resume(Soon()).ok());
  ASSERT_TRUE(testing::WriteAsGuest(monitor, 0, 0x33, 4 << 20, 1 << 20).ok());  // after the cut
  auto during = img_.Chain(s1[0].path);
  ASSERT_TRUE(during.ok()) << during.status().ToString();
  EXPECT_TRUE((*during)[0].bitmaps.empty()) << "the pause wrote a bitmap into the frozen image";

  ASSERT_TRUE(vm_->FinishSwitch(Soon()).ok());
  EXPECT_TRUE(vm_->FinishSwitch(Soon()).ok()) << "nothing left to do";
  for (int i = 0; i < 2; ++i) {
    auto chain = img_.Chain(s1[i].path);
    ASSERT_TRUE(chain.ok()) << chain.status().ToString();
    EXPECT_EQ((*chain)[0].bitmaps, std::vector<std::string>{"vmgroup-s1"}) << "disk " << i;
  }
  ASSERT_TRUE(img_.Create(target, 16 << 20).ok());
  ASSERT_TRUE(vm_->CopyMarked(0, s1[0].path, "vmgroup-s1", target, Soon()).ok());
  EXPECT_EQ(*img_.OwnDataBytes(target), uint64_t{1} << 20) << "exactly the megabyte written";
  EXPECT_FALSE(vm_->DropTracking(0, s1[0].path, "vmgroup-s1", Soon()).ok())
      << "the frozen image is read-only again";
  EXPECT_EQ(*vm_->State(Soon()), RunState::kRunning);
  ASSERT_TRUE(vm_->PowerOff().ok());
  vm_.reset();
  EXPECT_TRUE(img_.Check(s1[0].path).ok());
  auto top = img_.Chain(s2[0].path);
  ASSERT_TRUE(top.ok());
  EXPECT_EQ((*top)[0].bitmaps, std::vector<std::string>{"vmgroup-s2"}) << "stored on close";
}

// A switch undone, before or after the cut, gives the trackings OpenOverlays
// held back to the images that are active again.
TEST_F(QemuDriverTest, AnUndoneSwitchGivesTheHeldTrackingsBackToTheActiveImages) {
  StartVm();
  auto s1 = MakeOverlays("s1");
  ASSERT_TRUE(vm_->OpenOverlays(s1, Soon()).ok());
  ASSERT_TRUE(Switch(s1, "vmgroup-s1").ok());
  ASSERT_TRUE(vm_->FinishSwitch(Soon()).ok());
  auto next = [&](const std::string& tag) {
    std::vector<Overlay> o;
    for (int i = 0; i < 2; ++i) {
      const std::string path = dir_ / ("d" + std::to_string(i) + "-" + tag + ".qcow2");
      EXPECT_TRUE(img_.CreateOverlay(s1[i].path, path).ok());
      o.push_back({i, path, tag, s1[i].path});
    }
    return o;
  };
  auto s2 = next("s2");
  ASSERT_TRUE(vm_->OpenOverlays(s2, Soon()).ok());
  ASSERT_TRUE(vm_->RevertOverlays(s2).ok());  // before the cut
  auto s3 = next("s3");
  ASSERT_TRUE(vm_->OpenOverlays(s3, Soon()).ok());
  ASSERT_TRUE(Switch(s3, "vmgroup-s3", /*pause=*/true).ok());
  ASSERT_TRUE(vm_->RevertOverlays(s3).ok());  // after it, still paused
  ASSERT_TRUE(vm_->Resume(Soon()).ok());
  EXPECT_EQ(*vm_->ActiveImages(Soon()), (std::vector<std::string>{s1[0].path, s1[1].path}));
  ASSERT_TRUE(vm_->PowerOff().ok());
  vm_.reset();
  for (int i = 0; i < 2; ++i) {
    auto chain = img_.Chain(s1[i].path);
    ASSERT_TRUE(chain.ok()) << chain.status().ToString();
    EXPECT_EQ((*chain)[0].bitmaps, std::vector<std::string>{"vmgroup-s1"}) << "disk " << i;
    EXPECT_TRUE(img_.Check(s1[i].path).ok());
  }
}

TEST_F(QemuDriverTest, ABitmapLeftUnsavedByAQemuThatDiedIsNotTrusted) {
  StartVm();
  ASSERT_TRUE(vm_->KeepTracking(0, spec_.disks[0], "rp", Soon()).ok());
  ASSERT_TRUE(vm_->PowerOff().ok());  // stored in the image
  vm_.reset();
  StartVm();  // in use again: QEMU flags it in the file
  ASSERT_TRUE(Env::Default()->Kill(pid_, SIGKILL).ok());
  ASSERT_TRUE(Env::Default()->WaitGone(pid_, std::chrono::seconds(10)).ok());
  vm_.reset();
  StartVm();
  const std::string target = dir_ / "t.qcow2";
  ASSERT_TRUE(img_.Create(target, 16 << 20).ok());
  Status s = vm_->CopyMarked(0, spec_.disks[0], "rp", target, Soon());
  EXPECT_EQ(s.code(), Code::kInvalidState) << s.ToString();
  EXPECT_NE(s.message().find("cannot be trusted"), std::string::npos) << s.message();
  const std::string socket = dir_ / "b.sock";
  auto served = vm_->ServeImages({socket}, {{0, spec_.disks[0], "disk0", "rp"}}, Soon());
  EXPECT_EQ(served.status().code(), Code::kInvalidState) << served.status().ToString();
  EXPECT_FALSE(Env::Default()->FileExists(socket));
}

// A backup session's serving: the image a recovery-style switch froze,
// read over NBD as it was at the cut while the guest writes on, with the
// reference point's bitmap (enabled, persistent, on a read-only node)
// published as a metadata context.
TEST_F(QemuDriverTest, ServeImagesServesAFrozenImageWithWhatItsTrackingMarks) {
  const std::string base = spec_.disks[0], monitor = dir_ / "q/test.sock", socket = dir_ / "b.sock",
                    copy = dir_ / "copy.raw";
  ASSERT_TRUE(testing::MakeQemuWritableDir(dir_ / "q").ok());
  spec_.config.extra_args = testing::GuestMonitorArgs(monitor);
  StartVm();
  ASSERT_TRUE(testing::WriteAsGuest(monitor, 0, 0x11, 8 << 20, 1 << 20).ok());  // before
  ASSERT_TRUE(vm_->KeepTracking(0, base, "vmgroup-rp", Soon()).ok());
  ASSERT_TRUE(testing::WriteAsGuest(monitor, 0, 0x22, 1 << 20, 1 << 20).ok());  // marked
  auto overlays = MakeOverlays("s2");
  ASSERT_TRUE(vm_->OpenOverlays(overlays, Soon()).ok());
  ASSERT_TRUE(Switch(overlays, "vmgroup-s2", /*pause=*/true).ok());
  ASSERT_TRUE(vm_->Resume(Soon()).ok());
  ASSERT_TRUE(vm_->FinishSwitch(Soon()).ok());
  ASSERT_TRUE(testing::WriteAsGuest(monitor, 0, 0x33, 4 << 20, 1 << 20).ok());  // after the cut

  auto served = vm_->ServeImages(
      {socket}, {{0, base, "disk0", "vmgroup-rp"}, {1, spec_.disks[1], "disk1", ""}}, Soon());
  ASSERT_TRUE(served.ok()) << served.status().ToString();
  ASSERT_EQ(served->size(), 2u);
  EXPECT_EQ((*served)[0].size, uint64_t{16} << 20);
  EXPECT_EQ((*served)[0].context, "qemu:dirty-bitmap:vmgroup-rp");
  EXPECT_EQ((*served)[1].context, "");
  struct stat st;
  ASSERT_EQ(::stat(socket.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);

  auto marked = MarkedExtents(NbdUri(socket, "disk0"), (*served)[0].context);
  ASSERT_TRUE(marked.ok()) << marked.status().ToString();
  EXPECT_EQ(*marked, (std::vector<std::pair<uint64_t, uint64_t>>{{1 << 20, 1 << 20}}))
      << "what was written since the tracking started and before the cut, nothing else";
  auto copied = Env::Default()->Run({"nbdcopy", NbdUri(socket, "disk0"), copy});
  ASSERT_TRUE(copied.ok() && copied->exit_code == 0) << (copied.ok() ? copied->err : "");
  auto same = Env::Default()->Run(
      {"qemu-img", "compare", "-U", "-q", "-f", "raw", "-F", "qcow2", copy, base});
  EXPECT_TRUE(same.ok() && same->exit_code == 0) << "the export reads as the frozen image";
  // The guest runs on and writes while it is served.
  ASSERT_TRUE(testing::WriteAsGuest(monitor, 0, 0x44, 2 << 20, 1 << 20).ok());
  EXPECT_EQ(*vm_->State(Soon()), RunState::kRunning);

  // One serving at a time; a refused one leaves its socket nowhere and the
  // serving under way as it was.
  const std::string other = dir_ / "c.sock";
  EXPECT_EQ(vm_->ServeImages({other}, {{0, base, "again", ""}}, Soon()).status().code(),
            Code::kAlreadyExists);
  EXPECT_FALSE(Env::Default()->FileExists(other));
  EXPECT_EQ(vm_->ServeImages({socket}, {{0, base, "again", ""}}, Soon()).status().code(),
            Code::kAlreadyExists);
  EXPECT_TRUE(Env::Default()->FileExists(socket));
  EXPECT_EQ(ExportsOf(monitor), 2u);

  // A daemon that restarts ends the serving its predecessor started.
  vm_.reset();
  auto again = driver_->Attach(spec_, pid_);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  vm_ = std::move(again).value();
  Status stopped = vm_->StopServing(socket, Soon());
  ASSERT_TRUE(stopped.ok()) << stopped.ToString();
  EXPECT_FALSE(Env::Default()->FileExists(socket));
  EXPECT_EQ(ExportsOf(monitor), 0u);
  auto gone = Env::Default()->Run({"nbdinfo", "--size", NbdUri(socket, "disk0")});
  EXPECT_TRUE(gone.ok() && gone->exit_code != 0) << "nobody serves any more";
  EXPECT_TRUE(vm_->StopServing(socket, Soon()).ok()) << "nothing served: nothing to do";
  // The image is free for the merge of the overlay into it.
  Status merged = vm_->CommitImage(0, overlays[0].path, base, Soon());
  ASSERT_TRUE(merged.ok()) << merged.ToString();
  EXPECT_EQ((*vm_->ActiveImages(Soon()))[0], base);
}

TEST_F(QemuDriverTest, AServingRefusedLeavesNothingServed) {
  const std::string base = spec_.disks[0], monitor = dir_ / "q/test.sock", socket = dir_ / "b.sock";
  ASSERT_TRUE(testing::MakeQemuWritableDir(dir_ / "q").ok());
  spec_.config.extra_args = testing::GuestMonitorArgs(monitor);
  StartVm();
  EXPECT_TRUE(vm_->StopServing(socket, Soon()).ok()) << "a VM that never served";
  auto no_tracking = vm_->ServeImages({socket}, {{0, base, "disk0", "vmgroup-nope"}}, Soon());
  EXPECT_EQ(no_tracking.status().code(), Code::kNotFound) << no_tracking.status().ToString();
  auto not_open = vm_->ServeImages({socket}, {{0, dir_ / "other.qcow2", "disk0", ""}}, Soon());
  EXPECT_EQ(not_open.status().code(), Code::kNotFound) << not_open.status().ToString();
  EXPECT_FALSE(Env::Default()->FileExists(socket));
  // Refused by QEMU once its server runs (one export name twice): the
  // server and the export it made are ended again.
  auto twice =
      vm_->ServeImages({socket}, {{0, base, "same", ""}, {1, spec_.disks[1], "same", ""}}, Soon());
  EXPECT_FALSE(twice.ok());
  EXPECT_FALSE(Env::Default()->FileExists(socket));
  EXPECT_EQ(ExportsOf(monitor), 0u);
  // Something else at the path is never replaced.
  ASSERT_TRUE(Env::Default()->WriteFile(socket, "not ours").ok());
  EXPECT_EQ(vm_->ServeImages({socket}, {{0, base, "disk0", ""}}, Soon()).status().code(),
            Code::kAlreadyExists);
  EXPECT_EQ(*Env::Default()->ReadFile(socket), "not ours");
  ASSERT_TRUE(Env::Default()->RemoveFile(socket).ok());
  auto served = vm_->ServeImages({socket}, {{0, base, "disk0", ""}}, Soon());
  EXPECT_TRUE(served.ok()) << "nothing was left to stand in the way: "
                           << served.status().ToString();
  EXPECT_TRUE(vm_->StopServing(socket, Soon()).ok());
}

// A VM that is off: a qemu-storage-daemon of the driver's serves its
// images, run as QEMU's user, recorded beside the socket, so that a driver
// of another process (a restarted daemon) ends it.
TEST_F(QemuDriverTest, TheImagesOfAVmThatIsOffAreServedByAStorageDaemonEndedByAnyDriver) {
  const std::string socket = dir_ / "b.sock", pid_file = socket + ".pid";
  StartVm();
  ASSERT_TRUE(vm_->KeepTracking(0, spec_.disks[0], "vmgroup-rp", Soon()).ok());
  ASSERT_TRUE(vm_->PowerOff().ok());  // the bitmap stored in the image
  vm_.reset();
  EXPECT_TRUE(driver_->StopServing(spec_, socket).ok()) << "nothing served";
  for (const std::vector<ServedImage>& refused :
       {std::vector<ServedImage>{{0, spec_.disks[0], "disk0", "vmgroup-nope"}},
        std::vector<ServedImage>{{0, spec_.disks[1], "disk0", ""}}}) {
    auto r = driver_->ServeImages(spec_, {socket}, refused);
    EXPECT_EQ(r.status().code(), Code::kNotFound) << r.status().ToString();
    EXPECT_FALSE(Env::Default()->FileExists(socket));
    EXPECT_FALSE(Env::Default()->FileExists(pid_file));
  }

  auto served = driver_->ServeImages(
      spec_, {socket},
      {{0, spec_.disks[0], "disk0", "vmgroup-rp"}, {1, spec_.disks[1], "disk1", ""}});
  ASSERT_TRUE(served.ok()) << served.status().ToString();
  ASSERT_EQ(served->size(), 2u);
  EXPECT_EQ((*served)[0].size, uint64_t{16} << 20);
  EXPECT_EQ((*served)[0].context, "qemu:dirty-bitmap:vmgroup-rp");
  EXPECT_EQ((*served)[1].context, "");
  auto marked = MarkedExtents(NbdUri(socket, "disk0"), (*served)[0].context);
  ASSERT_TRUE(marked.ok()) << marked.status().ToString();
  EXPECT_TRUE(marked->empty()) << "nothing written since the tracking started";
  const int daemon = std::stoi(*Env::Default()->ReadFile(pid_file));
  struct stat st;
  ASSERT_EQ(::stat(("/proc/" + std::to_string(daemon)).c_str(), &st), 0);
  if (::geteuid() == 0) {
    EXPECT_NE(st.st_uid, 0u) << "it runs as QEMU's user";
  }
  EXPECT_EQ(
      driver_->ServeImages(spec_, {socket}, {{0, spec_.disks[0], "again", ""}}).status().code(),
      Code::kAlreadyExists);

  auto restarted = QemuDriver::Create(Env::Default(), testing::TestQemu());
  ASSERT_TRUE(restarted.ok());
  ASSERT_TRUE((*restarted)->StopServing(spec_, socket).ok());
  EXPECT_FALSE(Env::Default()->IsAlive(daemon));
  EXPECT_FALSE(Env::Default()->FileExists(socket));
  EXPECT_FALSE(Env::Default()->FileExists(pid_file));
  EXPECT_TRUE((*restarted)->StopServing(spec_, socket).ok()) << "nothing served: nothing to do";
}

TEST_F(QemuDriverTest, AVmThatIsOffWithABitmapLeftUnsavedIsNotServedWithIt) {
  const std::string socket = dir_ / "b.sock";
  StartVm();
  ASSERT_TRUE(vm_->KeepTracking(0, spec_.disks[0], "rp", Soon()).ok());
  ASSERT_TRUE(vm_->PowerOff().ok());
  vm_.reset();
  StartVm();  // in use again: QEMU flags it in the file
  ASSERT_TRUE(Env::Default()->Kill(pid_, SIGKILL).ok());
  ASSERT_TRUE(Env::Default()->WaitGone(pid_, std::chrono::seconds(10)).ok());
  vm_.reset();
  auto served = driver_->ServeImages(spec_, {socket}, {{0, spec_.disks[0], "disk0", "rp"}});
  EXPECT_EQ(served.status().code(), Code::kInvalidState) << served.status().ToString();
  EXPECT_FALSE(Env::Default()->FileExists(socket));
  EXPECT_FALSE(Env::Default()->FileExists(socket + ".pid"));
  served = driver_->ServeImages(spec_, {socket}, {{0, spec_.disks[0], "disk0", ""}});
  ASSERT_TRUE(served.ok()) << "a full read: " << served.status().ToString();
  EXPECT_TRUE(driver_->StopServing(spec_, socket).ok());
}

TEST_F(QemuDriverTest, MemoryStateSavedAtTheCutStartsAVmPausedWhereItWas) {
  StartVm();
  EXPECT_EQ(vm_->AwaitStateSaved(Soon()).code(), Code::kNotFound) << "nothing being saved";
  const std::string state = dir_ / "mem.vmstate";
  ASSERT_TRUE(vm_->PrepareStateSave(state, Soon()).ok());
  EXPECT_EQ(vm_->PrepareStateSave(state, Soon()).code(), Code::kAlreadyExists);
  std::vector<Overlay> overlays;
  ASSERT_NO_FATAL_FAILURE(CutSavingStateThenPowerOff("m1", &overlays));
  ASSERT_NO_FATAL_FAILURE(StartFromState(overlays, state));

  // A state that does not fit the machine is refused with QEMU's reason.
  ASSERT_TRUE(vm_->PowerOff().ok());
  vm_.reset();
  spec_.disks.pop_back();
  auto bad = driver_->Start(spec_, {});
  EXPECT_FALSE(bad.ok());
}

TEST_F(QemuDriverTest, AMemoryStateThatCannotBeSavedNeverLeavesTheVmPaused) {
  StartVm();
  // Never prepared: resumed anyway, and the caller is told.
  ASSERT_TRUE(vm_->Pause(Soon()).ok());
  ASSERT_TRUE(vm_->SendResume(Soon(), /*save_state=*/true).ok());
  EXPECT_EQ(vm_->AwaitResume(Soon()).code(), Code::kInvalidState);
  EXPECT_EQ(*vm_->State(Soon()), RunState::kRunning);
  // Prepared, but its directory is gone by the time QEMU writes it.
  const std::string sub = dir_ / "gone";
  ASSERT_TRUE(Env::Default()->CreateDirs(sub).ok());
  ASSERT_TRUE(vm_->PrepareStateSave(sub + "/mem.vmstate", Soon()).ok());
  ASSERT_TRUE(Env::Default()->RemoveFile(sub + "/mem.vmstate").ok());
  ASSERT_EQ(::rmdir(sub.c_str()), 0);
  ExpectSaveFailsAndTheVmRunsOn(sub + "/mem.vmstate");
}

TEST_F(QemuDriverTest, AMemoryStateThatRunsOutOfSpaceNeverWedgesTheVm) {
  const std::string small = dir_ / "small";
  ASSERT_TRUE(Env::Default()->CreateDirs(small).ok());
  if (::mount("tmpfs", small.c_str(), "tmpfs", 0, "size=64k") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here (needs CAP_SYS_ADMIN)";
  }
  StartVm();  // its state (firmware, device state) is far over 64 KiB
  ASSERT_TRUE(vm_->PrepareStateSave(small + "/mem.vmstate", Soon()).ok());
  ExpectSaveFailsAndTheVmRunsOn(small + "/mem.vmstate");
  ::umount2(small.c_str(), MNT_DETACH);
}

TEST_F(QemuDriverTest, AttachReachesARunningVmThroughItsMonitor) {
  StartVm();
  ASSERT_TRUE(vm_->Pause(Soon()).ok());
  int pid = vm_->pid();
  vm_.reset();  // the connection closes; QEMU keeps running
  auto again = driver_->Attach(spec_, pid);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  vm_ = std::move(again).value();
  EXPECT_EQ(*vm_->State(Soon()), RunState::kPaused);
}

TEST_F(QemuDriverTest, RevertAdoptsAMergeLeftByADaemonThatDied) {
  std::vector<Overlay> overlays;
  SwitchThenDieMidRevert(&overlays, [](QmpClient& qmp) {
    return qmp::BlockCommit(qmp, "revert-d0-s1", "d0-s1", "d0-s1", "d0", Soon());
  });
  ASSERT_TRUE(vm_);
  Status r = vm_->RevertOverlays(overlays);
  ASSERT_TRUE(r.ok()) << r.ToString();
  EXPECT_EQ(*vm_->ActiveImages(Soon()), spec_.disks);
  ASSERT_TRUE(vm_->Resume(Soon()).ok());
}

TEST_F(QemuDriverTest, RevertRefusesAnOverlayThatDoesNotLieOnTheImageRecordedBelowIt) {
  StartVm();
  auto overlays = MakeOverlays("s1");
  ASSERT_TRUE(vm_->OpenOverlays(overlays, Soon()).ok());
  ASSERT_TRUE(Switch(overlays, "", /*pause=*/true).ok());
  auto wrong = overlays;
  wrong[1].base = spec_.disks[0];
  Status r = vm_->RevertOverlays(wrong);
  EXPECT_EQ(r.code(), Code::kInvalidState) << r.ToString();
  EXPECT_NE(r.message().find("lies on " + spec_.disks[1] + ", not on " + spec_.disks[0]),
            std::string::npos)
      << r.message();
  EXPECT_EQ(*vm_->ActiveImages(Soon()),
            (std::vector<std::string>{overlays[0].path, overlays[1].path}))
      << "all or nothing: no disk merged";
  ASSERT_TRUE(vm_->RevertOverlays(overlays).ok());
  EXPECT_EQ(*vm_->ActiveImages(Soon()), spec_.disks);
}

TEST_F(QemuDriverTest, RevertLeavesAMergeIntoAnotherImageUnfinished) {
  // d0.qcow2 <- mid.qcow2 (the VM's image) <- the overlay: a daemon of
  // before base-node was named started the revert, which QEMU takes down
  // to d0.
  const std::string mid = dir_ / "mid.qcow2";
  ASSERT_TRUE(img_.CreateOverlay(spec_.disks[0], mid).ok());
  spec_.disks[0] = mid;
  std::vector<Overlay> overlays;
  SwitchThenDieMidRevert(&overlays, [](QmpClient& qmp) {
    return qmp
        .Execute("block-commit",
                 {{"job-id", "revert-d0-s1"}, {"device", "d0-s1"}, {"auto-dismiss", false}}, Soon())
        .status();
  });
  ASSERT_TRUE(vm_);
  Status r = vm_->RevertOverlays(overlays);
  EXPECT_EQ(r.code(), Code::kInvalidState) << r.ToString();
  EXPECT_NE(r.message().find("does not write into " + mid), std::string::npos) << r.message();
  EXPECT_EQ((*vm_->ActiveImages(Soon()))[0], overlays[0].path) << "not moved onto d0";
}

TEST_F(QemuDriverTest, AttachRefusesAPidThatIsNotThisVmsQemu) {
  StartVm();
  VmSpec other = spec_;
  other.uuid = "5c2f3c8e-1111-4a4a-8b8b-000000000002";
  EXPECT_EQ(driver_->Attach(other, vm_->pid()).status().code(), Code::kUnavailable);
  EXPECT_EQ(driver_->Attach(spec_, ::getpid()).status().code(), Code::kUnavailable);
  EXPECT_TRUE(IsQemuOf(Env::Default(), vm_->pid(), spec_.uuid));
}

TEST_F(QemuDriverTest, DeadQemuIsUnavailable) {
  StartVm();
  ASSERT_TRUE(Env::Default()->Kill(vm_->pid(), SIGKILL).ok());
  ASSERT_TRUE(Env::Default()->WaitGone(vm_->pid(), std::chrono::seconds(10)).ok());
  EXPECT_EQ(vm_->Pause(Soon()).code(), Code::kUnavailable);
  EXPECT_EQ(driver_->Attach(spec_, vm_->pid()).status().code(), Code::kUnavailable);
  vm_.reset();
}

TEST_F(QemuDriverTest, MissingDiskIsRefusedBeforeQemuStarts) {
  spec_.disks[1] = dir_ / "nope.qcow2";
  auto vm = driver_->Start(spec_, {});
  EXPECT_EQ(vm.status().code(), Code::kFileNotFound);
  EXPECT_NE(vm.status().message().find("nope.qcow2"), std::string::npos);
}

// The pages a VM on huge pages was defined with may have gone since: said
// as such, before any QEMU is started (admit never runs).
TEST_F(QemuDriverTest, RamOnHugePagesIsRefusedBeforeQemuStartsWhenTheHostLacksThePages) {
  testing::HugePagesEnv env;
  env.Set(/*pool=*/40, /*free=*/31);
  auto driver = QemuDriver::Create(&env, testing::TestQemu());
  ASSERT_TRUE(driver.ok()) << driver.status().ToString();
  spec_.config.hugepages = true;
  bool admitted = false;
  auto admit = [&](int) {
    admitted = true;
    return Status::Ok();
  };
  auto vm = (*driver)->Start(spec_, admit);
  EXPECT_EQ(vm.status().code(), Code::kUnavailable);
  EXPECT_NE(vm.status().message().find("VM t1: 64 MiB of RAM on huge pages needs 32 free 2 MiB "
                                       "pages and the host has 31 free"),
            std::string::npos)
      << vm.status().message();
  EXPECT_NE(vm.status().message().find("sysctl vm.nr_hugepages=41"), std::string::npos);
  spec_.config.memory_mib = 63;
  env.Set(/*pool=*/40, /*free=*/40);
  EXPECT_EQ((*driver)->Start(spec_, admit).status().code(), Code::kInvalidArgument);
  EXPECT_FALSE(admitted) << "no QEMU was started";
}

// Guest RAM on 2 MiB pages (memfd, preallocated): the VM takes all its
// pages at start, its memory state is saved at the cut as any VM's and
// loaded into a VM on huge pages again.
TEST_F(QemuDriverTest, AVmOnHugePagesTakesItsPagesAndItsMemoryStateComesBack) {
  auto pool = testing::HugePagePool::Reserve(32);
  if (!pool.ok()) GTEST_SKIP() << "no huge pages for this test: " << pool.status().ToString();
  auto free_pages = [] { return std::stoll(*Env::Default()->ReadFile(kFreeHugePagesPath)); };
  const int64_t free_before = free_pages();
  spec_.config.hugepages = true;
  StartVm();
  EXPECT_EQ(free_pages(), free_before - 32) << "64 MiB preallocated on 2 MiB pages";
  const std::string state = dir_ / "mem.vmstate";
  ASSERT_TRUE(vm_->PrepareStateSave(state, Soon()).ok());
  std::vector<Overlay> overlays;
  ASSERT_NO_FATAL_FAILURE(CutSavingStateThenPowerOff("h1", &overlays));
  EXPECT_EQ(free_pages(), free_before) << "its pages are the host's again";
  ASSERT_NO_FATAL_FAILURE(StartFromState(overlays, state));
  EXPECT_EQ(free_pages(), free_before - 32);
}

TEST_F(QemuDriverTest, QemuRefusingToStartReportsWhatItSaid) {
  spec_.config.extra_args = {"-no-such-option"};
  auto vm = driver_->Start(spec_, {});
  EXPECT_EQ(vm.status().code(), Code::kUnavailable);
  EXPECT_NE(vm.status().message().find("no-such-option"), std::string::npos)
      << vm.status().message();
}

}  // namespace
}  // namespace vmgroup::hypervisor::qemu
