// A backup reader of the campaign's own (nbdcopy, nbdinfo): a child started
// by PID and ended by PID, which goes on reading while the daemon is killed
// and restarted, as a backup product's reader would.
#pragma once

#include <string>
#include <vector>

#include "base/env.h"

namespace vmgroup::campaign {

class ReaderProcess {
 public:
  // Its standard output and error go to `log`.
  explicit ReaderProcess(std::string log) : log_(std::move(log)) {}
  ~ReaderProcess() { (void)Finish(Duration::zero()); }
  ReaderProcess(const ReaderProcess&) = delete;
  ReaderProcess& operator=(const ReaderProcess&) = delete;

  // Starts argv (looked up in PATH). IoError when it cannot be started.
  // REQUIRES: none started, or the last one finished.
  Status Start(const std::vector<std::string>& argv);
  // Waits up to `grace` for it to exit, then SIGKILLs it (by its PID) and
  // reaps it. OK when it exited 0; Failed with how it ended and its log
  // otherwise. OK when none was started.
  Status Finish(Duration grace);

 private:
  std::string log_;
  int pid_ = 0;
};

}  // namespace vmgroup::campaign
