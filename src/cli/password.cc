#include "cli/password.h"

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <fstream>

namespace vmgroup::cli {
namespace {

// What an http(s):// endpoint holds before '@' (as cim::HttpClient reads
// it); nullopt when nothing.
std::optional<std::string> UserInfo(const std::string& endpoint) {
  std::string rest;
  if (endpoint.starts_with("https://")) {
    rest = endpoint.substr(8);
  } else if (endpoint.starts_with("http://")) {
    rest = endpoint.substr(7);
  } else {
    return std::nullopt;
  }
  rest = rest.substr(0, rest.find('/'));
  const size_t at = rest.rfind('@');
  if (at == std::string::npos) return std::nullopt;
  return rest.substr(0, at);
}

// The first line of `path`, without its line end.
Result<std::string> FirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) {
    return Status::InvalidArgument("--password-file " + path +
                                   " cannot be read, or is empty: it holds the password on its "
                                   "first line");
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.empty()) {
    return Status::InvalidArgument("--password-file " + path + " has an empty first line");
  }
  return line;
}

}  // namespace

std::string EndpointUser(const std::string& endpoint) {
  auto info = UserInfo(endpoint);
  return info ? info->substr(0, info->find(':')) : "";
}

Result<std::string> PasswordFor(const std::string& endpoint, bool from_command_line,
                                const PasswordSources& sources) {
  const auto info = UserInfo(endpoint);
  if (!info) return std::string();
  const std::string user = info->substr(0, info->find(':'));
  if (info->find(':') != std::string::npos) {
    if (from_command_line) {
      return Status::InvalidArgument(
          "a password on the command line is readable by every local user (ps); give --connect "
          "...://" +
          user +
          "@HOST:PORT and the password in --password-file FILE, in $VMGROUP_PASSWORD or at the "
          "prompt");
    }
    return std::string();  // $VMGROUP_CONNECT's own: not on the command line
  }
  if (!sources.file.empty()) return FirstLine(sources.file);
  if (sources.env) return *sources.env;
  if (sources.prompt) {
    auto typed = sources.prompt("password for " + user + ": ");
    if (typed.ok() || typed.status().code() != Code::kUnavailable) return typed;
  }
  return Status::InvalidArgument("no password for " + user +
                                 ": give --password-file FILE or set $VMGROUP_PASSWORD (there "
                                 "is no terminal to ask on)");
}

Result<std::string> PromptOnTerminal(const std::string& prompt) {
  const int fd = ::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return Status::Unavailable("no terminal");
  termios saved{};
  const bool tty = ::tcgetattr(fd, &saved) == 0;
  if (tty) {
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    quiet.c_lflag |= ECHONL;  // the newline typed still shows
    ::tcsetattr(fd, TCSAFLUSH, &quiet);
  }
  (void)!::write(fd, prompt.data(), prompt.size());
  std::string line;
  char c;
  while (::read(fd, &c, 1) == 1 && c != '\n') line += c;
  if (tty) ::tcsetattr(fd, TCSAFLUSH, &saved);
  ::close(fd);
  if (line.empty()) return Status::InvalidArgument("no password typed");
  return line;
}

}  // namespace vmgroup::cli
