// remote::CimPeers's Join and Leave against a host's real services: an
// engine on a fresh state directory, its providers on a dispatcher, served
// on a unix socket as vmgroupd serves them (no VM is started). Here, where
// the daemon wires both, because remote/ may not include services/.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>

#include "base/ids.h"
#include "cim/dispatcher.h"
#include "cim/http_server.h"
#include "remote/cim_peers.h"
#include "services/providers.h"
#include "testing/temp_dir.h"

namespace vmgroup::daemon {
namespace {

std::string Upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
  return s;
}

class PeersTest : public ::testing::Test {
 protected:
  PeersTest() {
    // TCG named: no QEMU starts here, and auto would probe KVM.
    engine_ = std::move(engine::Engine::Open({.state_dir = dir_ / "state",
                                              .qemu = {.accel = hypervisor::qemu::Accel::kTcg}}))
                  .value();
    jobs_ = std::make_unique<services::JobManager>(Env::Default(), &engine_->catalog());
    services::Register(dispatcher_, {engine_.get(), jobs_.get(), "db1", "tcg"});
    Status s = server_.ListenUnix({.path = dir_ / "db1.sock", .who = [](uid_t, gid_t) {
                                     return cim::Peer{"coordinator", cim::Role::kAdmin, "", ""};
                                   }});
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  ~PeersTest() override { server_.Stop(); }

  std::string DefineVm(const std::string& name) {
    auto id = engine_->vms().Define({.name = name});
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    return id.ok() ? *id : "";
  }
  // The members of the host's collection `id`; none when it has no such.
  std::vector<std::string> Members(const std::string& id) {
    auto c = engine_->catalog().GetCollection(id);
    return c.ok() ? c->members : std::vector<std::string>{};
  }

  testing::TempDir dir_;
  std::unique_ptr<engine::Engine> engine_;
  std::unique_ptr<services::JobManager> jobs_;
  cim::Dispatcher dispatcher_{services::kNamespace, "db1"};
  cim::HttpServer server_{[this](const cim::HttpRequest& r) { return dispatcher_.Handle(r); }, {}};
  // The coordinator's view of this host: peer "db1" on its socket.
  remote::CimPeers peers_{
      Env::Default(),
      {.endpoints = {{"db1", "unix:" + dir_ / "db1.sock"}}, .credentials_dir = dir_ / "peers"}};
};

TEST_F(PeersTest, JoinDefinesTheHostsPartOfTheGroupOnceAndAddsEachVm) {
  const std::string vm1 = DefineVm("db-a"), vm2 = DefineVm("db-b");
  const std::string group = NewGuid();
  // The coordinator's id in whatever case: the host keeps it in lower case.
  ASSERT_TRUE(peers_.Join("db1", Upper(group), "web", vm1).ok());
  auto c = engine_->catalog().GetCollection(group);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->name, "web");
  EXPECT_EQ(c->type, catalog::CollectionType::kVirtualSystems);
  EXPECT_EQ(c->members, std::vector<std::string>{vm1});

  Status again = peers_.Join("db1", group, "web", vm1);
  EXPECT_TRUE(again.ok()) << "a member already: " << again.ToString();
  ASSERT_TRUE(peers_.Join("db1", group, "web", vm2).ok());
  EXPECT_EQ(Members(group), (std::vector<std::string>{vm1, vm2}));
}

TEST_F(PeersTest, AVmTheHostDoesNotHaveIsNotFoundAndLeavesNothingBehind) {
  const std::string group = NewGuid(), missing = NewGuid();
  Status s = peers_.Join("db1", group, "web", missing);
  EXPECT_EQ(s.code(), Code::kNotFound) << s.ToString();
  EXPECT_EQ(s.message(), "host db1: no VM " + missing);
  EXPECT_EQ(engine_->catalog().GetCollection(group).status().code(), Code::kNotFound)
      << "no collection defined for a VM that is not there";
}

TEST_F(PeersTest, TheHostsRefusalComesBackNamedAfterIt) {
  const std::string vm = DefineVm("db-a");
  // Not a GUID: the host's DefineCollection refuses the id (32773).
  Status s = peers_.Join("db1", "not-a-guid", "web", vm);
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.ToString();
  EXPECT_TRUE(s.message().starts_with("host db1: DefineCollection: ")) << s.message();
  EXPECT_NE(s.message().find("not a GUID"), std::string::npos) << s.message();
}

TEST_F(PeersTest, LeaveTakesTheVmOutAndIsOkWhenItIsNoMember) {
  const std::string vm1 = DefineVm("db-a"), vm2 = DefineVm("db-b");
  const std::string group = NewGuid();
  ASSERT_TRUE(peers_.Join("db1", group, "web", vm1).ok());
  ASSERT_TRUE(peers_.Join("db1", group, "web", vm2).ok());
  ASSERT_TRUE(peers_.Leave("db1", Upper(group), vm1).ok());
  EXPECT_EQ(Members(group), std::vector<std::string>{vm2});
  EXPECT_TRUE(peers_.Leave("db1", group, vm1).ok()) << "no member: nothing to do";
  EXPECT_TRUE(peers_.Leave("db1", NewGuid(), vm2).ok()) << "no such group on the host";
  EXPECT_EQ(Members(group), std::vector<std::string>{vm2});
}

}  // namespace
}  // namespace vmgroup::daemon
