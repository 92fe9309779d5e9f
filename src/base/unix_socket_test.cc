#include "base/unix_socket.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "testing/fake_clock_env.h"

namespace vmgroup {
namespace {

class UnixSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/vmg-unix-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    path_ = dir_ + "/s";
  }
  void TearDown() override {
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  // A socket listening at path_.
  UniqueFd Listen() {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const sockaddr_un addr = UnixAddress(path_).value();
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd.get(), 1) != 0) {
      fd.reset();
    }
    return fd;
  }

  std::string dir_, path_;
};

TEST_F(UnixSocketTest, ConnectsToAListener) {
  UniqueFd listener = Listen();
  ASSERT_TRUE(listener.valid());
  auto fd = ConnectUnix(Env::Default(), path_, Clock::now());
  ASSERT_TRUE(fd.ok()) << fd.status().ToString();
  UniqueFd accepted(::accept(listener.get(), nullptr, nullptr));
  ASSERT_TRUE(accepted.valid());
  ASSERT_EQ(::write(fd->get(), "x", 1), 1);
  char c = 0;
  EXPECT_EQ(::read(accepted.get(), &c, 1), 1);
  EXPECT_EQ(c, 'x');
}

TEST_F(UnixSocketTest, NobodyThereIsUnavailableNamingThePathAndTheError) {
  const auto start = Clock::now();
  auto fd = ConnectUnix(Env::Default(), path_, start + std::chrono::milliseconds(100));
  EXPECT_GE(Clock::now() - start, std::chrono::milliseconds(100));  // it kept trying
  EXPECT_EQ(fd.status().code(), Code::kUnavailable);
  EXPECT_NE(fd.status().message().find(path_), std::string::npos);
  EXPECT_NE(fd.status().message().find("No such file or directory"), std::string::npos);
}

TEST_F(UnixSocketTest, RetriesOnTheEnvClockAndSleepsThroughIt) {
  testing::FakeClockEnv env;
  const auto start = Clock::now();
  auto fd = ConnectUnix(&env, path_, env.Now() + std::chrono::seconds(1));
  EXPECT_EQ(fd.status().code(), Code::kUnavailable);
  EXPECT_EQ(env.sleeps(), 100);  // every 10 ms of env's clock, until its deadline
  EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(500)) << "it slept for real";
}

TEST_F(UnixSocketTest, RetriesUntilTheListenerAppears) {
  UniqueFd listener;
  std::thread late([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    listener = Listen();
  });
  auto fd = ConnectUnix(Env::Default(), path_, Clock::now() + std::chrono::seconds(5));
  late.join();
  EXPECT_TRUE(listener.valid());
  EXPECT_TRUE(fd.ok()) << fd.status().ToString();
}

TEST_F(UnixSocketTest, PathTooLongIsInvalidArgument) {
  const std::string long_path = dir_ + "/" + std::string(sizeof(sockaddr_un{}.sun_path), 'x');
  EXPECT_EQ(UnixAddress(long_path).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(ConnectUnix(Env::Default(), long_path, Clock::now()).status().code(),
            Code::kInvalidArgument);
  // The longest path that fits is kept whole.
  const std::string fits(sizeof(sockaddr_un{}.sun_path) - 1, 'y');
  auto addr = UnixAddress(fits);
  ASSERT_TRUE(addr.ok());
  EXPECT_EQ(std::string(addr->sun_path), fits);
}

}  // namespace
}  // namespace vmgroup
