#include "hypervisor/qemu/qmp_client.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "hypervisor/qemu/fake_qmp_server.h"
#include "hypervisor/qemu/qmp_commands.h"
#include "testing/fake_clock_env.h"

namespace vmgroup::hypervisor::qemu {
namespace {

using nlohmann::json;
using Lines = std::optional<std::vector<std::string>>;

Deadline In(int ms) { return Clock::now() + std::chrono::milliseconds(ms); }

std::string SocketPath() {
  return "/tmp/vmg-qmp-" + std::to_string(::getpid()) + "-" +
         ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".sock";
}

TEST(QmpClientTest, ReturnsTheReplyAndQueuesEventsThatArriveFirst) {
  FakeQmpServer server(SocketPath(), [](const json& cmd) -> Lines {
    return std::vector<std::string>{R"({"event": "STOP", "timestamp": {}})",
                                    FakeQmpServer::Reply(cmd, {{"status", "paused"}})};
  });
  auto c = QmpClient::Connect(Env::Default(), SocketPath(), In(5000));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ((*c)->greeting()["QMP"]["version"]["qemu"]["major"], 7);
  auto s = qmp::QueryStatus(**c, In(5000));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(*s, "paused");
  auto ev = (*c)->WaitEvent("STOP", In(1000));
  ASSERT_TRUE(ev.ok());
  EXPECT_EQ((*ev)["event"], "STOP");
}

TEST(QmpClientTest, EventsLeftFromThePreviousClientDoNotHideTheGreeting) {
  FakeQmpServer server(
      SocketPath(), [](const json&) -> Lines { return std::nullopt; },
      {R"({"event": "BLOCK_JOB_READY", "data": {"device": "revert-d0"}, "timestamp": {}})"});
  auto c = QmpClient::Connect(Env::Default(), SocketPath(), In(5000));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ((*c)->greeting()["QMP"]["version"]["qemu"]["major"], 7);
}

TEST(QmpClientTest, APeerThatDoesNotGreetIsNotAMonitor) {
  FakeQmpServer server(SocketPath(), [](const json&) -> Lines { return std::nullopt; },
                       {R"({"hello": 1})"});
  // The fake greets after the stray line, but the first non-event decides.
  EXPECT_EQ(QmpClient::Connect(Env::Default(), SocketPath(), In(5000)).status().code(),
            Code::kUnavailable);
}

TEST(QmpClientTest, ErrorReplyBecomesFailedWithQemusMessage) {
  FakeQmpServer server(SocketPath(), [](const json& cmd) -> Lines {
    return std::vector<std::string>{FakeQmpServer::Error(cmd, "Cannot find device='x'")};
  });
  auto c = QmpClient::Connect(Env::Default(), SocketPath(), In(5000));
  ASSERT_TRUE(c.ok());
  Status s = qmp::Stop(**c, In(5000));
  EXPECT_EQ(s.code(), Code::kFailed);
  EXPECT_NE(s.message().find("Cannot find device='x'"), std::string::npos) << s.message();
}

TEST(QmpClientTest, LateReplyOfATimedOutCommandIsNotTakenForTheNextOne) {
  int calls = 0;
  json first;
  FakeQmpServer server(SocketPath(), [&](const json& cmd) -> Lines {
    if (++calls == 1) {
      first = cmd;  // no answer yet: the client times out
      return std::vector<std::string>{};
    }
    // Now answer both: the stale reply first, then the real one.
    return std::vector<std::string>{FakeQmpServer::Reply(first, {{"status", "stale"}}),
                                    FakeQmpServer::Reply(cmd, {{"status", "running"}})};
  });
  auto c = QmpClient::Connect(Env::Default(), SocketPath(), In(5000));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(qmp::QueryStatus(**c, In(100)).status().code(), Code::kTimeout);
  auto s = qmp::QueryStatus(**c, In(5000));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(*s, "running");
}

TEST(QmpClientTest, PeerClosingIsUnavailable) {
  FakeQmpServer server(SocketPath(), [](const json&) -> Lines { return std::nullopt; });
  auto c = QmpClient::Connect(Env::Default(), SocketPath(), In(5000));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(qmp::Cont(**c, In(5000)).code(), Code::kUnavailable);
  EXPECT_EQ(qmp::Cont(**c, In(5000)).code(), Code::kUnavailable) << "stays closed";
}

TEST(QmpClientTest, JobErrorIsReadFromQueryJobs) {
  std::vector<std::string> commands;
  FakeQmpServer server(SocketPath(), [&](const json& cmd) -> Lines {
    commands.push_back(cmd["execute"]);
    json jobs = json::array(
        {{{"id", "j1"}, {"status", "concluded"}, {"error", "vmstate device does not exist"}}});
    return std::vector<std::string>{FakeQmpServer::Reply(cmd, jobs)};
  });
  auto c = QmpClient::Connect(Env::Default(), SocketPath(), In(5000));
  ASSERT_TRUE(c.ok());
  Status s = qmp::CompleteJob(**c, "j1", In(5000));
  EXPECT_EQ(s.code(), Code::kFailed);
  EXPECT_NE(s.message().find("vmstate device does not exist"), std::string::npos);
  EXPECT_EQ(commands, (std::vector<std::string>{"query-jobs", "job-dismiss"}))
      << "a concluded job is dismissed, error or not";
  EXPECT_EQ(qmp::CompleteJob(**c, "other", In(5000)).code(), Code::kNotFound);
}

TEST(QmpClientTest, ADescriptorGoesAlongWithItsCommand) {
  FakeQmpServer server(SocketPath(), [](const json& cmd) -> Lines {
    // The peer writes into the descriptor it was handed, as QEMU into a pipe.
    if (!cmd.contains("fd")) return std::vector<std::string>{FakeQmpServer::Error(cmd, "no fd")};
    const int fd = cmd["fd"];
    const bool wrote = ::write(fd, "streamed", 8) == 8;
    ::close(fd);
    return std::vector<std::string>{wrote ? FakeQmpServer::Reply(cmd, json::object())
                                          : FakeQmpServer::Error(cmd, "write")};
  });
  auto c = QmpClient::Connect(Env::Default(), SocketPath(), In(5000));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  int ends[2];
  ASSERT_EQ(::pipe(ends), 0);
  Status s = qmp::GetFd(**c, "vmg-state", ends[1], In(5000));
  ASSERT_TRUE(s.ok()) << s.ToString();
  ::close(ends[1]);  // ours; the peer closed its copy
  char buf[16] = {};
  EXPECT_EQ(::read(ends[0], buf, sizeof buf), 8);
  EXPECT_STREQ(buf, "streamed");
  EXPECT_EQ(::read(ends[0], buf, sizeof buf), 0) << "no copy left open anywhere";
  ::close(ends[0]);
  // Without one the same command is just a command.
  EXPECT_EQ((*c)->Execute("getfd", {{"fdname", "x"}}, In(5000)).status().code(), Code::kFailed);
}

TEST(QmpClientTest, NothingListeningIsUnavailableAfterTheDeadline) {
  auto c = QmpClient::Connect(Env::Default(), "/tmp/vmg-qmp-nobody-here.sock", In(100));
  EXPECT_EQ(c.status().code(), Code::kUnavailable);
}

// What QEMU sends is untrusted (a guest that broke out writes it): replies of
// the wrong shape are errors or are skipped, never an exception through the
// daemon. Each of these ended the process before (found by fuzz/qmp_client).
TEST(QmpClientTest, AReplyWhoseIdIsNoStringIsNotTakenForOurs) {
  FakeQmpServer server(SocketPath(), [](const json& cmd) -> Lines {
    return std::vector<std::string>{R"({"return": {"status": "x"}, "id": 1})",
                                    FakeQmpServer::Reply(cmd, {{"status", "running"}})};
  });
  auto c = QmpClient::Connect(Env::Default(), SocketPath(), In(5000));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto s = qmp::QueryStatus(**c, In(5000));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(*s, "running");
}

TEST(QmpClientTest, AnErrorThatIsNoObjectIsARefusalWithoutDescription) {
  FakeQmpServer server(SocketPath(), [](const json& cmd) -> Lines {
    return std::vector<std::string>{json{{"error", 1}, {"id", cmd["id"]}}.dump()};
  });
  auto c = QmpClient::Connect(Env::Default(), SocketPath(), In(5000));
  ASSERT_TRUE(c.ok());
  Status s = qmp::Stop(**c, In(5000));
  EXPECT_EQ(s.code(), Code::kFailed);
  EXPECT_NE(s.message().find("without a description"), std::string::npos) << s.message();
}

TEST(QmpClientTest, JsonNestedDeeperThanAnyReplyIsRefused) {
  FakeQmpServer server(SocketPath(), [](const json& cmd) -> Lines {
    const std::string deep = std::string(200'000, '[') + std::string(200'000, ']');
    return std::vector<std::string>{R"({"return": )" + deep + R"(, "id": ")" +
                                    cmd["id"].get<std::string>() + R"("})"};
  });
  auto c = QmpClient::Connect(Env::Default(), SocketPath(), In(5000));
  ASSERT_TRUE(c.ok());
  Status s = qmp::Stop(**c, In(5000));
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_NE(s.message().find("nested"), std::string::npos) << s.message();
}

TEST(QmpClientTest, RepliesOfTheWrongShapeReadAsEmpty) {
  FakeQmpServer server(SocketPath(), [](const json& cmd) -> Lines {
    const std::string what = cmd["execute"];
    if (what == "query-status")
      return std::vector<std::string>{FakeQmpServer::Reply(cmd, json::array())};
    if (what == "query-block") {
      return std::vector<std::string>{FakeQmpServer::Reply(cmd, {1, "x", {{"inserted", 2}}})};
    }
    if (what == "query-jobs")
      return std::vector<std::string>{FakeQmpServer::Reply(cmd, {{"id", 3}})};
    if (what == "query-named-block-nodes") {
      return std::vector<std::string>{
          FakeQmpServer::Reply(cmd, {{{"node-name", "d0"}, {"dirty-bitmaps", {{{"count", -1}}}}}})};
    }
    return std::vector<std::string>{FakeQmpServer::Reply(cmd, {{"status", 7}})};
  });
  auto c = QmpClient::Connect(Env::Default(), SocketPath(), In(5000));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*qmp::QueryStatus(**c, In(5000)), "");
  EXPECT_TRUE(qmp::QueryBlock(**c, In(5000))->empty());
  EXPECT_FALSE(qmp::QueryJob(**c, "j", In(5000))->has_value());
  auto bitmaps = qmp::QueryBitmaps(**c, "d0", In(5000));
  ASSERT_EQ(bitmaps->size(), 1u);
  EXPECT_EQ((*bitmaps)[0].count, 0u);
  EXPECT_EQ(qmp::QueryMigrate(**c, In(5000))->status, "");
}

