#include "engine/export_manifest.h"

#include <gtest/gtest.h>

#include <fstream>

#include "base/ids.h"
#include "engine/spanning_export.h"
#include "engine/vm_registry.h"
#include "testing/temp_dir.h"

namespace vmgroup::engine {
namespace {

constexpr const char* kGroup = "6a0f2b1c-0000-4000-8000-000000000001";
constexpr const char* kSnap = "6a0f2b1c-0000-4000-8000-000000000002";
constexpr const char* kVm = "6a0f2b1c-0000-4000-8000-000000000003";
constexpr const char* kMember = "6a0f2b1c-0000-4000-8000-000000000004";

ExportManifest Sample() {
  const std::string vm = kVm;
  return {.version = kOwnVmsManifestVersion,
          .exported_us = 1764000000000000,
          .collection_id = kGroup,
          .collection_name = "web",
          .snapshot_id = kSnap,
          .snapshot_name = "nightly",
          .snapshot_type = 2,
          .snapshot_created_us = 1763999999000000,
          .vms = {{.id = vm,
                   .name = "db",
                   .member_snapshot_id = kMember,
                   .config_file = vm + "/config.json",
                   .config_checksum = "xxh128:00",
                   .kernel = {.file = vm + "/kernel", .file_size = 9, .checksum = "xxh128:01"},
                   .disks = {{.index = 0,
                              .file = vm + "/disk0.qcow2",
                              .virtual_size = 1 << 30,
                              .file_size = 4 << 20,
                              .checksum = "xxh128:ab"},
                             {.index = 1,
                              .file = vm + "/disk1.qcow2",
                              .virtual_size = 1 << 30,
                              .file_size = 4 << 20,
                              .checksum = "xxh128:cd"}}}}};
}

// The manifest's refusal after `change` on a good one; "" if it parses.
std::string Refusal(const std::function<void(ExportManifest&)>& change) {
  ExportManifest m = Sample();
  change(m);
  auto r = ParseManifest(ManifestToJson(m));
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  return r.status().message();
}

// The same for a textual change of the JSON: `from` replaced by `to`.
std::string TextRefusal(const std::string& from, const std::string& to) {
  std::string text = ManifestToJson(Sample());
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at == std::string::npos) return "";
  text.replace(at, from.size(), to);
  auto r = ParseManifest(text);
  return r.ok() ? "" : r.status().message();
}

bool Says(const std::string& message, const std::string& part) {
  return message.find(part) != std::string::npos;
}

TEST(ExportManifestTest, RoundTrips) {
  const std::string text = ManifestToJson(Sample());
  auto m = ParseManifest(text);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(ManifestToJson(*m), text);
  EXPECT_EQ(m->version, 2);
  EXPECT_EQ(m->vms.at(0).disks.at(0).virtual_size, uint64_t{1} << 30);
  EXPECT_EQ(m->vms.at(0).kernel.file, std::string(kVm) + "/kernel");
  EXPECT_TRUE(m->vms.at(0).initrd.empty());
}

TEST(ExportManifestTest, ReadsVersion1AndRefusesOthers) {
  std::string v1 = ManifestToJson(Sample());
  v1.replace(v1.find("\"version\": 2"), 12, "\"version\": 1");
  EXPECT_TRUE(ParseManifest(v1).ok());
  EXPECT_EQ(ParseManifest("not json").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(ParseManifest("{\"format\": \"other\"}").status().code(), Code::kInvalidArgument);
  // The manifest of an export across hosts says where its parts are.
  auto across = ParseManifest(SpanningManifestToJson({.snapshot_id = NewGuid()}));
  EXPECT_EQ(across.status().code(), Code::kInvalidArgument);
  EXPECT_NE(across.status().message().find("folder named for the host"), std::string::npos)
      << across.status().ToString();
  EXPECT_TRUE(Says(TextRefusal("\"version\": 2", "\"version\": 4"), "version 4"));
  EXPECT_TRUE(Says(TextRefusal("\"version\": 2", "\"version\": 2.5"), "whole number"));
  EXPECT_TRUE(Says(TextRefusal("\"virtual_size\"", "\"size_virtual\""), "malformed"));
}

TEST(ExportManifestTest, TheManifestAcrossHostsRoundTripsAndRefusesOthers) {
  const SpanningExportManifest m{.exported_us = 17,
                                 .collection_id = NewGuid(),
                                 .snapshot_id = NewGuid(),
                                 .snapshot_name = "nightly",
                                 .cut_spread_us = 1840,
                                 .storage = false,
                                 .base_reference_point_id = NewGuid(),
                                 .parts = {{.host = "", .folder = "node1", .vm_ids = {NewGuid()}},
                                           {.host = "h2", .folder = "h2", .vm_ids = {NewGuid()}}}};
  auto back = ParseSpanningManifest(SpanningManifestToJson(m));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(SpanningManifestToJson(*back), SpanningManifestToJson(m));
  EXPECT_EQ(back->parts[1].vm_ids, m.parts[1].vm_ids);
  EXPECT_EQ(back->base_reference_point_id, m.base_reference_point_id);
  // A full export's manifest written before the base was recorded reads as full.
  std::string earlier = SpanningManifestToJson(m);
  const size_t base = earlier.find("  \"base_reference_point_id\"");
  earlier.erase(base, earlier.find('\n', base) + 1 - base);
  auto full = ParseSpanningManifest(earlier);
  ASSERT_TRUE(full.ok()) << full.status().ToString() << "\n" << earlier;
  EXPECT_EQ(full->base_reference_point_id, "");
  EXPECT_EQ(ParseSpanningManifest(ManifestToJson(Sample())).status().code(), Code::kInvalidArgument)
      << "an export's own manifest is not one across hosts";
  std::string later = SpanningManifestToJson(m);
  later.replace(later.find("\"version\": 1"), 12, "\"version\": 9");
  EXPECT_EQ(ParseSpanningManifest(later).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(ParseSpanningManifest("{\"format\": \"vmgroup-export-across-hosts\"}").status().code(),
            Code::kInvalidArgument);
}

TEST(ExportManifestTest, LibvirtDomainsComeWithVersion3) {
  auto with_domain = [](ExportManifest& m) {
    m.version = 3;
    m.vms[0].domain = {.uri = "qemu:///system",
                       .definition = {.file = std::string(kVm) + "/domain.xml",
                                      .file_size = 700,
                                      .checksum = "xxh128:02"},
                       .image_dir = "/var/lib/libvirt/images"};
  };
  ExportManifest m = Sample();
  with_domain(m);
  const std::string text = ManifestToJson(m);
  auto parsed = ParseManifest(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(ManifestToJson(*parsed), text);
  EXPECT_EQ(parsed->vms[0].domain.uri, "qemu:///system");
  EXPECT_EQ(parsed->vms[0].domain.definition.file_size, 700u);
  EXPECT_EQ(parsed->vms[0].domain.image_dir, "/var/lib/libvirt/images");
  EXPECT_EQ(ManifestToJson(Sample()).find("libvirt"), std::string::npos)
      << "vmgroupd's own VMs carry no libvirt entry";

  EXPECT_TRUE(Says(Refusal([&](ExportManifest& x) {
                     with_domain(x);
                     x.version = 2;
                   }),
                   "version 3"));
  EXPECT_TRUE(Says(Refusal([&](ExportManifest& x) {
                     with_domain(x);
                     x.vms[0].domain.definition.file = "../elsewhere.xml";
                   }),
                   "leads out of the export"));
  EXPECT_TRUE(Says(Refusal([&](ExportManifest& x) {
                     with_domain(x);
                     x.vms[0].domain.image_dir = "relative/dir";
                   }),
                   "image directory"));
  EXPECT_TRUE(Says(Refusal([&](ExportManifest& x) {
                     with_domain(x);
                     x.vms[0].domain.uri = "";
                   }),
                   "needs its URI"));
}

TEST(ExportManifestTest, DiskIndexesRunFromZeroOnceEach) {
  EXPECT_TRUE(Says(TextRefusal("\"index\": 0", "\"index\": -1"), "disk index -1"));
  EXPECT_TRUE(Says(TextRefusal("\"index\": 0", "\"index\": 16"), "disk index 16"));
  EXPECT_TRUE(Says(TextRefusal("\"index\": 0", "\"index\": 4294967296"), "disk index"));
  EXPECT_TRUE(Says(TextRefusal("\"index\": 0", "\"index\": 18446744073709551615"), "whole number"));
  EXPECT_TRUE(Says(TextRefusal("\"index\": 0", "\"index\": 1"), "listed once each"))
      << "a duplicate";
  EXPECT_EQ(Refusal([](ExportManifest& m) { m.vms[0].disks.pop_back(); }), "")
      << "fewer disks are fine";
  EXPECT_TRUE(Says(Refusal([](ExportManifest& m) { m.vms[0].disks.erase(m.vms[0].disks.begin()); }),
                   "listed once each"))
      << "a gap";
  EXPECT_TRUE(Says(Refusal([](ExportManifest& m) {
                     auto& disks = m.vms[0].disks;
                     while (disks.size() <= kMaxDisks) {
                       disks.push_back(disks[0]);
                       disks.back().index = static_cast<int>(disks.size() - 1);
                     }
                   }),
                   "disk index 16"));
  EXPECT_TRUE(Says(TextRefusal("\"file_size\": 4194304", "\"file_size\": -4"), "whole number"));
}

TEST(ExportManifestTest, NamesAndIdsAreChecked) {
  EXPECT_TRUE(Says(Refusal([](ExportManifest& m) { m.vms[0].name = "db\n\x1b[31mred"; }),
                   "control character"));
  // The JSON reader itself refuses a string that is not UTF-8.
  EXPECT_NE(TextRefusal("\"web\"", "\"web\xff\""), "");
  EXPECT_NE(TextRefusal("\"web\"", "\"web\\u001b[2J\""), "");
  EXPECT_TRUE(Says(Refusal([](ExportManifest& m) { m.collection_name = ""; }), "empty"));
  EXPECT_TRUE(
      Says(Refusal([](ExportManifest& m) { m.snapshot_name = "a\rb"; }), "control character"));
  EXPECT_TRUE(Says(Refusal([](ExportManifest& m) { m.vms[0].id = "../../etc"; }), "not a GUID"));
  EXPECT_TRUE(Says(Refusal([](ExportManifest& m) { m.collection_id = "x"; }), "not a GUID"));
  EXPECT_TRUE(Says(Refusal([](ExportManifest& m) { m.vms.push_back(m.vms[0]); }), "twice"));
}

TEST(ExportManifestTest, FilesStayInsideTheExport) {
  EXPECT_TRUE(
      Says(Refusal([](ExportManifest& m) { m.vms[0].disks[0].file = "/etc/shadow"; }), "relative"));
  EXPECT_TRUE(
      Says(Refusal([](ExportManifest& m) { m.vms[0].disks[0].file = "a/../../x"; }), "leads out"));
  EXPECT_TRUE(Says(Refusal([](ExportManifest& m) { m.vms[0].config_file = "../config.json"; }),
                   "leads out"));
  EXPECT_TRUE(
      Says(Refusal([](ExportManifest& m) { m.vms[0].kernel.file = "/boot/vmlinuz"; }), "relative"));
  EXPECT_TRUE(Says(Refusal([](ExportManifest& m) { m.vms[0].initrd.file = ".."; }), "leads out"));
  EXPECT_TRUE(Says(Refusal([](ExportManifest& m) { m.vms[0].disks[0].base_file = "../b.qcow2"; }),
                   "full export"));
  EXPECT_TRUE(Says(Refusal([](ExportManifest& m) { m.storage = false; }), "without disk images"));
  // An incremental export names its base, which sits beside it.
  EXPECT_EQ(Refusal([](ExportManifest& m) {
              m.base = {.snapshot_id = kSnap, .directory = "../mon"};
              for (auto& d : m.vms[0].disks) d.base_file = "../mon/" + d.file;
            }),
            "");
  EXPECT_TRUE(Says(Refusal([](ExportManifest& m) {
                     m.base = {.snapshot_id = kSnap, .directory = "/abs"};
                     for (auto& d : m.vms[0].disks) d.base_file = "../mon/" + d.file;
                   }),
                   "relative"));
}

TEST(ExportManifestTest, AManifestIsReadWithABound) {
  testing::TempDir dir;
  std::ofstream(dir / kManifestFile) << ManifestToJson(Sample());
  EXPECT_TRUE(ReadManifestIn(dir.path()).ok());
  std::ofstream(dir / kManifestFile, std::ios::app) << std::string(kMaxManifestBytes, ' ');
  Status big = ReadManifestIn(dir.path()).status();
  EXPECT_EQ(big.code(), Code::kInvalidArgument);
  EXPECT_TRUE(Says(big.message(), "at most 16777216")) << big.message();
  EXPECT_EQ(ReadManifestIn(dir / "none").status().code(), Code::kFileNotFound);
}

TEST(ExportManifestTest, ConfigRoundTripsWithoutQemuArguments) {
  ExportedConfig c{.id = kVm,
                   .name = "db",
                   .config = {.memory_mib = 512,
                              .vcpus = 2,
                              .kernel = std::string(kVm) + "/kernel",
                              .append = "console=ttyS0"},
                   .disks = 2};
  const std::string text = ConfigToJson(c);
  EXPECT_FALSE(Says(text, "extra_args"));
  auto back = ParseConfig(text);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(ConfigToJson(*back), text);
  EXPECT_EQ(ParseConfig("{}").status().code(), Code::kInvalidArgument);

  // Version 1 wrote extra_args: empty is fine, anything in it is refused.
  std::string v1 = text;
  v1.insert(1, "\"extra_args\": [],");
  EXPECT_TRUE(ParseConfig(v1).ok());
  std::string crafted = text;
  crafted.insert(1, R"("extra_args": ["-incoming", "exec:touch /tmp/x; cat /dev/null"],)");
  Status s = ParseConfig(crafted).status();
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_TRUE(Says(s.message(), "QEMU arguments")) << s.message();
  std::string odd = text;
  odd.insert(1, R"("extra_args": "-S",)");
  EXPECT_FALSE(ParseConfig(odd).ok());
  // Numbers are taken whole or not at all: never rounded, never wrapped.
  std::string huge = text;
  huge.replace(huge.find("512"), 3, "18446744073709551615");
  EXPECT_FALSE(ParseConfig(huge).ok());
  std::string big = text;
  big.replace(big.find("512"), 3, "1099511627776");
  EXPECT_EQ(ParseConfig(big)->config.memory_mib, int64_t{1} << 40) << "the bounds are Define's";
}

TEST(ExportManifestTest, RamOnHugePagesIsCarriedAndOrdinaryRamReadsAsBefore) {
  ExportedConfig c{.id = kVm, .name = "db", .config = {.memory_mib = 512}, .disks = 1};
  const std::string ordinary = ConfigToJson(c);
  EXPECT_FALSE(Says(ordinary, "hugepages")) << ordinary;
  EXPECT_FALSE(ParseConfig(ordinary)->config.hugepages);

  c.config.hugepages = true;
  const std::string huge = ConfigToJson(c);
  auto back = ParseConfig(huge);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->config.hugepages);
  EXPECT_EQ(ConfigToJson(*back), huge);

  std::string odd = ordinary;
  odd.insert(1, R"("hugepages": "yes",)");
  Status s = ParseConfig(odd).status();
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_TRUE(Says(s.message(), "hugepages")) << s.message();
}

}  // namespace
}  // namespace vmgroup::engine
