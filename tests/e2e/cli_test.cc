// Every vmgroup command against a vmgroupd started by the test.
#include <sys/mount.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "daemon_fixture.h"
#include "hypervisor/qemu/qmp_client.h"
#include "hypervisor/qemu/qmp_commands.h"

namespace vmgroup::e2e {
namespace {

using nlohmann::json;

class CliTest : public DaemonFixture {
 protected:
  // VMs a and b in group web, with snapshots one, two, three taken in turn;
  // returns `snapshot list web --json`.
  json WebWithThreeSnapshots() {
    NewVm("a");
    NewVm("b");
    Ok({"group", "create", "web"});
    Ok({"group", "add", "web", "a", "b"});
    for (const char* name : {"one", "two", "three"}) {
      Ok({"snapshot", "create", "web", "--name", name});
    }
    return json::parse(Ok({"snapshot", "list", "web", "--json"}));
  }
};

TEST_F(CliTest, HostSaysWhichAcceleratorTheDefaultChoseAndItsVmsRun) {
  EXPECT_EQ(json::parse(Ok({"host", "--json"}))["accelerator"], "tcg") << "--accel tcg";
  // The daemon's default: KVM only where a tiny guest proved it runs.
  StopDaemon();
  StartDaemon({"--insecure-loopback", "--accel", "auto"});
  const json host = json::parse(Ok({"host", "--json"}));
  ASSERT_TRUE(host["accelerator"] == "kvm" || host["accelerator"] == "tcg") << host.dump();
  if (host["accelerator"] == "tcg") {
    EXPECT_NE(LogText().find("KVM cannot run guests here"), std::string::npos) << LogText();
  }
  // A VM starts under it.
  const std::string id = NewVm("probe");
  const json vm = json::parse(Ok({"vm", "show", "probe", "--json"}));
  EXPECT_EQ(vm["state"], "running") << vm.dump();
  Ok({"vm", "turn-off", id});
  EXPECT_EQ(Cli({"host", "extra"}).exit_code, 2);
}

TEST_F(CliTest, VmCommandsDriveAVmThroughItsStates) {
  const std::string id = NewVm("db");
  EXPECT_EQ(id.size(), 36u);
  auto state = [&] { return json::parse(Ok({"vm", "show", "db", "--json"}))["state"]; };
  EXPECT_EQ(state(), "running");
  Ok({"vm", "pause", "db"});
  EXPECT_EQ(state(), "paused");
  EXPECT_EQ(Cli({"vm", "start", "db"}).exit_code, 1) << "a paused VM is resumed, not started";
  Ok({"vm", "resume", "db"});
  EXPECT_EQ(state(), "running");
  // Its firmware answers no ACPI power button: a clean stop times out and
  // leaves it running; a turn-off stops it.
  CommandOutput stop = Cli({"vm", "stop", "db", "--timeout", "1"});
  EXPECT_EQ(stop.exit_code, 1);
  EXPECT_NE(stop.err.find("did not shut down within 1 s"), std::string::npos) << stop.err;
  EXPECT_NE(stop.err.find("vmgroup vm turn-off"), std::string::npos) << stop.err;
  EXPECT_EQ(state(), "running");
  Ok({"vm", "turn-off", id});  // by id as well as by name
  EXPECT_EQ(state(), "off");
  Ok({"vm", "start", "db"});
  Ok({"vm", "stop", "db", "--timeout", "1", "--force"});  // turned off after the timeout
  EXPECT_EQ(state(), "off");

  json shown = json::parse(Ok({"vm", "show", "db", "--json"}));
  EXPECT_EQ(shown["memory_mib"], 64);
  ASSERT_EQ(shown["disks"].size(), 1u);
  EXPECT_TRUE(Env::Default()->FileExists(shown["disks"][0]));
  const std::string table = Ok({"vm", "list"});
  EXPECT_NE(table.find("NAME"), std::string::npos);
  EXPECT_NE(table.find("db"), std::string::npos);
  EXPECT_EQ(json::parse(Ok({"vm", "list", "--json"})).size(), 1u);

  Ok({"vm", "delete", "db"});
  EXPECT_FALSE(Env::Default()->FileExists(shown["disks"][0]));
  CommandOutput gone = Cli({"vm", "show", "db"});
  EXPECT_EQ(gone.exit_code, 4);
  EXPECT_NE(gone.err.find("no VM is named"), std::string::npos) << gone.err;
}

TEST_F(CliTest, VmCreateWithAnExistingImageAndBadInput) {
  const std::string image = dir_ / "given.qcow2";
  ASSERT_EQ(Run({"qemu-img", "create", "-q", "-f", "qcow2", image, "8M"}).exit_code, 0);
  Ok({"vm", "create", "given", "--memory", "64", "--disk", image, "--disk", "4M", "--cpus", "2"});
  json vm = json::parse(Ok({"vm", "show", "given", "--json"}));
  EXPECT_EQ(vm["disks"][0], image);
  EXPECT_EQ(vm["vcpus"], 2);
  EXPECT_EQ(vm["state"], "off");

  CommandOutput missing = Cli({"vm", "create", "x", "--disk", dir_ / "none.qcow2"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("File not found"), std::string::npos) << missing.err;
  EXPECT_EQ(Cli({"vm", "create", "x", "--memory", "4", "--disk", "4M"}).exit_code, 1);
  CommandOutput huge = Cli({"vm", "create", "x", "--memory", "-5", "--disk", "4M"});
  EXPECT_EQ(huge.exit_code, 1);
  EXPECT_NE(huge.err.find("must be a positive number"), std::string::npos) << huge.err;
  EXPECT_EQ(Cli({"vm", "create", "x"}).exit_code, 2) << "no disk";
  EXPECT_EQ(Cli({"vm", "create", "x", "--disk", "4M", "--bogus"}).exit_code, 2);
  EXPECT_EQ(json::parse(Ok({"vm", "list", "--json"})).size(), 1u) << "nothing half-made";
}

TEST_F(CliTest, GroupCommandsManageMembership) {
  NewVm("a");
  NewVm("b");
  Ok({"group", "create", "web"});
  Ok({"group", "add", "web", "a", "b"});
  json g = json::parse(Ok({"group", "show", "web", "--json"}));
  EXPECT_EQ(g["members"], (json{"a", "b"}));
  EXPECT_EQ(g["type"], "vms");
  CommandOutput twice = Cli({"group", "add", "web", "a"});
  EXPECT_EQ(twice.exit_code, 1);
  EXPECT_NE(twice.err.find("Invalid parameter"), std::string::npos) << twice.err;

  CommandOutput busy = Cli({"group", "delete", "web"});
  EXPECT_EQ(busy.exit_code, 1);
  EXPECT_NE(busy.err.find("remove them first"), std::string::npos) << busy.err;

  // --json answers with the new id, as vm create does.
  json all = json::parse(Ok({"group", "create", "all", "--of-groups", "--json"}));
  EXPECT_EQ(all["name"], "all");
  EXPECT_EQ(all["id"], json::parse(Ok({"group", "show", "all", "--json"}))["id"]);
  Ok({"group", "add", "all", "web"});
  EXPECT_EQ(json::parse(Ok({"group", "show", "all", "--json"}))["members"], json{"web"});
  EXPECT_EQ(Cli({"group", "add", "all", "a"}).exit_code, 4) << "a VM is not a group";

  Ok({"group", "rename", "web", "front"});
  Ok({"group", "remove", "front", "a", "b"});
  Ok({"group", "remove", "all", "front"});
  Ok({"group", "delete", "front"});
  Ok({"group", "delete", "all"});
  EXPECT_EQ(json::parse(Ok({"group", "list", "--json"})), json::array());
}

TEST_F(CliTest, SnapshotCommandsTakeListAndShowGroupSnapshots) {
  NewVm("a");
  NewVm("b");
  Ok({"group", "create", "web"});
  Ok({"group", "add", "web", "a", "b"});

  const std::string shown = Ok({"snapshot", "create", "web", "--name", "before upgrade"});
  EXPECT_NE(shown.find("Pause window:"), std::string::npos) << shown;
  EXPECT_NE(shown.find("crash"), std::string::npos) << shown;

  json list = json::parse(Ok({"snapshot", "list", "web", "--json"}));
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["name"], "before upgrade");
  EXPECT_EQ(list[0]["type"], 32768);
  EXPECT_GT(list[0]["pause_window_us"].get<int64_t>(), 0);
  ASSERT_EQ(list[0]["members"].size(), 2u);
  for (const auto& m : list[0]["members"]) {
    EXPECT_GT(m["pause_us"].get<int64_t>(), 0);
    EXPECT_LE(m["pause_us"].get<int64_t>(), list[0]["pause_window_us"].get<int64_t>());
    EXPECT_EQ(m["consistency"], "crash");
  }
  const std::string id = list[0]["id"];
  EXPECT_EQ(json::parse(Ok({"snapshot", "show", id, "--json"}))["members"].size(), 2u);

  // --no-wait prints the job; job wait follows it to the end.
  std::string job = Ok({"snapshot", "create", "web", "--type", "recovery", "--no-wait"});
  job.pop_back();
  const std::string waited = Ok({"job", "wait", job});
  EXPECT_NE(waited.find("Completed"), std::string::npos) << waited;
  EXPECT_NE(waited.find("Msvm_SnapshotCollection:"), std::string::npos) << waited;
  json j = json::parse(Ok({"job", "show", job, "--json"}));
  EXPECT_EQ(j["job_state"], 7);
  EXPECT_EQ(j["percent"], 100);
  EXPECT_EQ(json::parse(Ok({"snapshot", "list", "web", "--json"})).size(), 2u);
  EXPECT_GE(json::parse(Ok({"job", "list", "--json"})).size(), 2u);
  CommandOutput late = Cli({"job", "cancel", job});
  EXPECT_EQ(late.exit_code, 1);
  EXPECT_NE(late.err.find("already ended"), std::string::npos) << late.err;
}

TEST_F(CliTest, ApplicationConsistencyFailsOrFallsBackForVmsWithoutAnAgent) {
  NewVm("a");  // no guest, so no guest agent
  NewVm("b");
  Ok({"group", "create", "web"});
  Ok({"group", "add", "web", "a", "b"});

  const CommandOutput strict = Cli({"snapshot", "create", "web", "--consistency", "application"});
  EXPECT_EQ(strict.exit_code, 1);
  EXPECT_NE(strict.err.find("cannot freeze"), std::string::npos) << strict.err;
  EXPECT_NE(strict.err.find("fallback"), std::string::npos) << strict.err;
  EXPECT_EQ(json::parse(Ok({"snapshot", "list", "web", "--json"})).size(), 0u) << "nothing made";

  const CommandOutput lenient =
      Cli({"snapshot", "create", "web", "--consistency", "application-or-crash"});
  ASSERT_EQ(lenient.exit_code, 0) << lenient.err;
  EXPECT_NE(lenient.err.find("warning"), std::string::npos) << lenient.err;
  EXPECT_NE(lenient.err.find("VM a"), std::string::npos) << lenient.err;
  EXPECT_NE(lenient.err.find("VM b"), std::string::npos) << lenient.err;
  EXPECT_NE(lenient.out.find("Consistency:"), std::string::npos) << lenient.out;
  EXPECT_EQ(lenient.out.find("Freeze window:"), std::string::npos) << "nothing froze";
  const std::string table = Ok({"snapshot", "list", "web"});
  EXPECT_NE(table.find("CONSISTENCY"), std::string::npos) << table;
  json list = json::parse(Ok({"snapshot", "list", "web", "--json"}));
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["consistency"], "crash");
  for (const auto& m : list[0]["members"]) EXPECT_EQ(m["consistency"], "crash");
  bool warned = false;
  for (const auto& j : json::parse(Ok({"job", "list", "--json"}))) {
    if (j["job_state"] != 32768) continue;
    warned = true;
    EXPECT_EQ(j["state"], "Completed with warnings");
    EXPECT_NE(j["error"].get<std::string>().find("crash consistent"), std::string::npos) << j;
  }
  EXPECT_TRUE(warned) << "the snapshot job completed with warnings (JobState 32768)";

