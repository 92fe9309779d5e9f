#include "daemon/config_file.h"

namespace vmgroup::daemon {
namespace {

constexpr std::string_view kBlanks = " \t\r";

std::string_view Trim(std::string_view s) {
  const size_t first = s.find_first_not_of(kBlanks);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(kBlanks) - first + 1);
}

}  // namespace

Result<std::vector<ConfigLine>> ParseConfigText(std::string_view text, const std::string& path) {
  std::vector<ConfigLine> lines;
  int number = 0;
  while (!text.empty()) {
    ++number;
    const size_t end = text.find('\n');
    const std::string_view line = Trim(text.substr(0, end));
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    // A '#' elsewhere is part of the value: paths and URIs may hold one.
    if (line.empty() || line.front() == '#') continue;
    const std::string where = path + ":" + std::to_string(number) + ": ";
    const size_t equals = line.find('=');
    ConfigLine l{number, std::string(Trim(line.substr(0, equals))), std::nullopt};
    if (equals != std::string_view::npos) l.value = std::string(Trim(line.substr(equals + 1)));
    if (l.name.empty()) {
      return Status::InvalidArgument(where + "no option name before '=': write NAME = VALUE");
    }
    if (l.name.find_first_of(kBlanks) != std::string::npos) {
      return Status::InvalidArgument(where + "'" + l.name +
                                     "' is not an option name: write NAME = VALUE, or NAME "
                                     "alone for an option without a value");
    }
    lines.push_back(std::move(l));
  }
  return lines;
}

}  // namespace vmgroup::daemon
