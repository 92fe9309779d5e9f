// Values from outside, end to end: a real vmgroupd whose catalog holds names
// stored before names were checked (written with the daemon stopped, as an
// old catalog has them) still answers wbemcli and the CLI in well-formed
// CIM-XML and JSON, with nothing a terminal would obey; the CLI refuses
// what it cannot read whole or send as given (numbers, sizes, empty
// arguments, control characters) before the daemon sees it; and the daemon
// refuses bad names and numbers it is sent (by wbemcli, which sends bytes
// as they are, and by the CLI).
#include <nlohmann/json.hpp>

#include "catalog/catalog.h"
#include "daemon_fixture.h"

namespace vmgroup::e2e {
namespace {

using json = nlohmann::json;

constexpr const char* kOldVmId = "0d5e0b0c-0000-4000-8000-00000000000a";
constexpr const char* kOldGroupId = "0d5e0b0c-0000-4000-8000-00000000000b";
// A name no check lets in any more: an escape sequence that clears the
// screen and retitles the terminal, a newline, bytes that are not UTF-8, and
// a NUL (which wbemcli cannot parse).
const std::string kOldName = std::string("old\x1b[2J\x1b]0;owned\x07\nvm\xff\xc3") + '\0' + "1";

class InputChecksTest : public DaemonFixture {
 protected:
  // Stops the daemon, writes a VM and a group named kOldName straight into
  // its catalog, and starts it again.
  void StoreOldNames() {
    StopDaemon();
    {
      auto catalog = catalog::Catalog::Open(StateDir() + "/catalog.db");
      ASSERT_TRUE(catalog.ok()) << catalog.status().ToString();
      ASSERT_TRUE((*catalog)->InsertVm({.id = kOldVmId, .name = kOldName}).ok());
      ASSERT_TRUE((*catalog)
                      ->InsertCollection({.id = kOldGroupId, .name = kOldName, .created_us = 1})
                      .ok());
      ASSERT_TRUE((*catalog)->AddMember(kOldGroupId, kOldVmId).ok());
    }
    StartDaemon();
  }
  static bool HasControl(const std::string& text, bool allow_newline) {
    return std::any_of(text.begin(), text.end(), [&](char c) {
      return (static_cast<unsigned char>(c) < 0x20 && !(allow_newline && c == '\n')) || c == 0x7f;
    });
  }
};

TEST_F(InputChecksTest, OldBadNamesStillListInWbemcliAndTheCli) {
  StoreOldNames();
  for (const char* cls :
       {"Msvm_ComputerSystem", "Msvm_VirtualSystemSettingData", "Msvm_VirtualSystemCollection"}) {
    CommandOutput listed = Wbem("ei", cls);
    EXPECT_EQ(listed.exit_code, 0) << cls << ": " << listed.err;
    EXPECT_NE(listed.out.find(cls == std::string("Msvm_VirtualSystemCollection") ? kOldGroupId
                                                                                 : kOldVmId),
              std::string::npos)
        << listed.out;
  }

  CommandOutput as_json = Cli({"--json", "vm", "list"});
  ASSERT_EQ(as_json.exit_code, 0) << as_json.err;
  json vms = json::parse(as_json.out);
  ASSERT_EQ(vms.size(), 1u);
  EXPECT_EQ(vms[0]["id"], kOldVmId);
  const std::string name = vms[0]["name"];
  EXPECT_FALSE(HasControl(name, true)) << name;  // the daemon sent U+FFFD for what XML cannot carry
  EXPECT_NE(name.find("\nvm\uFFFD\uFFFD\uFFFD"
                      "1"),
            std::string::npos)
      << name;
  EXPECT_EQ(json::parse(Ok({"--json", "group", "list"}))[0]["members"][0], name);

  for (const char* noun : {"vm", "group"}) {
    CommandOutput table = Cli({noun, "list"});
    ASSERT_EQ(table.exit_code, 0) << table.err;
    EXPECT_FALSE(HasControl(table.out, true)) << table.out;
    EXPECT_EQ(std::count(table.out.begin(), table.out.end(), '\n'), 2) << "one line a row:\n"
                                                                       << table.out;
    EXPECT_NE(table.out.find("\\x0avm"), std::string::npos) << table.out;
  }
  CommandOutput shown = Cli({"vm", "show", kOldVmId});
  EXPECT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_FALSE(HasControl(shown.out, true)) << shown.out;
}

TEST_F(InputChecksTest, TheCliRefusesWhatItCannotReadWholeAndMakesNothing) {
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  for (const Case& c : std::vector<Case>{
           {{"vm", "create", "x", "--memory", "64abc", "--disk", "16M"}, "--memory"},
           {{"vm", "create", "x", "--cpus", "1.5", "--disk", "16M"}, "--cpus"},
           {{"vm", "create", "x", "--disk", "16m"}, "--disk takes"},
           {{"vm", "create", "x", "--disk", "disk.qcow2"}, "absolute path"},
           {{"vm", "create", "x", "--disk", "128T"}, "--disk takes"},
           {{"vm", "create", "", "--disk", "16M"}, "empty"},
           {{"vm", "create", "x", "--disk", "16M", "--kernel", ""}, "--kernel"},
           {{"group", "create", ""}, "empty"},
           {{"import", ""}, "empty"},
           {{"snapshot", "export", "00000000-0000-0000-0000-000000000001", ""}, "empty"},
           {{"refpoint", "export", "00000000-0000-0000-0000-000000000001", ""}, "empty"},
           {{"snapshot", "create", "web", "--name", ""}, "--name"},
           {{"vm", "create", "db\x1b[31m", "--disk", "16M"}, "control character"},
           {{"group", "create", "web\xff"}, "not valid UTF-8"},
           {{"group", "create", "web", "--of-groups", "--name=a\nb"}, "control character"}}) {
    CommandOutput r = Cli(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args[0] << " " << c.args[1] << ": " << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
  }
  EXPECT_TRUE(json::parse(Ok({"--json", "vm", "list"})).empty()) << "nothing made";
  EXPECT_TRUE(json::parse(Ok({"--json", "group", "list"})).empty()) << "nothing made";
}

TEST_F(InputChecksTest, TheDaemonRefusesBadNamesAndNumbersItIsSent) {
  // wbemcli writes what it is given into its request as it is, escape
  // sequence and all, as a careless client would.
  CommandOutput services = Wbem("ein", "Msvm_CollectionManagementService");
  ASSERT_EQ(services.exit_code, 0) << services.err;
  const size_t at = services.out.find("Msvm_CollectionManagementService.");
  ASSERT_NE(at, std::string::npos) << services.out;
  const std::string service = services.out.substr(at, services.out.find('\n', at) - at);
  for (const std::string& name : {std::string("web\x1b[31m"), std::string("web\xff"),
                                  std::string(" web"), std::string(300, 'w')}) {
    CommandOutput r = Wbem("cm", service, {"DefineCollection.Name=\"" + name + "\",Type=0"});
    EXPECT_NE(r.out.find("DefineCollection: 32773"), std::string::npos) << r.out << r.err;
    EXPECT_NE(r.out.find("group name (Name)"), std::string::npos) << r.out;
    EXPECT_FALSE(HasControl(r.out, true)) << "the reason is printable: " << r.out;
  }

  // Values the command line reads whole but vmgroupd may not take: refused
  // with the reason, never cut to fit.
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"vm", "create", "x", "--memory", "4294967296", "--disk", "16M"},
        {"vm", "create", "x", "--cpus", "2147483648", "--disk", "16M"},
        {"vm", "create", "x ", "--disk", "16M"},
        {"group", "create", std::string(300, 'g')}}) {
    CommandOutput r = Cli(args);
    EXPECT_EQ(r.exit_code, 1) << args[2] << ": " << r.err;
    EXPECT_NE(r.err.find("Invalid parameter"), std::string::npos) << r.err;
  }
  EXPECT_TRUE(json::parse(Ok({"--json", "vm", "list"})).empty()) << "nothing half-made";
  EXPECT_TRUE(json::parse(Ok({"--json", "group", "list"})).empty()) << "nothing half-made";

