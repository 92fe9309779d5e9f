#include "testing/daemon_ready.h"

#include <regex>

#include "base/env.h"

namespace vmgroup::testing {

Result<int> AwaitDaemonReady(int pid, const std::string& log_path, size_t from,
                             const std::string& host) {
  Env* env = Env::Default();
  const std::regex listening("listening on https?://" +
                             std::regex_replace(host, std::regex(R"(\.)"), R"(\.)") + R"(:(\d+))");
  auto log = [&] {
    auto text = env->ReadFile(log_path);
    return text.ok() && text->size() > from ? text->substr(from) : std::string();
  };
  int port = 0;
  for (int i = 0; i < 1000; ++i) {
    const std::string text = log();
    std::smatch m;
    if (std::regex_search(text, m, listening)) port = std::stoi(m[1]);
    if (text.find("vmgroupd ready") != std::string::npos) return port;
    if (!env->IsAlive(pid)) return Status::Failed("vmgroupd exited:\n" + text);
    env->SleepFor(std::chrono::milliseconds(10));
  }
  return Status::Timeout("vmgroupd did not become ready:\n" + log());
}

}  // namespace vmgroup::testing
