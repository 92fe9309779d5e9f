#include "testing/process_status.h"

#include <filesystem>
#include <fstream>
#include <iterator>

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

std::vector<int> QemusOf(const std::string& uuid) {
  const std::string needle = std::string("-uuid") + '\0' + uuid + '\0';
  std::vector<int> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream f(entry.path() / "cmdline", std::ios::binary);
    const std::string cmdline{std::istreambuf_iterator<char>(f), {}};
    if (cmdline.find(needle) != std::string::npos) out.push_back(std::stoi(name));
  }
  return out;
}

}  // namespace vmgroup::testing
