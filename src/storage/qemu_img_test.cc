// Runs the real qemu-img: these are fast (tens of ms) but need the binary.
#include "storage/qemu_img.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "storage/checksum.h"

namespace vmgroup::storage {
namespace {

class QemuImgTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/vmg-img-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Path(const std::string& name) { return dir_ + "/" + name; }
  // An executable shell script `name` in the stand-in bin directory, whose
  // body follows "#!/bin/sh\n".
  void StandIn(const std::string& name, const std::string& body) {
    std::filesystem::create_directories(Path("bin"));
    std::ofstream(Path("bin/" + name)) << "#!/bin/sh\n" << body;
    std::filesystem::permissions(Path("bin/" + name), std::filesystem::perms(0755));
  }
  // A child process standing in for the daemon: it runs QemuImg::Create with
  // the stand-in bin directory first on PATH. Its pid.
  pid_t DaemonCreatingAnImage() {
    const pid_t daemon = ::fork();
    if (daemon == 0) {
      ::setenv("PATH", (Path("bin") + ":" + ::getenv("PATH")).c_str(), 1);
      (void)QemuImg(Env::Default()).Create(Path("never.qcow2"), 1 << 20);
      ::_exit(0);
    }
    return daemon;
  }
  // Writes `pattern` over `len` bytes at `offset` of `image` (qemu-io).
  void Write(const std::string& image, int pattern, const std::string& offset,
             const std::string& len) {
    auto r = Env::Default()->Run({"qemu-io", "-c",
                                  "write -P " + std::to_string(pattern) + " " + offset + " " + len,
                                  Path(image)});
    ASSERT_TRUE(r.ok() && r->exit_code == 0) << image;
  }
  bool Same(const std::string& a, const std::string& b) {
    auto r = Env::Default()->Run({"qemu-img", "compare", "-q", Path(a), Path(b)});
    return r.ok() && r->exit_code == 0;
  }

