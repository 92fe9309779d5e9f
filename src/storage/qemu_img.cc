#include "storage/qemu_img.h"

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/tied_command.h"

namespace vmgroup::storage {

Result<CommandOutput> QemuImg::RunOk(const std::vector<std::string>& argv, Duration timeout) {
  // qemu-img lives only as long as the daemon that waits for it (campaign
  // seeds 18 and 20: one left running made an overlay after recovery).
  const std::vector<std::string> tied = TiedToThisProcess(argv);
  VMG_ASSIGN_OR_RETURN(CommandOutput out, env_->Run(tied, timeout));
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

Status QemuImg::CreateOverlay(const std::string& backing, const std::string& path,
                              const std::string& recorded_as) {
  if (!env_->FileExists(backing)) return Status::FileNotFound("image " + backing + " is missing");
  if (env_->FileExists(path)) return Status::AlreadyExists("image " + path + " already exists");
  return RunOk({"qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                recorded_as.empty() ? backing : recorded_as, path})
      .status();
}

Status QemuImg::Commit(const std::string& path) {
  if (!env_->FileExists(path)) return Status::FileNotFound("image " + path + " is missing");
  return RunOk({"qemu-img", "commit", "-q", path}).status();
}

Status QemuImg::AddBitmap(const std::string& path, const std::string& name) {
  VMG_ASSIGN_OR_RETURN(ImageInfo info, Info(path));
  for (const auto& b : info.bitmaps) {
    if (b == name) return Status::Ok();
  }
  return RunOk({"qemu-img", "bitmap", "--add", "-f", "qcow2", path, name}).status();
}

Status QemuImg::Rebase(const std::string& path, const std::string& backing, bool unsafe) {
  if (!env_->FileExists(path)) return Status::FileNotFound("image " + path + " is missing");
  std::vector<std::string> argv = {"qemu-img", "rebase", "-q", "-f", "qcow2"};
  if (unsafe) argv.push_back("-u");
  if (!backing.empty()) argv.insert(argv.end(), {"-F", "qcow2"});
  argv.insert(argv.end(), {"-b", backing, path});
  return RunOk(argv).status();
}

Status QemuImg::Convert(const std::string& image, const std::string& dest, Duration timeout,
                        const std::string& backing) {
  if (!env_->FileExists(image)) return Status::FileNotFound("image " + image + " is missing");
  if (env_->FileExists(dest)) return Status::AlreadyExists("image " + dest + " already exists");
  std::atomic<bool> copying = true;
  std::thread behind([&] {
    while (copying) {
      env_->SleepFor(std::chrono::milliseconds(50));
      (void)env_->StartWriteback(dest);  // not there yet, at first
    }
  });
  std::vector<std::string> argv = {"qemu-img", "convert", "-U", "-f", "qcow2", "-O", "qcow2"};
  if (!backing.empty()) argv.insert(argv.end(), {"-B", backing, "-F", "qcow2"});
  argv.insert(argv.end(), {image, dest});
  Status s = RunOk(argv, timeout).status();
  copying = false;
  behind.join();
  if (!s.ok()) (void)env_->RemoveFile(dest);  // a partial copy is no copy
  return s;
}

Result<uint64_t> QemuImg::OwnDataBytes(const std::string& path) {
  if (!env_->FileExists(path)) return Status::FileNotFound("image " + path + " is missing");
  VMG_ASSIGN_OR_RETURN(CommandOutput out, RunOk({"qemu-img", "map", "-U", "--output=json", path}));
  auto map = nlohmann::json::parse(out.out, nullptr, /*allow_exceptions=*/false);
  if (!map.is_array()) return Status::IoError("qemu-img map printed nothing usable for " + path);
  uint64_t bytes = 0;
  for (const auto& e : map) {
    if (e.value("depth", -1) == 0 && e.value("data", false)) bytes += e.value("length", 0ull);
  }
  return bytes;
}

Result<ImageInfo> QemuImg::Info(const std::string& path) {
  VMG_ASSIGN_OR_RETURN(auto one, Describe(path, false));
  return one.front();
}

Result<std::vector<ImageInfo>> QemuImg::Chain(const std::string& path) {
  return Describe(path, true);
}

Result<std::vector<ImageInfo>> QemuImg::Describe(const std::string& path, bool with_chain) {
  if (!env_->FileExists(path)) return Status::FileNotFound("image " + path + " is missing");
  std::vector<std::string> argv = {"qemu-img", "info", "-U", "--output=json"};
  if (with_chain) argv.push_back("--backing-chain");
  argv.push_back(path);
  VMG_ASSIGN_OR_RETURN(CommandOutput out, RunOk(argv));
  auto doc = nlohmann::json::parse(out.out, nullptr, /*allow_exceptions=*/false);
  if (!with_chain) doc = nlohmann::json::array({doc});
  if (!doc.is_array() || !doc[0].is_object()) {
    return Status::IoError("qemu-img info printed nothing usable for " + path);
  }
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
