// How vmgroupd runs VMs and keeps its state, seen from outside: each VM's
// QEMU sandboxed, under a root daemon not root, ended in order by SIGTERM
// although the daemon blocks it; state files for root and the admin group.
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "daemon_fixture.h"
#include "testing/process_status.h"

namespace vmgroup::e2e {
namespace {

using nlohmann::json;

class ConfinementTest : public DaemonFixture {
 protected:
  int PidOf(const std::string& vm) { return json::parse(Ok({"vm", "show", vm, "--json"}))["pid"]; }
  // Mode bits, owner and group of `path`.
  struct stat Stat(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return st;
  }
};

TEST_F(ConfinementTest, AVmsQemuIsSandboxedNotRootAndEndsInOrderOnSigterm) {
  const std::string id = NewVm("a");
  Ok({"group", "create", "web"});
  Ok({"group", "add", "web", "a"});
  // With memory: QEMU streams it into a pipe it was handed, without a shell.
  Ok({"snapshot", "create", "web", "--type", "standard"});
  const int pid = PidOf("a");
  EXPECT_EQ(testing::ProcessStatus(pid, "Seccomp"), "2");
  if (::geteuid() == 0) {
    const passwd* user = ::getpwnam(testing::kQemuUser);
    ASSERT_NE(user, nullptr);
    const std::string uid = std::to_string(user->pw_uid);
    EXPECT_EQ(testing::ProcessStatus(pid, "Uid"), uid + "\t" + uid + "\t" + uid + "\t" + uid);
  }
  ASSERT_TRUE(Env::Default()->Kill(pid, SIGTERM).ok());
  EXPECT_TRUE(Env::Default()->WaitGone(pid, std::chrono::seconds(20)).ok())
      << "the VM's QEMU ignored SIGTERM";
  const std::string log = *Env::Default()->ReadFile(StateDir() + "/vms/" + id + "/qemu.log");
  EXPECT_NE(log.find("terminating on signal 15"), std::string::npos) << log;
}

TEST_F(ConfinementTest, StateFilesAreForRootAndTheAdminGroupOnly) {
  const std::string id = NewVm("a");
  Ok({"group", "create", "web"});
  Ok({"group", "add", "web", "a"});
  Ok({"snapshot", "create", "web", "--type", "standard"});
  // Others may pass through the state directory, never list or read it.
  EXPECT_EQ(Stat(StateDir()).st_mode & 07777, 0711u);
  EXPECT_EQ(Stat(StateDir() + "/vms").st_mode & 07777, 0711u);
  const struct stat catalog = Stat(StateDir() + "/catalog.db");
  EXPECT_EQ(catalog.st_mode & 07777, 0640u);
  // The admin group (--admin-group, default vmgroup) where the host has it.
  const group* admin = ::getgrnam("vmgroup");
  EXPECT_EQ(catalog.st_gid, admin ? admin->gr_gid : ::getegid());
  const std::string run = StateDir() + "/vms/" + id;
  const json shown = json::parse(Ok({"vm", "show", "a", "--json"}));
  const struct stat disk = Stat(shown["disks"][0]);
  EXPECT_EQ(disk.st_mode & 07777, 0600u);
  int states = 0;
  for (const auto& f : *Env::Default()->ListDir(run)) {
    if (!f.starts_with("memory-")) continue;
    ++states;
    EXPECT_EQ(Stat(run + "/" + f).st_mode & 07777, 0600u) << f;
  }
  EXPECT_EQ(states, 1);
  if (::geteuid() != 0) return;
  const passwd* user = ::getpwnam(testing::kQemuUser);
  ASSERT_NE(user, nullptr);
  EXPECT_EQ(disk.st_uid, user->pw_uid) << "the image QEMU writes is its user's";
  const struct stat dir = Stat(run);
  EXPECT_EQ(dir.st_mode & 07777, 0710u) << "QEMU's group may pass, nobody else";
  EXPECT_EQ(dir.st_uid, 0u);
  EXPECT_EQ(dir.st_gid, user->pw_gid);
}

TEST_F(ConfinementTest, AQemuUserThatDoesNotExistStopsTheStartSayingWhatToDo) {
  if (::geteuid() != 0) GTEST_SKIP() << "vmgroupd runs QEMU as another user only as root";
  const std::string state = dir_ / "other-state";
  const CommandOutput r = Run({VMGROUPD_BIN, "--no-config", "--state-dir", state, "--listen",
                               "unix:" + dir_ / "other.sock", "--qemu-user", "no-such-user"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no user no-such-user to run QEMU as"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("install-deps"), std::string::npos) << r.err;
  EXPECT_FALSE(Env::Default()->FileExists(state)) << "nothing made";
}

}  // namespace
}  // namespace vmgroup::e2e
