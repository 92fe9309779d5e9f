// An export is data, never instructions. Exports tampered with as anyone
// able to write where an export sits could (the manifest's checksums
// rewritten to match) are refused by restore, naming the file, with nothing
// made: no VM, no group, no file in the state directory. A legitimate
// export of a real guest, kernel and initrd included, restores and boots
// from the copies; exports are for root and the admin group only.
#include <grp.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "engine/export_manifest.h"
#include "guest_fixture.h"
#include "storage/checksum.h"
#include "testing/huge_pages_env.h"

namespace vmgroup::integration {
namespace {

namespace fs = std::filesystem;
using engine::ExportManifest;

class ExportRestoreTest : public GuestFixture {
 protected:
  // What every crafted export starts from: a stopped group of one tiny VM
  // (two disks, no kernel) with a snapshot, exported. And a file of the
  // host that no export may reach.
  void SetUp() override {
    GuestFixture::SetUp();
    auto g = MakeGroup("shop", 1, /*start=*/false);
    auto s = engine_->snapshots().Create({.collection_id = g.collection_id});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    pristine_ = dir_ / "pristine";
    auto m = engine_->snapshots().Export({.snapshot_id = s->id, .directory = pristine_});
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    manifest_ = *m;
    fs::create_directories(dir_ / "host");
    secret_ = dir_ / "host/secret.qcow2";
    QemuImg({"create", "-q", "-f", "qcow2", secret_, "16M"});
  }

  static void QemuImg(std::vector<std::string> args) {
    args.insert(args.begin(), "qemu-img");
    auto r = Env::Default()->Run(args);
    ASSERT_TRUE(r.ok() && r->exit_code == 0) << (r.ok() ? r->err : r.status().ToString());
  }

  using Tamper = std::function<void(const std::string& dir, ExportManifest& m)>;
  // A copy of the pristine export at dir_/name, changed by `tamper` (its
  // files, and the manifest it is handed), then resealed as an attacker
  // would: every checksum and size in the manifest made to match the
  // files again. `edit` changes the manifest's text last.
  std::string Craft(const std::string& name, const Tamper& tamper,
                    const std::function<void(std::string&)>& edit = nullptr) {
    const std::string dir = dir_ / name;
    fs::copy(pristine_, dir, fs::copy_options::recursive);
    ExportManifest m = manifest_;
    tamper(dir, m);
    Reseal(dir, m, edit);
    return dir;
  }
  // Writes `m` as the manifest of `dir` with every checksum and size made
  // to match the files there; `edit` changes its text last.
  static void Reseal(const std::string& dir, ExportManifest m,
                     const std::function<void(std::string&)>& edit = nullptr) {
    auto seal = [&](const std::string& file, uint64_t* bytes, std::string* checksum) {
      auto d = storage::DigestFile(Env::Default(),
                                   dir + "/" + file);  // follows links, as an attacker's tool
      if (!d.ok()) return;
      if (bytes) *bytes = d->bytes;
      *checksum = d->checksum;
    };
    for (auto& vm : m.vms) {
      seal(vm.config_file, nullptr, &vm.config_checksum);
      for (auto* f : {&vm.kernel, &vm.initrd}) {
        if (!f->empty()) seal(f->file, &f->file_size, &f->checksum);
      }
      for (auto& d : vm.disks) seal(d.file, &d.file_size, &d.checksum);
    }
    std::string text = engine::ManifestToJson(m);
    if (edit) edit(text);
    std::ofstream(dir + "/" + engine::kManifestFile, std::ios::trunc) << text;
  }

  static bool SameFile(const std::string& a, const std::string& b) {
    auto da = storage::DigestFile(Env::Default(), a), db = storage::DigestFile(Env::Default(), b);
    return da.ok() && db.ok() && da->checksum == db->checksum;
  }

  std::string Config(const std::string& dir) { return dir + "/" + manifest_.vms[0].config_file; }
  std::string Disk0(const std::string& dir) { return dir + "/" + manifest_.vms[0].disks[0].file; }

