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

const char* ReasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Payload Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

}  // namespace vmgroup::cim
