// TempDir (tests only): a fresh directory under /tmp, removed with its
// contents when the object goes out of scope. Kept short: unix socket paths
// inside it must stay under 108 bytes. Mode 0711: an unprivileged QEMU
// (testing::TestQemu) may pass through it to the files it is given.
#pragma once

#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>

namespace vmgroup::testing {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/vmg-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr || ::chmod(tmpl, 0711) != 0) std::abort();
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace vmgroup::testing
