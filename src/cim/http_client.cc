#include "cim/http_client.h"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

namespace vmgroup::cim {

Result<std::unique_ptr<HttpClient>> HttpClient::Create(const std::string& endpoint) {
  std::unique_ptr<HttpClient> c(new HttpClient());
  if (endpoint.starts_with("unix:")) {
    c->unix_path_ = endpoint.substr(5);
    if (c->unix_path_.empty()) return Status::InvalidArgument("unix: needs a socket path");
    c->host_ = "localhost";
    return c;
  }
  if (!endpoint.starts_with("http://")) {
    return Status::InvalidArgument("cannot connect to '" + endpoint +
                                   "': use unix:PATH or http://HOST:PORT");
  }
  std::string rest = endpoint.substr(7);
  if (size_t slash = rest.find('/'); slash != std::string::npos) rest.resize(slash);
  if (size_t at = rest.rfind('@'); at != std::string::npos) {
    c->authorization_ = "Basic " + Base64Encode(rest.substr(0, at));
    rest = rest.substr(at + 1);
  }
  c->host_ = rest;
  const size_t colon = rest.rfind(':');
  const bool has_port = colon != std::string::npos && rest.back() != ']';
  c->port_ = has_port ? rest.substr(colon + 1) : "5988";
  std::string host = rest.substr(0, has_port ? colon : rest.size());
  if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
  if (host.empty() || c->port_.empty()) {
    return Status::InvalidArgument("no host or port in " + endpoint);
  }
  c->tcp_host_ = host;
  return c;
}

Status HttpClient::Connect(Deadline) {
  if (!unix_path_.empty()) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (unix_path_.size() >= sizeof addr.sun_path) {
      return Status::InvalidArgument("socket path too long: " + unix_path_);
    }
    std::memcpy(addr.sun_path, unix_path_.c_str(), unix_path_.size() + 1);
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      return Status::Unavailable("cannot reach vmgroupd at unix:" + unix_path_ + ": " +
                                 std::strerror(errno));
    }
    conn_ = std::make_unique<HttpConnection>(std::move(fd));
    return Status::Ok();
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(tcp_host_.c_str(), port_.c_str(), &hints, &res); rc != 0) {
    return Status::Unavailable("cannot resolve " + tcp_host_ + ": " + ::gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, ::freeaddrinfo);
  std::string why;
  for (addrinfo* a = res; a; a = a->ai_next) {
    UniqueFd fd(::socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (::connect(fd.get(), a->ai_addr, a->ai_addrlen) == 0) {
      conn_ = std::make_unique<HttpConnection>(std::move(fd));
      return Status::Ok();
    }
    why = std::strerror(errno);
  }
  return Status::Unavailable("cannot reach vmgroupd at " + host_ + ": " + why);
}

Result<HttpResponse> HttpClient::Exchange(const std::string& request, Deadline deadline) {
  // A server may answer before the whole request is in (413 for a body
  // over its limit) and close: its answer is still there to read.
  const Status sent = conn_->Write(request, deadline);
  auto head = conn_->ReadHead(deadline, 64 << 10);
  if (!head.ok()) return sent.ok() ? head.status() : sent;
  VMG_ASSIGN_OR_RETURN(HttpResponse r, ParseResponseHead(*head));
  constexpr size_t kMaxBody = 256 << 20;
  if (const std::string* te = r.Header("Transfer-Encoding"); te && *te != "identity") {
    VMG_ASSIGN_OR_RETURN(r.body, conn_->ReadChunked(deadline, kMaxBody));
  } else {
    VMG_ASSIGN_OR_RETURN(int64_t n, ContentLength(r.headers));
    if (n < 0) return Status::InvalidArgument("response without Content-Length");
    VMG_ASSIGN_OR_RETURN(r.body, conn_->ReadBody(static_cast<size_t>(n), deadline));
  }
  if (const std::string* c = r.Header("Connection"); c && c->find("lose") != std::string::npos) {
    conn_.reset();
  }
  return r;
}

Result<HttpResponse> HttpClient::Post(const std::string& target, Headers headers,
                                      const std::string& body, std::chrono::milliseconds timeout) {
  const Deadline deadline = Clock::now() + timeout;
  std::string request = "POST " + target + " HTTP/1.1\r\nHost: " + host_ + "\r\n";
  if (!authorization_.empty()) request += "Authorization: " + authorization_ + "\r\n";
  for (const auto& [k, v] : headers) request += k + ": " + v + "\r\n";
  request += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  const bool reused = conn_ != nullptr;
  if (!conn_) VMG_RETURN_IF_ERROR(Connect(deadline));
  auto r = Exchange(request, deadline);
  // A kept-alive connection the server has meanwhile closed fails at once:
  // one fresh attempt (the server answers every request it reads, so it
  // never saw this one).
  if (!r.ok() && reused && r.status().code() == Code::kUnavailable) {
    conn_.reset();
    VMG_RETURN_IF_ERROR(Connect(deadline));
    r = Exchange(request, deadline);
  }
  if (!r.ok()) conn_.reset();
  return r;
}

}  // namespace vmgroup::cim