  std::string dir_;
  QemuImg img_{Env::Default()};
};

TEST_F(QemuImgTest, OverlayChainIsReportedTopFirst) {
  ASSERT_TRUE(img_.Create(Path("base.qcow2"), 16 << 20).ok());
  ASSERT_TRUE(img_.CreateOverlay(Path("base.qcow2"), Path("o1.qcow2")).ok());
  ASSERT_TRUE(img_.CreateOverlay(Path("o1.qcow2"), Path("o2.qcow2")).ok());
  auto chain = img_.Chain(Path("o2.qcow2"));
  ASSERT_TRUE(chain.ok()) << chain.status().ToString();
  ASSERT_EQ(chain->size(), 3u);
  EXPECT_EQ((*chain)[0].filename, Path("o2.qcow2"));
  EXPECT_EQ((*chain)[0].backing_filename, Path("o1.qcow2"));
  EXPECT_EQ((*chain)[1].filename, Path("o1.qcow2"));
  EXPECT_EQ((*chain)[2].filename, Path("base.qcow2"));
  EXPECT_EQ((*chain)[2].backing_filename, "");
  EXPECT_EQ((*chain)[2].virtual_size, uint64_t{16} << 20);
  EXPECT_TRUE(img_.Check(Path("o2.qcow2")).ok());
}

TEST_F(QemuImgTest, SafeRebaseKeepsWhatAnImageReadsUnsafeOnlyMovesTheHeader) {
  ASSERT_TRUE(img_.Create(Path("base.qcow2"), 4 << 20).ok());
  Write("base.qcow2", 0x5a, "0", "1M");
  ASSERT_TRUE(img_.CreateOverlay(Path("base.qcow2"), Path("o1.qcow2")).ok());
  ASSERT_TRUE(img_.CreateOverlay(Path("base.qcow2"), Path("twin.qcow2")).ok());

  ASSERT_TRUE(img_.Rebase(Path("o1.qcow2"), "", /*unsafe=*/false).ok());
  auto o1 = img_.Info(Path("o1.qcow2"));
  ASSERT_TRUE(o1.ok()) << o1.status().ToString();
  EXPECT_EQ(o1->backing_filename, "");
  EXPECT_TRUE(Same("o1.qcow2", "base.qcow2")) << "safe rebase lost the base's data";
  ASSERT_TRUE(img_.Rebase(Path("o1.qcow2"), "", false).ok()) << "a second run must be harmless";

  ASSERT_TRUE(img_.Rebase(Path("twin.qcow2"), Path("o1.qcow2"), /*unsafe=*/true).ok());
  EXPECT_EQ(img_.Info(Path("twin.qcow2"))->backing_filename, Path("o1.qcow2"));
  EXPECT_EQ(img_.Rebase(Path("missing.qcow2"), "", false).code(), Code::kFileNotFound);
}

TEST_F(QemuImgTest, RefusesToOverwriteOrToBuildOnNothing) {
  ASSERT_TRUE(img_.Create(Path("base.qcow2"), 1 << 20).ok());
  EXPECT_EQ(img_.Create(Path("base.qcow2"), 1 << 20).code(), Code::kAlreadyExists);
  EXPECT_EQ(img_.CreateOverlay(Path("missing.qcow2"), Path("o.qcow2")).code(), Code::kFileNotFound);
  EXPECT_FALSE(std::filesystem::exists(Path("o.qcow2")));
  EXPECT_EQ(img_.Chain(Path("missing.qcow2")).status().code(), Code::kFileNotFound);
}

TEST_F(QemuImgTest, ConvertCopiesWhatAChainReadsIntoOneImage) {
  ASSERT_TRUE(img_.Create(Path("base.qcow2"), 4 << 20).ok());
  Write("base.qcow2", 0x11, "0", "2M");
  ASSERT_TRUE(img_.CreateOverlay(Path("base.qcow2"), Path("top.qcow2")).ok());
  Write("top.qcow2", 0x22, "1M", "2M");

  ASSERT_TRUE(img_.Convert(Path("top.qcow2"), Path("copy.qcow2"), std::chrono::minutes(1)).ok());
  EXPECT_TRUE(Same("copy.qcow2", "top.qcow2"));
  EXPECT_EQ(*img_.OwnDataBytes(Path("top.qcow2")), uint64_t{2} << 20) << "top alone: 1M..3M";
  EXPECT_EQ(*img_.OwnDataBytes(Path("copy.qcow2")), uint64_t{3} << 20) << "all of it: 0..3M";
  EXPECT_EQ(img_.Info(Path("copy.qcow2"))->backing_filename, "") << "the copy stands alone";
  EXPECT_EQ(img_.Convert(Path("top.qcow2"), Path("copy.qcow2"), std::chrono::minutes(1)).code(),
            Code::kAlreadyExists);
  EXPECT_EQ(img_.Convert(Path("none.qcow2"), Path("x.qcow2"), std::chrono::minutes(1)).code(),
            Code::kFileNotFound);
  // A copy that cannot be made leaves nothing behind.
  EXPECT_FALSE(
      img_.Convert(Path("top.qcow2"), Path("no/such/dir.qcow2"), std::chrono::minutes(1)).ok());
  EXPECT_FALSE(std::filesystem::exists(Path("no")));
}

TEST_F(QemuImgTest, ConvertOntoABackingCopiesOnlyTheTopImage) {
  ASSERT_TRUE(img_.Create(Path("base.qcow2"), 4 << 20).ok());
  Write("base.qcow2", 0x11, "0", "2M");
  ASSERT_TRUE(img_.CreateOverlay(Path("base.qcow2"), Path("top.qcow2")).ok());
  Write("top.qcow2", 0x22, "1M", "1M");
  // Elsewhere, a copy of the base; the incremental names it relatively.
  std::filesystem::create_directories(Path("full"));
  std::filesystem::create_directories(Path("inc"));
  ASSERT_TRUE(img_.Convert(Path("base.qcow2"), Path("full/d.qcow2"), std::chrono::minutes(1)).ok());

  ASSERT_TRUE(img_.Convert(Path("top.qcow2"), Path("inc/d.qcow2"), std::chrono::minutes(1),
                           "../full/d.qcow2")
                  .ok());
  EXPECT_EQ(*img_.OwnDataBytes(Path("inc/d.qcow2")), uint64_t{1} << 20) << "the top's 1M only";
  EXPECT_TRUE(Same("inc/d.qcow2", "top.qcow2"));
  // Moved together, the pair still reads the same: the base is named relatively.
  std::filesystem::create_directories(Path("moved"));
  std::filesystem::rename(Path("full"), Path("moved/full"));
  std::filesystem::rename(Path("inc"), Path("moved/inc"));
  EXPECT_TRUE(Same("moved/inc/d.qcow2", "top.qcow2"));
}

TEST_F(QemuImgTest, ChecksumFollowsTheBytesOfTheFile) {
  ASSERT_TRUE(img_.Create(Path("a.qcow2"), 1 << 20).ok());
  std::filesystem::copy_file(Path("a.qcow2"), Path("b.qcow2"));
  auto a = DigestFile(Env::Default(), Path("a.qcow2")),
       b = DigestFile(Env::Default(), Path("b.qcow2"));
  ASSERT_TRUE(a.ok() && b.ok()) << a.status().ToString();
  EXPECT_EQ(a->checksum, b->checksum);
  EXPECT_EQ(a->bytes, std::filesystem::file_size(Path("a.qcow2")));
  EXPECT_EQ(a->checksum.rfind("xxh128:", 0), 0u) << a->checksum;
  EXPECT_EQ(a->checksum.size(), 7u + 32u) << a->checksum;
  Write("b.qcow2", 0x01, "0", "512");
  EXPECT_NE(DigestFile(Env::Default(), Path("b.qcow2"))->checksum, a->checksum);
  EXPECT_EQ(DigestFile(Env::Default(), Path("none")).status().code(), Code::kFileNotFound);
}

TEST_F(QemuImgTest, CheckReportsACorruptImage) {
  ASSERT_TRUE(img_.Create(Path("base.qcow2"), 1 << 20).ok());
  {
    // Overwrite the qcow2 header magic: qemu-img can no longer open it.
    FILE* f = fopen(Path("base.qcow2").c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    fwrite("JUNK", 1, 4, f);
    fclose(f);
  }
  Status s = img_.Check(Path("base.qcow2"));
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("base.qcow2"), std::string::npos) << s.message();
}

// A daemon killed while qemu-img works must not leave it running: recovery
// after the restart would look at images it still changes. Here a child
// process stands in for the daemon, and the qemu-img it runs is a script
// first on PATH that notes its pid and sleeps.
TEST_F(QemuImgTest, QemuImgDiesWithTheProcessThatRanIt) {
  const std::string pid_file = Path("qemu-img.pid");
  StandIn("qemu-img", "echo $$ > " + pid_file + ".tmp\nmv " + pid_file + ".tmp " + pid_file +
                          "\nexec sleep 120\n");
  const pid_t daemon = DaemonCreatingAnImage();
  ASSERT_GE(daemon, 0);
  std::string tool;
  for (int i = 0; i < 200 && tool.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::ifstream(pid_file) >> tool;
  }
  ASSERT_FALSE(tool.empty()) << "the stand-in qemu-img never started";
  ::kill(daemon, SIGKILL);
  ::waitpid(daemon, nullptr, 0);
  const int pid = std::stoi(tool);
  Status gone = Env::Default()->WaitGone(pid, std::chrono::seconds(10));
  if (!gone.ok()) ::kill(pid, SIGKILL);
  EXPECT_TRUE(gone.ok()) << "qemu-img " << pid << " outlived the process that ran it";
}

// The process that runs qemu-img dies before setpriv has asked for the
// signal (here setpriv starts a second late): qemu-img never starts.
TEST_F(QemuImgTest, QemuImgNeverStartsWhenTheProcessThatRanItDiedFirst) {
  const std::string started = Path("qemu-img.started");
  StandIn("setpriv", "sleep 1\nexec /usr/bin/setpriv \"$@\"\n");
  StandIn("qemu-img", "touch " + started + "\n");
  const pid_t daemon = DaemonCreatingAnImage();
  ASSERT_GE(daemon, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ::kill(daemon, SIGKILL);
  ::waitpid(daemon, nullptr, 0);
  std::this_thread::sleep_for(std::chrono::seconds(3));
  EXPECT_FALSE(std::filesystem::exists(started))
      << "qemu-img ran after the process that ran it died";
}

}  // namespace
}  // namespace vmgroup::storage
