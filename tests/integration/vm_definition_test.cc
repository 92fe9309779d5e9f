// VmRegistry::Define, which DefineSystem, the CLI and restore all go
// through: every value and path a client sends is checked before anything
// is recorded, created or opened. Images whose headers would make qemu-img
// or QEMU open other files (json: and protocol backing names, external data
// files, links) are refused by our own header reader, down the whole
// backing chain; values outside the bounds of vm_registry.h are refused,
// never clamped.
#include <filesystem>

#include "group_fixture.h"

namespace vmgroup::integration {
namespace {

namespace fs = std::filesystem;
using engine::DiskSpec;
using engine::VmDefinition;

class VmDefinitionTest : public GroupFixture {
 protected:
  void SetUp() override {
    GroupFixture::SetUp();
    fs::create_directories(dir_ / "img");
    base_ = Image("base.qcow2");
  }

  // A qcow2 image qemu-img makes in dir_/img with `options`.
  std::string Image(const std::string& name, std::vector<std::string> options = {}) {
    const std::string path = dir_ / ("img/" + name);
    std::vector<std::string> argv = {"qemu-img", "create", "-q", "-f", "qcow2"};
    argv.insert(argv.end(), options.begin(), options.end());
    argv.insert(argv.end(), {path, "16M"});
    auto r = Env::Default()->Run(argv);
    EXPECT_TRUE(r.ok() && r->exit_code == 0) << (r.ok() ? r->err : r.status().ToString());
    return path;
  }
  std::string Overlay(const std::string& name, const std::string& backing) {
    return Image(name, {"-u", "-F", "qcow2", "-b", backing});
  }

  // Define(def) is refused with `code`, saying each of `says`, and leaves
  // nothing: no VM recorded, no run directory made.
  void ExpectRefused(const VmDefinition& def, Code code, const std::vector<std::string>& says) {
    auto r = engine_->vms().Define(def);
    ASSERT_FALSE(r.ok()) << "defined " << def.name;
    EXPECT_EQ(r.status().code(), code) << r.status().ToString();
    for (const auto& part : says) {
      EXPECT_NE(r.status().message().find(part), std::string::npos)
          << "no '" << part << "' in " << r.status().message();
    }
    EXPECT_TRUE(engine_->catalog().ListVms()->empty());
    EXPECT_TRUE(fs::is_empty(engine_->state_dir() + "/vms"));
  }

