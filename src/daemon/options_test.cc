#include "daemon/options.h"

#include <gtest/gtest.h>

#include <fstream>

#include "testing/temp_dir.h"

namespace vmgroup::daemon {
namespace {

TEST(DaemonOptionsTest, DefaultsAndListeners) {
  auto o = ParseOptions({});
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->state_dir, "/var/lib/vmgroup");
  ASSERT_EQ(o->listens.size(), 1u);
  EXPECT_EQ(o->listens[0].unix_path, kDefaultSocket);

  EXPECT_EQ(o->admin_group, "vmgroup");
  EXPECT_EQ(o->reader_group, "");

  o = ParseOptions({"--state-dir",    "/srv/vmg",
                    "--listen",       "unix:/tmp/x.sock",
                    "--listen",       "https://0.0.0.0:5989",
                    "--tls-cert",     "/etc/c.pem",
                    "--tls-key",      "/etc/k.pem",
                    "--log-level",    "debug",
                    "--accel",        "tcg",
                    "--freeze-bound", "30",
                    "--admin-group",  "ops",
                    "--reader-group", "auditors"});
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  ASSERT_EQ(o->listens.size(), 2u);
  EXPECT_EQ(o->listens[1].host, "0.0.0.0");
  EXPECT_EQ(o->listens[1].port, 5989);
  EXPECT_TRUE(o->listens[1].tls);
  EXPECT_EQ(o->tls_cert, "/etc/c.pem");
  EXPECT_EQ(o->tls_key, "/etc/k.pem");
  EXPECT_EQ(o->admin_group, "ops");
  EXPECT_EQ(o->reader_group, "auditors");
  EXPECT_EQ(o->log_level, LogLevel::kDebug);
  EXPECT_EQ(o->freeze_bound, std::chrono::seconds(30));
  EXPECT_EQ(ParseListen("http://[::1]:0")->host, "::1");
}

TEST(DaemonOptionsTest, MetricsOnNamesOneOfTheListeners) {
  auto o =
      ParseOptions({"--metrics-on", "https://0.0.0.0:5989/", "--listen", "unix:/tmp/x.sock",
                    "--listen", "https://0.0.0.0:5989", "--tls-cert", "/c", "--tls-key", "/k"});
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_FALSE(o->listens[0].metrics);
  EXPECT_TRUE(o->listens[1].metrics);
  EXPECT_TRUE(
      ParseOptions({"--metrics-on", std::string("unix:") + kDefaultSocket})->listens[0].metrics)
      << "the default socket, when no --listen is given";
  EXPECT_FALSE(ParseOptions({})->listens[0].metrics) << "no metrics unless asked for";
  auto other = ParseOptions({"--listen", "unix:/tmp/x.sock", "--metrics-on", "unix:/tmp/y.sock"});
  EXPECT_EQ(other.status().message(),
            "--metrics-on unix:/tmp/y.sock is none of the --listen listeners");
  EXPECT_FALSE(ParseOptions({"--metrics-on", "/metrics"}).ok());
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

TEST(DaemonOptionsTest, PlainHttpOnlyOnLoopbackUnlessInsecurePlaintext) {
  EXPECT_TRUE(ParseOptions({"--listen", "http://127.0.0.1:5988"}).ok());
  EXPECT_TRUE(ParseOptions({"--listen", "http://[::1]:5988"}).ok());
  auto open = ParseOptions({"--listen", "http://0.0.0.0:5988"});
  ASSERT_FALSE(open.ok());
  EXPECT_NE(open.status().message().find("clear text"), std::string::npos);
  EXPECT_NE(open.status().message().find("--insecure-plaintext"), std::string::npos);
  EXPECT_TRUE(ParseOptions({"--listen", "http://0.0.0.0:5988", "--insecure-plaintext"}).ok());
}

TEST(DaemonOptionsTest, HttpsNeedsACertificateAndAKey) {
  auto bare = ParseOptions({"--listen", "https://0.0.0.0:5989"});
  ASSERT_FALSE(bare.ok());
  EXPECT_NE(bare.status().message().find("--tls-cert"), std::string::npos);
  EXPECT_FALSE(ParseOptions({"--listen", "https://h:5989", "--tls-cert", "/c"}).ok());
  auto stray = ParseOptions({"--tls-cert", "/c", "--tls-key", "/k"});
  ASSERT_FALSE(stray.ok());
  EXPECT_NE(stray.status().message().find("https://"), std::string::npos);
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
                                              {"--listen", "ftp://h:1"},
                                              {"--listen", "https://h"},
                                              {"--tls-key", ""},
                                              {"--admin-group", ""},
                                              {"--admin-group", "a b"},
                                              {"--reader-group", "-x"},
                                              {"--reader-group", "vmgroup"},
                                              {"--frobnicate"}}) {
    auto o = ParseOptions(bad);
    EXPECT_EQ(o.status().code(), Code::kInvalidArgument) << bad[0];
    EXPECT_FALSE(o.status().message().empty());
  }
}

TEST(DaemonOptionsTest, NbdOverTcpNeedsATlsDirectoryAndANumericAddress) {
  auto o = ParseOptions({"--nbd-tls-dir", "/etc/pki/vmgroup-nbd", "--nbd-listen", "192.0.2.7"});
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->nbd_tls_dir, "/etc/pki/vmgroup-nbd");
  EXPECT_EQ(o->nbd_listen, "192.0.2.7");
  EXPECT_TRUE(ParseOptions({"--nbd-tls-dir", "/d", "--nbd-listen", "::1"}).ok());
  EXPECT_EQ(ParseOptions({}).value().nbd_tls_dir, "") << "no TCP unless asked";

  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{"--nbd-tls-dir",
                                 "/d"},  // no address: never plain, never unreachable
        {"--nbd-listen", "127.0.0.1"},   // no TLS: TCP is never served without
        {"--nbd-tls-dir", "relative", "--nbd-listen", "127.0.0.1"},
        {"--nbd-tls-dir", "/d", "--nbd-listen", "host.example"},
        {"--nbd-tls-dir", "/d", "--nbd-listen", "127.0.0.1:10809"}}) {
    auto r = ParseOptions(bad);
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << bad[0] << " " << bad[1];
    EXPECT_NE(r.status().message().find("--nbd-"), std::string::npos) << r.status().message();
  }
}

TEST(DaemonOptionsTest, TheNbdTlsDirectoryMustHoldQemusThreeFiles) {
  testing::TempDir dir;
  EXPECT_EQ(CheckNbdTlsDir(dir / "none").code(), Code::kInvalidArgument);
  for (const char* file : kNbdTlsFiles) {
    Status missing = CheckNbdTlsDir(dir.path());
    EXPECT_EQ(missing.code(), Code::kInvalidArgument);
    EXPECT_NE(missing.message().find(dir / file), std::string::npos)
        << "names the missing file: " << missing.message();
    std::ofstream(dir / file) << "PEM";
  }
  EXPECT_TRUE(CheckNbdTlsDir(dir.path()).ok());
}

}  // namespace
}  // namespace vmgroup::daemon
