#include "daemon/options.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>

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
                    "--pause-lease",  "2000",
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
  EXPECT_EQ(o->pause_lease, std::chrono::milliseconds(2000));
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
                                              {"--pause-lease", "20"},
                                              {"--pause-lease", "60001"},
                                              {"--pause-lease", "1s"},
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

TEST(DaemonOptionsTest, PeersAreNamedUrlsWithTheirCredentialsElsewhere) {
  auto none = ParseOptions({});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->peers.empty()) << "groups stay on this host unless peers are given";
  EXPECT_EQ(none->peer_credentials, "/etc/vmgroup/peers");

  auto o = ParseOptions({"--peer", "db1=https://root@10.0.0.2:5989", "--peer",
                         "web-2.east=https://ops@[fd00::7]/", "--peer", "lo=http://127.0.0.1:5988",
                         "--peer", "t_1=unix:/run/other/vmgroupd.sock", "--peer",
                         "plain=https://root@db.example.com", "--peer-credentials", "/srv/peers"});
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->peers,
            (std::map<std::string, std::string>{{"db1", "https://root@10.0.0.2:5989"},
                                                {"web-2.east", "https://ops@[fd00::7]/"},
                                                {"lo", "http://127.0.0.1:5988"},
                                                {"t_1", "unix:/run/other/vmgroupd.sock"},
                                                {"plain", "https://root@db.example.com"}}));
  EXPECT_EQ(o->peer_credentials, "/srv/peers");
}

TEST(DaemonOptionsTest, APeerNeedsANameOfLettersDigitsAndDashes) {
  for (const char* bad :
       {"=https://root@h:5989", "https://root@h:5989", "db 1=https://root@h", "../x=https://root@h",
        ".hidden=https://root@h", "-x=https://root@h", "a/b=https://root@h"}) {
    auto o = ParseOptions({"--peer", bad});
    EXPECT_EQ(o.status().code(), Code::kInvalidArgument) << bad;
    EXPECT_NE(o.status().message().find("--peer"), std::string::npos) << o.status().message();
  }
  EXPECT_NE(
      ParseOptions({"--peer", "db 1=https://root@h"}).status().message().find("letters, digits"),
      std::string::npos);
}

TEST(DaemonOptionsTest, APeersUrlIsHttpsWithAUserAndAHost) {
  for (const char* bad :
       {"db1=https://10.0.0.2:5989", "db1=ftp://root@h", "db1=root@h:5989", "db1=https://root@",
        "db1=https://root@h:99999", "db1=https://root@h:", "db1=https://root@h/cimom",
        "db1=http://root@10.0.0.2:5988", "db1=unix:relative.sock"}) {
    auto o = ParseOptions({"--peer", bad});
    EXPECT_EQ(o.status().code(), Code::kInvalidArgument) << bad;
    EXPECT_NE(o.status().message().find("--peer db1"), std::string::npos) << o.status().message();
  }
  EXPECT_NE(
      ParseOptions({"--peer", "db1=http://root@10.0.0.2:5988"}).status().message().find("https://"),
      std::string::npos)
      << "http:// off loopback is refused, pointing to https://";
}

TEST(DaemonOptionsTest, APasswordInAPeersUrlIsRefusedAndNotRepeated) {
  auto o = ParseOptions({"--peer", "db1=https://root:s3cret@10.0.0.2:5989"});
  ASSERT_EQ(o.status().code(), Code::kInvalidArgument);
  const std::string m = o.status().message();
  EXPECT_EQ(m.find("s3cret"), std::string::npos) << "the message repeats the password: " << m;
  EXPECT_NE(m.find("db1.password"), std::string::npos) << m;
  EXPECT_NE(m.find("--peer-credentials"), std::string::npos) << m;
}

TEST(DaemonOptionsTest, EachPeerIsNamedOnce) {
  auto o =
      ParseOptions({"--peer", "db1=https://root@10.0.0.2", "--peer", "db1=https://root@10.0.0.3"});
  ASSERT_EQ(o.status().code(), Code::kInvalidArgument);
  EXPECT_NE(o.status().message().find("db1 is given twice"), std::string::npos)
      << o.status().message();
  EXPECT_FALSE(ParseOptions({"--peer-credentials", "relative"}).ok());
}

TEST(DaemonOptionsTest, PeersFromTheConfigurationFile) {
  testing::TempDir dir;
  const std::string conf = dir / "vmgroupd.conf";
  std::ofstream(conf) << "peer = db1=https://root@10.0.0.2:5989\n"
                         "peer = db2=https://root@10.0.0.3:5989\n"
                         "peer-credentials = /srv/peers\n";
  auto o = ParseOptions({"--config", conf});
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->peers.size(), 2u);
  EXPECT_EQ(o->peers.at("db2"), "https://root@10.0.0.3:5989");
  EXPECT_EQ(o->peer_credentials, "/srv/peers");
  // The command line's --peer replaces all the file's peer lines.
  o = ParseOptions({"--config", conf, "--peer", "db3=https://root@10.0.0.4"});
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->peers, (std::map<std::string, std::string>{{"db3", "https://root@10.0.0.4"}}));

  std::ofstream(conf) << "peer = db1=https://root@10.0.0.2\n"
                         "peer = db1=https://root@10.0.0.3\n";
  auto twice = ParseOptions({"--config", conf});
  EXPECT_EQ(twice.status().code(), Code::kInvalidArgument);
  EXPECT_NE(twice.status().message().find(conf + ":2: --peer db1 is given twice"),
            std::string::npos)
      << twice.status().message();
}

}  // namespace
}  // namespace vmgroup::daemon
