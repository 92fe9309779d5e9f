#include "cim/dispatcher.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "cim/xml_reader.h"

namespace vmgroup::cim {
namespace {

const std::vector<std::string> kNs = {"root", "virtualization", "v2"};

ObjectPath PathTo(const std::string& cls, const std::string& key, const std::string& value) {
  return {"", kNs, cls, {{key, KeyBinding::Kind::kString, value, {}}}};
}

// A table of groups keyed by InstanceID, as wbemcli's captures address them.
class GroupProvider : public Provider {
 public:
  GroupProvider() {
    spec_ = {.name = "Msvm_VirtualSystemCollection",
             .superclass = "CIM_CollectionOfMSEs",
             .properties = {{.name = "InstanceID", .type = "string", .key = true},
                            {.name = "ElementName", .type = "string"},
                            {.name = "Members", .type = "string", .is_array = true}},
             .methods = {{.name = "Poke",
                          .params = {{.name = "Level", .type = "uint16"},
                                     {.name = "Other",
                                      .type = "reference",
                                      .reference_class = "Msvm_VirtualSystemCollection"},
                                     {.name = "Result",
                                      .type = "reference",
                                      .in = false,
                                      .out = true,
                                      .reference_class = "Msvm_VirtualSystemCollection"}}}}};
  }
  const ClassSpec& spec() const override { return spec_; }
  Result<std::vector<Instance>> Enumerate() override {
    std::vector<Instance> out;
    for (const auto& [id, name] : std::vector<std::pair<std::string, std::string>>{
             {"grp-1", "group one"}, {"grp-2", "group <two> & more"}}) {
      out.push_back(InstanceBuilder(spec_)
                        .Str("InstanceID", id)
                        .Str("ElementName", name)
                        .Strs("Members", {"vm1", "vm2"})
                        .Build());
    }
    return out;
  }
  Result<MethodResult> Invoke(const MethodSpec&, const ObjectPath& target,
                              const std::map<std::string, Value>& args) override {
    last_args = args;
    MethodResult r;
    r.return_value = 4096;
    r.out.push_back({"Result", "reference",
                     Value::Reference(PathTo(spec_.name, "InstanceID", target.keys[0].value))});
    return r;
  }
  std::map<std::string, Value> last_args;

 private:
  ClassSpec spec_;
};

// Links each group to itself's "sibling" so associations have two ends.
class SiblingProvider : public Provider {
 public:
  SiblingProvider() {
    spec_ = {.name = "Test_Sibling",
             .association = true,
             .properties = {{.name = "Left",
                             .type = "reference",
                             .key = true,
                             .reference_class = "Msvm_VirtualSystemCollection"},
                            {.name = "Right",
                             .type = "reference",
                             .key = true,
                             .reference_class = "Msvm_VirtualSystemCollection"}}};
  }
  const ClassSpec& spec() const override { return spec_; }
  Result<std::vector<Instance>> Enumerate() override {
    return std::vector<Instance>{
        InstanceBuilder(spec_)
            .Ref("Left", PathTo("Msvm_VirtualSystemCollection", "InstanceID", "grp-1"))
            .Ref("Right", PathTo("Msvm_VirtualSystemCollection", "InstanceID", "grp-2"))
            .Build()};
  }

 private:
  ClassSpec spec_;
};

// Hands its instances over one at a time (ForEach), failing after
// `fail_after` of them; its Enumerate fails, so a listing that went through
// it would fail.
class StreamProvider : public Provider {
 public:
  StreamProvider() {
    spec_ = {.name = "Test_Stream",
             .properties = {{.name = "InstanceID", .type = "string", .key = true},
                            {.name = "Note", .type = "string"}}};
  }
  const ClassSpec& spec() const override { return spec_; }
  Result<std::vector<Instance>> Enumerate() override {
    return Status::Failed("Enumerate is not how a listing takes these");
  }
  Status ForEach(const std::function<void(Instance)>& each) override {
    for (int i = 0; i < 3; ++i) {
      if (i == fail_after) return Status::Failed("the catalog went away at " + std::to_string(i));
      each(InstanceBuilder(spec_)
               .Str("InstanceID", "s" + std::to_string(i))
               .Str("Note", "<" + std::to_string(i) + ">")
               .Build());
    }
    return Status::Ok();
  }
  int fail_after = -1;

