// vmgroupd.conf: its syntax, its mistakes named by FILE:LINE, which file is
// read, how the command line wins, and the shipped sample and man page
// checked against the option table.
#include "daemon/config_file.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "daemon/options.h"
#include "testing/temp_dir.h"

namespace vmgroup::daemon {
namespace {

TEST(ConfigFileTest, LinesAreNameEqualsValueOrANameAlone) {
  auto lines = ParseConfigText(
      "# a comment\n\n  listen = unix:/run/x.sock  \ninsecure-loopback\r\n"
      "\t# indented comment\nlibvirt=qemu+ssh://h/system?keyfile=/k#1\ntls-key =\n",
      "f.conf");
  ASSERT_TRUE(lines.ok()) << lines.status().ToString();
  ASSERT_EQ(lines->size(), 4u);
  EXPECT_EQ((*lines)[0].line, 3);
  EXPECT_EQ((*lines)[0].name, "listen");
  EXPECT_EQ((*lines)[0].value, "unix:/run/x.sock");
  EXPECT_EQ((*lines)[1].line, 4);
  EXPECT_EQ((*lines)[1].name, "insecure-loopback");
  EXPECT_FALSE((*lines)[1].value.has_value());
  EXPECT_EQ((*lines)[2].value, "qemu+ssh://h/system?keyfile=/k#1") << "# inside a value stays";
  EXPECT_EQ((*lines)[3].line, 7);
  EXPECT_EQ((*lines)[3].value, "");

  EXPECT_EQ(ParseConfigText("\n = x\n", "f.conf").status().message(),
            "f.conf:2: no option name before '=': write NAME = VALUE");
  auto blank = ParseConfigText("log level = debug\n", "f.conf");
  EXPECT_EQ(blank.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(blank.status().message().starts_with("f.conf:1: 'log level' is not an option name"))
      << blank.status().message();
}

class ConfigOptionsTest : public ::testing::Test {
 protected:
  // Writes `text` to a file of the test's and returns its path.
  std::string Conf(const std::string& text, const std::string& name = "vmgroupd.conf") {
    std::ofstream(dir_ / name) << text;
    return dir_ / name;
  }
  // The error of vmgroupd --config FILE (FILE holding `text`) `args`.
  std::string Error(const std::string& text, std::vector<std::string> args = {}) {
    args.insert(args.begin(), {"--config", Conf(text)});
    auto o = ParseOptions(args);
    EXPECT_EQ(o.status().code(), Code::kInvalidArgument) << text;
    return o.status().message();
  }
  testing::TempDir dir_;
};

TEST_F(ConfigOptionsTest, TheFileSetsEveryKindOfOption) {
  const std::string conf = Conf(
      "state-dir = /srv/vmg\n"
      "listen = unix:/tmp/a.sock\n"
      "listen = http://127.0.0.1:5988\n"
      "metrics-on = unix:/tmp/a.sock\n"
      "insecure-loopback\n"
      "log-level = debug\n"
      "accel = tcg\n"
      "freeze-bound = 30\n"
      "pause-lease = 750\n"
      "libvirt = qemu:///system\n"
      "libvirt = qemu+ssh://h/system\n");
  auto o = ParseOptions({"--config", conf});
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->state_dir, "/srv/vmg");
  ASSERT_EQ(o->listens.size(), 2u);
  EXPECT_EQ(o->listens[0].unix_path, "/tmp/a.sock");
  EXPECT_TRUE(o->listens[0].metrics);
  EXPECT_EQ(o->listens[1].port, 5988);
  EXPECT_TRUE(o->insecure_loopback);
  EXPECT_EQ(o->log_level, LogLevel::kDebug);
  EXPECT_EQ(o->accel, hypervisor::qemu::Accel::kTcg);
  EXPECT_EQ(o->freeze_bound, std::chrono::seconds(30));
  EXPECT_EQ(o->pause_lease, std::chrono::milliseconds(750));
  EXPECT_EQ(o->libvirt, (std::vector<std::string>{"qemu:///system", "qemu+ssh://h/system"}));
  EXPECT_EQ(o->config, conf) << "names the file it read";
}

TEST_F(ConfigOptionsTest, MistakesAreNamedByFileAndLine) {
  const std::string path = dir_ / "vmgroupd.conf";
  EXPECT_EQ(Error("# ok\nfrobnicate = 1\n"),
            path +
                ":2: unknown option 'frobnicate' (the options are vmgroupd's long ones without "
                "the dashes; see vmgroupd.conf(5))");
  EXPECT_EQ(Error("listen\n"), path + ":1: listen needs a value: write listen = LISTENER");
  EXPECT_EQ(Error("\nlog-level =\n"),
            path + ":2: log-level needs a value: write log-level = LEVEL");
  EXPECT_EQ(
      Error("insecure-loopback = yes\n"),
      path + ":1: insecure-loopback takes no value: write insecure-loopback alone on its line");
  EXPECT_EQ(Error("state-dir = relative\n"), path + ":1: --state-dir must be an absolute path");
  EXPECT_EQ(Error("\n\n\nlisten = tcp:1\n").substr(0, path.size() + 3), path + ":4:");
  for (const char* only : {"help", "version", "no-config", "config = /x"}) {
    EXPECT_NE(Error(std::string(only) + "\n").find("is for the command line only"),
              std::string::npos)
        << only;
  }
  EXPECT_EQ(Error("a b\n"), path +
                                ":1: 'a b' is not an option name: write NAME = VALUE, or NAME "
                                "alone for an option without a value");
  // A line the command line replaces is still checked: no file with a
  // mistake in it is half used.
  EXPECT_NE(Error("listen = tcp:1\n", {"--listen", "unix:/tmp/x.sock"}).find(path + ":1:"),
            std::string::npos);
}

TEST_F(ConfigOptionsTest, AScalarOnTheCommandLineReplacesTheFiles) {
  const std::string conf = Conf("log-level = debug\nstate-dir = /srv/a\nqemu-user = q\n");
  auto o = ParseOptions({"--log-level", "error", "--config", conf, "--state-dir", "/srv/b"});
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->log_level, LogLevel::kError);
  EXPECT_EQ(o->state_dir, "/srv/b");
  EXPECT_EQ(o->qemu_user, "q") << "what the command line does not give stays the file's";
}

TEST_F(ConfigOptionsTest, ARepeatableOptionOnTheCommandLineReplacesAllTheFilesLinesOfIt) {
  const std::string conf = Conf(
      "listen = unix:/tmp/a.sock\nlisten = unix:/tmp/b.sock\n"
      "libvirt = qemu:///system\n");
  auto o = ParseOptions({"--config", conf, "--listen", "unix:/tmp/c.sock"});
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  ASSERT_EQ(o->listens.size(), 1u);
  EXPECT_EQ(o->listens[0].unix_path, "/tmp/c.sock");
  EXPECT_EQ(o->libvirt, std::vector<std::string>{"qemu:///system"}) << "another option: kept";

  o = ParseOptions({"--config", conf, "--libvirt", "test:///default"});
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->listens.size(), 2u);
  EXPECT_EQ(o->libvirt, std::vector<std::string>{"test:///default"});
}

