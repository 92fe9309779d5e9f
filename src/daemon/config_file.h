// The syntax of vmgroupd.conf (vmgroupd.conf(5)): one option a line, as
// `NAME = VALUE` or `NAME` alone; blank lines and lines whose first
// non-blank character is # say nothing. Which names exist and what their
// values mean is the option table's business (options.h), not this file's.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace vmgroup::daemon {

struct ConfigLine {
  int line = 0;  // 1-based, for "FILE:LINE:" in errors
  std::string name;
  // The text after '=', blanks trimmed ("" for `NAME =`); nullopt for
  // `NAME` alone.
  std::optional<std::string> value;
};

// The option lines of `text`, in order. `path` only names the file in
// errors: InvalidArgument "PATH:LINE: ..." for a line with no name before
// its '=' or a name with blanks in it.
Result<std::vector<ConfigLine>> ParseConfigText(std::string_view text, const std::string& path);

}  // namespace vmgroup::daemon
