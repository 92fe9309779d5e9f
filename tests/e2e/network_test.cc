// vmgroupd's network face, attacked as a stranger would, on loopback and the
// unix socket: request framing, bodies that lie about their size or never
// come, connection floods, memory floods, TLS and who may do what. Each test
// ends by showing the daemon still serves.
#include <sys/stat.h>

#include <atomic>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/unique_fd.h"
#include "cim/http_client.h"
#include "cim/xml_writer.h"
#include "daemon_fixture.h"
#include "testing/raw_http.h"

namespace vmgroup::e2e {
namespace {

using namespace std::chrono_literals;

class NetworkTest : public DaemonFixture {
 protected:
  UniqueFd Tcp() { return testing::ConnectTcp(port_); }
  UniqueFd Unix() { return testing::ConnectUnix(Socket()); }
  static bool Send(int fd, std::string_view bytes) { return testing::SendAll(fd, bytes); }
  static std::string Receive(int fd, bool stop_at_head = true) {
    return testing::ReceiveHttp(fd, stop_at_head);
  }
  static int StatusOf(const std::string& raw) { return testing::HttpStatus(raw); }
  // A line of the daemon's /proc status, in KiB ("VmRSS", "VmHWM").
  int64_t MemoryKiB(const std::string& field) {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(in, line)) {
      if (line.starts_with(field + ":")) return std::stoll(line.substr(field.size() + 1));
    }
    ADD_FAILURE() << "no " << field;
    return 0;
  }
  void ExpectServing() {
    EXPECT_TRUE(Env::Default()->IsAlive(pid_));
    EXPECT_EQ(Ok({"vm", "list", "--json"}), "[]\n");
  }
};

TEST_F(NetworkTest, FramingThatTwoParsersCouldReadTwoWaysIsRefused) {
  // A good request, framed in ways a proxy and the daemon could read
  // differently: each would be answered 200 if its framing were taken.
  const std::string body = cim::IMethodCall(
      "1", "EnumerateInstances", {"root", "virtualization", "v2"},
      {{"ClassName", "", cim::Value::Reference({"", {}, "Msvm_VirtualSystemCollection", {}})}});
  const std::string chunked = [&] {
    char size[32];
    std::snprintf(size, sizeof size, "%zx", body.size());
    return std::string(size) + "\r\n" + body + "\r\n0\r\n\r\n";
  }();
  const std::string length = std::to_string(body.size());
  const std::string start =
      "POST /cimom HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCIMOperation: MethodCall\r\n"
      "CIMMethod: EnumerateInstances\r\nCIMObject: root/virtualization/v2\r\n";
  struct Case {
    std::string request;
    int status;
    std::string why;
  };
  for (const Case& c : std::vector<Case>{
           {start + "Content-Length: " + length + "\r\n\r\n" + body, 200, ""},
           {start + "Transfer-Encoding: chunked\r\n\r\n" + chunked, 200, ""},
           {start + "Transfer-Encoding: chunked\r\nContent-Length: " + length + "\r\n\r\n" +
                chunked,
            400, "Transfer-Encoding and Content-Length"},
           {start + "Content-Length: " + length + "\r\nContent-Length: " + length + "\r\n\r\n" +
                body,
            400, "more than one Content-Length"},
           {start + "Transfer-Encoding: gzip\r\n\r\n" + chunked, 400, "final transfer coding"},
           {start + "Transfer-Encoding: identity\r\n\r\n" + chunked, 400, "final transfer coding"},
           {start + "Transfer-Encoding: gzip, chunked\r\n\r\n" + chunked, 501, "not implemented"},
       }) {
    for (bool tcp : {false, true}) {
      UniqueFd fd = tcp ? Tcp() : Unix();
      ASSERT_TRUE(Send(fd.get(), c.request));
      const std::string answer = Receive(fd.get(), false);
      EXPECT_EQ(StatusOf(answer), c.status) << c.request.substr(start.size(), 80) << "\n"
                                            << answer.substr(0, 300);
      EXPECT_NE(answer.find(c.why), std::string::npos) << answer.substr(0, 300);
    }
  }
  ExpectServing();
}

TEST_F(NetworkTest, AChunkSizeThatWrapsTheLimitDoesNotGrowTheDaemon) {
  // A small chunk, then one whose size makes body + size wrap past 2^64,
  // then data, as fast as the daemon takes it.
  const int64_t before = MemoryKiB("VmRSS");
  UniqueFd fd = Tcp();
  ASSERT_TRUE(Send(fd.get(),
                   "POST /cimom HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "a\r\n0123456789\r\nfffffffffffffff6\r\n"));
  const std::string block(1 << 20, 'x');
  size_t sent = 0;
  while (sent < (64u << 20) && Send(fd.get(), block)) sent += block.size();
  const int64_t after = MemoryKiB("VmRSS");
  EXPECT_LT(sent, 64u << 20) << "the daemon took all of it";
  EXPECT_LT(after - before, 32 << 10) << "KiB grown";
  ExpectServing();
}

TEST_F(NetworkTest, IdleTcpConnectionsDoNotLockOutTheUnixSocket) {
  std::vector<UniqueFd> idle;
  for (int i = 0; i < 200; ++i) idle.push_back(Tcp());
  EXPECT_EQ(Ok({"group", "list", "--json"}), "[]\n");
  EXPECT_EQ(Ok({"vm", "list", "--json"}), "[]\n");
  EXPECT_NE(LogText().find("ready"), std::string::npos);
}

TEST_F(NetworkTest, CredentialsAreAskedForBeforeTheBodyIsRead) {
  StopDaemon();
  StartDaemon({}, "http://127.0.0.1:0");  // PAM on TCP
  for (const std::string& expect : {std::string(), std::string("Expect: 100-continue\r\n")}) {
    UniqueFd fd = Tcp();
    // A body that is never sent: the answer cannot wait for it.
    ASSERT_TRUE(Send(fd.get(), "POST /cimom HTTP/1.1\r\nHost: x\r\nContent-Length: 3000000\r\n" +
                                   expect + "\r\n"));
    const std::string answer = Receive(fd.get(), false);
    EXPECT_EQ(StatusOf(answer), 401) << answer;
    EXPECT_NE(answer.find("WWW-Authenticate: Basic realm=\"vmgroupd\""), std::string::npos)
        << answer;
    EXPECT_EQ(answer.find("100 Continue"), std::string::npos) << answer;
  }
  // curl (as the CLI and wbemcli use it) sends a big body only after 100
  // Continue: without credentials it sends none.
  const std::string body_file = dir_ / "big.xml";
  ASSERT_TRUE(Env::Default()->WriteFile(body_file, std::string(3 << 20, ' ')).ok());
  CommandOutput curl =
      Run({"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_upload}", "--data-binary",
           "@" + body_file, "-H", "Expect: 100-continue", "--expect100-timeout", "60",
           "http://127.0.0.1:" + std::to_string(port_) + "/cimom"});
  EXPECT_EQ(curl.out, "401 0") << curl.err;
  ExpectServing();
}

TEST_F(NetworkTest, ParallelBigRequestsStayWithinTheMemoryBudget) {
  // 100 clients at once, each with a 3.6 MB request the daemon must parse
  // whole (a PropertyList of 225,000 names).
  std::string names;
  while (names.size() < 3'600'000) names += "<VALUE>x</VALUE>";
  const std::string body =
      "<?xml version=\"1.0\"?><CIM CIMVERSION=\"2.0\" DTDVERSION=\"2.0\"><MESSAGE ID=\"1\" "
      "PROTOCOLVERSION=\"1.0\"><SIMPLEREQ><IMETHODCALL NAME=\"EnumerateInstances\">"
      "<LOCALNAMESPACEPATH><NAMESPACE NAME=\"root\"/><NAMESPACE NAME=\"virtualization\"/>"
      "<NAMESPACE NAME=\"v2\"/></LOCALNAMESPACEPATH><IPARAMVALUE NAME=\"ClassName\"><CLASSNAME "
      "NAME=\"Msvm_ComputerSystem\"/></IPARAMVALUE><IPARAMVALUE NAME=\"PropertyList\">"
      "<VALUE.ARRAY>" +
      names + "</VALUE.ARRAY></IPARAMVALUE></IMETHODCALL></SIMPLEREQ></MESSAGE></CIM>";
  const int64_t before = MemoryKiB("VmHWM");
  std::atomic<int> ok{0}, busy{0}, refused{0}, other{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 100; ++i) {
    clients.emplace_back([&, i] {
      auto http = cim::HttpClient::Create(i % 2 ? "unix:" + Socket()
                                                : "http://127.0.0.1:" + std::to_string(port_));
      auto r = (*http)->Post("/cimom",
                             {{"CIMOperation", "MethodCall"},
                              {"CIMMethod", "EnumerateInstances"},
                              {"CIMObject", "root/virtualization/v2"}},
                             body, 300s);
      if (!r.ok()) {
        ++refused;  // turned away at the door: a connection cap
      } else if (r->status == 200) {
        ++ok;
      } else if (r->status == 503 && r->Header("Retry-After")) {
        ++busy;
      } else {
        ++other;
      }
    });
  }
  for (auto& t : clients) t.join();
  const int64_t grown = MemoryKiB("VmHWM") - before;
  EXPECT_GT(ok, 0);
  EXPECT_GT(busy, 0) << "the budget turned some away";
  EXPECT_EQ(other, 0);
  // 256 MiB of budget, plus what threads and answers take.
  EXPECT_LT(grown, 512 << 10) << "KiB";
  std::printf(
      "100 parallel 3.6 MB requests: %d answered, %d told to retry (503), %d turned away "
      "at the door; peak memory grew %lld MiB\n",
      ok.load(), busy.load(), refused.load(), static_cast<long long>(grown >> 10));
  ExpectServing();
}

TEST_F(NetworkTest, UnixPeersAreJudgedByTheirGroups) {
  // nobody (uid 65534, group nogroup) runs the CLI; the socket is open to
  // all, its directory must be too.
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0);
  auto as_nobody = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {"setpriv",         "--reuid=65534", "--regid=65534",
                                     "--clear-groups",  VMGROUP_BIN,     "--connect",
                                     "unix:" + Socket()};
    argv.insert(argv.end(), args.begin(), args.end());
    return Run(argv);
  };
  struct stat st {};
  ASSERT_EQ(::stat(Socket().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0666u);

  // In neither group: nothing, and the refusal says what is missing.
  CommandOutput denied = as_nobody({"vm", "list"});
  EXPECT_EQ(denied.exit_code, 1) << denied.err;
  EXPECT_NE(denied.err.find("access denied"), std::string::npos) << denied.err;
  EXPECT_NE(denied.err.find("nobody (uid 65534)"), std::string::npos) << denied.err;
  EXPECT_NE(denied.err.find("group vmgroup"), std::string::npos) << denied.err;

  // A reader reads, and may not change anything.
  StopDaemon();
  StartDaemon({"--insecure-loopback", "--reader-group", "nogroup"});
  NewVm("a");
  CommandOutput listed = as_nobody({"vm", "list", "--json"});
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find("\"a\""), std::string::npos) << listed.out;
  CommandOutput write = as_nobody({"group", "create", "web"});
  EXPECT_EQ(write.exit_code, 1);
  EXPECT_NE(write.err.find("may only read (group nogroup)"), std::string::npos) << write.err;
  EXPECT_NE(write.err.find("needs group vmgroup"), std::string::npos) << write.err;
  EXPECT_EQ(as_nobody({"vm", "turn-off", "a"}).exit_code, 1);
  EXPECT_EQ(Ok({"group", "list", "--json"}), "[]\n") << "nothing was made";
  EXPECT_EQ(nlohmann::json::parse(Ok({"vm", "show", "a", "--json"}))["state"], "running");

  // Members of the admin group manage.
  StopDaemon();
  StartDaemon({"--insecure-loopback", "--admin-group", "nogroup"});
  CommandOutput made = as_nobody({"group", "create", "web"});
  EXPECT_EQ(made.exit_code, 0) << made.err;
  EXPECT_EQ(as_nobody({"vm", "turn-off", "a"}).exit_code, 0);
}

TEST_F(NetworkTest, HttpsIsVerifiedByTheCliAndPlainHttpStaysOnLoopback) {
  StopDaemon();
  StartDaemon({"--insecure-loopback"}, "https://127.0.0.1:0");
  ASSERT_FALSE(Certs().ca.empty());
  const std::string port = std::to_string(port_);
  auto cli = [&](const std::string& url, const std::vector<std::string>& before,
                 const std::vector<std::string>& args) {
    std::vector<std::string> argv = {VMGROUP_BIN, "--connect", url};
    argv.insert(argv.end(), before.begin(), before.end());
    argv.insert(argv.end(), args.begin(), args.end());
    return Run(argv);
  };
  const std::vector<std::string> trust = {"--cacert", Certs().ca};

  // A group snapshot over HTTPS, by address and by name.
  NewVm("a");
  for (const char* host : {"127.0.0.1", "localhost"}) {
    CommandOutput r = cli(std::string("https://") + host + ":" + port, trust, {"group", "list"});
    EXPECT_EQ(r.exit_code, 0) << host << ": " << r.err;
  }
  const std::string url = "https://localhost:" + port;
  ASSERT_EQ(cli(url, trust, {"group", "create", "web"}).exit_code, 0);
  ASSERT_EQ(cli(url, trust, {"group", "add", "web", "a"}).exit_code, 0);
  CommandOutput snap = cli(url, trust, {"snapshot", "create", "web", "--type", "recovery"});
  EXPECT_EQ(snap.exit_code, 0) << snap.err;
  CommandOutput listed = cli(url, trust, {"snapshot", "list", "web", "--json"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(nlohmann::json::parse(listed.out).size(), 1u) << listed.out;
  // VMGROUP_CACERT does what --cacert does.
  CommandOutput by_env =
      Run({"env", "VMGROUP_CACERT=" + Certs().ca, VMGROUP_BIN, "--connect", url, "group", "list"});
  EXPECT_EQ(by_env.exit_code, 0) << by_env.err;

  // A certificate nobody vouched for, one from another CA, one for another
  // name: refused, exit 3, saying why.
  auto other = testing::MakeTestCerts(dir_.path(), "other");
  ASSERT_TRUE(other.ok());
  auto elsewhere = testing::MakeTestCerts(dir_.path(), "elsewhere", "vmgroup.invalid");
  ASSERT_TRUE(elsewhere.ok());
  for (const std::vector<std::string>& ca : {std::vector<std::string>{}, {"--cacert", other->ca}}) {
    CommandOutput r = cli(url, ca, {"group", "list"});
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_NE(r.err.find("cannot prove it is that server"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("--cacert"), std::string::npos) << r.err;
  }
  // TLS below 1.2 is not spoken.
  auto handshake = [&](const std::string& version) {
    return Run({"sh", "-c",
                "echo | gnutls-cli --x509cafile " + Certs().ca + " --priority NORMAL:-VERS-ALL:+" +
                    version + " -p " + port + " localhost"});
  };
  EXPECT_EQ(handshake("VERS-TLS1.2").exit_code, 0);
  EXPECT_EQ(handshake("VERS-TLS1.3").exit_code, 0);
  EXPECT_NE(handshake("VERS-TLS1.1").exit_code, 0);
  EXPECT_NE(handshake("VERS-TLS1.0").exit_code, 0);

  // A certificate for another name.
  StopDaemon();
  StartDaemon({"--insecure-loopback", "--tls-cert", elsewhere->server_cert, "--tls-key",
               elsewhere->server_key},
              "https://127.0.0.1:0");
  CommandOutput wrong_name = cli("https://localhost:" + std::to_string(port_),
                                 {"--cacert", elsewhere->ca}, {"group", "list"});
  EXPECT_EQ(wrong_name.exit_code, 3) << wrong_name.err;
  EXPECT_NE(wrong_name.err.find("does not match"), std::string::npos) << wrong_name.err;

  // Plain HTTP off loopback only when asked for by name.
  CommandOutput plain = Run(
      {VMGROUPD_BIN, "--no-config", "--state-dir", dir_ / "other", "--listen", "http://0.0.0.0:0"});
  EXPECT_EQ(plain.exit_code, 2);
  EXPECT_NE(plain.err.find("clear text"), std::string::npos) << plain.err;
  EXPECT_FALSE(Env::Default()->FileExists(dir_ / "other"));
}

// PAM proves who a TCP user is; vmgroupd's groups decide what it may do
// (the fixture's test users, UseTestUsers).
TEST_F(NetworkTest, PamUsersNeedTheAdminOrTheReaderGroup) {
  ASSERT_NO_FATAL_FAILURE(UseTestUsers());
  StopDaemon();
  StartDaemon({"--admin-group", "vmgt-admins", "--reader-group", "vmgt-readers"});
  // The password goes in the environment: vmgroup refuses it in argv.
  auto as = [&](const std::string& userinfo, std::vector<std::string> args) {
    const size_t colon = userinfo.find(':');
    args.insert(args.begin(),
                {"env", "VMGROUP_PASSWORD=" + userinfo.substr(colon + 1), VMGROUP_BIN, "--connect",
                 "http://" + userinfo.substr(0, colon) + "@127.0.0.1:" + std::to_string(port_)});
    return Run(args);
  };

  CommandOutput made = as("vmgt-admin:s3cret", {"group", "create", "web"});
  EXPECT_EQ(made.exit_code, 0) << made.err;
  CommandOutput read = as("vmgt-reader:s3cret", {"group", "list", "--json"});
  EXPECT_EQ(read.exit_code, 0) << read.err;
  EXPECT_NE(read.out.find("\"web\""), std::string::npos) << read.out;
  CommandOutput write = as("vmgt-reader:s3cret", {"group", "delete", "web"});
  EXPECT_EQ(write.exit_code, 1);
  EXPECT_NE(write.err.find("user vmgt-reader may only read (group vmgt-readers)"),
            std::string::npos)
      << write.err;
  CommandOutput other = as("vmgt-other:s3cret", {"group", "list"});
  EXPECT_EQ(other.exit_code, 1);
  EXPECT_NE(other.err.find("user vmgt-other may not use this service"), std::string::npos)
      << other.err;
  EXPECT_NE(other.err.find("needs group vmgt-admins or vmgt-readers"), std::string::npos)
      << other.err;
  CommandOutput wrong = as("vmgt-admin:wrong", {"group", "list"});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_NE(wrong.err.find("refused the credentials"), std::string::npos) << wrong.err;
  EXPECT_NE(LogText().find("PAM refused user vmgt-admin"), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(Ok({"group", "list", "--json"})).size(), 1u)
      << "the refused delete changed nothing";
}

}  // namespace
}  // namespace vmgroup::e2e
