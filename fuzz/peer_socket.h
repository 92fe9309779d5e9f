// PeerSocket (fuzzing only): the far end of a unix socket, for harnesses that
// fuzz a client which connects by path (QmpClient, GuestAgent). It answers
// each connection with bytes the harness chose (the fuzzer's input), then
// shuts its write side, so the client reads those bytes and then the end of
// the stream, never a wait; what the client writes is read and dropped until
// it hangs up. One connection at a time, so each input runs the same way
// every time.
//
// Usage per input: Answer(...), let the client connect once and finish, then
// Served() before the next input. The socket lives in a fresh directory under
// $TMPDIR (else /tmp), removed with the PeerSocket.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "base/unique_fd.h"

namespace vmgroup::fuzz {

class PeerSocket {
 public:
  // The bytes to send, given the first line the client wrote (through its
  // '\n'; empty unless Answer was told to wait for it).
  using Reply = std::function<std::string(const std::string& first_line)>;

  PeerSocket() {
    const char* tmp = std::getenv("TMPDIR");
    dir_ = std::string(tmp && *tmp ? tmp : "/tmp") + "/vmg-fuzz-XXXXXX";
    if (!::mkdtemp(dir_.data())) Die("mkdtemp " + dir_);
    path_ = dir_ + "/peer.sock";
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path_.size() >= sizeof addr.sun_path) Die("socket path too long: " + path_);
    std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
    listen_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!listen_.valid() ||
        ::bind(listen_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) ||
        ::listen(listen_.get(), 1)) {
      Die("listen on " + path_);
    }
    thread_ = std::thread([this] { Serve(); });
  }
  ~PeerSocket() {
    ::shutdown(listen_.get(), SHUT_RDWR);  // ends the accept
    thread_.join();
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  PeerSocket(const PeerSocket&) = delete;
  PeerSocket& operator=(const PeerSocket&) = delete;

  const std::string& path() const { return path_; }

  // The next connection is answered with `reply`; with `after_first_line`,
  // only once the client has written its first line.
  void Answer(Reply reply, bool after_first_line) {
    std::lock_guard lock(mu_);
    reply_ = std::move(reply);
    after_first_line_ = after_first_line;
    ++answers_;
  }

  // Waits until the connection answered last has been closed by both ends.
  // REQUIRES: the client connected once since Answer (else this never returns,
  // which libFuzzer reports as a timeout).
  void Served() {
    std::unique_lock lock(mu_);
    done_.wait(lock, [this] { return served_ == answers_; });
  }

 private:
  [[noreturn]] static void Die(const std::string& what) {
    std::perror(what.c_str());
    std::abort();
  }

  void Serve() {
    while (true) {
      UniqueFd conn(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!conn.valid()) return;  // shut down
      Reply reply;
      bool after_first_line;
      {
        std::lock_guard lock(mu_);
        reply = reply_;
        after_first_line = after_first_line_;
      }
      std::string first_line;
      if (after_first_line) first_line = ReadLine(conn.get());
      const std::string bytes = reply(first_line);
      for (size_t done = 0; done < bytes.size();) {
        ssize_t n = ::send(conn.get(), bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
        if (n <= 0) break;  // the client hung up early: it has read what it wanted
        done += static_cast<size_t>(n);
      }
      ::shutdown(conn.get(), SHUT_WR);
      char sink[4096];
      while (::read(conn.get(), sink, sizeof sink) > 0) {
      }
      conn.reset();
      std::lock_guard lock(mu_);
      ++served_;
      done_.notify_all();
    }
  }

  // What the client wrote up to and including its first '\n' (or until it
  // hung up).
  static std::string ReadLine(int fd) {
    std::string line;
    char c;
    while (line.empty() || line.back() != '\n') {
      if (::read(fd, &c, 1) != 1) break;
      line += c;
    }
    return line;
  }

  std::string dir_, path_;
  UniqueFd listen_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable done_;
  Reply reply_;                    // guarded by mu_
  bool after_first_line_ = false;  // guarded by mu_
  uint64_t answers_ = 0;           // guarded by mu_
  uint64_t served_ = 0;            // guarded by mu_
};

}  // namespace vmgroup::fuzz
