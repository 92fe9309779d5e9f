// Runs a real NBD server, qemu-nbd, as this test's child on a unix socket,
// serving a qcow2 image whose persistent dirty bitmap marks known clusters.
#include "storage/nbd_reader.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include "base/unix_socket.h"
#include "testing/fake_clock_env.h"
#include "testing/temp_dir.h"

namespace vmgroup::storage {
namespace {

constexpr uint64_t kKiB = 1024, kGiB = uint64_t{1} << 30;
constexpr uint64_t kSize = 8 * kGiB;
constexpr char kBitmap[] = "qemu:dirty-bitmap:b0";

class NbdReaderTest : public ::testing::Test {
 protected:
  // One server for all the tests: an 8 GiB image with bitmap b0, in which
  // these writes marked [64k, 192k) (two adjacent clusters), [512k, 576k)
  // (4k of a 64k cluster), [2G - 64k, 2G + 64k) (across the end of a
  // reader's first request, so two replies describe it) and [5G, 5G + 64k).
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir;
    const std::string image = *dir_ / "disk.qcow2";
    for (const std::vector<std::string>& argv : std::vector<std::vector<std::string>>{
             {"qemu-img", "create", "-q", "-f", "qcow2", image, std::to_string(kSize)},
             {"qemu-img", "bitmap", "--add", image, "b0"},
             {"qemu-io", "-f", "qcow2", "-c", "write -P 1 64k 64k", "-c", "write -P 1 128k 64k",
              "-c", "write -P 1 512k 4k", "-c", "write -P 1 2097088k 128k", "-c",
              "write -P 1 5G 64k", image}}) {
      auto run = env()->Run(argv);
      ASSERT_TRUE(run.ok() && run->exit_code == 0) << argv[0] << ": " << run->err;
    }
    socket_ = new std::string(*dir_ / "nbd.sock");
    auto pid =
        env()->Spawn({"qemu-nbd", "--read-only", "--persistent", "--shared=8", "--socket", *socket_,
                      "--export-name", "disk", "--bitmap", "b0", "--format", "qcow2", image},
                     {.log_path = *dir_ / "qemu-nbd.log"});
    ASSERT_TRUE(pid.ok()) << pid.status().ToString();
    pid_ = *pid;
    // Listening once a connection is taken (and dropped at once).
    auto probe = ConnectUnix(env(), *socket_, Clock::now() + std::chrono::seconds(10));
    ASSERT_TRUE(probe.ok()) << probe.status().ToString();
  }
  static void TearDownTestSuite() {
    if (pid_ > 0) {
      (void)env()->Kill(pid_, SIGTERM);
      if (!env()->WaitGone(pid_, std::chrono::seconds(5)).ok()) (void)env()->Kill(pid_, SIGKILL);
      (void)env()->WaitGone(pid_, std::chrono::seconds(5));
    }
    delete socket_;
    delete dir_;
  }
  static Env* env() { return Env::Default(); }
  static Deadline Soon() { return Clock::now() + std::chrono::seconds(10); }

  // A reader of the export with bitmap b0's context.
  static std::unique_ptr<NbdReader> Reader() {
    auto r = NbdReader::Open(env(), *socket_, "disk", kBitmap, Soon());
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : nullptr;
  }

  static inline testing::TempDir* dir_ = nullptr;
  static inline std::string* socket_ = nullptr;
  static inline int pid_ = 0;
};

TEST_F(NbdReaderTest, GivesTheMarkedRangesOfTheWholeExportMerged) {
  auto reader = Reader();
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->size(), kSize);
  auto marked = reader->Marked(0, kSize, 100, Soon());
  ASSERT_TRUE(marked.ok()) << marked.status().ToString();
  EXPECT_EQ(marked->ranges, (std::vector<ByteRange>{{64 * kKiB, 128 * kKiB},
                                                    {512 * kKiB, 64 * kKiB},
                                                    {2 * kGiB - 64 * kKiB, 128 * kKiB},
                                                    {5 * kGiB, 64 * kKiB}}));
  EXPECT_EQ(marked->processed, kSize);
}

