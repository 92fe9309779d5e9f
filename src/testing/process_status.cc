#include "testing/process_status.h"

#include <fstream>

namespace vmgroup::testing {

std::string ProcessStatus(int pid, const std::string& field) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  const std::string prefix = field + ":\t";
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with(prefix)) return line.substr(prefix.size());
  }
  return "";
}

}  // namespace vmgroup::testing
