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

// The checksums exports on disk already carry stay valid: whichever vector
// unit hashes, and however the bytes are cut into pieces, the digest is
// XXH3-128 of the whole stream (the value is the library's portable
// one-shot XXH3_128bits of the same bytes).
TEST(ChecksumTest, DigestIsXxh3OfTheWholeStreamHoweverItIsCut) {
  std::string content;
  for (int i = 0; i < (5 << 20) + 7; ++i) content.push_back(static_cast<char>(i * 131 + (i >> 12)));
  Digester d;
  size_t at = 0;
  for (size_t piece : {size_t{1}, size_t{63}, size_t{4099}, size_t{1} << 20}) {
    d.Update(content.data() + at, piece);
    at += piece;
  }
  d.Update(content.data() + at, content.size() - at);
  EXPECT_EQ(d.Digest().checksum, "xxh128:65c75c0de5d18558bf6a5f848f1715db");
  EXPECT_EQ(d.Digest().bytes, content.size());
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