TEST_F(NbdReaderTest, ABoundOnRangesSaysHowFarItGotAndTheNextCallGoesOn) {
  auto reader = Reader();
  ASSERT_NE(reader, nullptr);
  auto first = reader->Marked(0, kSize, 1, Soon());
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->ranges, (std::vector<ByteRange>{{64 * kKiB, 128 * kKiB}}));
  EXPECT_EQ(first->processed, 512 * kKiB);  // up to the range left out

  auto second = reader->Marked(first->processed, kSize - first->processed, 1, Soon());
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->ranges, (std::vector<ByteRange>{{512 * kKiB, 64 * kKiB}}));
  EXPECT_EQ(second->processed, 2 * kGiB - 64 * kKiB - 512 * kKiB);

  auto third = reader->Marked(5 * kGiB, 3 * kGiB, 1, Soon());
  ASSERT_TRUE(third.ok()) << third.status().ToString();
  EXPECT_EQ(third->ranges, (std::vector<ByteRange>{{5 * kGiB, 64 * kKiB}}));
  EXPECT_EQ(third->processed, 3 * kGiB);  // the last range fitted: all of it
}

TEST_F(NbdReaderTest, ASubRangeGivesWhatLiesInsideIt) {
  auto reader = Reader();
  ASSERT_NE(reader, nullptr);
  auto inside = reader->Marked(128 * kKiB, 448 * kKiB, 100, Soon());
  ASSERT_TRUE(inside.ok()) << inside.status().ToString();
  EXPECT_EQ(inside->ranges,
            (std::vector<ByteRange>{{128 * kKiB, 64 * kKiB}, {512 * kKiB, 64 * kKiB}}));
  EXPECT_EQ(inside->processed, 448 * kKiB);

  auto within_a_cluster = reader->Marked(96 * kKiB, 8 * kKiB, 100, Soon());
  ASSERT_TRUE(within_a_cluster.ok());
  EXPECT_EQ(within_a_cluster->ranges, (std::vector<ByteRange>{{96 * kKiB, 8 * kKiB}}));

  auto clean = reader->Marked(3 * kGiB, 1 * kGiB, 100, Soon());
  ASSERT_TRUE(clean.ok());
  EXPECT_TRUE(clean->ranges.empty());
  EXPECT_EQ(clean->processed, 1 * kGiB);
}

TEST_F(NbdReaderTest, ARangeNotWithinTheExportOrNoRangeIsInvalid) {
  auto reader = Reader();
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->Marked(0, 0, 100, Soon()).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(reader->Marked(kSize - 64 * kKiB, 128 * kKiB, 100, Soon()).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(reader->Marked(kSize + 1, 1, 100, Soon()).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(reader->Marked(~uint64_t{0}, 2, 100, Soon()).status().code(),
            Code::kInvalidArgument);  // no wrap-around past 2^64
  EXPECT_EQ(reader->Marked(0, kSize, 0, Soon()).status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(reader->Marked(kSize - 1, 1, 100, Soon()).ok());  // the last byte is within
}

TEST_F(NbdReaderTest, WithoutAContextItGivesTheSizeOnly) {
  auto reader = NbdReader::Open(env(), *socket_, "disk", "", Soon());
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  EXPECT_EQ((*reader)->size(), kSize);
  EXPECT_EQ((*reader)->Marked(0, kSize, 100, Soon()).status().code(), Code::kInvalidArgument);
}

TEST_F(NbdReaderTest, AMissingContextOrExportIsNotFound) {
  auto no_bitmap = NbdReader::Open(env(), *socket_, "disk", "qemu:dirty-bitmap:other", Soon());
  EXPECT_EQ(no_bitmap.status().code(), Code::kNotFound) << no_bitmap.status().ToString();
  EXPECT_NE(no_bitmap.status().message().find("qemu:dirty-bitmap:other"), std::string::npos);

  auto no_export = NbdReader::Open(env(), *socket_, "other", kBitmap, Soon());
  EXPECT_EQ(no_export.status().code(), Code::kNotFound) << no_export.status().ToString();
  EXPECT_NE(no_export.status().message().find("\"other\""), std::string::npos);
}

TEST_F(NbdReaderTest, NobodyAtTheSocketIsUnavailable) {
  auto r = NbdReader::Open(env(), *dir_ / "nobody.sock", "disk", kBitmap, Soon());
  EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().ToString();
  EXPECT_NE(r.status().message().find("nobody.sock"), std::string::npos);
}

// A listener that never greets: the handshake waits until the deadline,
// measured on the Env's clock — a fake clock past it ends the wait at once.
TEST_F(NbdReaderTest, AServerThatNeverAnswersTimesOutByTheEnvClock) {
  const std::string path = *dir_ / "silent.sock";
  UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const sockaddr_un addr = UnixAddress(path).value();
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener.get(), 4), 0);

  const auto start = Clock::now();
  auto real = NbdReader::Open(env(), path, "disk", kBitmap, start + std::chrono::milliseconds(200));
  EXPECT_EQ(real.status().code(), Code::kTimeout) << real.status().ToString();
  EXPECT_GE(Clock::now() - start, std::chrono::milliseconds(200));

  testing::FakeClockEnv fake;
  const auto before = Clock::now();
  auto passed = NbdReader::Open(&fake, path, "disk", kBitmap, fake.Now() - std::chrono::seconds(1));
  EXPECT_EQ(passed.status().code(), Code::kTimeout) << passed.status().ToString();
  EXPECT_LT(Clock::now() - before, std::chrono::milliseconds(150));
}

// A TCP listener on 127.0.0.1 that never greets; its port.
int SilentTcpListener(UniqueFd& fd) {
  fd = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{.sin_family = AF_INET, .sin_port = 0, .sin_addr = {htonl(INADDR_LOOPBACK)}};
  socklen_t len = sizeof addr;
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), len) != 0 ||
      ::listen(fd.get(), 4) != 0 ||
      ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return 0;
  }
  return ntohs(addr.sin_port);
}