TEST_F(ConfigOptionsTest, TheChecksAcrossOptionsSeeTheMergedResult) {
  const std::string conf = Conf("listen = https://0.0.0.0:5989\ntls-cert = /c\n");
  EXPECT_TRUE(ParseOptions({"--config", conf, "--tls-key", "/k"}).ok());
  auto missing = ParseOptions({"--config", conf});
  EXPECT_EQ(missing.status().message(),
            "an https:// listener needs --tls-cert FILE and --tls-key FILE");
  // The command line's listener replaces the file's https:// one: the
  // certificate then has no listener.
  EXPECT_FALSE(
      ParseOptions({"--config", conf, "--tls-key", "/k", "--listen", "unix:/tmp/x.sock"}).ok());
  EXPECT_TRUE(ParseOptions(
                  {"--config", Conf("nbd-tls-dir = /d\n", "nbd.conf"), "--nbd-listen", "192.0.2.7"})
                  .ok());
}

TEST_F(ConfigOptionsTest, WhichFileIsRead) {
  const std::string debug = Conf("log-level = debug\n");
  // The default file, when it exists.
  auto o = ParseOptions({}, debug);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->log_level, LogLevel::kDebug);
  // A missing default file: no settings.
  o = ParseOptions({}, dir_ / "absent.conf");
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->log_level, LogLevel::kInfo);
  EXPECT_EQ(o->config, "");
  // A missing file named by --config: an error naming it.
  auto named = ParseOptions({"--config", dir_ / "absent.conf"}, debug);
  EXPECT_EQ(named.status().code(), Code::kFileNotFound);
  EXPECT_NE(named.status().message().find(dir_ / "absent.conf"), std::string::npos);
  // --config instead of the default; --no-config: none.
  o = ParseOptions({"--config", Conf("log-level = error\n", "other.conf")}, debug);
  EXPECT_EQ(o->log_level, LogLevel::kError);
  o = ParseOptions({"--no-config"}, debug);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->log_level, LogLevel::kInfo);
  EXPECT_EQ(o->config, "");
  EXPECT_FALSE(ParseOptions({"--no-config", "--config", debug}).ok());
  EXPECT_FALSE(ParseOptions({"--config", ""}).ok());
  // --help and --version answer even when the file is broken.
  const std::string broken = Conf("frobnicate\n", "broken.conf");
  EXPECT_FALSE(ParseOptions({}, broken).ok());
  EXPECT_TRUE(ParseOptions({"--help"}, broken)->help);
  EXPECT_TRUE(ParseOptions({"--version"}, broken)->version);
}

