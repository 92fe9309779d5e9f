#include "options.h"

#include <charconv>
#include <chrono>

namespace vmgroup::campaign {

const char* const kUsage =
    "usage: crash_campaign [--kills N] [--full-disk N] [--seed N] [--guests N]\n"
    "                      [--memory MiB] [--max-kill-delay-ms N] [--state-mib N]\n"
    "                      [--export-mib N] [--keep]\n"
    "                      [--vmgroupd PATH] [--vmgroup PATH] [--guest-kit DIR]\n";

namespace {

template <typename T>
Status Number(const std::string& flag, const std::string& text, T min, T max, T* out) {
  T v{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < min || v > max) {
    return Status::InvalidArgument(flag + " takes a whole number from " + std::to_string(min) +
                                   " to " + std::to_string(max) + ", not '" + text + "'");
  }
  *out = v;
  return Status::Ok();
}

}  // namespace

Result<Options> ParseOptions(const std::vector<std::string>& args) {
  Options o;
#ifdef VMGROUPD_BIN
  o.vmgroupd = VMGROUPD_BIN;
  o.vmgroup = VMGROUP_BIN;
  o.guest_kit = GUEST_KIT_DIR;
#endif
  bool seeded = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& flag = args[i];
    if (flag == "--keep") {
      o.keep = true;
      continue;
    }
    if (i + 1 >= args.size()) return Status::InvalidArgument(flag + ": unknown flag or no value");
    const std::string& v = args[++i];
    Status s;
    if (flag == "--kills") {
      s = Number(flag, v, 0, 100000, &o.kills);
    } else if (flag == "--full-disk") {
      s = Number(flag, v, 0, 100000, &o.full_disk);
    } else if (flag == "--seed") {
      s = Number<uint64_t>(flag, v, 0, UINT64_MAX, &o.seed);
      seeded = true;
    } else if (flag == "--guests") {
      s = Number(flag, v, 1, 8, &o.guests);
    } else if (flag == "--memory") {
      s = Number(flag, v, 64, 1024, &o.memory_mib);
    } else if (flag == "--max-kill-delay-ms") {
      s = Number(flag, v, 0, 60000, &o.max_kill_delay_ms);
    } else if (flag == "--state-mib") {
      s = Number<uint64_t>(flag, v, 64, 65536, &o.state_mib);
    } else if (flag == "--export-mib") {
      s = Number<uint64_t>(flag, v, 64, 65536, &o.export_mib);
    } else if (flag == "--vmgroupd") {
      o.vmgroupd = v;
    } else if (flag == "--vmgroup") {
      o.vmgroup = v;
    } else if (flag == "--guest-kit") {
      o.guest_kit = v;
    } else {
      return Status::InvalidArgument(flag + ": unknown flag");
    }
    if (!s.ok()) return s;
  }
  if (o.vmgroupd.empty() || o.vmgroup.empty() || o.guest_kit.empty()) {
    return Status::InvalidArgument("--vmgroupd, --vmgroup and --guest-kit are needed");
  }
  if (!seeded) {
    o.seed = static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  }
  return o;
}

}  // namespace vmgroup::campaign
