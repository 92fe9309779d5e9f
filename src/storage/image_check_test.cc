// InspectImage and InspectHostChain on images qemu-img makes (every trick
// an image can play on whoever opens it), plus a few bytes changed by hand
// where qemu-img will not write them.
#include "storage/image_check.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "base/env.h"
#include "storage/untrusted_files.h"
#include "testing/temp_dir.h"

namespace vmgroup::storage {
namespace {

namespace fs = std::filesystem;

class ImageCheckTest : public ::testing::Test {
 protected:
  std::string Path(const std::string& name) { return tmp_ / name; }

  // Runs qemu-img with `args`; the test fails if it does.
  void QemuImg(std::vector<std::string> args) {
    args.insert(args.begin(), "qemu-img");
    auto r = Env::Default()->Run(args);
    ASSERT_TRUE(r.ok() && r->exit_code == 0) << (r.ok() ? r->err : r.status().ToString());
  }
  std::string Image(const std::string& name) {
    QemuImg({"create", "-q", "-f", "qcow2", Path(name), "16M"});
    return Path(name);
  }
  // An overlay of `backing`, recorded as written (-u: not opened).
  std::string Overlay(const std::string& name, const std::string& backing,
                      const std::string& format = "qcow2") {
    QemuImg({"create", "-q", "-f", "qcow2", "-u", "-F", format, "-b", backing, Path(name), "16M"});
    return Path(name);
  }
  // Overwrites bytes of `name` at `offset`.
  void Patch(const std::string& name, size_t offset, const std::string& bytes) {
    std::fstream f(Path(name), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(offset));
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  // InspectImage's refusal of `path`, which must name it.
  std::string Refusal(const std::string& path, BackingNames names = BackingNames::kAbsoluteToo) {
    auto r = InspectImage(path, names);
    EXPECT_FALSE(r.ok()) << path;
    if (r.ok()) return "";
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().ToString();
    EXPECT_NE(r.status().message().find(path), std::string::npos) << r.status().message();
    return r.status().message();
  }

  testing::TempDir tmp_;
  const std::string dir_ = tmp_.path();
};

TEST_F(ImageCheckTest, PlainImagesAndOverlaysPass) {
  const std::string base = Image("base.qcow2");
  auto plain = InspectImage(base, BackingNames::kRelativeOnly);
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_FALSE(plain->header.has_backing);
  EXPECT_EQ(plain->header.virtual_size, uint64_t{16} << 20);
  EXPECT_EQ(plain->backing_path, "");

  fs::create_directories(Path("vm"));
  const std::string relative = Overlay("vm/top.qcow2", "../base.qcow2");
  auto r = InspectImage(relative, BackingNames::kRelativeOnly);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->header.backing_file, "../base.qcow2");
  EXPECT_EQ(r->backing_path, Path("vm/../base.qcow2")) << "joined as QEMU joins it";