  const CommandOutput standard =
      Cli({"snapshot", "create", "web", "--type", "standard", "--consistency", "application"});
  EXPECT_EQ(standard.exit_code, 1);
  EXPECT_NE(standard.err.find("Standard"), std::string::npos) << standard.err;
  EXPECT_EQ(Cli({"snapshot", "create", "web", "--consistency", "app"}).exit_code, 2);
}

TEST_F(CliTest, SnapshotsFormATreeAndTheGroupRunsOnTheNewest) {
  json list = WebWithThreeSnapshots();
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0]["parent"], "");
  EXPECT_EQ(list[1]["parent"], list[0]["id"]);
  EXPECT_EQ(list[2]["parent"], list[1]["id"]);
  EXPECT_EQ(list[0]["current"], false);
  EXPECT_EQ(list[2]["current"], true);
  // Each member snapshot's Parent is that VM's member of the previous one.
  EXPECT_EQ(list[1]["members"][0]["parent"].get<std::string>().find(
                list[0]["members"][0]["settings_id"].get<std::string>()) != std::string::npos,
            true);

  const std::string tree = Ok({"snapshot", "list", "web", "--tree"});
  const size_t one = tree.find("one  ["), two = tree.find("`- two  ["),
               three = tree.find("   `- three  [");
  ASSERT_NE(one, std::string::npos) << tree;
  ASSERT_NE(two, std::string::npos) << tree;
  ASSERT_NE(three, std::string::npos) << tree;
  EXPECT_TRUE(one < two && two < three) << tree;
  EXPECT_NE(tree.find("<- now"), std::string::npos);
  EXPECT_EQ(tree.find("<- now"), tree.rfind("<- now")) << "one snapshot is current";
  EXPECT_GT(tree.find("<- now"), three) << tree;
}