  // Rewrites the VM's configuration in `dir` with `change` applied.
  void EditConfig(const std::string& dir,
                  const std::function<void(engine::ExportedConfig&)>& change) {
    auto c = engine::ParseConfig(*Env::Default()->ReadFile(Config(dir)));
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    change(*c);
    std::ofstream(Config(dir), std::ios::trunc) << engine::ConfigToJson(*c);
  }
  // Replaces disk 0 of the export in `dir` with a qcow2 image qemu-img
  // makes with `options`.
  void ReplaceDisk0(const std::string& dir, std::vector<std::string> options) {
    fs::remove(Disk0(dir));
    std::vector<std::string> args = {"create", "-q", "-f", "qcow2"};
    args.insert(args.end(), options.begin(), options.end());
    args.insert(args.end(), {Disk0(dir), "16M"});
    QemuImg(args);
  }

  // Every file and directory in the state directory, but the catalog's
  // own files (SQLite writes them on every read).
  std::set<std::string> StateFiles() {
    std::set<std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(engine_->state_dir())) {
      const std::string name = e.path().filename();
      if (name.rfind("catalog.db", 0) != 0) out.insert(e.path());
    }
    return out;
  }

  // Restore of `dir` is refused with `code`, saying each of `says`, and
  // makes nothing; a job would have been refused at once (Validate).
  void ExpectRefused(const std::string& dir, Code code, const std::vector<std::string>& says) {
    const auto files = StateFiles();
    const auto vms = engine_->catalog().ListVms()->size();
    const auto groups = engine_->catalog().ListCollections()->size();
    Status early = engine_->restorer().Validate({.directory = dir, .as_new = true});
    Status s = engine_->restorer().Restore({.directory = dir, .as_new = true}).status();
    EXPECT_EQ(s.code(), code) << s.ToString();
    EXPECT_EQ(early.ToString(), s.ToString());
    for (const auto& part : says) {
      EXPECT_NE(s.message().find(part), std::string::npos)
          << "no '" << part << "' in " << s.message();
    }
    EXPECT_EQ(engine_->catalog().ListVms()->size(), vms);
    EXPECT_EQ(engine_->catalog().ListCollections()->size(), groups);
    EXPECT_EQ(StateFiles(), files) << "restore left something in the state directory";
  }