std::string ReadAll(const char* path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ShippedConfigTest, TheSampleHasEveryOptionCommentedOutAndSetsNothing) {
  const std::string sample = ReadAll(VMGROUP_SAMPLE_CONF);
  for (const OptionSpec& spec : OptionTable()) {
    if (spec.command_line_only) continue;
    const std::string line = "\n#" + std::string(spec.name) + (spec.value.empty() ? "\n" : " = ");
    EXPECT_NE(sample.find(line), std::string::npos)
        << spec.name << " is not in dist/vmgroupd.conf as #" << spec.name
        << (spec.value.empty() ? "" : " = VALUE");
  }
  auto o = ParseOptions({"--config", VMGROUP_SAMPLE_CONF});
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  auto defaults = ParseOptions({"--no-config"});
  EXPECT_EQ(o->state_dir, defaults->state_dir);
  EXPECT_EQ(o->listens.size(), 1u);
}

TEST(ShippedConfigTest, TheManPageDescribesEveryOption) {
  std::string page = ReadAll(VMGROUP_CONF_MAN);
  for (size_t at = 0; (at = page.find("\\-", at)) != std::string::npos;) page.replace(at, 2, "-");
  for (const OptionSpec& spec : OptionTable()) {
    // ".B name" or '.BI "name = " VALUE'; "--name" for the command line's.
    const std::string name = (spec.command_line_only ? "--" : "") + std::string(spec.name);
    const std::string entry =
        spec.value.empty() ? "\n.B " + name + "\n"
                           : "\n.BI \"" + name + (spec.command_line_only ? " \" " : " = \" ");
    EXPECT_NE(page.find(entry), std::string::npos)
        << name << " has no entry in docs/man/vmgroupd.conf.5 (" << entry.substr(1) << ")";
  }
}

}  // namespace
}  // namespace vmgroup::daemon