TEST_F(CliTest, ApplyTakesTheGroupBackAndLeavesItOff) {
  NewVm("a");
  NewVm("b");
  Ok({"group", "create", "web"});
  Ok({"group", "add", "web", "a", "b"});
  Ok({"snapshot", "create", "web", "--name", "good"});
  Ok({"snapshot", "create", "web", "--name", "later"});
  json list = json::parse(Ok({"snapshot", "list", "web", "--json"}));
  const std::string good = list[0]["id"];
  const std::string disk_before = json::parse(Ok({"vm", "show", "a", "--json"}))["disks"][0];

  CommandOutput applied = Cli({"snapshot", "apply", good});
  ASSERT_EQ(applied.exit_code, 0) << applied.err;
  EXPECT_NE(applied.err.find("applied good"), std::string::npos) << applied.err;
  json a = json::parse(Ok({"vm", "show", "a", "--json"}));
  EXPECT_EQ(a["state"], "off");
  EXPECT_NE(a["disks"][0], disk_before);
  list = json::parse(Ok({"snapshot", "list", "web", "--json"}));
  EXPECT_EQ(list[0]["current"], true) << "the group runs on the applied snapshot";
  EXPECT_EQ(list[1]["current"], false);
  // Both snapshots remain; a new one branches from the applied one.
  Ok({"vm", "start", "a"});
  Ok({"vm", "start", "b"});
  Ok({"snapshot", "create", "web", "--name", "branch"});
  list = json::parse(Ok({"snapshot", "list", "web", "--json"}));
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[2]["parent"], good);
  const std::string tree = Ok({"snapshot", "list", "web", "--tree"});
  EXPECT_NE(tree.find("|- later"), std::string::npos) << tree;
  EXPECT_NE(tree.find("`- branch"), std::string::npos) << tree;

  // The group changed: refused, and nothing moves.
  Ok({"group", "remove", "web", "b"});
  CommandOutput refused = Cli({"snapshot", "apply", good});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("members changed"), std::string::npos) << refused.err;
  EXPECT_EQ(json::parse(Ok({"vm", "show", "a", "--json"}))["state"], "running");
}

