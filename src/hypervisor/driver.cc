#include "hypervisor/driver.h"

namespace vmgroup::hypervisor {

const char* RunStateName(RunState s) {
  switch (s) {
    case RunState::kRunning:
      return "running";
    case RunState::kPaused:
      return "paused";
    case RunState::kShutoff:
      return "off";
    case RunState::kIoError:
      return "io-error";
    case RunState::kOther:
      return "other";
  }
  return "other";
}

}  // namespace vmgroup::hypervisor
