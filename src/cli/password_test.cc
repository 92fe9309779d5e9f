// Where the password for an https://USER@HOST daemon comes from: never the
// command line; a file, the environment, or the terminal, in that order.
#include "cli/password.h"

#include <gtest/gtest.h>

#include <fstream>

#include "testing/temp_dir.h"

namespace vmgroup::cli {
namespace {

TEST(PasswordTest, OnlyAnEndpointWithAUserNeedsOne) {
  EXPECT_EQ(EndpointUser("https://admin@host:5989"), "admin");
  EXPECT_EQ(EndpointUser("http://admin:pw@127.0.0.1:5988/cimom"), "admin");
  EXPECT_EQ(EndpointUser("https://host:5989"), "");
  EXPECT_EQ(EndpointUser("unix:/run/a@b.sock"), "");
  bool asked = false;
  PasswordSources s{.env = "from-env", .prompt = [&](const std::string&) -> Result<std::string> {
                      asked = true;
                      return std::string("typed");
                    }};
  EXPECT_EQ(*PasswordFor("unix:/run/vmgroup/vmgroupd.sock", true, s), "");
  EXPECT_EQ(*PasswordFor("https://host:5989", true, s), "");
  EXPECT_FALSE(asked);
}

TEST(PasswordTest, APasswordOnTheCommandLineIsRefused) {
  auto r = PasswordFor("https://admin:s3cret@host:5989", true, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(r.status().message().find("s3cret"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("$VMGROUP_PASSWORD"), std::string::npos);
  // In $VMGROUP_CONNECT it is nobody else's to read: the endpoint's own is used.
  EXPECT_EQ(*PasswordFor("https://admin:s3cret@host:5989", false, {}), "");
}

TEST(PasswordTest, FileThenEnvironmentThenPrompt) {
  testing::TempDir dir;
  const std::string file = dir / "pw";
  std::ofstream(file) << "from-file\r\nsecond line\n";
  std::string prompt_seen;
  auto prompt = [&](const std::string& p) -> Result<std::string> {
    prompt_seen = p;
    return std::string("typed");
  };
  const std::string url = "https://admin@host:5989";
  EXPECT_EQ(*PasswordFor(url, true, {.file = file, .env = "from-env", .prompt = prompt}),
            "from-file");
  EXPECT_EQ(*PasswordFor(url, true, {.env = "from-env", .prompt = prompt}), "from-env");
  EXPECT_TRUE(prompt_seen.empty());
  EXPECT_EQ(*PasswordFor(url, true, {.prompt = prompt}), "typed");
  EXPECT_EQ(prompt_seen, "password for admin: ");
}

TEST(PasswordTest, NoPasswordAnywhereIsAUsageError) {
  const std::string url = "https://admin@host:5989";
  for (const PasswordSources& none :
       {PasswordSources{}, PasswordSources{.prompt = [](const std::string&) -> Result<std::string> {
          return Status::Unavailable("no terminal");
        }}}) {
    auto r = PasswordFor(url, true, none);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find("no password for admin"), std::string::npos);
  }
  testing::TempDir dir;
  std::ofstream(dir / "empty") << "\n";
  for (const std::string& file : {dir / "missing", dir / "empty"}) {
    auto r = PasswordFor(url, true, {.file = file, .env = "from-env"});
    ASSERT_FALSE(r.ok()) << file;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find("--password-file"), std::string::npos);
  }
}

}  // namespace
}  // namespace vmgroup::cli
