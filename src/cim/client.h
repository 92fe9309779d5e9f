// CimClient: the client side of CIM-XML for one namespace — the intrinsic
// operations the CLI needs and InvokeMethod — over an HttpClient. CIM
// errors come back as Status values that keep the server's description.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "cim/http_client.h"
#include "cim/xml_reader.h"
#include "cim/xml_writer.h"

namespace vmgroup::cim {

class CimClient {
 public:
  CimClient(std::unique_ptr<HttpClient> http, std::string ns);

  Result<std::vector<NamedInstance>> EnumerateInstances(const std::string& class_name);
  Result<Instance> GetInstance(const ObjectPath& path);
  // Instances associated with `object`, optionally through `assoc_class`
  // and of `result_class`.
  Result<std::vector<NamedInstance>> Associators(const ObjectPath& object,
                                                 const std::string& assoc_class,
                                                 const std::string& result_class);
  // ReturnValue and out-parameters; `target` must carry its keys.
  Result<Response> Invoke(const ObjectPath& target, const std::string& method,
                          const std::vector<OutParam>& args);

  const std::vector<std::string>& namespace_parts() const { return ns_; }
  // How long each later request may take before it fails with Timeout
  // (60 s unless set): a caller that knows how soon an answer is useless
  // (a step under a pause lease) says so.
  void set_timeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }

 private:
  Result<Response> Call(const std::string& method, const std::string& cim_object,
                        const std::string& body);

  std::unique_ptr<HttpClient> http_;
  std::vector<std::string> ns_;
  std::string ns_text_;
  std::chrono::milliseconds timeout_{60'000};
};

// The Status a CIM error status code becomes on the client.
Status FromCimError(int cim_status, const std::string& description);

}  // namespace vmgroup::cim
