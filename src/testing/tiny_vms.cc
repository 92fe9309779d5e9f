#include "testing/tiny_vms.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "storage/qemu_img.h"
#include "testing/guest_io.h"

namespace vmgroup::testing {

hypervisor::qemu::QemuOptions TestQemu() {
  return {.accel = kTestAccel, .user = ::geteuid() == 0 ? kQemuUser : ""};
}

Status MakeQemuWritableDir(const std::string& dir) {
  VMG_RETURN_IF_ERROR(Env::Default()->CreateDirs(dir));
  // Writable by all with the sticky bit, as /tmp: QEMU's user creates its
  // sockets here, the test its images.
  if (::chmod(dir.c_str(), 01777) != 0) {
    return Status::IoError("cannot open " + dir + " to QEMU: " + std::strerror(errno));
  }
  return Status::Ok();
}

std::string GuestMonitorPath(const std::string& image_dir, const std::string& name) {
  return image_dir + "/" + name + ".mon";
}

Result<std::string> DefineTinyVm(engine::Engine& engine, const std::string& image_dir,
                                 const std::string& name, const TinyVmOptions& options) {
  storage::QemuImg img(Env::Default());
  VMG_RETURN_IF_ERROR(MakeQemuWritableDir(image_dir));
  engine::VmDefinition def{.name = name, .config = options.config};
  if (options.guest_monitor) {
    auto monitor = GuestMonitorArgs(GuestMonitorPath(image_dir, name));
    def.config.extra_args.insert(def.config.extra_args.end(), monitor.begin(), monitor.end());
  }
  for (int i = 0; i < options.disks; ++i) {
    std::string path = image_dir + "/" + name + "-d" + std::to_string(i) + ".qcow2";
    VMG_RETURN_IF_ERROR(img.Create(path, options.disk_bytes));
    def.disks.push_back(path);
  }
  return engine.vms().Define(def);
}

Result<TinyGroup> MakeTinyGroup(engine::Engine& engine, const std::string& image_dir,
                                const std::string& prefix, int n, const TinyVmOptions& options,
                                bool start) {
  TinyGroup g;
  VMG_ASSIGN_OR_RETURN(g.collection_id, engine.collections().DefineCollection(
                                            prefix, "", catalog::CollectionType::kVirtualSystems));
  for (int i = 0; i < n; ++i) {
    VMG_ASSIGN_OR_RETURN(std::string id,
                         DefineTinyVm(engine, image_dir, prefix + std::to_string(i), options));
    VMG_RETURN_IF_ERROR(engine.collections().AddMember(id, g.collection_id));
    g.vm_ids.push_back(id);
  }
  if (start) {
    std::vector<Status> results(g.vm_ids.size());
    std::vector<std::thread> threads;
    for (size_t i = 0; i < g.vm_ids.size(); ++i) {
      threads.emplace_back([&, i] { results[i] = engine.vms().Start(g.vm_ids[i]); });
    }
    for (auto& t : threads) t.join();
    for (auto& s : results) VMG_RETURN_IF_ERROR(s);
  }
  return g;
}

Status MakeExt4Image(const std::string& qcow2, int64_t bytes) {
  Env* env = Env::Default();
  const std::string raw = qcow2 + ".raw";
  auto run = [&](const std::vector<std::string>& argv) -> Status {
    VMG_ASSIGN_OR_RETURN(CommandOutput r, env->Run(argv, std::chrono::minutes(1)));
    if (r.exit_code != 0) return Status::IoError(argv[0] + ": " + r.err + r.out);
    return Status::Ok();
  };
  Status s = run({"truncate", "-s", std::to_string(bytes), raw});
  if (s.ok()) s = run({"mkfs.ext4", "-q", "-F", raw});
  if (s.ok() && env->FileExists(qcow2)) s = env->RemoveFile(qcow2);
  if (s.ok()) s = run({"qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, qcow2});
  (void)env->RemoveFile(raw);
  return s;
}

}  // namespace vmgroup::testing
