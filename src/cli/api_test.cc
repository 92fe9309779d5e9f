#include "cli/api.h"

#include <gtest/gtest.h>

#include <atomic>

#include "cim/http_server.h"
#include "cim/xml_writer.h"
#include "schema/classes.h"
#include "schema/values.h"
#include "testing/fake_clock_env.h"
#include "testing/temp_dir.h"

namespace vmgroup::cli {
namespace {

using Job = schema::ConcreteJob;

// A daemon stand-in whose one job runs for `polls` GetInstance calls, then
// has completed; it is associated with nothing.
class OneJobServer {
 public:
  explicit OneJobServer(int polls)
      : server_(
            [this, polls](const cim::HttpRequest& r) {
              const std::string* method = r.Header("CIMMethod");
              std::string content;
              if (method && *method == "GetInstance") {
                const bool done = ++gets_ > polls;
                cim::Instance job{
                    Job::kClass,
                    {{Job::kInstanceID, "string", false, cim::Value::Scalar("j1")},
                     {Job::kJobState, "uint16", false,
                      cim::Value::Scalar(std::to_string(done ? schema::JobState::kCompleted
                                                             : schema::JobState::kRunning))}}};
                content = cim::InstanceXml(job);
              }
              return cim::HttpResponse{200,
                                       {{"Content-Type", "application/xml; charset=\"utf-8\""},
                                        {"CIMOperation", "MethodResponse"}},
                                       cim::IMethodResponse("1", method ? *method : "", content)};
            },
            {}) {
    Status s = server_.ListenUnix({.path = dir_ / "s", .who = [](uid_t, gid_t) {
                                     return cim::Peer{"test", cim::Role::kAdmin, "", ""};
                                   }});
    if (!s.ok()) ADD_FAILURE() << s.ToString();
  }

  std::string endpoint() const { return "unix:" + dir_ / "s"; }
  int gets() const { return gets_; }

 private:
  testing::TempDir dir_;
  std::atomic<int> gets_{0};
  cim::HttpServer server_;
};

// WaitJob's pauses between polls go through the Env: under a test clock the
// wait takes no real time, and the pauses grow as they should.
TEST(ApiTest, WaitJobSleepsBetweenPollsThroughItsEnv) {
  OneJobServer server(/*polls=*/6);
  testing::FakeClockEnv env;
  auto api = Api::Connect(&env, server.endpoint());
  ASSERT_TRUE(api.ok()) << api.status().ToString();
  const auto start_fake = env.Now();
  const auto start = Clock::now();
  int seen = 0;
  auto job = (*api)->WaitJob("j1", [&](const JobInfo&) { ++seen; });
  ASSERT_TRUE(job.ok()) << job.status().ToString();
  EXPECT_EQ(job->state, schema::JobState::kCompleted);
  EXPECT_EQ(seen, 7);
  EXPECT_EQ(env.sleeps(), 6);
  // 20, 40, 80, 160, then at most 250 ms.
  EXPECT_EQ(env.Now() - start_fake, std::chrono::milliseconds(20 + 40 + 80 + 160 + 250 + 250));
  EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(500)) << "it slept for real";
}

}  // namespace
}  // namespace vmgroup::cli