TEST_F(CliTest, AStandardSnapshotAppliesWithTheVmsRunningOn) {
  NewVm("a");
  NewVm("b");
  Ok({"group", "create", "web"});
  Ok({"group", "add", "web", "a", "b"});
  Ok({"snapshot", "create", "web", "--type", "standard", "--name", "mem"});
  json list = json::parse(Ok({"snapshot", "list", "web", "--json"}));
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["type"], 1);
  Ok({"vm", "turn-off", "a"});
  const std::string id = list[0]["id"];
  CommandOutput applied = Cli({"snapshot", "apply", id});
  ASSERT_EQ(applied.exit_code, 0) << applied.err;
  EXPECT_NE(applied.err.find("run on from it"), std::string::npos) << applied.err;
  EXPECT_EQ(json::parse(Ok({"vm", "show", "a", "--json"}))["state"], "running")
      << "back in the state it had at the snapshot";
  Ok({"snapshot", "delete", id});
  EXPECT_TRUE(json::parse(Ok({"snapshot", "list", "web", "--json"})).empty());
}

TEST_F(CliTest, DeleteMergesASnapshotAwayWhileTheGroupRuns) {
  json list = WebWithThreeSnapshots();
  const std::string one = list[0]["id"], two = list[1]["id"], three = list[2]["id"];

  CommandOutput deleted = Cli({"snapshot", "delete", two});
  ASSERT_EQ(deleted.exit_code, 0) << deleted.err;
  EXPECT_NE(deleted.err.find("deleted two"), std::string::npos) << deleted.err;
  list = json::parse(Ok({"snapshot", "list", "web", "--json"}));
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[1]["id"], three);
  EXPECT_EQ(list[1]["parent"], one) << "three now hangs from one";
  EXPECT_EQ(list[1]["current"], true);
  EXPECT_EQ(json::parse(Ok({"vm", "show", "a", "--json"}))["state"], "running");

  EXPECT_EQ(Cli({"snapshot", "delete", two}).exit_code, 4) << "gone";
  Ok({"snapshot", "delete", three});
  Ok({"snapshot", "delete", one});
  EXPECT_TRUE(json::parse(Ok({"snapshot", "list", "web", "--json"})).empty());
  EXPECT_EQ(json::parse(Ok({"vm", "show", "b", "--json"}))["state"], "running");
}