 private:
  ClassSpec spec_;
};

std::string Capture(const std::string& name) {
  std::ifstream in(std::string(CIM_TESTDATA) + "/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && s.back() == '\n' && name.ends_with(".cimobject")) s.pop_back();
  return s;
}

class DispatcherTest : public ::testing::Test {
 protected:
  DispatcherTest() : d_("root/virtualization/v2", "testhost") {
    auto groups = std::make_unique<GroupProvider>();
    groups_ = groups.get();
    d_.Register(std::move(groups));
    d_.Register(std::make_unique<SiblingProvider>());
  }

  HttpRequest Post(const std::string& method, const std::string& object, const std::string& body,
                   Role role = Role::kAdmin) {
    return {"POST",
            "/cimom",
            {{"CIMOperation", "MethodCall"}, {"CIMMethod", method}, {"CIMObject", object}},
            body,
            {"alice", role, "vmgroup", "auditors"}};
  }
  // A captured wbemcli request, replayed.
  Response Replay(const std::string& op) {
    HttpResponse http = d_.Handle(
        Post(op, Capture("wbemcli-" + op + ".cimobject"), Capture("wbemcli-" + op + ".xml")));
    EXPECT_EQ(http.status, 200) << http.body;
    auto r = ParseResponse(http.body);
    EXPECT_TRUE(r.ok()) << r.status().ToString() << http.body;
    return r.ok() ? *r : Response{};
  }
  Response Call(const std::string& op, const std::vector<OutParam>& params) {
    HttpResponse http =
        d_.Handle(Post(op, "root%2Fvirtualization%2Fv2", IMethodCall("7", op, kNs, params)));
    EXPECT_EQ(http.status, 200) << http.body;
    return *ParseResponse(http.body);
  }

  Dispatcher d_;
  GroupProvider* groups_;
};

TEST_F(DispatcherTest, AnswersWbemclisCapturedRequests) {
  Response names = Replay("EnumerateInstanceNames");
  ASSERT_FALSE(names.error) << names.description;
  ASSERT_EQ(names.paths.size(), 2u);
  EXPECT_EQ(names.paths[0].Key("InstanceID")->value, "grp-1");

  Response all = Replay("EnumerateInstances");
  ASSERT_EQ(all.instances.size(), 2u);
  EXPECT_EQ(all.instances[1].instance.Find("ElementName")->value.scalar, "group <two> & more");

  Response one = Replay("GetInstance");
  ASSERT_EQ(one.instances.size(), 1u);
  EXPECT_EQ(one.instances[0].instance.Find("Members")->value.array,
            (std::vector<std::string>{"vm1", "vm2"}));
}

TEST_F(DispatcherTest, ListingsTakeEachInstanceAsItIsMadeAndAFailureLeavesOnlyTheError) {
  auto stream = std::make_unique<StreamProvider>();
  StreamProvider* provider = stream.get();
  d_.Register(std::move(stream));
  const std::vector<OutParam> cls = {
      {"ClassName", "", Value::Reference({"", {}, "Test_Stream", {}})}};

  Response all = Call("EnumerateInstances", cls);
  ASSERT_FALSE(all.error) << all.description;
  ASSERT_EQ(all.instances.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(all.instances[i].path.Key("InstanceID")->value, "s" + std::to_string(i));
    EXPECT_EQ(all.instances[i].instance.Find("Note")->value.scalar, "<" + std::to_string(i) + ">");
  }
  EXPECT_EQ(Call("EnumerateInstanceNames", cls).paths.size(), 3u);

  provider->fail_after = 2;
  HttpResponse http = d_.Handle(Post("EnumerateInstances", "root%2Fvirtualization%2Fv2",
                                     IMethodCall("7", "EnumerateInstances", kNs, cls)));
  auto failed = ParseResponse(http.body);
  ASSERT_TRUE(failed.ok()) << http.body;
  EXPECT_TRUE(failed->error);
  EXPECT_EQ(failed->cim_status, 1);  // CIM_ERR_FAILED
  EXPECT_NE(failed->description.find("went away at 2"), std::string::npos) << failed->description;
  EXPECT_EQ(http.body.find("s0"), std::string::npos) << "no instance of the broken listing";
}

TEST_F(DispatcherTest, GetClassCarriesKeysAndMethods) {
  Response r =
      Call("GetClass",
           {{"ClassName", "", Value::Reference({"", {}, "Msvm_VirtualSystemCollection", {}})}});
  ASSERT_FALSE(r.error);
  Response missing = Call("GetClass", {{"ClassName", "", Value::Reference({"", {}, "Nope", {}})}});
  EXPECT_TRUE(missing.error);
  EXPECT_EQ(missing.cim_status, 6);
}

TEST_F(DispatcherTest, BadIntrinsicCallsGetTheirCimStatus) {
  auto get = [&](ObjectPath p) {
    return Call("GetInstance", {{"InstanceName", "", Value::Reference(p)}});
  };
  EXPECT_EQ(get(PathTo("Msvm_VirtualSystemCollection", "InstanceID", "nope")).cim_status, 6);
  EXPECT_EQ(get(PathTo("Msvm_VirtualSystemCollection", "Wrong", "grp-1")).cim_status, 4);
  EXPECT_EQ(get({"", {}, "Msvm_VirtualSystemCollection", {}}).cim_status, 4);
  EXPECT_EQ(get(PathTo("No_Such_Class", "InstanceID", "x")).cim_status, 5);
  EXPECT_EQ(Call("Frobnicate", {}).cim_status, 7);

  HttpResponse http =
      d_.Handle(Post("EnumerateInstances", "root%2Fother",
                     IMethodCall("1", "EnumerateInstances", {"root", "other"}, {})));
  EXPECT_EQ(ParseResponse(http.body)->cim_status, 3);
}

TEST_F(DispatcherTest, AssociationsAreFollowedBothWays) {
  auto from = [&](const std::string& op, const std::string& id) {
    return Call(op, {{"ObjectName", "",
                      Value::Reference(PathTo("Msvm_VirtualSystemCollection", "InstanceID", id))}});
  };
  Response right = from("Associators", "grp-1");
  ASSERT_EQ(right.instances.size(), 1u);
  EXPECT_EQ(right.instances[0].path.Key("InstanceID")->value, "grp-2");
  EXPECT_EQ(right.instances[0].path.host, "testhost");
  EXPECT_EQ(from("AssociatorNames", "grp-2").paths[0].Key("InstanceID")->value, "grp-1");
  Response refs = from("References", "grp-2");
  ASSERT_EQ(refs.instances.size(), 1u);
  EXPECT_EQ(refs.instances[0].instance.class_name, "Test_Sibling");
  EXPECT_EQ(from("ReferenceNames", "grp-1").paths.size(), 1u);

  // Role narrows to the end the object plays.
  Response none =
      Call("Associators",
           {{"ObjectName", "",
             Value::Reference(PathTo("Msvm_VirtualSystemCollection", "InstanceID", "grp-1"))},
            {"Role", "", Value::Scalar("Right")}});
  EXPECT_TRUE(none.instances.empty());
}

TEST_F(DispatcherTest, InvokeChecksArgumentsAgainstTheDeclaration) {
  const ObjectPath target = PathTo("Msvm_VirtualSystemCollection", "InstanceID", "grp-1");
  auto invoke = [&](const std::string& method, const std::vector<OutParam>& args) {
    HttpResponse http =
        d_.Handle(Post(method, "root%2Fvirtualization%2Fv2%3AMsvm_VirtualSystemCollection",
                       MethodCall("1", target, method, args)));
    return *ParseResponse(http.body);
  };
  Response ok =
      invoke("Poke", {{"Level", "", Value::Scalar("3")}, {"Other", "", Value::Reference(target)}});
  ASSERT_FALSE(ok.error) << ok.description;
  EXPECT_EQ(ok.return_value, 4096u);
  ASSERT_NE(ok.Out("Result"), nullptr);
  EXPECT_EQ(ok.Out("Result")->value.refs[0].host, "testhost");
  EXPECT_EQ(groups_->last_args.at("Level").scalar, "3");

  EXPECT_EQ(invoke("Poke", {{"Level", "", Value::Scalar("70000")}}).cim_status, 13);
  EXPECT_EQ(invoke("Poke", {{"Level", "", Value::Reference(target)}}).cim_status, 13);
  EXPECT_EQ(invoke("Poke", {{"Bogus", "", Value::Scalar("1")}}).cim_status, 4);
  EXPECT_EQ(invoke("Poke", {{"Result", "", Value::Reference(target)}}).cim_status, 4)
      << "an out-parameter is not an input";
  EXPECT_EQ(invoke("Nope", {}).cim_status, 17);
}

TEST_F(DispatcherTest, UnreadableRequestsGetAnHttpErrorWithCimError) {
  const std::string good = IMethodCall("1", "EnumerateInstances", kNs, {});
  auto cim_error = [](const HttpResponse& r) {
    const std::string* h = r.Header("CIMError");
    return h ? *h : std::string("(none)");
  };
  HttpRequest get = Post("EnumerateInstances", "root%2Fvirtualization%2Fv2", good);
  get.method = "GET";
  EXPECT_EQ(d_.Handle(get).status, 405);

  HttpRequest no_op = Post("EnumerateInstances", "root%2Fvirtualization%2Fv2", good);
  no_op.headers.erase(no_op.headers.begin());
  EXPECT_EQ(d_.Handle(no_op).status, 400);
  EXPECT_EQ(cim_error(d_.Handle(no_op)), "unsupported-operation");

  HttpResponse mismatch = d_.Handle(Post("GetInstance", "root%2Fvirtualization%2Fv2", good));
  EXPECT_EQ(mismatch.status, 400);
  EXPECT_EQ(cim_error(mismatch), "header-mismatch");

  HttpResponse wrong_ns = d_.Handle(Post("EnumerateInstances", "root%2Fcimv2", good));
  EXPECT_EQ(cim_error(wrong_ns), "header-mismatch");

  HttpResponse junk = d_.Handle(Post("X", "root", "<CIM><MESSAGE><SIMPLEREQ><a&b>"));
  EXPECT_EQ(junk.status, 400);
  EXPECT_EQ(cim_error(junk), "request-not-well-formed");

  HttpResponse invalid = d_.Handle(Post("X", "root", "<CIM><MESSAGE/></CIM>"));
  EXPECT_EQ(cim_error(invalid), "request-not-valid");
}

TEST(DispatcherRoleTest, OnlyIntrinsicGetsEnumerationsAndAssociationsAreReads) {
  auto op = [](const std::string& method, bool intrinsic = true) {
    Request r;
    r.method = method;
    r.intrinsic = intrinsic;
    return r;
  };
  for (const char* read : {"GetClass", "EnumerateClasses", "EnumerateClassNames", "GetInstance",
                           "EnumerateInstances", "EnumerateInstanceNames", "GetProperty",
                           "Associators", "AssociatorNames", "References", "ReferenceNames"}) {
    EXPECT_TRUE(Dispatcher::IsRead(op(read))) << read;
    EXPECT_FALSE(Dispatcher::IsRead(op(read, false))) << "a method named " << read;
  }
  for (const char* write : {"CreateInstance", "ModifyInstance", "DeleteInstance", "SetProperty",
                            "CreateClass", "ModifyClass", "DeleteClass", "SetQualifier",
                            "DeleteQualifier", "ExecQuery", "getinstance", ""}) {
    EXPECT_FALSE(Dispatcher::IsRead(op(write))) << write;
  }
  EXPECT_FALSE(Dispatcher::IsRead(op("RequestStateChange", false)));
}

TEST_F(DispatcherTest, ReadersOnlyReadAndPeersWithoutARoleNothing) {
  const std::string enumerate = IMethodCall(
      "1", "EnumerateInstances", kNs,
      {{"ClassName", "", Value::Reference({"", {}, "Msvm_VirtualSystemCollection", {}})}});
  const ObjectPath target = PathTo("Msvm_VirtualSystemCollection", "InstanceID", "grp-1");
  const std::string poke = MethodCall("1", target, "Poke", {{"Level", "", Value::Scalar("3")}});
  const std::string object = "root%2Fvirtualization%2Fv2%3AMsvm_VirtualSystemCollection";
  auto answer = [&](const std::string& method, const std::string& body, Role role) {
    HttpResponse http = d_.Handle(Post(method, object, body, role));
    EXPECT_EQ(http.status, 200) << http.body;
    return *ParseResponse(http.body);
  };

  Response read = answer("EnumerateInstances", enumerate, Role::kReader);
  EXPECT_FALSE(read.error) << read.description;
  EXPECT_EQ(read.instances.size(), 2u);
  Response refused = answer("Poke", poke, Role::kReader);
  EXPECT_EQ(refused.cim_status, 2);  // CIM_ERR_ACCESS_DENIED
  EXPECT_NE(refused.description.find("alice"), std::string::npos) << refused.description;
  EXPECT_NE(refused.description.find("group vmgroup"), std::string::npos) << refused.description;
  EXPECT_TRUE(groups_->last_args.empty()) << "the refused method did not run";

  for (const auto& [method, body] : {std::pair{"EnumerateInstances", enumerate}, {"Poke", poke}}) {
    Response none = answer(method, body, Role::kNone);
    EXPECT_EQ(none.cim_status, 2) << method;
    EXPECT_NE(none.description.find("alice"), std::string::npos) << none.description;
  }
  EXPECT_FALSE(answer("Poke", poke, Role::kAdmin).error);
  EXPECT_EQ(groups_->last_args.at("Level").scalar, "3");
}

}  // namespace
}  // namespace vmgroup::cim