  // A real snapshot, so that exporting it to "" reaches the point where
  // the command line used to crash.
  Ok({"vm", "create", "db", "--disk", "16M"});
  Ok({"group", "create", "web"});
  Ok({"group", "add", "web", "db"});
  Ok({"group", "rename", "web", "web 2 \xC3\xA4"});
  CommandOutput bad_rename = Cli({"group", "rename", "web 2 \xC3\xA4", "web 3 "});
  EXPECT_EQ(bad_rename.exit_code, 1) << bad_rename.err;
  EXPECT_NE(bad_rename.err.find("group name (NewName)"), std::string::npos) << bad_rename.err;
  const std::string snapshot =
      json::parse(Ok({"--json", "snapshot", "create", "web 2 \xC3\xA4"}))["id"];
  CommandOutput export_to_nothing = Cli({"snapshot", "export", snapshot, ""});
  EXPECT_EQ(export_to_nothing.exit_code, 2) << export_to_nothing.err;
  CommandOutput label = Cli({"snapshot", "create", "web 2 \xC3\xA4", "--name", " nightly"});
  EXPECT_EQ(label.exit_code, 1) << label.err;
  EXPECT_NE(label.err.find("snapshot name (ElementName)"), std::string::npos) << label.err;
  EXPECT_EQ(json::parse(Ok({"--json", "snapshot", "list", "web 2 \xC3\xA4"})).size(), 1u);
}

}  // namespace
}  // namespace vmgroup::e2e