TEST_F(CliTest, ExportWritesASnapshotOutAndSaysWhyWhenItCannot) {
  json list = WebWithThreeSnapshots();
  const std::string two = list[1]["id"];
  const std::string out = dir_ / "backups/two";

  CommandOutput exported = Cli({"snapshot", "export", two, out});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  EXPECT_NE(exported.err.find("exported two to " + out), std::string::npos) << exported.err;
  json manifest = json::parse(*Env::Default()->ReadFile(out + "/manifest.json"));
  EXPECT_EQ(manifest["snapshot"]["id"], two);
  ASSERT_EQ(manifest["vms"].size(), 2u);
  for (const auto& vm : manifest["vms"]) {
    ASSERT_EQ(vm["disks"].size(), 1u);
    EXPECT_TRUE(Env::Default()->FileExists(out + "/" + vm["disks"][0]["file"].get<std::string>()));
  }
  EXPECT_EQ(json::parse(Ok({"vm", "show", "a", "--json"}))["state"], "running");

  CommandOutput again = Cli({"snapshot", "export", two, out});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("not empty"), std::string::npos) << again.err;
  Ok({"snapshot", "export", two, dir_ / "meta", "--no-storage"});
  EXPECT_EQ(json::parse(*Env::Default()->ReadFile(dir_ / "meta/manifest.json"))["storage"], false);
  EXPECT_EQ(Cli({"snapshot", "export", two}).exit_code, 2);
  EXPECT_EQ(Cli({"snapshot", "export", "two", dir_ / "x"}).exit_code, 4) << "ids, not names";

  // A target too small: the job ends in Exception with the reason, and
  // nothing of the export stays.
  const std::string small = dir_ / "small";
  std::filesystem::create_directories(small);
  if (::mount("tmpfs", small.c_str(), "tmpfs", 0, "size=64k") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here (needs CAP_SYS_ADMIN)";
  }
  CommandOutput full = Cli({"snapshot", "export", two, small + "/b"});
  ::umount2(small.c_str(), MNT_DETACH);
  EXPECT_EQ(full.exit_code, 1);
  EXPECT_NE(full.err.find("Exception"), std::string::npos) << full.err;
  EXPECT_NE(full.err.find("No space left"), std::string::npos) << full.err;
}

