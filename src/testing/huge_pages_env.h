// HugePagesEnv (tests only): an Env whose host has the 2 MiB huge page pool
// a test sets (base/huge_pages.h reads it through Env::ReadFile), or none
// at all. Everything else goes to the Env it wraps.
//
// Thread-safe, as every Env.
#pragma once

#include <atomic>

#include "base/env.h"
#include "base/huge_pages.h"

namespace vmgroup::testing {

class HugePagesEnv final : public EnvWrapper {
 public:
  explicit HugePagesEnv(Env* target = Env::Default()) : EnvWrapper(target) {}

  // The pool's pages, how many are free, and how many of those are
  // promised; a negative count: that file is missing.
  void Set(int64_t pool, int64_t free, int64_t promised = 0) {
    pool_ = pool;
    free_ = free;
    promised_ = promised;
  }

  Result<std::string> ReadFile(const std::string& path) override {
    for (const auto& [file, count] : {std::pair{kHugePagePoolPath, &pool_},
                                      {kFreeHugePagesPath, &free_},
                                      {kReservedHugePagesPath, &promised_}}) {
      if (path != file) continue;
      if (count->load() < 0) return Status::FileNotFound("cannot open " + path);
      return std::to_string(count->load()) + "\n";
    }
    return EnvWrapper::ReadFile(path);
  }

 private:
  std::atomic<int64_t> pool_{0}, free_{0}, promised_{0};
};

}  // namespace vmgroup::testing
