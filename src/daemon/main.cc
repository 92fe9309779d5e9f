// vmgroupd: serves the Hyper-V collection API until SIGTERM or SIGINT.
#include <signal.h>

#include <cstdio>

#include "base/log.h"
#include "daemon/daemon.h"
#include "daemon/systemd.h"

int main(int argc, char** argv) {
  using namespace vmgroup;
  auto options = daemon::ParseOptions(std::vector<std::string>(argv + 1, argv + argc),
                                      daemon::kDefaultConfigFile);
  if (!options.ok()) {
    std::fprintf(stderr, "vmgroupd: %s\n", options.status().message().c_str());
    return 2;
  }
  if (options->help) {
    std::fputs(daemon::Usage().c_str(), stdout);
    return 0;
  }
  if (options->version) {
    std::puts("vmgroupd " VMGROUP_VERSION);  // project(VERSION) in CMakeLists.txt
    return 0;
  }
  SetLogLevel(options->log_level);
  SetLogSink(DetectLogSink());
  Log(LogLevel::kDebug, options->config->empty()
                            ? "no configuration file"
                            : "options from " + *options->config + ", then the command line");
  // Block the stop signals in every thread; this one waits for them below.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto d = daemon::Daemon::Start(*options);
  if (!d.ok()) {
    Log(LogLevel::kError, "cannot start: " + d.status().ToString());
    return 1;
  }
  Log(LogLevel::kInfo, "vmgroupd ready");
  daemon::NotifyReady();
  int sig = 0;
  sigwait(&stop, &sig);
  const std::string stopping =
      std::string("stopping on ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT");
  Log(LogLevel::kInfo, stopping);
  daemon::NotifyStopping(stopping + ": ending backup sessions, finishing jobs");
  d->reset();
  return 0;
}
