#include "storage/checksum.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "testing/temp_dir.h"

namespace vmgroup::storage {
namespace {

// Opens nothing itself: every open answers `error`, and is counted.
class RefusingEnv : public EnvWrapper {
 public:
  explicit RefusingEnv(Status error) : EnvWrapper(Env::Default()), error_(std::move(error)) {}
  Result<UniqueFd> OpenFile(const std::string&, int, int) override {
    ++opens;
    return error_;
  }
  int opens = 0;

 private:
  Status error_;
};

TEST(ChecksumTest, DigestFileReadsTheBytesTheDigesterIsHanded) {
  testing::TempDir tmp;
  const std::string path = tmp.path() + "/f";
  const std::string content(3 << 20, 'x');  // more than one read
  std::ofstream(path, std::ios::binary) << content << "tail";
  Digester d;
  d.Update(content.data(), content.size());
  d.Update("tail", 4);
  auto digest = DigestFile(Env::Default(), path);
  ASSERT_TRUE(digest.ok()) << digest.status().ToString();
  EXPECT_EQ(digest->checksum, d.Digest().checksum);
  EXPECT_EQ(digest->bytes, content.size() + 4);
}

TEST(ChecksumTest, DigestFileOpensThroughItsEnv) {
  testing::TempDir tmp;
  const std::string path = tmp.path() + "/f";
  std::ofstream(path) << "data";
  RefusingEnv env(Status::IoError("injected"));
  auto digest = DigestFile(&env, path);
  EXPECT_EQ(env.opens, 1);
  ASSERT_EQ(digest.status().code(), Code::kIoError);
  EXPECT_EQ(digest.status().message(), "injected");
}

}  // namespace
}  // namespace vmgroup::storage
