// Runs the real qemu-img: these are fast (tens of ms) but need the binary.
#include "storage/qemu_img.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

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
  auto wrote = Env::Default()->Run({"qemu-io", "-c", "write -P 0x5a 0 1M", Path("base.qcow2")});
  ASSERT_TRUE(wrote.ok() && wrote->exit_code == 0);
  ASSERT_TRUE(img_.CreateOverlay(Path("base.qcow2"), Path("o1.qcow2")).ok());
  ASSERT_TRUE(img_.CreateOverlay(Path("base.qcow2"), Path("twin.qcow2")).ok());

  ASSERT_TRUE(img_.Rebase(Path("o1.qcow2"), "", /*unsafe=*/false).ok());
  auto o1 = img_.Info(Path("o1.qcow2"));
  ASSERT_TRUE(o1.ok()) << o1.status().ToString();
  EXPECT_EQ(o1->backing_filename, "");
  auto same =
      Env::Default()->Run({"qemu-img", "compare", "-q", Path("o1.qcow2"), Path("base.qcow2")});
  EXPECT_TRUE(same.ok() && same->exit_code == 0) << "safe rebase lost the base's data";
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

}  // namespace
}  // namespace vmgroup::storage
