#include "storage/untrusted_files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "testing/temp_dir.h"

namespace vmgroup::storage {
namespace {

namespace fs = std::filesystem;

class UntrustedFilesTest : public ::testing::Test {
 protected:
  std::string Path(const std::string& name) { return tmp_ / name; }
  std::string Write(const std::string& name, const std::string& content) {
    std::ofstream(Path(name), std::ios::binary) << content;
    return Path(name);
  }
  testing::TempDir tmp_;
  const std::string dir_ = tmp_.path();
};

TEST_F(UntrustedFilesTest, ReadBoundedRefusesBeforeReadingTooMuch) {
  const std::string small = Write("small", "hello");
  EXPECT_EQ(*ReadBounded(small, 5, "the file"), "hello");
  auto big = ReadBounded(small, 4, "the manifest");
  ASSERT_EQ(big.status().code(), Code::kInvalidArgument);
  EXPECT_NE(big.status().message().find("the manifest " + small + " is 5 bytes; at most 4"),
            std::string::npos)
      << big.status().message();
  EXPECT_EQ(*ReadBounded(Write("empty", ""), 4, "x"), "");
}

TEST_F(UntrustedFilesTest, LinksAndSpecialFilesAreNotOpened) {
  const std::string real = Write("real", "data");
  fs::create_symlink(real, Path("link"));
  fs::create_directory_symlink(dir_, Path("dirlink"));
  ASSERT_EQ(::mkfifo(Path("fifo").c_str(), 0600), 0);
  EXPECT_TRUE(OpenRegular(real).ok());
  EXPECT_EQ(OpenRegular(Path("link")).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(OpenRegular(Path("dirlink/real")).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(OpenRegular(Path("fifo")).status().code(), Code::kInvalidArgument)
      << "and it did not wait for a writer";
  EXPECT_EQ(OpenRegular(dir_).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(OpenRegular("/dev/zero").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(OpenRegular(Path("none")).status().code(), Code::kFileNotFound);
  EXPECT_EQ(ReadHead(real, 2).value(), "da");
}

TEST_F(UntrustedFilesTest, CopyKeepsContentAndHolesAndReturnsTheDigest) {
  std::string content(3 << 20, '\0');
  content.replace(1 << 20, 5, "hello");
  content.back() = 'x';
  const std::string from = Write("from", content);
  auto d = CopyRegular(from, Path("to"));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->bytes, content.size());
  EXPECT_EQ(d->checksum, DigestFile(Env::Default(), from)->checksum);
  EXPECT_EQ(DigestFile(Env::Default(), Path("to"))->checksum, d->checksum);
  struct stat st {};
  ASSERT_EQ(::stat(Path("to").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, content.size()) << "holes stay holes";

  EXPECT_EQ(CopyRegular(from, Path("to")).status().code(), Code::kAlreadyExists);
  fs::create_symlink(from, Path("link"));
  EXPECT_FALSE(CopyRegular(Path("link"), Path("to2")).ok());
  EXPECT_FALSE(fs::exists(Path("to2")));
}

TEST_F(UntrustedFilesTest, SetAccessSetsModeAndGroupWithoutFollowingLinks) {
  const std::string file = Write("f", "x");
  fs::create_directory(Path("d"));
  ASSERT_TRUE(SetAccess(file, 0640, -1).ok());
  ASSERT_TRUE(SetAccess(Path("d"), 0750, static_cast<int>(::getgid())).ok());
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  ASSERT_EQ(::stat(Path("d").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_EQ(st.st_gid, ::getgid());
  fs::create_symlink(file, Path("l"));
  EXPECT_FALSE(SetAccess(Path("l"), 0777, -1).ok());
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
}

}  // namespace
}  // namespace vmgroup::storage
