#include "storage/qemu_img.h"

#include <nlohmann/json.hpp>

namespace vmgroup::storage {

Result<CommandOutput> QemuImg::RunOk(const std::vector<std::string>& argv) {
  VMG_ASSIGN_OR_RETURN(CommandOutput out, env_->Run(argv));
  if (out.exit_code != 0) {
    std::string msg = out.err.empty() ? out.out : out.err;
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    return Status::IoError("qemu-img " + argv[1] + " failed: " + msg);
  }
  return out;
}

Status QemuImg::Create(const std::string& path, uint64_t size_bytes) {
  if (env_->FileExists(path)) return Status::AlreadyExists("image " + path + " already exists");
  return RunOk({"qemu-img", "create", "-q", "-f", "qcow2", path, std::to_string(size_bytes)})
      .status();
}

Status QemuImg::CreateOverlay(const std::string& backing, const std::string& path) {
  if (!env_->FileExists(backing)) return Status::FileNotFound("image " + backing + " is missing");
  if (env_->FileExists(path)) return Status::AlreadyExists("image " + path + " already exists");
  return RunOk({"qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", backing, path})
      .status();
}

Status QemuImg::Commit(const std::string& path) {
  if (!env_->FileExists(path)) return Status::FileNotFound("image " + path + " is missing");
  return RunOk({"qemu-img", "commit", "-q", path}).status();
}

Result<std::vector<ImageInfo>> QemuImg::Chain(const std::string& path) {
  if (!env_->FileExists(path)) return Status::FileNotFound("image " + path + " is missing");
  VMG_ASSIGN_OR_RETURN(CommandOutput out,
                       RunOk({"qemu-img", "info", "-U", "--output=json", "--backing-chain", path}));
  auto doc = nlohmann::json::parse(out.out, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_array()) return Status::IoError("qemu-img info printed no chain for " + path);
  std::vector<ImageInfo> chain;
  for (const auto& j : doc) {
    ImageInfo info;
    info.filename = j.value("filename", "");
    info.format = j.value("format", "");
    info.virtual_size = j.value("virtual-size", uint64_t{0});
    info.backing_filename = j.value("full-backing-filename", j.value("backing-filename", ""));
    if (auto it = j.find("format-specific"); it != j.end()) {
      for (const auto& b :
           it->value("data", nlohmann::json::object()).value("bitmaps", nlohmann::json::array())) {
        info.bitmaps.push_back(b.value("name", ""));
      }
    }
    chain.push_back(std::move(info));
  }
  return chain;
}

Status QemuImg::Check(const std::string& path) {
  return RunOk({"qemu-img", "check", "-q", "-U", path}).status().Annotate("check of " + path);
}

}  // namespace vmgroup::storage
