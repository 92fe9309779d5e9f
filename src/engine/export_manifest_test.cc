#include "engine/export_manifest.h"

#include <gtest/gtest.h>

namespace vmgroup::engine {
namespace {

ExportManifest Sample() {
  return {.exported_us = 1764000000000000,
          .collection_id = "c-1",
          .collection_name = "web",
          .snapshot_id = "s-1",
          .snapshot_name = "nightly",
          .snapshot_type = 2,
          .snapshot_created_us = 1763999999000000,
          .vms = {{.id = "v-1",
                   .name = "db",
                   .member_snapshot_id = "m-1",
                   .config_file = "v-1/config.json",
                   .config_checksum = "xxh128:00",
                   .disks = {{.index = 0,
                              .file = "v-1/disk0.qcow2",
                              .virtual_size = 1 << 30,
                              .file_size = 4 << 20,
                              .checksum = "xxh128:ab"}}}}};
}

TEST(ExportManifestTest, RoundTrips) {
  const std::string text = ManifestToJson(Sample());
  auto m = ParseManifest(text);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(ManifestToJson(*m), text);
  EXPECT_EQ(m->vms.at(0).disks.at(0).virtual_size, uint64_t{1} << 30);
}

TEST(ExportManifestTest, RefusesWhatIsNotAManifestOfThisVersion) {
  EXPECT_EQ(ParseManifest("not json").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(ParseManifest("{\"format\": \"other\"}").status().code(), Code::kInvalidArgument);
  std::string later = ManifestToJson(Sample());
  later.replace(later.find("\"version\": 1"), 12, "\"version\": 2");
  Status s = ParseManifest(later).status();
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("version 2"), std::string::npos) << s.message();
  std::string broken = ManifestToJson(Sample());
  broken.replace(broken.find("\"virtual_size\""), 14, "\"size_virtual\"");
  s = ParseManifest(broken).status();
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("malformed"), std::string::npos) << s.message();
}

TEST(ExportManifestTest, ConfigRoundTrips) {
  ExportedConfig c{.id = "v",
                   .name = "db",
                   .memory_mib = 512,
                   .vcpus = 2,
                   .append = "console=ttyS0",
                   .extra_args = {"-nic", "none"},
                   .disks = 2};
  auto back = ParseConfig(ConfigToJson(c));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(ConfigToJson(*back), ConfigToJson(c));
  EXPECT_EQ(ParseConfig("{}").status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace vmgroup::engine
