// Images vmgroup manages never become the disk of a new VM, end to end: a
// real vmgroupd refuses `vm create --disk` naming another VM's active
// image, a snapshot's frozen image (also through a hard link, and below an
// overlay of it), an overlay in its state directory or an exported image,
// says whose it is, and makes nothing.
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "daemon_fixture.h"

namespace vmgroup::e2e {
namespace {

using json = nlohmann::json;

class ManagedImagesTest : public DaemonFixture {
 protected:
  // `vm create NAME --disk IMAGE` must fail naming `owner`, and leave no VM
  // and no run directory behind.
  void ExpectRefused(const std::string& image, const std::string& owner) {
    const size_t run_dirs = RunDirs();
    CommandOutput r = Cli({"vm", "create", "intruder", "--memory", "64", "--disk", image});
    EXPECT_EQ(r.exit_code, 1) << image << ": " << r.out;
    EXPECT_NE(r.err.find(owner), std::string::npos) << r.err;
    EXPECT_EQ(Cli({"vm", "show", "intruder"}).exit_code, 4) << "nothing made";
    EXPECT_EQ(RunDirs(), run_dirs) << "nothing made";
  }
  size_t RunDirs() {
    auto names = Env::Default()->ListDir(StateDir() + "/vms");
    return names.ok() ? names->size() : 0;
  }
};

TEST_F(ManagedImagesTest, VmCreateRefusesAnImageVmgroupManagesNamingItsOwner) {
  const std::string image = dir_ / "a.qcow2";
  ASSERT_EQ(Run({"qemu-img", "create", "-q", "-f", "qcow2", image, "8M"}).exit_code, 0);
  Ok({"vm", "create", "a", "--memory", "64", "--disk", image});

  ExpectRefused(image, "is VM a's active disk 0");
  // The same file by another name is the same image.
  const std::string linked = dir_ / "hard-link.qcow2";
  ASSERT_EQ(::link(image.c_str(), linked.c_str()), 0);
  ExpectRefused(linked, "is VM a's active disk 0");

  Ok({"group", "create", "g"});
  Ok({"group", "add", "g", "a"});
  Ok({"snapshot", "create", "g", "--name", "s1"});
  ExpectRefused(image, "is the frozen image of disk 0 of VM a in snapshot s1");
  ExpectRefused(linked, "is the frozen image of disk 0 of VM a in snapshot s1");
  const std::string active = json::parse(Ok({"vm", "show", "a", "--json"}))["disks"][0];
  ExpectRefused(active, "is VM a's active disk 0");

  // Below a new overlay: destroying s1 would change the new VM's disk.
  const std::string over = dir_ / "over.qcow2";
  ASSERT_EQ(
      Run({"qemu-img", "create", "-q", "-f", "qcow2", "-b", image, "-F", "qcow2", over}).exit_code,
      0);
  ExpectRefused(over, "whose backing chain holds it");

  const std::string snapshot = json::parse(Ok({"snapshot", "list", "g", "--json"}))[0]["id"];
  const std::string out = dir_ / "export";
  Ok({"snapshot", "export", snapshot, out});
  const std::string vm_id = json::parse(Ok({"vm", "show", "a", "--json"}))["id"];
  ExpectRefused(out + "/" + vm_id + "/disk0.qcow2", "belongs to the export in " + out);

  // An image of nobody's is still taken.
  const std::string free_image = dir_ / "free.qcow2";
  ASSERT_EQ(Run({"qemu-img", "create", "-q", "-f", "qcow2", free_image, "8M"}).exit_code, 0);
  Ok({"vm", "create", "b", "--memory", "64", "--disk", free_image});
}

}  // namespace
}  // namespace vmgroup::e2e