  std::string base_;
};

TEST_F(VmDefinitionTest, ImagesThatWouldMakeQemuOpenOtherFilesAreRefused) {
  const std::string json =
      Overlay("json.qcow2", "json:{\"driver\":\"file\",\"filename\":\"" + base_ + "\"}");
  ExpectRefused({.name = "j", .disks = {json}}, Code::kInvalidArgument, {"disk 0", json, "json:"});
  const std::string nbd = Overlay("nbd.qcow2", "nbd+unix:///x?socket=/run/x.sock");
  ExpectRefused({.name = "n", .disks = {nbd}}, Code::kInvalidArgument, {nbd, "protocol"});

  const std::string data = Image("data.qcow2", {"-o", "data_file=" + (dir_ / "img/data.raw")});
  ExpectRefused({.name = "d", .disks = {data}}, Code::kInvalidArgument,
                {data, "external data file"});

  // Two levels down the chain, named by the image in the middle.
  Overlay("middle.qcow2", json);
  const std::string top = Overlay("top.qcow2", "middle.qcow2");
  ExpectRefused({.name = "t", .disks = {base_, top}}, Code::kInvalidArgument,
                {"disk 1", json, "json:"});

  fs::create_symlink(base_, dir_ / "img/link.qcow2");
  ExpectRefused({.name = "l", .disks = {dir_ / "img/link.qcow2"}}, Code::kInvalidArgument,
                {"symbolic link"});
  fs::create_directory_symlink(dir_ / "img", dir_ / "imglink");
  ExpectRefused({.name = "l2", .disks = {dir_ / "imglink/base.qcow2"}}, Code::kInvalidArgument,
                {"symbolic link"});
  const std::string behind = Overlay("behind.qcow2", dir_ / "imglink/base.qcow2");
  ExpectRefused({.name = "l3", .disks = {behind}}, Code::kInvalidArgument, {"symbolic link"});

  ExpectRefused({.name = "dev", .disks = {"/dev/zero"}}, Code::kInvalidArgument,
                {"not a regular file"});
  ExpectRefused({.name = "rel", .disks = {"img/base.qcow2"}}, Code::kInvalidArgument,
                {"absolute path"});

  // A host image may name its backing file by an absolute or relative path.
  Overlay("abs.qcow2", base_);
  const std::string relative = Overlay("rel.qcow2", "abs.qcow2");
  auto ok = engine_->vms().Define({.name = "fine", .disks = {relative}});
  EXPECT_TRUE(ok.ok()) << ok.status().ToString();
}

TEST_F(VmDefinitionTest, ValuesOutsideTheBoundsAreRefusedNeverClamped) {
  const auto with = [&](const std::function<void(VmDefinition&)>& change) {
    VmDefinition def{.name = "vm", .disks = {base_}};
    change(def);
    return def;
  };
  ExpectRefused(with([](VmDefinition& d) { d.config.vcpus = 100000; }), Code::kInvalidArgument,
                {"vCPUs", "1 to 255", "100000"});
  ExpectRefused(with([](VmDefinition& d) { d.config.vcpus = 0; }), Code::kInvalidArgument,
                {"vCPUs"});
  ExpectRefused(with([](VmDefinition& d) { d.config.memory_mib = int64_t{1} << 40; }),
                Code::kInvalidArgument, {"memory", "16 to 1048576 MiB"});
  ExpectRefused(with([](VmDefinition& d) { d.config.memory_mib = 8; }), Code::kInvalidArgument,
                {"memory"});
  ExpectRefused(with([](VmDefinition& d) { d.disks.assign(17, DiskSpec::New(1 << 20)); }),
                Code::kInvalidArgument, {"17 disks", "at most 16"});
  ExpectRefused(with([](VmDefinition& d) { d.disks = {DiskSpec::New(0)}; }), Code::kInvalidArgument,
                {"new disk 0"});
  ExpectRefused(with([](VmDefinition& d) { d.disks = {DiskSpec::New(-1)}; }),
                Code::kInvalidArgument, {"new disk 0"});
  ExpectRefused(with([](VmDefinition& d) { d.disks = {DiskSpec::New(int64_t{1} << 50)}; }),
                Code::kInvalidArgument, {"new disk 0"});
  for (const std::string& name : std::vector<std::string>{"", "a\nb", "x\x1b[2J", "bad\xff",
                                                          " lead", std::string(300, 'n')}) {
    ExpectRefused(with([&](VmDefinition& d) { d.name = name; }), Code::kInvalidArgument, {"name"});
  }
  const std::string kernel = Image("kernel");  // any regular file will do
  ExpectRefused(with([&](VmDefinition& d) {
                  d.config.kernel = kernel;
                  d.config.append = std::string(5000, 'a');
                }),
                Code::kInvalidArgument, {"kernel command line", "at most 4096"});
  ExpectRefused(with([&](VmDefinition& d) {
                  d.config.kernel = kernel;
                  d.config.append = "console=ttyS0\x07";
                }),
                Code::kInvalidArgument, {"kernel command line", "control character"});
  ExpectRefused(with([](VmDefinition& d) { d.config.kernel = "vmlinuz"; }), Code::kInvalidArgument,
                {"kernel", "absolute path"});
  ExpectRefused(with([](VmDefinition& d) { d.config.kernel = "/dev/zero"; }),
                Code::kInvalidArgument, {"kernel", "not a regular file"});
  fs::create_symlink(kernel, dir_ / "img/vmlinuz");
  ExpectRefused(with([&](VmDefinition& d) { d.config.kernel = dir_ / "img/vmlinuz"; }),
                Code::kInvalidArgument, {"kernel", "symbolic link"});
  ExpectRefused(with([&](VmDefinition& d) { d.config.initrd = kernel; }), Code::kInvalidArgument,
                {"needs a kernel"});
  ExpectRefused(with([&](VmDefinition& d) { d.id = "../../etc"; }), Code::kInvalidArgument,
                {"not a GUID"});

  // The bounds themselves are inside.
  auto edge = engine_->vms().Define(
      {.name = "edge",
       .config = {.memory_mib = engine::kMaxMemoryMib, .vcpus = engine::kMaxVcpus},
       .disks = std::vector<DiskSpec>(engine::kMaxDisks, DiskSpec::New(1 << 20))});
  EXPECT_TRUE(edge.ok()) << edge.status().ToString();
}

}  // namespace
}  // namespace vmgroup::integration