  std::string pristine_, secret_;
  ExportManifest manifest_;
};

TEST_F(ExportRestoreTest, QemuArgumentsInAConfigurationAreRefused) {
  const std::string pwned = dir_ / "pwned";
  const std::string dir = Craft("args", [&](const std::string& d, ExportManifest&) {
    std::string text = *Env::Default()->ReadFile(Config(d));
    text.insert(1, "\"extra_args\": [\"-incoming\", \"exec:touch " + pwned + "; cat /dev/null\"],");
    std::ofstream(Config(d), std::ios::trunc) << text;
  });
  ExpectRefused(dir, Code::kInvalidArgument, {Config(dir), "QEMU arguments"});
  EXPECT_FALSE(fs::exists(pwned));
}

TEST_F(ExportRestoreTest, ImagesThatNameFilesOutsideTheExportAreRefused) {
  const std::string absolute = Craft("absolute", [&](const std::string& d, ExportManifest&) {
    ReplaceDisk0(d, {"-u", "-F", "qcow2", "-b", secret_});
  });
  ExpectRefused(absolute, Code::kInvalidArgument, {Disk0(absolute), "absolute path"});

  const std::string json = Craft("json", [&](const std::string& d, ExportManifest&) {
    ReplaceDisk0(d, {"-u", "-F", "qcow2", "-b",
                     "json:{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"" +
                         secret_ + "\"}}"});
  });
  ExpectRefused(json, Code::kInvalidArgument, {Disk0(json), "json:"});

  // Relative, but out of the export: to the host's file beside it.
  const std::string out = Craft("out", [&](const std::string& d, ExportManifest&) {
    ReplaceDisk0(d, {"-u", "-F", "qcow2", "-b", "../../host/secret.qcow2"});
  });
  ASSERT_TRUE(fs::exists(fs::path(Disk0(out)).parent_path() / "../../host/secret.qcow2"));
  ExpectRefused(out, Code::kInvalidArgument, {Disk0(out), "lists it as a full image"});

  const std::string link = Craft("link", [&](const std::string& d, ExportManifest&) {
    fs::remove(Disk0(d));
    fs::create_symlink(secret_, Disk0(d));
  });
  ExpectRefused(link, Code::kInvalidArgument, {Disk0(link), "symbolic link"});

  const std::string data = Craft("data", [&](const std::string& d, ExportManifest&) {
    ReplaceDisk0(d, {"-o", "data_file=" + (dir_ / "host/data.raw")});
  });
  ExpectRefused(data, Code::kInvalidArgument, {Disk0(data), "external data file"});
}

TEST_F(ExportRestoreTest, HostFilesAsKernelOrInitrdAreRefused) {
  const std::string kernel = Craft("kernel", [&](const std::string& d, ExportManifest&) {
    EditConfig(d, [](engine::ExportedConfig& c) { c.config.kernel = "/etc/shadow"; });
  });
  ExpectRefused(kernel, Code::kInvalidArgument, {Config(kernel), "host file '/etc/shadow'"});

  const std::string initrd = Craft("initrd", [&](const std::string& d, ExportManifest&) {
    EditConfig(d, [](engine::ExportedConfig& c) { c.config.initrd = "/etc/shadow"; });
  });
  ExpectRefused(initrd, Code::kInvalidArgument, {Config(initrd), "as the VM's initrd"});

  // Listed in the manifest too, as a file "of the export" that leads out.
  const std::string listed = Craft("listed", [&](const std::string& d, ExportManifest& m) {
    EditConfig(d, [](engine::ExportedConfig& c) { c.config.kernel = "../host/secret.qcow2"; });
    m.vms[0].kernel = {.file = "../host/secret.qcow2"};
  });
  ExpectRefused(listed, Code::kInvalidArgument, {engine::kManifestFile, "leads out"});
}

TEST_F(ExportRestoreTest, AbsurdSizesAndBadIndexesAreRefused) {
  const std::string cpus = Craft("cpus", [&](const std::string& d, ExportManifest&) {
    EditConfig(d, [](engine::ExportedConfig& c) { c.config.vcpus = 100000; });
  });
  ExpectRefused(cpus, Code::kInvalidArgument, {Config(cpus), "vCPUs", "100000"});

  const std::string memory = Craft("memory", [&](const std::string& d, ExportManifest&) {
    EditConfig(d, [](engine::ExportedConfig& c) { c.config.memory_mib = int64_t{1} << 40; });
  });
  ExpectRefused(memory, Code::kInvalidArgument, {Config(memory), "memory", "1099511627776"});

  const std::string negative = Craft(
      "negative", [](const std::string&, ExportManifest& m) { m.vms[0].disks[0].index = -1; });
  ExpectRefused(negative, Code::kInvalidArgument, {engine::kManifestFile, "disk index -1"});

  const std::string twice =
      Craft("twice", [](const std::string&, ExportManifest& m) { m.vms[0].disks[1].index = 0; });
  ExpectRefused(twice, Code::kInvalidArgument, {engine::kManifestFile, "listed once each"});

  const std::string huge = Craft(
      "huge", [](const std::string&, ExportManifest&) {},
      [](std::string& text) { text += std::string(17 << 20, ' '); });
  ExpectRefused(huge, Code::kInvalidArgument, {engine::kManifestFile, "at most 16777216"});
}

TEST_F(ExportRestoreTest, NamesThatAreNotNamesAreRefused) {
  const std::string escape = Craft("escape", [&](const std::string& d, ExportManifest& m) {
    m.vms[0].name = "db\n\x1b[31mred";
    EditConfig(d, [](engine::ExportedConfig& c) { c.name = "db\n\x1b[31mred"; });
  });
  ExpectRefused(escape, Code::kInvalidArgument, {engine::kManifestFile, "control character"});

  const std::string utf8 = Craft(
      "utf8", [](const std::string&, ExportManifest&) {},
      [](std::string& text) { text.replace(text.find("\"shop\""), 6, "\"shop\xc0\xaf\""); });
  ExpectRefused(utf8, Code::kInvalidArgument, {engine::kManifestFile});

  // "-restored" would make it longer than a name may be.
  const std::string longer = Craft("longer", [](const std::string&, ExportManifest& m) {
    m.collection_name = std::string(250, 'g');
  });
  ExpectRefused(longer, Code::kInvalidArgument, {"restored group's name", "at most 256"});
}

TEST_F(ExportRestoreTest, AnIncrementalChainIsJudgedDownToItsFullImage) {
  auto& snaps = engine_->snapshots();
  auto s2 = snaps.Create({.collection_id = manifest_.collection_id});
  ASSERT_TRUE(s2.ok()) << s2.status().ToString();
  const std::string inc = dir_ / "inc";
  auto m2 = snaps.Export({.snapshot_id = s2->id, .directory = inc, .base = manifest_.snapshot_id});
  ASSERT_TRUE(m2.ok()) << m2.status().ToString();
  ASSERT_EQ(m2->base.directory, "../pristine");
  auto r = engine_->restorer().Restore({.directory = inc, .as_new = true});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ExpectCatalogMatchesDisk(r->vm_ids.at(0));

  // The full image below, rewritten in place with its manifest: the
  // incremental export on top of it no longer restores...
  ReplaceDisk0(pristine_, {"-u", "-F", "qcow2", "-b", secret_});
  Reseal(pristine_, manifest_);
  ExpectRefused(inc, Code::kInvalidArgument, {Disk0(pristine_), "absolute path"});
  // ... and no export builds on it: refused before anything is written.
  auto s3 = snaps.Create({.collection_id = manifest_.collection_id});
  ASSERT_TRUE(s3.ok()) << s3.status().ToString();
  Status e =
      snaps.Export({.snapshot_id = s3->id, .directory = dir_ / "inc2", .base = s2->id}).status();
  EXPECT_EQ(e.code(), Code::kFailed) << e.ToString();
  EXPECT_NE(e.message().find(Disk0(pristine_)), std::string::npos) << e.message();
  EXPECT_NE(e.message().find("export in full"), std::string::npos) << e.message();
  EXPECT_FALSE(fs::exists(dir_ / "inc2"));
}

TEST_F(ExportRestoreTest, AVersion1ExportOfAVmWithoutKernelStillRestores) {
  const std::string v1 = Craft(
      "v1",
      [&](const std::string& d, ExportManifest&) {
        std::string text = *Env::Default()->ReadFile(Config(d));
        text.insert(1, "\"extra_args\": [],");
        std::ofstream(Config(d), std::ios::trunc) << text;
      },
      [](std::string& text) { text.replace(text.find("\"version\": 2"), 12, "\"version\": 1"); });
  auto r = engine_->restorer().Restore({.directory = v1, .as_new = true});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ExpectCatalogMatchesDisk(r->vm_ids.at(0));
}

TEST_F(ExportRestoreTest, AVmOnHugePagesComesBackOnHugePagesOrIsRefusedBeforeAnythingIsMade) {
  auto env = std::make_unique<testing::HugePagesEnv>();
  testing::HugePagesEnv* pages = env.get();
  OpenEngine({}, std::move(env));
  const std::string huge = Craft("huge", [&](const std::string& d, ExportManifest&) {
    EditConfig(d, [](engine::ExportedConfig& c) { c.config.hugepages = true; });
  });
  // Too few free pages: refused as Define would, before a byte is copied.
  pages->Set(/*pool=*/16, /*free=*/16);
  ExpectRefused(huge, Code::kUnavailable, {"huge pages", "vm.nr_hugepages"});
  // Enough: the VM is defined on huge pages, as it was exported.
  pages->Set(/*pool=*/1024, /*free=*/1024);
  auto r = engine_->restorer().Restore({.directory = huge, .as_new = true});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(Vm(r->vm_ids.at(0)).config.hugepages);
  // An ordinary VM's export stays ordinary.
  auto plain = engine_->restorer().Restore({.directory = pristine_, .as_new = true});
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_FALSE(Vm(plain->vm_ids.at(0)).config.hugepages);
}

TEST_F(ExportRestoreTest, ARealGuestExportsItsKernelAndBootsFromTheRestoredCopies) {
  auto g = testing::MakeTinyGroup(*engine_, dir_ / "images", "web", 1, Guest("writer=raw"));
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  const std::string guest = g->vm_ids[0];
  WaitForWrites({guest}, {0}, 20);
  auto s = engine_->snapshots().Create({.collection_id = g->collection_id});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  const std::string out = dir_ / "web-export";
  auto m = engine_->snapshots().Export({.snapshot_id = s->id, .directory = out});
  ASSERT_TRUE(m.ok()) << m.status().ToString();

  // The export holds the kernel and initrd, checksummed like the disks;
  // the configuration names them inside it, and carries no QEMU arguments.
  const auto& vm = m->vms.at(0);
  EXPECT_EQ(vm.kernel.file, guest + "/kernel");
  EXPECT_EQ(vm.initrd.file, guest + "/initrd");
  EXPECT_TRUE(SameFile(out + "/" + vm.kernel.file, std::string(GUEST_KIT_DIR) + "/vmlinuz"));
  EXPECT_TRUE(SameFile(out + "/" + vm.initrd.file, std::string(GUEST_KIT_DIR) + "/initrd.gz"));
  EXPECT_EQ(storage::DigestFile(Env::Default(), out + "/" + vm.kernel.file)->checksum,
            vm.kernel.checksum);
  const std::string config = *Env::Default()->ReadFile(out + "/" + vm.config_file);
  EXPECT_EQ(config.find("extra_args"), std::string::npos) << config;
  EXPECT_EQ(engine::ParseConfig(config)->config.kernel, vm.kernel.file);

  ASSERT_TRUE(engine_->vms().Stop(guest).ok());  // one guest writing at a time: 2 cores
  auto r = engine_->restorer().Restore({.directory = out, .as_new = true});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const std::string id = r->vm_ids.at(0);
  const std::string run = engine_->vms().RunDir(id);
  EXPECT_EQ(Vm(id).config.kernel, run + "/kernel");
  EXPECT_EQ(Vm(id).config.initrd, run + "/initrd");
  EXPECT_TRUE(Vm(id).config.extra_args.empty());
  EXPECT_TRUE(SameFile(run + "/kernel", std::string(GUEST_KIT_DIR) + "/vmlinuz"));
  ASSERT_TRUE(engine_->vms().Start(id).ok());
  WaitForSerial(id, "BOOT-DONE");
  WaitForWrites({id}, {0}, 20);
}

TEST_F(ExportRestoreTest, AnExportIsForRootAndTheAdminGroupOnly) {
  const group* daemon = ::getgrnam("daemon");
  ASSERT_NE(daemon, nullptr);
  const gid_t admin = daemon->gr_gid;
  engine_.reset();
  auto e = engine::Engine::Open({.state_dir = dir_ / "state",
                                 .qemu = testing::TestQemu(),
                                 .admin_gid = static_cast<int>(admin)});
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  engine_ = std::move(e).value();
  const std::string out = dir_ / "made/by/export";
  ASSERT_TRUE(
      engine_->snapshots().Export({.snapshot_id = manifest_.snapshot_id, .directory = out}).ok());
  size_t files = 0;
  for (const std::string& p : {dir_ / "made", dir_ / "made/by", out}) {
    struct stat st {};
    ASSERT_EQ(::lstat(p.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0750u) << p;
    EXPECT_EQ(st.st_gid, admin) << p;
  }
  for (const auto& f : fs::recursive_directory_iterator(out)) {
    struct stat st {};
    ASSERT_EQ(::lstat(f.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, f.is_directory() ? 0750u : 0640u) << f.path();
    EXPECT_EQ(st.st_gid, admin) << f.path();
    files += f.is_regular_file();
  }
  EXPECT_EQ(files, 4u) << "manifest, configuration, two disks";
}

}  // namespace
}  // namespace vmgroup::integration
