// PrivateLibvirtd: a guest-kit domain runs and writes under a libvirtd of the
// test's own; ending it by pid ends libvirtd and its QEMU, and nothing of
// the host's libvirt changes.
#include "testing/private_libvirtd.h"

#include <unistd.h>

#include <filesystem>
#include <map>

#include "guest_fixture.h"
#include "testing/guest_kit.h"
#include "testing/process_status.h"

namespace vmgroup::integration {
namespace {

namespace fs = std::filesystem;

// Every entry under the host's libvirt directories with its type, size and
// modification time: "absent" for a directory that does not exist.
std::map<std::string, std::string> HostLibvirtListing() {
  std::map<std::string, std::string> out;
  for (const char* root : {"/run/libvirt", "/var/lib/libvirt", "/etc/libvirt"}) {
    std::error_code ec;
    if (!fs::exists(root, ec)) {
      out[root] = "absent";
      continue;
    }
    for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::end(it);
         it.increment(ec)) {
      const fs::file_status st = it->symlink_status(ec);
      std::string what = std::to_string(static_cast<int>(st.type()));
      if (fs::is_regular_file(st)) what += " " + std::to_string(it->file_size(ec));
      what += " " + std::to_string(it->last_write_time(ec).time_since_epoch().count());
      out[it->path().string()] = what;
    }
  }
  return out;
}

TEST(PrivateLibvirtdTest, RunsAGuestAndEndsWithEveryQemuLeavingTheHostAlone) {
  if (::geteuid() != 0) GTEST_SKIP() << "a privileged libvirtd needs root";
  BuildGuestKit();
  const auto host_before = HostLibvirtListing();
  testing::TempDir tmp;
  const std::string name = "pl" + std::to_string(::getpid());
  const std::string serial = tmp / "serial.log";
  std::string uuid;
  int libvirtd_pid = 0;
  std::vector<std::pair<int, int64_t>> qemus;  // pid, start time
  {
    auto d = testing::PrivateLibvirtd::Start(Env::Default(), tmp / "lv");
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    libvirtd_pid = (*d)->pid();
    EXPECT_EQ((*d)->uri(), "qemu+unix:///system?socket=" + tmp.path() + "/lv/sock/libvirt-sock");
    auto outputs = (*d)->VirtAdmin({"daemon-log-outputs"});
    ASSERT_TRUE(outputs.ok()) << outputs.status().ToString();
    EXPECT_NE(outputs->find("/var/log/libvirt/libvirtd.log"), std::string::npos) << *outputs;

    storage::QemuImg img(Env::Default());
    testing::GuestDomain g{.name = name,
                           .disks = {tmp / "a.qcow2", tmp / "b.qcow2"},
                           .kernel = std::string(GUEST_KIT_DIR) + "/vmlinuz",
                           .initrd = std::string(GUEST_KIT_DIR) + "/initrd.gz",
                           .append = testing::GuestKernelArgs("writer=raw"),
                           .serial_log = serial,
                           .agent = true};
    for (const auto& disk : g.disks) ASSERT_TRUE(img.Create(disk, 64 << 20).ok());
    auto id = (*d)->Define(g, /*start=*/true);
    ASSERT_TRUE(id.ok()) << id.status().ToString() << "\n" << (*d)->LibvirtdLog();
    uuid = *id;

    // Destroyed, its QEMU is reaped (libvirtd as the namespace's first
    // process left it a zombie, and waited for it 40 s), and it starts
    // again.
    auto first = testing::QemusOf(uuid);
    ASSERT_EQ(first.size(), 1u) << "one QEMU runs the domain";
    const int64_t first_started = Env::Default()->ProcessStartTime(first[0]).value_or(-1);
    auto destroyed = (*d)->Virsh({"destroy", name});
    ASSERT_TRUE(destroyed.ok()) << destroyed.status().ToString();
    EXPECT_NE(Env::Default()->ProcessStartTime(first[0]).value_or(-1), first_started);
    EXPECT_FALSE(testing::ProcessStatus(first[0], "State").starts_with("Z"))
        << "the destroyed QEMU was left a zombie";
    EXPECT_EQ((*d)->Virsh({"domstate", name}).value_or(""), "shut off\n\n");
    ASSERT_TRUE((*d)->Virsh({"start", name}).ok());

    for (int pid : testing::QemusOf(uuid)) {
      qemus.emplace_back(pid, Env::Default()->ProcessStartTime(pid).value_or(-1));
    }
    ASSERT_EQ(qemus.size(), 1u) << "one QEMU runs the domain";

    const auto deadline = Clock::now() + std::chrono::minutes(2);
    while (Acknowledged(serial) < 3) {
      ASSERT_LT(Clock::now(), deadline) << "the guest is not writing; serial log:\n"
                                        << Env::Default()->ReadFile(serial).value_or("");
      Env::Default()->SleepFor(std::chrono::milliseconds(100));
    }

    auto blk = (*d)->Virsh({"domblklist", name});
    ASSERT_TRUE(blk.ok()) << blk.status().ToString();
    EXPECT_NE(blk->find("vda"), std::string::npos) << *blk;
    EXPECT_NE(blk->find(tmp / "a.qcow2"), std::string::npos) << *blk;
    EXPECT_NE(blk->find(tmp / "b.qcow2"), std::string::npos) << *blk;
    auto xml = (*d)->Virsh({"dumpxml", name});
    ASSERT_TRUE(xml.ok());
    EXPECT_NE(xml->find("org.qemu.guest_agent.0"), std::string::npos) << *xml;
  }

  // Gone by pid: libvirtd, and the QEMU it left to the namespace.
  EXPECT_FALSE(Env::Default()->IsAlive(libvirtd_pid));
  for (const auto& [pid, started] : qemus) {
    EXPECT_NE(Env::Default()->ProcessStartTime(pid).value_or(-1), started) << "QEMU " << pid;
  }
  EXPECT_TRUE(testing::QemusOf(uuid).empty());
  // Its logs outlive it (bind mounts, not tmpfs).
  auto qemu_log = Env::Default()->ReadFile(tmp / "lv/log/libvirt/qemu/" + name + ".log");
  ASSERT_TRUE(qemu_log.ok()) << qemu_log.status().ToString();
  EXPECT_NE(qemu_log->find("qemu-system-x86_64"), std::string::npos) << *qemu_log;
  EXPECT_EQ(HostLibvirtListing(), host_before);
}

TEST(PrivateLibvirtdTest, RefusesADirWhoseSocketPathIsTooLong) {
  auto d = testing::PrivateLibvirtd::Start(Env::Default(), "/tmp/" + std::string(120, 'x'));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), Code::kInvalidArgument) << d.status().ToString();
  EXPECT_FALSE(Env::Default()->FileExists("/tmp/" + std::string(120, 'x')));
}

}  // namespace
}  // namespace vmgroup::integration
