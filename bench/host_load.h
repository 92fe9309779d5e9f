// The host's load, printed before and after every benchmark's figures: the
// benchmarks share two cores with builds and other benchmarks, so a figure
// means little without the load it was taken under.
#pragma once

#include <string>

#include "base/env.h"

namespace vmgroup::bench {

// /proc/loadavg and the "some" line of /proc/pressure/cpu, on one line.
inline std::string HostLoad() {
  Env* env = Env::Default();
  std::string load = env->ReadFile("/proc/loadavg").value_or("?");
  std::string cpu = env->ReadFile("/proc/pressure/cpu").value_or("?");
  load = load.substr(0, load.find('\n'));
  cpu = cpu.substr(0, cpu.find('\n'));
  return "loadavg " + load + " | cpu pressure " + cpu;
}

}  // namespace vmgroup::bench