// A migration and a job that never end: the polls time out at their deadline
// on the client's Env clock, having slept through it, without real waiting.
TEST(QmpClientTest, PollingWaitsSleepAndTimeOutOnTheClientsEnvClock) {
  FakeQmpServer server(SocketPath(), [](const json& cmd) -> Lines {
    if (cmd["execute"] == "query-jobs") {
      return std::vector<std::string>{
          FakeQmpServer::Reply(cmd, {{{"id", "j"}, {"status", "running"}}})};
    }
    return std::vector<std::string>{FakeQmpServer::Reply(cmd, {{"status", "active"}})};
  });
  vmgroup::testing::FakeClockEnv env;
  auto c = QmpClient::Connect(&env, SocketPath(), env.Now() + std::chrono::seconds(5));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ((*c)->env(), &env);
  const auto start = Clock::now();

  Status s = qmp::AwaitMigration(**c, env.Now() + std::chrono::seconds(1));
  EXPECT_EQ(s.code(), Code::kTimeout) << s.ToString();
  EXPECT_EQ(env.sleeps(), 1000 / 5);  // a poll every 5 ms of env's clock

  s = qmp::CompleteJob(**c, "j", env.Now() + std::chrono::seconds(1));
  EXPECT_EQ(s.code(), Code::kTimeout) << s.ToString();
  EXPECT_EQ(env.sleeps(), 1000 / 5 + 1000 / 2);  // and every 2 ms for a job
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(1)) << "it waited for real";
}

}  // namespace
}  // namespace vmgroup::hypervisor::qemu
