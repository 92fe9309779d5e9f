// Reading and writing HTTP/1.1 messages on a socket, for the server and the
// client alike: heads up to a size limit, bodies by Content-Length or
// chunked, every wait bounded by a deadline.
#pragma once

#include <string>

#include "base/env.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "cim/http_message.h"

namespace vmgroup::cim {

class HttpConnection {
 public:
  explicit HttpConnection(UniqueFd fd) : fd_(std::move(fd)) {}

  // The head of the next message: start line and headers, up to the empty
  // line. Unavailable when the peer closed before sending a byte (an idle
  // keep-alive connection ending); Timeout; ResourceExhausted past `max`.
  Result<std::string> ReadHead(Deadline deadline, size_t max);
  // Exactly `n` body bytes.
  Result<std::string> ReadBody(size_t n, Deadline deadline);
  // A chunked body, at most `max` bytes.
  Result<std::string> ReadChunked(Deadline deadline, size_t max);

  Status Write(const std::string& data, Deadline deadline);

  int fd() const { return fd_.get(); }

 private:
  // Reads more into buffer_; Unavailable on EOF.
  Status Fill(Deadline deadline);
  Result<std::string> ReadLine(Deadline deadline, size_t max);

  UniqueFd fd_;
  std::string buffer_;
};

// "POST /cimom HTTP/1.1" and headers; InvalidArgument when malformed.
Result<HttpRequest> ParseRequestHead(const std::string& head, std::string* version);
// "HTTP/1.1 200 OK" and headers.
Result<HttpResponse> ParseResponseHead(const std::string& head);

// The Content-Length of a message: -1 when absent, InvalidArgument when not a number.
Result<int64_t> ContentLength(const Headers& headers);

std::string Base64Encode(std::string_view in);
// InvalidArgument for text that is not base64.
Result<std::string> Base64Decode(std::string_view in);

}  // namespace vmgroup::cim
