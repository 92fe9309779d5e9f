#include "base/tied_command.h"

#include <unistd.h>

namespace vmgroup {

std::vector<std::string> TiedToThisProcess(const std::vector<std::string>& argv) {
  std::vector<std::string> tied = {
      "setpriv",
      "--pdeathsig",
      "KILL",
      "--",
      "sh",
      "-c",
      "[ \"$PPID\" = \"$0\" ] && exec \"$@\"; echo 'vmgroupd, which ran it, is gone' >&2; exit 125",
      std::to_string(::getpid())};
  tied.insert(tied.end(), argv.begin(), argv.end());
  return tied;
}

}  // namespace vmgroup