TEST_F(CliTest, ImportBringsAnExportedGroupBack) {
  json list = WebWithThreeSnapshots();
  const std::string two = list[1]["id"];
  const std::string out = dir_ / "bk";
  Ok({"snapshot", "export", two, out});

  CommandOutput taken = Cli({"import", out});
  EXPECT_EQ(taken.exit_code, 1);
  EXPECT_NE(taken.err.find("restore as new"), std::string::npos) << taken.err;

  CommandOutput restored = Cli({"import", out, "--as-new"});
  ASSERT_EQ(restored.exit_code, 0) << restored.err;
  EXPECT_NE(restored.err.find("imported group web-restored"), std::string::npos) << restored.err;
  json group = json::parse(Ok({"group", "show", "web-restored", "--json"}));
  EXPECT_EQ(group["members"], json({"a-restored", "b-restored"}));
  EXPECT_EQ(json::parse(Ok({"vm", "show", "a-restored", "--json"}))["state"], "off");
  Ok({"vm", "start", "a-restored"});
  EXPECT_EQ(json::parse(Ok({"vm", "show", "a-restored", "--json"}))["state"], "running");

  // A damaged export: the job fails naming the file; nothing is made.
  json manifest = json::parse(*Env::Default()->ReadFile(out + "/manifest.json"));
  const std::string disk = out + "/" + manifest["vms"][0]["disks"][0]["file"].get<std::string>();
  ASSERT_EQ(
      Run({"sh", "-c", "printf X | dd of=" + disk + " bs=1 seek=70000 conv=notrunc"}).exit_code, 0);
  CommandOutput damaged = Cli({"import", out, "--as-new"});
  EXPECT_EQ(damaged.exit_code, 1);
  EXPECT_NE(damaged.err.find("damaged"), std::string::npos) << damaged.err;
  EXPECT_EQ(json::parse(Ok({"group", "list", "--json"})).size(), 2u);
}

