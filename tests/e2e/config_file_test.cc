// vmgroupd started with --config FILE and nothing else: it serves where the
// file says and logs as the file says; a mistake in the file stops it
// before it starts, naming the line.
#include "daemon_fixture.h"

namespace vmgroup::e2e {
namespace {

class VmgroupdConfTest : public DaemonFixture {
 protected:
  void SetUp() override {}  // each test starts the daemon from its file

  std::string WriteConf(const std::string& text) {
    const std::string path = dir_ / "vmgroupd.conf";
    EXPECT_TRUE(Env::Default()->WriteFile(path, text).ok());
    return path;
  }
};

TEST_F(VmgroupdConfTest, TheDaemonServesWhereItsFileSays) {
  const std::string conf = WriteConf(
      "# as an operator writes it\n"
      "state-dir = " +
      StateDir() +
      "\n"
      "listen = unix:" +
      Socket() +
      "\n"
      "log-level = debug\n"
      "accel = tcg\n");
  auto pid = Env::Default()->Spawn({VMGROUPD_BIN, "--config", conf},
                                   {.log_path = dir_ / "vmgroupd.log", .new_session = false});
  ASSERT_TRUE(pid.ok()) << pid.status().ToString();
  pid_ = *pid;
  for (int i = 0; i < 3000 && LogText().find("vmgroupd ready") == std::string::npos; ++i) {
    ASSERT_TRUE(Env::Default()->IsAlive(pid_)) << "vmgroupd exited:\n" << LogText();
    Env::Default()->SleepFor(std::chrono::milliseconds(10));
  }
  ASSERT_NE(LogText().find("vmgroupd ready"), std::string::npos) << LogText();
  EXPECT_NE(LogText().find("listening on unix:" + Socket()), std::string::npos) << LogText();
  EXPECT_NE(LogText().find("DEBUG options from " + conf), std::string::npos)
      << "log-level = debug took: " << LogText();
  CommandOutput list = Cli({"vm", "list"});
  EXPECT_EQ(list.exit_code, 0) << list.err;
  StopDaemon();
}

TEST_F(VmgroupdConfTest, AMistakeInTheFileStopsTheDaemonNamingTheLine) {
  const std::string conf = WriteConf("state-dir = " + StateDir() + "\nlisten\n");
  CommandOutput r = Run({VMGROUPD_BIN, "--config", conf});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(conf + ":2: listen needs a value"), std::string::npos) << r.err;
  EXPECT_FALSE(Env::Default()->FileExists(StateDir())) << "refused before doing anything";
}

}  // namespace
}  // namespace vmgroup::e2e
