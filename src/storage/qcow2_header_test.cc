// ParseQcow2Header on hand-made headers: what it reads, and that every
// offset a header gives is checked against the bytes handed to it.
// (image_check_test.cc reads headers qemu-img wrote.)
#include "storage/qcow2_header.h"

#include <gtest/gtest.h>

namespace vmgroup::storage {
namespace {

// Builds a header byte by byte, as qemu-img lays one out.
class HeaderBytes {
 public:
  explicit HeaderBytes(uint32_t version = 3, uint32_t cluster_bits = 16)
      : bytes_(size_t{1} << cluster_bits, '\0') {
    Put32(0, kQcow2Magic);
    Put32(4, version);
    Put32(20, cluster_bits);
    Put64(24, 64 << 20);
    if (version == 3) {
      Put32(96, 4);     // refcount order
      Put32(100, 112);  // header length
    }
    ext_at_ = version == 3 ? 112 : 72;
  }
  HeaderBytes& Put32(size_t at, uint32_t v) { return Put(at, v, 4); }
  HeaderBytes& Put64(size_t at, uint64_t v) { return Put(at, v, 8); }
  HeaderBytes& Extension(uint32_t type, const std::string& data) {
    Put32(ext_at_, type);
    Put32(ext_at_ + 4, static_cast<uint32_t>(data.size()));
    bytes_.replace(ext_at_ + 8, data.size(), data);
    ext_at_ += 8 + ((data.size() + 7) & ~size_t{7});
    return *this;
  }
  // The backing file's name, after the extensions (with their end marker).
  HeaderBytes& Backing(const std::string& name, const std::string& format = "qcow2") {
    if (!format.empty()) Extension(kQcow2ExtBackingFormat, format);
    const size_t at = ext_at_ + 8;
    Put64(8, at);
    Put32(16, static_cast<uint32_t>(name.size()));
    bytes_.replace(at, name.size(), name);
    return *this;
  }
  std::string str() const { return bytes_; }

