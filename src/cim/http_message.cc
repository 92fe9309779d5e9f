#include "cim/http_message.h"

#include "cim/model.h"

namespace vmgroup::cim {

const std::string* FindHeader(const Headers& headers, std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (NameEquals(k, name)) return &v;
  }
  return nullptr;
}

HttpResponse TextResponse(int status, const std::string& text, const std::string& cim_error) {
  HttpResponse r;
  r.status = status;
  if (!cim_error.empty()) r.headers.emplace_back("CIMError", cim_error);
  r.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
  r.body = text + "\n";
  return r;
}

}  // namespace vmgroup::cim