  // Compression type zstd and a version 2 image are fine too.
  QemuImg({"create", "-q", "-f", "qcow2", "-o", "compression_type=zstd", Path("z.qcow2"), "1M"});
  EXPECT_TRUE(InspectImage(Path("z.qcow2"), BackingNames::kRelativeOnly).ok());
  QemuImg({"create", "-q", "-f", "qcow2", "-o", "compat=0.10", Path("v2.qcow2"), "1M"});
  auto v2 = InspectImage(Path("v2.qcow2"), BackingNames::kRelativeOnly);
  ASSERT_TRUE(v2.ok()) << v2.status().ToString();
  EXPECT_EQ(v2->header.version, 2u);
}

TEST_F(ImageCheckTest, BackingNamesThatLeadElsewhereAreRefused) {
  const std::string base = Image("base.qcow2");
  const std::string absolute = Overlay("abs.qcow2", base);
  EXPECT_NE(Refusal(absolute, BackingNames::kRelativeOnly).find("absolute path"),
            std::string::npos);
  auto host = InspectImage(absolute, BackingNames::kAbsoluteToo);
  ASSERT_TRUE(host.ok()) << host.status().ToString();
  EXPECT_EQ(host->backing_path, base);

  const std::string json = Overlay(
      "json.qcow2",
      "json:{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"" + base + "\"}}");
  EXPECT_NE(Refusal(json).find("json:"), std::string::npos);
  EXPECT_NE(Refusal(Overlay("nbd.qcow2", "nbd:localhost:10809")).find("protocol"),
            std::string::npos);
  EXPECT_NE(Refusal(Overlay("raw.qcow2", "base.qcow2", "raw")).find("only qcow2"),
            std::string::npos);

  // No backing format: the extension's type is overwritten, so QEMU would
  // probe the backing file's content.
  const std::string probed = Overlay("probed.qcow2", "base.qcow2");
  auto h = InspectImage(probed, BackingNames::kRelativeOnly);
  ASSERT_TRUE(h.ok());
  Patch("probed.qcow2", 112, std::string("\x12\x34\x56\x78", 4));
  ASSERT_EQ(ParseQcow2Header(*ReadHead(probed, kQcow2MaxHeaderBytes))->backing_format, "");
  EXPECT_NE(Refusal(probed).find("does not give the format"), std::string::npos);
}

TEST_F(ImageCheckTest, DataFilesCorruptionEncryptionAndOtherFormatsAreRefused) {
  QemuImg({"create", "-q", "-f", "qcow2", "-o", "data_file=" + Path("data.raw"), Path("ext.qcow2"),
           "16M"});
  EXPECT_NE(Refusal(Path("ext.qcow2")).find("external data file"), std::string::npos);
  // The extension alone, without the feature bit, is refused as well.
  Patch("ext.qcow2", 72, std::string(8, '\0'));
  ASSERT_EQ(InspectImage(Path("ext.qcow2"), BackingNames::kAbsoluteToo).status().code(),
            Code::kInvalidArgument);

  const std::string corrupt = Image("corrupt.qcow2");
  Patch("corrupt.qcow2", 79, std::string("\x02", 1));
  EXPECT_NE(Refusal(corrupt).find("corrupt"), std::string::npos);
  const std::string unknown = Image("unknown.qcow2");
  Patch("unknown.qcow2", 78, std::string("\x01", 1));  // bit 8
  EXPECT_NE(Refusal(unknown).find("does not know"), std::string::npos);

  // Encrypted (crypt method 2, LUKS; written by hand: qemu-img takes
  // seconds to derive a LUKS key).
  const std::string luks = Image("luks.qcow2");
  Patch("luks.qcow2", 35, std::string("\x02", 1));
  EXPECT_NE(Refusal(luks).find("encrypted"), std::string::npos);

  QemuImg({"create", "-q", "-f", "raw", Path("disk.raw"), "1M"});
  EXPECT_NE(Refusal(Path("disk.raw")).find("is not qcow2"), std::string::npos);
}

TEST_F(ImageCheckTest, LinksFifosAndMissingFilesAreRefused) {
  const std::string base = Image("base.qcow2");
  fs::create_symlink(base, Path("link.qcow2"));
  EXPECT_NE(Refusal(Path("link.qcow2")).find("symbolic link"), std::string::npos);
  fs::create_directory_symlink(dir_, Path("linkdir"));
  EXPECT_NE(Refusal(Path("linkdir/base.qcow2")).find("symbolic link"), std::string::npos);
  ASSERT_EQ(::mkfifo(Path("fifo").c_str(), 0600), 0);
  EXPECT_NE(Refusal(Path("fifo")).find("not a regular file"), std::string::npos);
  EXPECT_NE(Refusal(dir_).find("not a regular file"), std::string::npos);
  EXPECT_EQ(InspectImage(Path("none.qcow2"), BackingNames::kAbsoluteToo).status().code(),
            Code::kFileNotFound);
}

TEST_F(ImageCheckTest, AHostChainIsWalkedToItsBase) {
  const std::string base = Image("base.qcow2");
  Overlay("o1.qcow2", base);        // absolute
  Overlay("o2.qcow2", "o1.qcow2");  // relative
  auto chain = InspectHostChain(Path("o2.qcow2"));
  ASSERT_TRUE(chain.ok()) << chain.status().ToString();
  ASSERT_EQ(chain->size(), 3u);
  EXPECT_EQ((*chain)[0].path, Path("o2.qcow2"));
  EXPECT_EQ((*chain)[1].path, Path("o1.qcow2"));
  EXPECT_EQ((*chain)[2].path, base);

  EXPECT_EQ(InspectHostChain("relative.qcow2").status().code(), Code::kInvalidArgument);
  // Each link of the chain is judged: a json: name two levels down.
  Overlay("j.qcow2", "json:{\"driver\":\"file\",\"filename\":\"/etc/shadow\"}");
  Overlay("above-j.qcow2", "j.qcow2");
  auto deep = InspectHostChain(Path("above-j.qcow2"));
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.status().message().find(Path("j.qcow2")), std::string::npos)
      << deep.status().message();
  // A chain that loops, and one whose base is missing.
  Overlay("a.qcow2", "b.qcow2");
  Overlay("b.qcow2", "a.qcow2");
  auto loop = InspectHostChain(Path("a.qcow2"));
  ASSERT_FALSE(loop.ok());
  EXPECT_NE(loop.status().message().find("loops"), std::string::npos) << loop.status().message();
  Overlay("orphan.qcow2", "gone.qcow2");
  auto orphan = InspectHostChain(Path("orphan.qcow2"));
  ASSERT_FALSE(orphan.ok());
  EXPECT_NE(orphan.status().message().find("missing"), std::string::npos);
  EXPECT_NE(orphan.status().message().find(Path("orphan.qcow2")), std::string::npos);
}

}  // namespace
}  // namespace vmgroup::storage