// What cannot name a server is refused before connecting: were it not, the
// listener (which never greets) would keep the handshake waiting until the
// deadline (Timeout), and port 0 would refuse the connection (Unavailable).
TEST_F(NbdReaderTest, OpenTlsRefusesNoHostABadPortOrARelativeDirectoryBeforeConnecting) {
  UniqueFd listener;
  const int port = SilentTcpListener(listener);
  ASSERT_GT(port, 0);
  const std::string certs = dir_->path();
  const Deadline deadline = Clock::now() + std::chrono::milliseconds(300);
  for (const NbdTlsServer& bad :
       {NbdTlsServer{"", port, certs}, NbdTlsServer{"127.0.0.1", 0, certs},
        NbdTlsServer{"127.0.0.1", 65536, certs}, NbdTlsServer{"127.0.0.1", port, ""},
        NbdTlsServer{"127.0.0.1", port, "tls"}}) {
    auto r = NbdReader::OpenTls(env(), bad, "disk", kBitmap, deadline);
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument)
        << bad.host << ":" << bad.port << " " << bad.tls_dir << ": " << r.status().ToString();
  }
  // Well named, it connects and waits for the greeting, until the deadline
  // on the Env's clock.
  testing::FakeClockEnv fake;
  auto waited = NbdReader::OpenTls(&fake, {"127.0.0.1", port, certs}, "disk", kBitmap,
                                   fake.Now() - std::chrono::seconds(1));
  EXPECT_EQ(waited.status().code(), Code::kTimeout) << waited.status().ToString();
  EXPECT_NE(waited.status().message().find("127.0.0.1:" + std::to_string(port)), std::string::npos)
      << waited.status().ToString();
}

TEST(NbdClientTlsDirTest, NamesEveryFileLibnbdWouldLack) {
  testing::TempDir dir;
  Status none = CheckNbdClientTlsDir(Env::Default(), dir.path());
  EXPECT_EQ(none.code(), Code::kNotFound);
  EXPECT_EQ(none.message(), dir.path() + " has no ca-cert.pem, client-cert.pem, client-key.pem");
  ASSERT_TRUE(Env::Default()->WriteFile(dir / "ca-cert.pem", "x").ok());
  Status lacking = CheckNbdClientTlsDir(Env::Default(), dir.path());
  EXPECT_EQ(lacking.code(), Code::kNotFound);
  EXPECT_EQ(lacking.message(), dir.path() + " has no client-cert.pem, client-key.pem");
  ASSERT_TRUE(Env::Default()->WriteFile(dir / "client-cert.pem", "x").ok());
  EXPECT_EQ(CheckNbdClientTlsDir(Env::Default(), dir.path()).message(),
            dir.path() + " has no client-key.pem");
  ASSERT_TRUE(Env::Default()->WriteFile(dir / "client-key.pem", "x").ok());
  EXPECT_TRUE(CheckNbdClientTlsDir(Env::Default(), dir.path()).ok());
}

}  // namespace
}  // namespace vmgroup::storage