 private:
  HeaderBytes& Put(size_t at, uint64_t v, int width) {
    for (int i = width - 1; i >= 0; --i, v >>= 8) {
      bytes_[at + static_cast<size_t>(i)] = static_cast<char>(v & 0xff);
    }
    return *this;
  }
  std::string bytes_;
  size_t ext_at_;
};

TEST(Qcow2HeaderTest, AStandaloneImage) {
  auto h = ParseQcow2Header(HeaderBytes().str());
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(h->version, 3u);
  EXPECT_EQ(h->cluster_bits, 16u);
  EXPECT_EQ(h->virtual_size, uint64_t{64} << 20);
  EXPECT_FALSE(h->has_backing);
  EXPECT_FALSE(h->has_data_file);
  EXPECT_EQ(h->incompatible_features, 0u);
}

TEST(Qcow2HeaderTest, BackingFileAndItsFormat) {
  auto h = ParseQcow2Header(HeaderBytes().Backing("../base/disk0.qcow2").str());
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_TRUE(h->has_backing);
  EXPECT_EQ(h->backing_file, "../base/disk0.qcow2");
  EXPECT_EQ(h->backing_format, "qcow2");

  auto v2 = ParseQcow2Header(HeaderBytes(2).Backing("/abs/base.img", "").str());
  ASSERT_TRUE(v2.ok()) << v2.status().ToString();
  EXPECT_EQ(v2->version, 2u);
  EXPECT_EQ(v2->backing_file, "/abs/base.img");
  EXPECT_EQ(v2->backing_format, "");

  // A name QEMU would read as a protocol is reported as it stands.
  auto json = ParseQcow2Header(HeaderBytes().Backing("json:{\"driver\":\"file\"}").str());
  ASSERT_TRUE(json.ok());
  EXPECT_EQ(json->backing_file, "json:{\"driver\":\"file\"}");
}

TEST(Qcow2HeaderTest, ExternalDataFileAndFeatureBitsAreReported) {
  auto h = ParseQcow2Header(HeaderBytes()
                                .Put64(72, kQcow2ExternalData | kQcow2Corrupt | (1u << 9))
                                .Extension(kQcow2ExtDataFile, "/etc/shadow")
                                .str());
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_TRUE(h->has_data_file);
  EXPECT_EQ(h->data_file, "/etc/shadow");
  EXPECT_EQ(h->incompatible_features, kQcow2ExternalData | kQcow2Corrupt | (1u << 9));
  // An unknown extension is stepped over; the ones after it are read.
  auto after = ParseQcow2Header(
      HeaderBytes().Extension(0x6803f857, std::string(48, 'x')).Backing("b.qcow2").str());
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(after->backing_format, "qcow2");
}

TEST(Qcow2HeaderTest, WhatIsNotAQcow2HeaderIsRefused) {
  EXPECT_FALSE(ParseQcow2Header("").ok());
  EXPECT_FALSE(ParseQcow2Header(std::string(4096, '\0')).ok()) << "a raw image";
  EXPECT_FALSE(ParseQcow2Header(HeaderBytes().str().substr(0, 71)).ok());
  EXPECT_FALSE(ParseQcow2Header(HeaderBytes(1).str()).ok());
  EXPECT_FALSE(ParseQcow2Header(HeaderBytes(4).str()).ok());
  EXPECT_FALSE(ParseQcow2Header(HeaderBytes().Put32(20, 8).str()).ok()) << "cluster of 256 B";
  EXPECT_FALSE(ParseQcow2Header(HeaderBytes().Put32(20, 22).str()).ok()) << "cluster of 4 MiB";
  EXPECT_FALSE(ParseQcow2Header(HeaderBytes().Put32(100, 50).str()).ok()) << "header length";
  EXPECT_FALSE(ParseQcow2Header(HeaderBytes().Put32(100, 1 << 20).str()).ok())
      << "header longer than its cluster";
  // Version 3 needs 104 bytes.
  EXPECT_FALSE(ParseQcow2Header(HeaderBytes().str().substr(0, 100)).ok());
}

TEST(Qcow2HeaderTest, OffsetsAreCheckedAgainstTheBytesGiven) {
  const std::string whole = HeaderBytes().Backing("base.qcow2").str();
  ASSERT_TRUE(ParseQcow2Header(whole).ok());
  // Every prefix that cuts the header, the extensions or the name is refused.
  size_t accepted_from = 0;
  for (size_t n = 0; n <= 200; ++n) {
    if (ParseQcow2Header(whole.substr(0, n)).ok() && accepted_from == 0) accepted_from = n;
  }
  const size_t name_end = 112 + 8 + 8 + 8 + std::string("base.qcow2").size();
  EXPECT_EQ(accepted_from, name_end);

  // A name that is too long, outside the first cluster, or past its end.
  EXPECT_FALSE(ParseQcow2Header(HeaderBytes().Backing(std::string(1024, 'a')).str()).ok());
  EXPECT_FALSE(ParseQcow2Header(HeaderBytes().Put64(8, 1 << 17).Put32(16, 4).str()).ok());
  EXPECT_FALSE(ParseQcow2Header(HeaderBytes().Put64(8, (1 << 16) - 2).Put32(16, 4).str()).ok());
  // An extension longer than the room before the name, or the cluster.
  EXPECT_FALSE(
      ParseQcow2Header(HeaderBytes().Put32(112, 0x1234).Put32(116, 0xffffffff).str()).ok());
  EXPECT_FALSE(ParseQcow2Header(
                   HeaderBytes().Backing("b.qcow2").Put32(116, 64).str())  // format ext overruns
                   .ok());
  // Extensions that run to the end of the cluster: read to there, as QEMU
  // does, and refused when fewer bytes were given.
  std::string endless = HeaderBytes().str();
  for (size_t at = 112; at + 8 <= endless.size(); at += 8) endless[at] = 0x10;  // type 0x10000000
  EXPECT_TRUE(ParseQcow2Header(endless).ok());
  EXPECT_FALSE(ParseQcow2Header(endless.substr(0, 4096)).ok());
  // A backing format name longer than QEMU keeps.
  EXPECT_FALSE(ParseQcow2Header(HeaderBytes().Backing("b", std::string(16, 'q')).str()).ok());
}

TEST(Qcow2HeaderTest, AnEmptyNameIsNoBackingFile) {
  auto h = ParseQcow2Header(HeaderBytes().Put64(8, 512).Put32(16, 0).str());
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_FALSE(h->has_backing);
}

}  // namespace
}  // namespace vmgroup::storage
