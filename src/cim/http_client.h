// HttpClient: posts CIM-XML requests to vmgroupd over a unix socket, HTTP or
// HTTPS, with libcurl, keeping the connection alive between requests.
// HTTPS verifies the server's certificate and name, against the system's CA
// store or the CA file given. One client per thread.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "base/result.h"
#include "cim/http_message.h"

namespace vmgroup::cim {

class HttpClient {
 public:
  struct Options {
    // PEM file of the CA(s) that may vouch for an https:// server, instead
    // of the system's CA store; empty: the system's CA store.
    std::string cacert;
    // The password of the endpoint's user, kept out of the endpoint (and so
    // out of argv); empty: the endpoint's own, if any.
    std::string password;
  };

  // `endpoint`: "unix:/run/vmgroup/vmgroupd.sock", "http://[user:pass@]host[:port]"
  // (port 5988 by default) or "https://[user:pass@]host[:port]" (5989).
  // InvalidArgument for anything else. Connects lazily.
  static Result<std::unique_ptr<HttpClient>> Create(const std::string& endpoint,
                                                    const Options& options = {});
  ~HttpClient();

  // The server's answer, whatever its status. Unavailable when the server
  // cannot be reached or, over HTTPS, cannot prove it is `host` (the message
  // says which and what to do); Timeout past `timeout`; TooLarge for an
  // answer over 256 MiB; InvalidArgument for a CA file that cannot be used.
  Result<HttpResponse> Post(const std::string& target, Headers headers, const std::string& body,
                            std::chrono::milliseconds timeout);

 private:
  HttpClient() = default;

  std::string unix_path_;  // for unix:, else empty
  std::string base_url_;   // "https://host:port", "http://localhost" for unix:
  std::string user_, password_;
  Options options_;
  void* curl_ = nullptr;  // CURL*, kept for its connection
};

}  // namespace vmgroup::cim
