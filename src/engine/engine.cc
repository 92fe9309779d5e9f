#include "engine/engine.h"

namespace vmgroup::engine {

Result<std::unique_ptr<Engine>> Engine::Open(const EngineOptions& options) {
  if (options.state_dir.empty() || options.state_dir[0] != '/') {
    return Status::InvalidArgument("state directory must be an absolute path, got '" +
                                   options.state_dir + "'");
  }
  Env* env = options.env ? options.env : Env::Default();
  std::unique_ptr<Engine> e(new Engine);
  e->state_dir_ = options.state_dir;
  VMG_RETURN_IF_ERROR(env->CreateDirs(e->state_dir_ + "/vms"));
  hypervisor::Driver* driver = options.driver;
  if (!driver) {
    VMG_ASSIGN_OR_RETURN(e->owned_driver_, hypervisor::qemu::QemuDriver::Create(env, options.qemu));
    driver = e->owned_driver_.get();
  }
  VMG_ASSIGN_OR_RETURN(e->catalog_, catalog::Catalog::Open(e->state_dir_ + "/catalog.db"));
  e->vms_ = std::make_unique<VmRegistry>(env, e->catalog_.get(), driver, e->state_dir_);
  e->collections_ = std::make_unique<CollectionManager>(env, e->catalog_.get());
  e->snapshots_ = std::make_unique<SnapshotEngine>(env, e->catalog_.get(), e->vms_.get(),
                                                   e->collections_.get(), options.snapshot);
  e->restorer_ = std::make_unique<ExportRestorer>(env, e->vms_.get(), e->collections_.get(),
                                                  e->catalog_.get());
  VMG_ASSIGN_OR_RETURN(e->recovery_, Recover(env, *e->vms_, *e->catalog_));
  return e;
}

}  // namespace vmgroup::engine
