// HttpClient: posts CIM-XML requests to vmgroupd over a unix socket or TCP,
// on one keep-alive connection, reconnecting once when the server closed an
// idle one.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "base/result.h"
#include "cim/http_io.h"
#include "cim/http_message.h"

namespace vmgroup::cim {

class HttpClient {
 public:
  // `endpoint`: "unix:/run/vmgroup/vmgroupd.sock" or "http://[user:pass@]host:port".
  // InvalidArgument for anything else. Connects lazily.
  static Result<std::unique_ptr<HttpClient>> Create(const std::string& endpoint);

  Result<HttpResponse> Post(const std::string& target, Headers headers, const std::string& body,
                            std::chrono::milliseconds timeout);

  // "host:port" for TCP, "localhost" for a unix socket: the Host header.
  const std::string& host() const { return host_; }

 private:
  HttpClient() = default;
  Status Connect(Deadline deadline);
  Result<HttpResponse> Exchange(const std::string& request, Deadline deadline);

  std::string unix_path_;        // for unix:, else empty
  std::string tcp_host_, port_;  // for http://
  std::string host_;
  std::string authorization_;  // "Basic ..." or empty
  std::unique_ptr<HttpConnection> conn_;
};

}  // namespace vmgroup::cim
