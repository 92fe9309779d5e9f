#include "remote/cim_peers.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "base/return_codes.h"
#include "remote/cim_cut_host.h"
#include "schema/classes.h"
#include "schema/values.h"

namespace vmgroup::remote {
namespace {

using CMS = schema::CollectionManagementService;
using CS = schema::ComputerSystem;
using VSC = schema::VirtualSystemCollection;

constexpr auto kString = cim::KeyBinding::Kind::kString;

cim::ObjectPath VmPath(const std::string& vm_id) {
  return {"",
          {},
          CS::kClass,
          {{CS::kCreationClassName, kString, CS::kClass, {}}, {CS::kName, kString, vm_id, {}}}};
}

cim::ObjectPath CollectionPath(const std::string& group_id) {
  return {"", {}, VSC::kClass, {{VSC::kCollectionID, kString, group_id, {}}}};
}

cim::OutParam Ref(const char* name, cim::ObjectPath path) {
  return {name, "reference", cim::Value::Reference(std::move(path))};
}

cim::OutParam Scalar(const char* name, const char* type, std::string value) {
  return {name, type, cim::Value::Scalar(std::move(value))};
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// The user an endpoint names ("root" of https://root@h:5989); "" for none.
std::string UserOf(const std::string& endpoint) {
  const size_t scheme = endpoint.find("://");
  if (scheme == std::string::npos) return "";
  std::string rest = endpoint.substr(scheme + 3);
  rest.resize(std::min(rest.size(), rest.find('/')));
  const size_t at = rest.rfind('@');
  return at == std::string::npos ? "" : rest.substr(0, std::min(at, rest.find(':')));
}

// One Join or Leave on one peer: its requests, each given what is left of
// one deadline; every failure named after the host.
class PeerCall {
 public:
  PeerCall(Env* env, std::string name, std::string password_file,
           std::unique_ptr<cim::CimClient> cim, Duration timeout)
      : env_(env),
        name_(std::move(name)),
        password_file_(std::move(password_file)),
        cim_(std::move(cim)),
        timeout_(timeout),
        deadline_(env->Now() + timeout) {}

  // True when the host has the instance `path` names, false when it has
  // none (GetInstance's NotFound).
  Result<bool> Exists(const cim::ObjectPath& path) {
    VMG_RETURN_IF_ERROR(Budget());
    auto got = cim_->GetInstance(path);
    if (got.ok()) return true;
    if (got.status().code() == Code::kNotFound) return false;
    return Named(got.status());
  }

  // True when VM `vm_id` is a member of the host's collection `group_id`.
  Result<bool> IsMember(const std::string& group_id, const std::string& vm_id) {
    VMG_RETURN_IF_ERROR(Budget());
    auto members = cim_->Associators(CollectionPath(group_id),
                                     schema::CollectedVirtualSystems::kClass, CS::kClass);
    if (!members.ok()) return Named(members.status());
    for (const auto& m : *members) {
      const cim::KeyBinding* key = m.path.Key(CS::kName);
      const cim::Property* name = m.instance.Find(CS::kName);
      const std::string id = key ? key->value : name ? name->value.scalar : "";
      if (cim::NameEquals(id, vm_id)) return true;
    }
    return false;
  }

  // `method` of the host's Msvm_CollectionManagementService: OK when it
  // answered 0, else the Status its ReturnValue and reason stand for.
  Status Invoke(const char* method, const std::vector<cim::OutParam>& args) {
    if (service_.class_name.empty()) {
      VMG_RETURN_IF_ERROR(Budget());
      auto found = cim_->EnumerateInstances(CMS::kClass);
      if (!found.ok()) return Named(found.status());
      if (found->empty()) {
        return Named(Status::NotSupported("its vmgroupd serves no " + std::string(CMS::kClass)));
      }
      service_ = (*found)[0].path;
    }
    VMG_RETURN_IF_ERROR(Budget());
    auto r = cim_->Invoke(service_, method, args);
    if (!r.ok()) return Named(r.status());
    if (r->return_value == kRcCompleted) return Status::Ok();
    const cim::Param* why = r->Out(schema::MethodOut::kErrorDescription);
    if (r->return_value == kRcJobStarted) {
      // vmgroupd answers these methods at once (reference §3.1).
      return Named(
          Status::NotSupported(std::string(method) + " started a job, which is not waited for"));
    }
    const std::string reason = why && !why->value.scalar.empty()
                                   ? why->value.scalar
                                   : "ReturnValue " + std::to_string(r->return_value);
    return Named(StatusOfReturnCodeB(r->return_value, std::string(method) + ": " + reason));
  }

  // `s` named after the host. A 401 (PAM refused the password) is told in
  // terms of this host's configuration rather than the CLI's options,
  // which CimClient's message speaks of.
  Status Named(const Status& s) const {
    if (s.code() == Code::kFailed && s.message().starts_with("vmgroupd refused the credentials")) {
      return Status::Failed(name_ + " refused the credentials: check the password in " +
                            password_file_ + " and the user the --peer URL names");
    }
    return s.Annotate(name_);
  }

 private:
  // Before each request: OK with the request's timeout set to what is left
  // of the deadline; Timeout once nothing is.
  Status Budget() {
    const Duration left = deadline_ - env_->Now();
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(left);
    if (ms.count() <= 0) {
      const auto all = std::chrono::duration_cast<std::chrono::milliseconds>(timeout_).count();
      return Status::Timeout(name_ + ": no answer within " + std::to_string(all) + " ms");
    }
    cim_->set_timeout(ms);
    return Status::Ok();
  }

  Env* const env_;
  const std::string name_;  // "host db1"
  const std::string password_file_;
  std::unique_ptr<cim::CimClient> cim_;
  const Duration timeout_;
  const Deadline deadline_;
  cim::ObjectPath service_;  // found at the first Invoke
};

}  // namespace

Result<std::string> CimPeers::Endpoint(const std::string& host) {
  auto it = options_.endpoints.find(host);
  if (it == options_.endpoints.end()) {
    return Status::NotFound("no peer named '" + host + "': add `peer = " + host +
                            "=https://USER@HOST:PORT` to vmgroupd.conf (or --peer " + host +
                            "=https://USER@HOST:PORT) and put USER's password in " +
                            PasswordFile(host));
  }
  return it->second;
}

Status CimPeers::Known(const std::string& host) { return Endpoint(host).status(); }

Result<cim::HttpClient::Options> CimPeers::Credentials(const std::string& host) {
  VMG_ASSIGN_OR_RETURN(std::string endpoint, Endpoint(host));
  cim::HttpClient::Options out;
  const std::string ca = options_.credentials_dir + "/ca.pem";
  if (env_->FileExists(ca)) out.cacert = ca;
  const std::string user = UserOf(endpoint);
  if (user.empty()) return out;  // unix:, or http:// to a daemon without authentication
  const std::string file = PasswordFile(host);
  const std::string holds = ": it must hold, on its first line, the password of user " + user +
                            " on peer " + host + "'s vmgroupd (" + endpoint +
                            "), and be readable by this vmgroupd alone";
  auto text = env_->ReadFile(file);
  if (!text.ok()) {
    return Status(text.status().code(), "cannot read the password for peer " + host + ": " +
                                            text.status().message() + " (" + file + ")" + holds);
  }
  out.password = text->substr(0, text->find('\n'));
  if (!out.password.empty() && out.password.back() == '\r') out.password.pop_back();
  ::explicit_bzero(text->data(), text->size());
  if (out.password.empty()) {
    return Status::InvalidArgument("the password file of peer " + host + ", " + file +
                                   ", has an empty first line" + holds);
  }
  return out;
}

Result<std::unique_ptr<cim::CimClient>> CimPeers::Client(const std::string& host) {
  VMG_ASSIGN_OR_RETURN(std::string endpoint, Endpoint(host));
  VMG_ASSIGN_OR_RETURN(cim::HttpClient::Options options, Credentials(host));
  auto http = cim::HttpClient::Create(endpoint, options);
  if (!http.ok()) return http.status().Annotate("peer " + host);
  return std::make_unique<cim::CimClient>(std::move(http).value(), schema::kNamespace);
}

Result<std::unique_ptr<engine::CutHost>> CimPeers::Connect(const std::string& host) {
  VMG_ASSIGN_OR_RETURN(std::string endpoint, Endpoint(host));
  VMG_ASSIGN_OR_RETURN(cim::HttpClient::Options options, Credentials(host));
  auto cut = CimCutHost::Create(endpoint, options, "host " + host);
  if (!cut.ok()) return cut.status().Annotate("peer " + host);
  return std::unique_ptr<engine::CutHost>(std::move(cut).value());
}

Status CimPeers::Join(const std::string& host, const std::string& group_id,
                      const std::string& group_name, const std::string& vm_id) {
  VMG_ASSIGN_OR_RETURN(auto cim, Client(host));
  PeerCall call(env_, "host " + host, PasswordFile(host), std::move(cim), options_.timeout);
  // The peer keeps collection ids in lower case (CollectionManager).
  const std::string id = Lower(group_id);
  // The VM first: a VM the host does not have leaves no collection behind.
  VMG_ASSIGN_OR_RETURN(bool vm, call.Exists(VmPath(vm_id)));
  if (!vm) return call.Named(Status::NotFound("no VM " + vm_id));
  VMG_ASSIGN_OR_RETURN(bool defined, call.Exists(CollectionPath(id)));
  if (!defined) {
    using Define = CMS::DefineCollection;
    Status made = call.Invoke(
        Define::kMethod,
        {Scalar(Define::kName, "string", group_name), Scalar(Define::kId, "string", id),
         Scalar(Define::kType, "uint16", std::to_string(schema::CollectionType::kVirtualSystems))});
    // Refused as an id in use: another Join defined it meanwhile.
    if (!made.ok()) {
      VMG_ASSIGN_OR_RETURN(bool now, call.Exists(CollectionPath(id)));
      if (!now) return made;
    }
  }
  using Add = CMS::AddMember;
  Status added = call.Invoke(
      Add::kMethod, {Ref(Add::kMember, VmPath(vm_id)), Ref(Add::kCollection, CollectionPath(id))});
  if (added.ok()) return added;
  // The host refuses a member added twice as it refuses a bad parameter
  // (32773): a member already is what was asked for.
  VMG_ASSIGN_OR_RETURN(bool member, call.IsMember(id, vm_id));
  return member ? Status::Ok() : added;
}

Status CimPeers::Leave(const std::string& host, const std::string& group_id,
                       const std::string& vm_id) {
  VMG_ASSIGN_OR_RETURN(auto cim, Client(host));
  PeerCall call(env_, "host " + host, PasswordFile(host), std::move(cim), options_.timeout);
  using Remove = CMS::RemoveMemberById;
  // OK on the host when it has no such membership, or no such collection.
  return call.Invoke(Remove::kMethod, {Ref(Remove::kMember, VmPath(vm_id)),
                                       Scalar(Remove::kCollectionId, "string", Lower(group_id))});
}

}  // namespace vmgroup::remote
