// wbemcli (sblim-wbemcli), an independent WBEM client, against vmgroupd:
// ein, ei, gi, ai on the collection classes, and a group snapshot taken with
// `cm CreateSnapshot` over HTTPS, its job polled with `gi` until it completes.
#include <nlohmann/json.hpp>

#include "daemon_fixture.h"

namespace vmgroup::e2e {
namespace {

class WbemcliTest : public DaemonFixture {
 protected:
  // The "id" of a --json object.
  static std::string json_id(const std::string& text) {
    return nlohmann::json::parse(text)["id"].get<std::string>();
  }
  // The key part of the first path wbemcli prints for a class.
  std::string FirstPath(const std::string& cls) {
    CommandOutput r = Wbem("ein", cls);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const size_t colon = r.out.find(":" + cls);
    if (colon == std::string::npos) return "";
    std::string line = r.out.substr(colon + 1, r.out.find('\n', colon) - colon - 1);
    return line;
  }
};

TEST_F(WbemcliTest, EnumeratesGetsAndFollowsTheCollectionClasses) {
  const std::string vm = NewVm("db");
  Ok({"group", "create", "web"});
  Ok({"group", "add", "web", "db"});

  CommandOutput names = Wbem("ein", "Msvm_VirtualSystemCollection");
  ASSERT_EQ(names.exit_code, 0) << names.err;
  const std::string group = Field(names.out, "CollectionID");
  EXPECT_EQ(group.size(), 36u) << names.out;

  CommandOutput all = Wbem("ei", "Msvm_VirtualSystemCollection");
  EXPECT_NE(all.out.find("ElementName=\"web\""), std::string::npos) << all.out;

  const std::string vm_path =
      "Msvm_ComputerSystem.CreationClassName=\"Msvm_ComputerSystem\",Name=\"" + vm + "\"";
  CommandOutput got = Wbem("gi", vm_path);
  ASSERT_EQ(got.exit_code, 0) << got.err;
  EXPECT_EQ(Field(got.out, "EnabledState"), "2") << got.out;
  EXPECT_EQ(Field(got.out, "ElementName"), "db");

  CommandOutput members = Wbem("ai", "Msvm_VirtualSystemCollection.CollectionID=\"" + group + "\"",
                               {}, {"-ac", "Msvm_CollectedVirtualSystems"});
  ASSERT_EQ(members.exit_code, 0) << members.err;
  EXPECT_NE(members.out.find("Name=\"" + vm + "\""), std::string::npos) << members.out;

  CommandOutput groups = Wbem("ai", vm_path, {}, {"-ac", "Msvm_CollectedVirtualSystems"});
  EXPECT_NE(groups.out.find(group), std::string::npos) << groups.out;

  for (const char* cls :
       {"Msvm_ComputerSystem", "Msvm_VirtualSystemSettingData", "Msvm_ManagementCollection",
        "Msvm_CollectedVirtualSystems", "Msvm_CollectedCollections",
        "Msvm_CollectionManagementService", "Msvm_CollectionSnapshotService",
        "Msvm_SnapshotCollection", "Msvm_CollectedSnapshots",
        "Msvm_SnapshotOfVirtualSystemCollection", "Msvm_SnapshotOfVirtualSystem",
        "Msvm_ConcreteJob", "Msvm_AffectedJobElement", "Msvm_VirtualSystemManagementService"}) {
    EXPECT_EQ(Wbem("ei", cls).exit_code, 0) << cls;
  }
  CommandOutput missing = Wbem("gi", "Msvm_VirtualSystemCollection.CollectionID=\"nope\"");
  EXPECT_EQ(missing.exit_code, 16);
  EXPECT_NE(missing.err.find("(6)"), std::string::npos) << missing.err;
}

TEST_F(WbemcliTest, CreateSnapshotReturnsAJobThatCompletesWithTheSnapshot) {
  StopDaemon();
  StartDaemon({"--insecure-loopback"}, "https://127.0.0.1:0");
  // wbemcli checks the certificate: -cacert with the test CA (Wbem adds
  // it), -noverify, or nothing.
  const std::string url = Url() + "Msvm_CollectionSnapshotService";
  EXPECT_EQ(Run({"wbemcli", "-noverify", "ein", url}).exit_code, 0);
  CommandOutput untrusted = Run({"wbemcli", "ein", url});
  EXPECT_NE(untrusted.exit_code, 0);
  EXPECT_NE(untrusted.err.find("certificate"), std::string::npos) << untrusted.err;
  NewVm("a");
  NewVm("b");
  // Groups can be made with wbemcli too.
  const std::string cms = FirstPath("Msvm_CollectionManagementService");
  CommandOutput defined = Wbem("cm", cms, {"DefineCollection.Name=\"web\",Type=0"});
  ASSERT_EQ(defined.exit_code, 0) << defined.err;
  EXPECT_NE(defined.out.find("DefineCollection: 0"), std::string::npos) << defined.out;
  const std::string group = Field(defined.out, "CollectionID");
  Ok({"group", "add", group, "a", "b"});

  const std::string service = FirstPath("Msvm_CollectionSnapshotService");
  ASSERT_FALSE(service.empty());
  // References last: wbemcli folds what follows a reference into its keys.
  CommandOutput called = Wbem(
      "cm", service,
      {"CreateSnapshot.SnapshotType=2,Collection=Msvm_VirtualSystemCollection.CollectionID=\"" +
       group + "\""});
  ASSERT_EQ(called.exit_code, 0) << called.err;
  EXPECT_NE(called.out.find("CreateSnapshot: 4096"), std::string::npos) << called.out;
  const std::string job = Field(called.out, "InstanceID");
  const std::string made = Field(called.out, "CollectionID");
  ASSERT_EQ(job.size(), 36u) << called.out;
  ASSERT_EQ(made.size(), 36u) << called.out;

  const std::string job_path = "Msvm_ConcreteJob.InstanceID=\"" + job + "\"";
  std::string state;
  for (int i = 0; i < 200 && state != "7"; ++i) {
    CommandOutput polled = Wbem("gi", job_path);
    ASSERT_EQ(polled.exit_code, 0) << polled.err;
    state = Field(polled.out, "JobState");
    ASSERT_TRUE(state == "4" || state == "7") << polled.out;
    if (state != "7") Env::Default()->SleepFor(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(state, "7");
  CommandOutput done = Wbem("gi", job_path);
  EXPECT_EQ(Field(done.out, "PercentComplete"), "100");
  EXPECT_EQ(Field(done.out, "ErrorCode"), "0");

  // The out-parameter and the job's associators name the same snapshot.
  CommandOutput affected = Wbem("ai", job_path, {}, {"-ac", "Msvm_AffectedJobElement"});
  ASSERT_EQ(affected.exit_code, 0) << affected.err;
  EXPECT_NE(affected.out.find("Msvm_SnapshotCollection.CollectionID=\"" + made + "\""),
            std::string::npos)
      << affected.out;
  EXPECT_NE(affected.out.find("Msvm_VirtualSystemSettingData"), std::string::npos);
  CommandOutput snap = Wbem("gi", "Msvm_SnapshotCollection.CollectionID=\"" + made + "\"");
  ASSERT_EQ(snap.exit_code, 0) << snap.err;
  EXPECT_EQ(Field(snap.out, "Vmgroup_SnapshotType"), "2");
  CommandOutput per_vm = Wbem("ai", "Msvm_SnapshotCollection.CollectionID=\"" + made + "\"", {},
                              {"-ac", "Msvm_CollectedSnapshots"});
  EXPECT_NE(per_vm.out.find("Microsoft:Hyper-V:Snapshot:Recovery"), std::string::npos)
      << per_vm.out;

  // The snapshot tree: each VM's newest snapshot, and each snapshot's parent.
  Ok({"snapshot", "create", group});
  const std::string vm = json_id(Ok({"vm", "show", "a", "--json"}));
  CommandOutput newest = Wbem(
      "ai", "Msvm_ComputerSystem.CreationClassName=\"Msvm_ComputerSystem\",Name=\"" + vm + "\"", {},
      {"-ac", "Msvm_MostCurrentSnapshotInBranch"});
  ASSERT_EQ(newest.exit_code, 0) << newest.err;
  const std::string newest_id = Field(newest.out, "InstanceID");
  ASSERT_FALSE(newest_id.empty()) << newest.out;
  CommandOutput parent =
      Wbem("ai", "Msvm_VirtualSystemSettingData.InstanceID=\"" + newest_id + "\"", {},
           {"-ac", "Msvm_ParentChildSettingData"});
  ASSERT_EQ(parent.exit_code, 0) << parent.err;
  EXPECT_NE(parent.out.find("Vmgroup_SnapshotCollectionID=\"" + made + "\""), std::string::npos)
      << "the newest snapshot's parent belongs to the first group snapshot:\n"
      << parent.out;

  // ApplySnapshot: a job, after which each VM's last applied snapshot is
  // its member of the snapshot applied.
  CommandOutput apply = Wbem(
      "cm", service,
      {"ApplySnapshot.SnapshotCollection=Msvm_SnapshotCollection.CollectionID=\"" + made + "\""});
  ASSERT_EQ(apply.exit_code, 0) << apply.err;
  EXPECT_NE(apply.out.find("ApplySnapshot: 4096"), std::string::npos) << apply.out;
  const std::string apply_job = Field(apply.out, "InstanceID");
  Ok({"job", "wait", apply_job});
  CommandOutput last = Wbem(
      "ai", "Msvm_ComputerSystem.CreationClassName=\"Msvm_ComputerSystem\",Name=\"" + vm + "\"", {},
      {"-ac", "Msvm_LastAppliedSnapshot"});
  EXPECT_NE(last.out.find("Vmgroup_SnapshotCollectionID=\"" + made + "\""), std::string::npos)
      << last.out;
  EXPECT_EQ(
      Field(Wbem("gi", "Msvm_ComputerSystem.CreationClassName=\"Msvm_ComputerSystem\",Name=\"" +
                           vm + "\"")
                .out,
            "EnabledState"),
      "3");
  Ok({"vm", "start", "a"});
  Ok({"vm", "start", "b"});

  // DestroySnapshot: a job, after which the group snapshot is gone.
  CommandOutput destroy =
      Wbem("cm", service,
           {"DestroySnapshot.AffectedSnapshotCollection=Msvm_SnapshotCollection.CollectionID=\"" +
            made + "\""});
  ASSERT_EQ(destroy.exit_code, 0) << destroy.err;
  EXPECT_NE(destroy.out.find("DestroySnapshot: 4096"), std::string::npos) << destroy.out;
  Ok({"job", "wait", Field(destroy.out, "InstanceID")});
  CommandOutput gone = Wbem("ein", "Msvm_SnapshotCollection");
  EXPECT_EQ(gone.out.find(made), std::string::npos) << gone.out;
  EXPECT_NE(Wbem("gi", "Msvm_SnapshotCollection.CollectionID=\"" + made + "\"").exit_code, 0);

  // Refusals come back as return codes, with the reason beside them.
  CommandOutput bad = Wbem(
      "cm", service,
      {"CreateSnapshot.SnapshotType=7,Collection=Msvm_VirtualSystemCollection.CollectionID=\"" +
       group + "\""});
  EXPECT_NE(bad.out.find("CreateSnapshot: 4"), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("SnapshotType"), std::string::npos) << bad.out;
  CommandOutput cls = Wbem("gc", "Msvm_CollectionSnapshotService");
  EXPECT_EQ(cls.exit_code, 0) << cls.err;
}

TEST_F(WbemcliTest, CreateReferencePointAndTheAssociationsThatPlaceIt) {
  const std::string vm = NewVm("a");
  NewVm("b");
  Ok({"group", "create", "web"});
  Ok({"group", "add", "web", "a", "b"});
  const std::string group = json_id(Ok({"group", "show", "web", "--json"}));
  const std::string service = FirstPath("Msvm_CollectionReferencePointService");
  ASSERT_FALSE(service.empty());
  const std::string collection =
      "Collection=Msvm_VirtualSystemCollection.CollectionID=\"" + group + "\"";

  CommandOutput log =
      Wbem("cm", service, {"CreateReferencePoint.ReferencePointType=1," + collection});
  EXPECT_NE(log.out.find("CreateReferencePoint: 1"), std::string::npos) << log.out;
  EXPECT_NE(log.out.find("log-based"), std::string::npos) << log.out;

  CommandOutput created =
      Wbem("cm", service, {"CreateReferencePoint.ReferencePointType=2," + collection});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  EXPECT_NE(created.out.find("CreateReferencePoint: 4096"), std::string::npos) << created.out;
  const std::string rp = Field(created.out, "CollectionID");
  ASSERT_EQ(rp.size(), 36u) << created.out;
  Ok({"job", "wait", Field(created.out, "InstanceID")});

  CommandOutput of_group = Wbem("ai", "Msvm_VirtualSystemCollection.CollectionID=\"" + group + "\"",
                                {}, {"-ac", "Msvm_ReferencePointOfVirtualSystemCollection"});
  ASSERT_EQ(of_group.exit_code, 0) << of_group.err;
  EXPECT_NE(of_group.out.find("CollectionID=\"" + rp + "\""), std::string::npos) << of_group.out;
  EXPECT_NE(of_group.out.find("ReferencePointType=2"), std::string::npos) << of_group.out;

  const std::string rp_path = "Msvm_ReferencePointCollection.CollectionID=\"" + rp +
                              "\",VirtualSystemCollectionId=\"" + group + "\"";
  CommandOutput members = Wbem("ai", rp_path, {}, {"-ac", "Msvm_CollectedReferencePoints"});
  ASSERT_EQ(members.exit_code, 0) << members.err;
  EXPECT_NE(members.out.find("VirtualSystemIdentifier=\"" + vm + "\""), std::string::npos)
      << members.out;
  CommandOutput of_vm = Wbem(
      "ai", "Msvm_ComputerSystem.CreationClassName=\"Msvm_ComputerSystem\",Name=\"" + vm + "\"", {},
      {"-ac", "Msvm_ReferencePointOfVirtualSystem"});
  ASSERT_EQ(of_vm.exit_code, 0) << of_vm.err;
  EXPECT_NE(of_vm.out.find("Vmgroup_ReferencePointCollectionID=\"" + rp + "\""), std::string::npos)
      << of_vm.out;
  EXPECT_TRUE(nlohmann::json::parse(Ok({"snapshot", "list", "web", "--json"})).empty())
      << "the cut it was made from is gone";
}

TEST_F(WbemcliTest, TcpListenersWithoutLoopbackWaiverAskForCredentials) {
  StopDaemon();
  StartDaemon({}, "http://127.0.0.1:0");  // no --insecure-loopback: PAM decides
  CommandOutput anonymous = Wbem("ein", "Msvm_CollectionSnapshotService");
  EXPECT_EQ(anonymous.exit_code, 16);
  EXPECT_NE(anonymous.err.find("Username/password required"), std::string::npos) << anonymous.err;
  const std::string url = "http://nobody:wrong@127.0.0.1:" + std::to_string(port_) +
                          "/root/virtualization/v2:Msvm_CollectionSnapshotService";
  EXPECT_EQ(Run({"wbemcli", "ein", url}).exit_code, 16);
  EXPECT_EQ(Ok({"vm", "list", "--json"}), "[]\n") << "the unix socket needs no password";

  // Serving without authentication off loopback is refused at start.
  CommandOutput refused = Run({VMGROUPD_BIN, "--no-config", "--state-dir", dir_ / "other",
                               "--listen", "http://0.0.0.0:0", "--insecure-loopback"});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("loopback"), std::string::npos) << refused.err;
}

}  // namespace
}  // namespace vmgroup::e2e
