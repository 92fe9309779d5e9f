// A job that fails, and a job a dead daemon left running that the next
// start ends, are in vmgroupd's log at its default level (no --log-level):
// an operator who only reads the journal sees them and why.
#include "catalog/catalog.h"
#include "daemon_fixture.h"

namespace vmgroup::e2e {
namespace {

class JobLogTest : public DaemonFixture {
 protected:
  void SetUp() override {
    log_level_.clear();
    StartDaemon();
  }
};

TEST_F(JobLogTest, AFailedJobIsLoggedAsAWarningWithItsError) {
  NewVm("a");  // no guest, so no guest agent: an application-consistent snapshot fails
  Ok({"group", "create", "web"});
  Ok({"group", "add", "web", "a"});
  const CommandOutput failed = Cli({"snapshot", "create", "web", "--consistency", "application"});
  ASSERT_EQ(failed.exit_code, 1) << failed.out;

  const std::string log = LogText();
  EXPECT_EQ(log.find(" DEBUG "), std::string::npos) << "not the default level:\n" << log;
  const size_t line = log.find("Snapshot of VM group web) failed: ");
  ASSERT_NE(line, std::string::npos) << log;
  const size_t start = log.rfind('\n', line) + 1;  // npos + 1: the first line
  const std::string text = log.substr(start, log.find('\n', line) - start);
  EXPECT_NE(text.find(" WARN job "), std::string::npos) << text;
  EXPECT_NE(text.find("cannot freeze"), std::string::npos) << text;
}

TEST_F(JobLogTest, AJobEndedByRecoveryIsLoggedAndSaysSo) {
  StopDaemon();
  {
    // As a daemon killed while it ran a job leaves it.
    auto catalog = catalog::Catalog::Open(StateDir() + "/catalog.db");
    ASSERT_TRUE(catalog.ok()) << catalog.status().ToString();
    ASSERT_TRUE((*catalog)
                    ->InsertJob({.id = "0d5e0b0c-0000-4000-8000-0000000000a1",
                                 .type = 198,
                                 .description = "Snapshot of VM group web",
                                 .state = catalog::JobState::kRunning,
                                 .created_us = 1,
                                 .started_us = 1})
                    .ok());
  }
  StartDaemon();
  const std::string log = LogText();
  const size_t line = log.find(
      "job 0d5e0b0c-0000-4000-8000-0000000000a1 (Snapshot of VM group web) "
      "ended by recovery after a daemon restart: nothing to recover");
  ASSERT_NE(line, std::string::npos) << log;
  const size_t start = log.rfind('\n', line) + 1;  // npos + 1: the first line
  EXPECT_NE(log.substr(start, line - start).find(" WARN "), std::string::npos) << log;

  // And the job says so to clients.
  const std::string shown = Ok({"job", "show", "0d5e0b0c-0000-4000-8000-0000000000a1"});
  EXPECT_NE(shown.find("Killed"), std::string::npos) << shown;
  EXPECT_NE(shown.find("ended by recovery after a daemon restart"), std::string::npos) << shown;
}

}  // namespace
}  // namespace vmgroup::e2e
