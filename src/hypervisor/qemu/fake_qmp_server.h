// FakeQmpServer (tests only): a unix-socket peer that speaks just enough QMP
// to test QmpClient's handling of errors, events, late replies and EOF
// without starting QEMU. `reply` maps each received command to the lines to
// send back; returning std::nullopt closes the connection. `before_greeting`
// lines reach the client ahead of the greeting, as QEMU's stale output can.
// A descriptor passed with a command reaches the handler as the command's
// "fd" member (the handler closes it).
#pragma once

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace vmgroup::hypervisor::qemu {

class FakeQmpServer {
 public:
  using Handler = std::function<std::optional<std::vector<std::string>>(const nlohmann::json&)>;

  FakeQmpServer(std::string path, Handler reply, std::vector<std::string> before_greeting = {})
      : path_(std::move(path)), before_greeting_(std::move(before_greeting)) {
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
    ::unlink(path_.c_str());
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(listen_fd_, 1);
    thread_ = std::thread([this, reply = std::move(reply)] { Serve(reply); });
  }
  ~FakeQmpServer() {
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    thread_.join();
    ::unlink(path_.c_str());
  }

  // Id of a command as the client sent it, to echo in a reply.
  static std::string Reply(const nlohmann::json& cmd, const nlohmann::json& ret) {
    return nlohmann::json{{"return", ret}, {"id", cmd["id"]}}.dump();
  }
  static std::string Error(const nlohmann::json& cmd, const std::string& desc) {
    return nlohmann::json{{"error", {{"class", "GenericError"}, {"desc", desc}}}, {"id", cmd["id"]}}
        .dump();
  }

 private:
  void Serve(const Handler& reply) {
    int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) return;
    for (const auto& l : before_greeting_) Send(fd, l);
    Send(fd, R"({"QMP": {"version": {"qemu": {"major": 7}}, "capabilities": []}})");
    std::string buf;
    char chunk[4096];
    int passed = -1;  // a descriptor that came with the bytes, for the next command
    while (true) {
      ssize_t n = Receive(fd, chunk, sizeof chunk, &passed);
      if (n <= 0) break;
      buf.append(chunk, static_cast<size_t>(n));
      size_t nl;
      bool close = false;
      while ((nl = buf.find('\n')) != std::string::npos) {
        auto cmd = nlohmann::json::parse(buf.substr(0, nl));
        buf.erase(0, nl + 1);
        if (passed >= 0) cmd["fd"] = std::exchange(passed, -1);  // the handler owns it
        if (cmd["execute"] == "qmp_capabilities") {
          Send(fd, Reply(cmd, nlohmann::json::object()));
          continue;
        }
        auto lines = reply(cmd);
        if (!lines) {
          close = true;
          break;
        }
        for (const auto& l : *lines) Send(fd, l);
      }
      if (close) break;
    }
    ::close(fd);
  }
  // read(), keeping a descriptor passed with the bytes (SCM_RIGHTS) in *passed.
  static ssize_t Receive(int fd, char* buf, size_t size, int* passed) {
    char control[CMSG_SPACE(sizeof(int))] = {};
    iovec iov{buf, size};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    if (cmsghdr* c = CMSG_FIRSTHDR(&msg); n > 0 && c != nullptr && c->cmsg_type == SCM_RIGHTS) {
      std::memcpy(passed, CMSG_DATA(c), sizeof(int));
    }
    return n;
  }
  // A client may already have hung up (tests of refused peers do): no SIGPIPE.
  static void Send(int fd, const std::string& line) {
    std::string s = line + "\r\n";
    (void)!::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
  }

  std::string path_;
  std::vector<std::string> before_greeting_;
  int listen_fd_;
  std::thread thread_;
};

}  // namespace vmgroup::hypervisor::qemu
