// /metrics of a real vmgroupd: Prometheus's text format on the listeners
// --metrics-on names, read by a reader over the unix socket and over HTTPS
// after snapshots of a small group, its histograms counting them; refused
// as the CIM API refuses (403 to a peer in neither group, 401 without
// credentials over HTTPS), and not served where --metrics-on was not given.
#include "daemon_fixture.h"

namespace vmgroup::e2e {
namespace {

class MetricsTest : public DaemonFixture {
 protected:
  // curl GET /metrics over the unix socket as `uid` (with its gid the same);
  // the status code and content type are the last line of the output.
  CommandOutput ScrapeAs(int uid) {
    return Run({"setpriv", "--reuid=" + std::to_string(uid), "--regid=" + std::to_string(uid),
                "--clear-groups", "curl", "-sS", "--unix-socket", Socket(), "-w",
                "\n%{http_code} %{content_type}", "http://localhost/metrics"});
  }
  // curl GET `target` over HTTPS with `credentials` ("user:password", or
  // none); the status code is the last line of the output.
  CommandOutput Https(const std::string& target, const std::string& credentials) {
    std::vector<std::string> argv = {"curl", "-sS", "--cacert", Certs().ca, "-w", "\n%{http_code}"};
    if (!credentials.empty()) argv.insert(argv.end(), {"-u", credentials});
    argv.push_back("https://127.0.0.1:" + std::to_string(port_) + target);
    return Run(argv);
  }
  static bool Has(const std::string& text, const std::string& line) {
    return text.find(line + "\n") != std::string::npos;
  }
  static constexpr int kReaderUid = 54322;  // vmgt-reader (UseTestUsers)
  static constexpr int kNobody = 65534;     // in neither group
};

TEST_F(MetricsTest, ReadersScrapeTheSnapshotsTakenAndOthersAreRefused) {
  // Other users read through the socket: its directory must let them in.
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0);
  EXPECT_NE(ScrapeAs(0).out.find("\n404 "), std::string::npos)
      << "no --metrics-on: this listener serves no /metrics";

  ASSERT_NO_FATAL_FAILURE(UseTestUsers());
  StopDaemon();
  StartDaemon({"--admin-group", "vmgt-admins", "--reader-group", "vmgt-readers", "--metrics-on",
               "unix:" + Socket(), "--metrics-on", "https://127.0.0.1:0"},
              "https://127.0.0.1:0");
  NewVm("a");
  NewVm("b");
  Ok({"group", "create", "web"});
  Ok({"group", "add", "web", "a", "b"});
  Ok({"snapshot", "create", "web"});
  Ok({"snapshot", "create", "web"});
  Ok({"snapshot", "create", "web"});
  // No guest, so no guest agent: an application-consistent snapshot fails
  // at the freeze, after its intent, and is rolled back.
  ASSERT_EQ(Cli({"snapshot", "create", "web", "--consistency", "application"}).exit_code, 1);

  const CommandOutput scraped = ScrapeAs(kReaderUid);
  ASSERT_EQ(scraped.exit_code, 0) << scraped.err;
  const std::string& text = scraped.out;
  EXPECT_NE(text.find("\n200 text/plain; version=0.0.4"), std::string::npos) << text;
  const std::string web = R"(group="web",type="disk_only")";
  EXPECT_TRUE(Has(text, "vmgroup_group_pause_window_seconds_count{" + web + "} 3")) << text;
  EXPECT_TRUE(Has(text, "vmgroup_group_pause_window_seconds_bucket{" + web + R"(,le="+Inf"} 3)"));
  EXPECT_TRUE(Has(text, "# TYPE vmgroup_group_pause_window_seconds histogram"));
  for (const char* vm : {"a", "b"}) {
    EXPECT_TRUE(Has(text, "vmgroup_member_pause_seconds_count{" + web + ",vm=\"" + vm + "\"} 3"));
  }
  EXPECT_TRUE(Has(text, "vmgroup_snapshot_duration_seconds_count{" + web + "} 3"));
  EXPECT_EQ(text.find("vmgroup_freeze_window_seconds_count"), std::string::npos)
      << "the only application-consistent snapshot failed";
  EXPECT_TRUE(Has(text, R"(vmgroup_operations_total{operation="create_snapshot"} 4)"));
  EXPECT_TRUE(Has(text, R"(vmgroup_operations_failed_total{operation="create_snapshot"} 1)"));
  EXPECT_TRUE(Has(text, R"(vmgroup_operations_rolled_back_total{operation="create_snapshot"} 1)"));
  // The jobs the CLI lists: every snapshot ran as one; the failed one
  // ended in Exception.
  std::istringstream listed(Ok({"job", "list"}));
  int completed = 0;
  for (std::string line; std::getline(listed, line);) {
    std::istringstream fields(line);
    std::string id, state, progress;
    fields >> id >> state >> progress;
    completed += state == "Completed" && progress.ends_with('%');
  }
  EXPECT_GE(completed, 3);
  EXPECT_TRUE(Has(text, R"(vmgroup_jobs{state="completed"} )" + std::to_string(completed)));
  EXPECT_TRUE(Has(text, R"(vmgroup_jobs{state="exception"} 1)"));
  EXPECT_TRUE(Has(text, R"(vmgroup_jobs{state="running"} 0)"));

  // The same reader over HTTPS, proven by PAM.
  const CommandOutput remote = Https("/metrics", "vmgt-reader:s3cret");
  EXPECT_TRUE(remote.out.ends_with("\n200")) << remote.out << remote.err;
  EXPECT_TRUE(Has(remote.out, "vmgroup_group_pause_window_seconds_count{" + web + "} 3"));

  // A peer in neither group: refused, and told what it lacks.
  for (const CommandOutput& stranger :
       {ScrapeAs(kNobody), Https("/metrics", "vmgt-other:s3cret")}) {
    EXPECT_NE(stranger.out.find("\n403"), std::string::npos) << stranger.out;
    EXPECT_NE(stranger.out.find("needs group vmgt-admins or vmgt-readers"), std::string::npos)
        << stranger.out;
    EXPECT_EQ(stranger.out.find("# TYPE"), std::string::npos) << "no metrics";
  }
  // HTTPS without credentials, or with wrong ones: 401, as for a CIM operation.
  for (const char* credentials : {"", "vmgt-reader:wrong"}) {
    for (const char* target : {"/metrics", "/cimom"}) {
      const CommandOutput refused = Https(target, credentials);
      EXPECT_TRUE(refused.out.ends_with("\n401"))
          << target << " " << credentials << ": " << refused.out << refused.err;
    }
  }
}

}  // namespace
}  // namespace vmgroup::e2e