TEST_F(CliTest, BackupCycleThroughTheCli) {
  NewVm("a");
  NewVm("b");
  Ok({"group", "create", "web"});
  Ok({"group", "add", "web", "a", "b"});
  auto recovery = [&](const char* name) {
    Ok({"snapshot", "create", "web", "--type", "recovery", "--name", name});
    for (const auto& s : json::parse(Ok({"snapshot", "list", "web", "--json"}))) {
      if (s["name"] == name) return s["id"].get<std::string>();
    }
    return std::string();
  };
  const std::string monday = recovery("monday"), full = dir_ / "bk/monday";
  Ok({"snapshot", "export", monday, full});
  const std::string rp = Ok({"snapshot", "to-refpoint", monday}).substr(0, 36);
  json rps = json::parse(Ok({"refpoint", "list", "web", "--json"}));
  ASSERT_EQ(rps.size(), 1u);
  EXPECT_EQ(rps[0]["id"], rp);
  EXPECT_EQ(rps[0]["vms"].size(), 2u);
  EXPECT_NE(Ok({"refpoint", "show", rp}).find("monday"), std::string::npos);
  EXPECT_TRUE(json::parse(Ok({"snapshot", "list", "web", "--json"})).empty())
      << "the snapshot became the reference point";
  // What changed since the point, at a cut taken for the export alone.
  CommandOutput since = Cli({"refpoint", "export", rp, dir_ / "bk/sunday"});
  ASSERT_EQ(since.exit_code, 0) << since.err;
  EXPECT_EQ(json::parse(*Env::Default()->ReadFile(
                dir_ / "bk/sunday/manifest.json"))["base"]["reference_point_id"],
            rp);
  EXPECT_TRUE(json::parse(Ok({"snapshot", "list", "web", "--json"})).empty());
  CommandOutput named = Cli({"refpoint", "export", rp, dir_ / "bk/sunday2", "--base", "monday"});
  ASSERT_EQ(named.exit_code, 0) << named.err;
  EXPECT_NE(named.err.find("since reference point monday"), std::string::npos) << named.err;

  const std::string tuesday = recovery("tuesday"), inc = dir_ / "bk/tuesday";
  CommandOutput exported = Cli({"snapshot", "export", tuesday, inc, "--base", rp});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  json manifest = json::parse(*Env::Default()->ReadFile(inc + "/manifest.json"));
  EXPECT_EQ(manifest["base"]["reference_point_id"], rp);
  EXPECT_EQ(manifest["base"]["directory"], "../monday");
  CommandOutput restored = Cli({"import", inc, "--as-new"});
  EXPECT_EQ(restored.exit_code, 0) << restored.err;
  CommandOutput stale = Cli({"refpoint", "export", rp, dir_ / "bk/stale"});
  EXPECT_EQ(stale.exit_code, 1);
  EXPECT_NE(stale.err.find("a snapshot came after it"), std::string::npos) << stale.err;

  // A snapshot as the base: the one right before, exported.
  const std::string wednesday = recovery("wednesday");
  Ok({"snapshot", "export", wednesday, dir_ / "bk/wednesday", "--base", tuesday});
  json on_snapshot = json::parse(*Env::Default()->ReadFile(dir_ / "bk/wednesday/manifest.json"));
  EXPECT_EQ(on_snapshot["base"]["snapshot_id"], tuesday);
  EXPECT_EQ(on_snapshot["base"]["reference_point_id"], "");
  // `restore`, import's old name, still works for a release, and says so.
  CommandOutput alias = Cli({"restore", dir_ / "bk/wednesday", "--as-new"});
  EXPECT_EQ(alias.exit_code, 0) << alias.err;
  EXPECT_NE(alias.err.find("`restore` is now `import`"), std::string::npos) << alias.err;

  // Refusals say why: a disk-only snapshot never becomes a reference point;
  // a deleted reference point is no base.
  Ok({"snapshot", "create", "web", "--name", "disk"});
  const std::string disk = json::parse(Ok({"snapshot", "list", "web", "--json"})).back()["id"];
  CommandOutput wrong = Cli({"snapshot", "to-refpoint", disk});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_NE(wrong.err.find("not a recovery snapshot"), std::string::npos) << wrong.err;
  Ok({"refpoint", "delete", rp});
  EXPECT_TRUE(json::parse(Ok({"refpoint", "list", "web", "--json"})).empty());
  CommandOutput created = Cli({"refpoint", "create", "web", "--name", "tracking"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  json rps_now = json::parse(Ok({"refpoint", "list", "web", "--json"}));
  ASSERT_EQ(rps_now.size(), 1u);
  EXPECT_EQ(rps_now[0]["name"], "tracking");
  EXPECT_EQ(created.out.substr(0, 36), rps_now[0]["id"]);
  Ok({"refpoint", "delete", "tracking"});
  CommandOutput gone = Cli({"snapshot", "export", tuesday, dir_ / "bk/again", "--base", rp});
  EXPECT_EQ(gone.exit_code, 1);
  EXPECT_NE(gone.err.find("neither a reference point nor a group snapshot"), std::string::npos)
      << gone.err;
}

TEST_F(CliTest, FailuresSayWhyAndExitNonZero) {
  Ok({"group", "create", "empty"});
  CommandOutput empty = Cli({"snapshot", "create", "empty"});
  EXPECT_EQ(empty.exit_code, 1);
  EXPECT_NE(empty.err.find("no VMs to snapshot"), std::string::npos) << empty.err;
  EXPECT_EQ(Cli({"snapshot", "create", "empty", "--type", "sideways"}).exit_code, 2);
  EXPECT_EQ(Cli({"snapshot", "create", "nope"}).exit_code, 4);
  EXPECT_EQ(Cli({"snapshot", "show", "nope"}).exit_code, 4);
  EXPECT_EQ(Cli({"job", "show", "nope"}).exit_code, 4);
  EXPECT_EQ(Cli({"frob"}).exit_code, 2);
  CommandOutput away = Run({VMGROUP_BIN, "--connect", "unix:" + (dir_ / "no.sock"), "vm", "list"});
  EXPECT_EQ(away.exit_code, 3);
  EXPECT_NE(away.err.find("cannot reach vmgroupd"), std::string::npos);
  // VMGROUP_CONNECT stands in for --connect.
  CommandOutput env = Run({"env", "VMGROUP_CONNECT=unix:" + Socket(), VMGROUP_BIN, "vm", "list"});
  EXPECT_EQ(env.exit_code, 0) << env.err;
}

TEST_F(CliTest, VmsRunOnAcrossARestartOfTheDaemon) {
  NewVm("a");
  NewVm("b");
  Ok({"group", "create", "web"});
  Ok({"group", "add", "web", "a", "b"});
  const int pid = json::parse(Ok({"vm", "show", "a", "--json"}))["pid"];
  StopDaemon(SIGTERM);
  EXPECT_TRUE(Env::Default()->IsAlive(pid)) << "stopping the daemon leaves VMs running";
  StartDaemon();
  EXPECT_EQ(json::parse(Ok({"vm", "show", "a", "--json"}))["state"], "running");
  Ok({"snapshot", "create", "web"});  // the re-attached VMs are snapshotted
  // A daemon killed outright: the next start recovers and carries on.
  StopDaemon(SIGKILL);
  StartDaemon();
  EXPECT_NE(LogText().find("state directory"), std::string::npos);
  Ok({"snapshot", "create", "web"});
  EXPECT_EQ(json::parse(Ok({"snapshot", "list", "web", "--json"})).size(), 2u);
}

TEST_F(CliTest, SigtermDuringASnapshotLeavesNoVmPausedAndNoHalfSnapshot) {
  std::vector<std::string> ids;
  for (const char* name : {"a", "b", "c"}) ids.push_back(NewVm(name));
  Ok({"group", "create", "web"});
  Ok({"group", "add", "web", "a", "b", "c"});
  for (int round = 0; round < 3; ++round) {
    Ok({"snapshot", "create", "web", "--no-wait"});
    StopDaemon(SIGTERM);  // at once: somewhere in the snapshot, or just after
    // Before any recovery can run: every VM runs, as QEMU itself says.
    for (const auto& id : ids) {
      auto qmp = hypervisor::qemu::QmpClient::Connect(Env::Default(),
                                                      StateDir() + "/vms/" + id + "/qmp.sock",
                                                      Clock::now() + std::chrono::seconds(10));
      ASSERT_TRUE(qmp.ok()) << qmp.status().ToString();
      auto status =
          hypervisor::qemu::qmp::QueryStatus(**qmp, Clock::now() + std::chrono::seconds(10));
      ASSERT_TRUE(status.ok());
      EXPECT_EQ(*status, "running") << "VM " << id << " after SIGTERM, round " << round;
    }
    StartDaemon();
    EXPECT_NE(LogText().find("nothing to recover"), std::string::npos)
        << "SIGTERM left work for recovery:\n"
        << LogText();
  }
  const auto list = json::parse(Ok({"snapshot", "list", "web", "--json"}));
  EXPECT_EQ(list.size(), 3u) << "each snapshot finished before the daemon stopped";
}

TEST_F(CliTest, WaitingShowsAProgressBarOnATerminalAndLinesOtherwise) {
  NewVm("a");
  Ok({"group", "create", "web"});
  Ok({"group", "add", "web", "a"});
  // `script` gives the command a terminal.
  CommandOutput tty =
      Run({"script", "-qec",
           std::string(VMGROUP_BIN) + " --connect unix:" + Socket() + " snapshot create web",
           "/dev/null"});
  EXPECT_EQ(tty.exit_code, 0) << tty.out;
  EXPECT_NE(tty.out.find("] 100%  Snapshot of VM group web"), std::string::npos) << tty.out;
  EXPECT_NE(tty.out.find("[##############################]"), std::string::npos) << tty.out;
  CommandOutput plain = Cli({"snapshot", "create", "web"});
  EXPECT_NE(plain.err.find(": Completed 100%\n"), std::string::npos) << plain.err;
  EXPECT_EQ(plain.err.find("[#"), std::string::npos) << plain.err;
}

}  // namespace
}  // namespace vmgroup::e2e
