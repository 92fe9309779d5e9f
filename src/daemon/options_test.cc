#include "daemon/options.h"

#include <gtest/gtest.h>

namespace vmgroup::daemon {
namespace {

TEST(DaemonOptionsTest, DefaultsAndListeners) {
  auto o = ParseOptions({});
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->state_dir, "/var/lib/vmgroup");
  ASSERT_EQ(o->listens.size(), 1u);
  EXPECT_EQ(o->listens[0].unix_path, kDefaultSocket);

  o = ParseOptions({"--state-dir", "/srv/vmg", "--listen", "unix:/tmp/x.sock", "--listen",
                    "http://0.0.0.0:5988", "--log-level", "debug", "--accel", "tcg",
                    "--freeze-bound", "30"});
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  ASSERT_EQ(o->listens.size(), 2u);
  EXPECT_EQ(o->listens[1].host, "0.0.0.0");
  EXPECT_EQ(o->listens[1].port, 5988);
  EXPECT_EQ(o->log_level, LogLevel::kDebug);
  EXPECT_EQ(o->freeze_bound, std::chrono::seconds(30));
  EXPECT_EQ(ParseListen("http://[::1]:0")->host, "::1");
}

TEST(DaemonOptionsTest, QemuUser) {
  EXPECT_EQ(ParseOptions({})->qemu_user, "vmgroup-qemu");
  EXPECT_EQ(ParseOptions({"--qemu-user", "kvmuser"})->qemu_user, "kvmuser");
  EXPECT_FALSE(ParseOptions({"--qemu-user", ""}).ok());
  EXPECT_FALSE(ParseOptions({"--qemu-user"}).ok());
}

TEST(DaemonOptionsTest, UnauthenticatedTcpOnlyOnLoopback) {
  EXPECT_TRUE(ParseOptions({"--insecure-loopback", "--listen", "http://127.0.0.1:0"}).ok());
  auto open = ParseOptions({"--insecure-loopback", "--listen", "http://0.0.0.0:5988"});
  ASSERT_FALSE(open.ok());
  EXPECT_NE(open.status().message().find("loopback"), std::string::npos);
}

TEST(DaemonOptionsTest, MistakesAreNamed) {
  for (const std::vector<std::string>& bad : {std::vector<std::string>{"--listen"},
                                              {"--listen", "tcp:1"},
                                              {"--listen", "unix:rel"},
                                              {"--listen", "http://host"},
                                              {"--listen", "http://h:99999"},
                                              {"--state-dir", "rel"},
                                              {"--log-level", "loud"},
                                              {"--accel", "warp"},
                                              {"--freeze-bound", "2"},
                                              {"--freeze-bound", "10s"},
                                              {"--frobnicate"}}) {
    auto o = ParseOptions(bad);
    EXPECT_EQ(o.status().code(), Code::kInvalidArgument) << bad[0];
    EXPECT_FALSE(o.status().message().empty());
  }
}

}  // namespace
}  // namespace vmgroup::daemon
