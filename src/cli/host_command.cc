// vmgroup host: what the daemon runs VMs on (its host's name, the
// accelerator QEMU uses).
#include <iostream>

#include "cli/commands.h"
#include "cli/output.h"

namespace vmgroup::cli {

int RunHost(Context& ctx, const std::vector<std::string>& words) {
  auto line = CommandLine::Parse(words, {}, {});
  if (!line.ok()) return ReportError(line.status());
  if (!line->positional().empty()) return UsageError("host");
  auto host = ctx.api->GetHost();
  if (!host.ok()) return ReportError(host.status());
  if (ctx.json) {
    PrintJson({{"host", host->name}, {"accelerator", host->accelerator}});
    return kExitOk;
  }
  PrintTable(std::cout, {{"HOST", "ACCELERATOR"}, {host->name, host->accelerator}});
  return kExitOk;
}

}  // namespace vmgroup::cli
