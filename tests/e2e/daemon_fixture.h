// DaemonFixture: a vmgroupd started by the test as its own child, on a fresh
// state directory, a unix socket and a loopback TCP port (HTTP, or HTTPS
// with a throwaway CA made in the test's directory), and helpers to run the
// vmgroup CLI and wbemcli against it. TearDown stops the daemon
// with SIGTERM and then powers off, by PID through the engine, every VM it
// left running.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <fstream>
#include <optional>
#include <regex>
#include <sstream>

#include "engine/engine.h"
#include "testing/daemon_ready.h"
#include "testing/temp_dir.h"
#include "testing/test_certs.h"
#include "testing/tiny_vms.h"

namespace vmgroup::e2e {

class DaemonFixture : public ::testing::Test {
 protected:
  void SetUp() override { StartDaemon(); }
  void TearDown() override {
    StopDaemon();
    auto e = engine::Engine::Open({.state_dir = StateDir(), .qemu = testing::TestQemu()});
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    EXPECT_TRUE((*e)->vms().StopAll().ok());
  }

  std::string StateDir() const { return dir_ / "state"; }
  std::string Socket() const { return dir_ / "d.sock"; }
  std::string LogText() const {
    std::ifstream in(dir_ / "vmgroupd.log");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  // Starts vmgroupd with `tcp` ("" for none; https:// is given the test
  // CA's server certificate) and waits until it serves.
  void StartDaemon(const std::vector<std::string>& extra = {"--insecure-loopback"},
                   const std::string& tcp = "http://127.0.0.1:0") {
    scheme_ = tcp.starts_with("https://") ? "https" : "http";
    std::vector<std::string> argv = launcher_;
    const std::vector<std::string> daemon = {
        VMGROUPD_BIN, "--state-dir", StateDir(), "--listen", "unix:" + Socket(), "--accel", "tcg"};
    argv.insert(argv.end(), daemon.begin(), daemon.end());
    argv.push_back("--no-config");  // the host's /etc/vmgroup/vmgroupd.conf is not the test's
    if (!log_level_.empty()) argv.insert(argv.end(), {"--log-level", log_level_});
    if (!tcp.empty()) argv.insert(argv.end(), {"--listen", tcp});
    if (scheme_ == "https" && std::find(extra.begin(), extra.end(), "--tls-cert") == extra.end()) {
      argv.insert(argv.end(), {"--tls-cert", Certs().server_cert, "--tls-key", Certs().server_key});
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    const size_t before = LogText().size();
    auto pid =
        Env::Default()->Spawn(argv, {.log_path = dir_ / "vmgroupd.log", .new_session = false});
    ASSERT_TRUE(pid.ok()) << pid.status().ToString();
    pid_ = *pid;
    auto port = testing::AwaitDaemonReady(pid_, dir_ / "vmgroupd.log", before, "127.0.0.1");
    ASSERT_TRUE(port.ok()) << port.status().message();
    if (*port != 0) port_ = *port;
  }

  void StopDaemon(int signal = SIGTERM) {
    if (pid_ <= 0) return;
    EXPECT_TRUE(Env::Default()->Kill(pid_, signal).ok());
    EXPECT_TRUE(Env::Default()->WaitGone(pid_, std::chrono::seconds(30)).ok());
    pid_ = 0;
  }

  CommandOutput Run(std::vector<std::string> argv) {
    auto r = Env::Default()->Run(argv, std::chrono::minutes(2));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : CommandOutput{};
  }
  // vmgroup --connect unix:<socket> args...
  CommandOutput Cli(std::vector<std::string> args) {
    args.insert(args.begin(), {VMGROUP_BIN, "--connect", "unix:" + Socket()});
    return Run(args);
  }
  // Runs the CLI, expects success, returns stdout.
  std::string Ok(std::vector<std::string> args) {
    CommandOutput r = Cli(args);
    EXPECT_EQ(r.exit_code, 0) << "vmgroup " << args[0] << " " << (args.size() > 1 ? args[1] : "")
                              << ": " << r.err;
    return r.out;
  }
  // wbemcli OP [options] 'http(s)://127.0.0.1:PORT/root/virtualization/v2:PATH' [extra],
  // trusting the test CA over HTTPS.
  CommandOutput Wbem(const std::string& op, const std::string& path,
                     const std::vector<std::string>& extra = {},
                     const std::vector<std::string>& options = {}) {
    std::vector<std::string> argv = {"wbemcli", op};
    if (scheme_ == "https") argv.insert(argv.end(), {"-cacert", Certs().ca});
    argv.insert(argv.end(), options.begin(), options.end());
    argv.push_back(Url() + path);
    argv.insert(argv.end(), extra.begin(), extra.end());
    return Run(argv);
  }
  std::string Url() const {
    return scheme_ + "://127.0.0.1:" + std::to_string(port_) + "/root/virtualization/v2:";
  }
  // The test CA and the daemon's certificate, made on first use.
  const testing::TestCerts& Certs() {
    if (!certs_) {
      auto made = testing::MakeTestCerts(dir_.path());
      EXPECT_TRUE(made.ok()) << made.status().ToString();
      certs_ = made.ok() ? *made : testing::TestCerts{};
    }
    return *certs_;
  }

  // A VM with one new 16 MiB disk, started.
  std::string NewVm(const std::string& name) {
    std::string id = Ok({"vm", "create", name, "--memory", "64", "--disk", "16M", "--start"});
    while (!id.empty() && id.back() == '\n') id.pop_back();
    return id;
  }

  // For the daemons started from now on: users vmgt-admin, vmgt-reader and
  // vmgt-other (uids 54321..54323, password "s3cret"), the first in group
  // vmgt-admins, the second in vmgt-readers, as PAM and vmgroupd see them.
  // The users are the test's own: copies of the account files with them
  // added, bind-mounted over /etc in a mount namespace of the daemon's
  // alone, so the host's accounts are never touched.
  void UseTestUsers() {
    CommandOutput hash = Run({"openssl", "passwd", "-6", "-salt", "vmgroupe2e", "s3cret"});
    ASSERT_EQ(hash.exit_code, 0) << hash.err;
    while (!hash.out.empty() && hash.out.back() == '\n') hash.out.pop_back();
    auto copy_with = [&](const std::string& from, const std::string& to, const std::string& more) {
      auto text = Env::Default()->ReadFile(from);
      ASSERT_TRUE(text.ok());
      ASSERT_TRUE(Env::Default()->WriteFile(to, *text + more).ok());
      ASSERT_EQ(::chmod(to.c_str(), from == "/etc/shadow" ? 0600 : 0644), 0);
    };
    std::string users, shadow;
    int uid = 54321;
    for (const char* user : {"vmgt-admin", "vmgt-reader", "vmgt-other"}) {
      users +=
          std::string(user) + ":x:" + std::to_string(uid++) + ":65534::/nonexistent:/bin/false\n";
      shadow += std::string(user) + ":" + hash.out + ":19000:0:99999:7:::\n";
    }
    copy_with("/etc/passwd", dir_ / "passwd", users);
    copy_with("/etc/shadow", dir_ / "shadow", shadow);
    copy_with("/etc/group", dir_ / "group",
              "vmgt-admins:x:54330:vmgt-admin\nvmgt-readers:x:54331:vmgt-reader\n");
    launcher_ = {"unshare",
                 "-m",
                 "--propagation",
                 "private",
                 "sh",
                 "-c",
                 "mount --bind \"$1\" /etc/passwd && mount --bind \"$2\" /etc/shadow && "
                 "mount --bind \"$3\" /etc/group && shift 3 && exec \"$@\"",
                 "sh",
                 dir_ / "passwd",
                 dir_ / "shadow",
                 dir_ / "group"};
  }

  testing::TempDir dir_;
  int pid_ = 0;
  int port_ = 0;
  std::string scheme_ = "http";
  std::optional<testing::TestCerts> certs_;
  // vmgroupd's --log-level; empty: its default.
  std::string log_level_ = "debug";
  // Put before vmgroupd's command line; it must exec the daemon in its own
  // process, whose PID the fixture then waits for and signals.
  std::vector<std::string> launcher_;
};

// The text after `key=` up to the next quote in wbemcli's output, or "".
inline std::string Field(const std::string& out, const std::string& key) {
  std::smatch m;
  if (std::regex_search(out, m, std::regex(key + R"(=\"?([^\",\n]*))"))) return m[1];
  return "";
}

}  // namespace vmgroup::e2e
