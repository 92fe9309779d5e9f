#include "cim/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <mutex>

namespace vmgroup::cim {
namespace {

constexpr size_t kMaxAnswerBytes = 256 << 20;

struct Answer {
  HttpResponse response;
  bool too_large = false;
};

size_t OnBody(char* data, size_t size, size_t n, void* cls) {
  auto* a = static_cast<Answer*>(cls);
  const size_t bytes = size * n;
  if (a->response.body.size() + bytes > kMaxAnswerBytes) {
    a->too_large = true;
    return 0;  // libcurl stops with CURLE_WRITE_ERROR
  }
  a->response.body.append(data, bytes);
  return bytes;
}

size_t OnHeader(char* data, size_t size, size_t n, void* cls) {
  auto* a = static_cast<Answer*>(cls);
  std::string_view line(data, size * n);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (line.starts_with("HTTP/")) {
    a->response.headers.clear();  // a new answer's head (after 100 Continue)
  } else if (const size_t colon = line.find(':'); colon != std::string_view::npos) {
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    a->response.headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
  }
  return size * n;
}

struct SlistFree {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

}  // namespace

Result<std::unique_ptr<HttpClient>> HttpClient::Create(const std::string& endpoint,
                                                       const Options& options) {
  static std::once_flag init;
  std::call_once(init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  std::unique_ptr<HttpClient> c(new HttpClient());
  c->options_ = options;
  if (endpoint.starts_with("unix:")) {
    c->unix_path_ = endpoint.substr(5);
    if (c->unix_path_.empty()) return Status::InvalidArgument("unix: needs a socket path");
    c->base_url_ = "http://localhost";
    return c;
  }
  const bool https = endpoint.starts_with("https://");
  if (!https && !endpoint.starts_with("http://")) {
    return Status::InvalidArgument("cannot connect to '" + endpoint +
                                   "': use unix:PATH, https://HOST:PORT or http://HOST:PORT");
  }
  std::string rest = endpoint.substr(https ? 8 : 7);
  if (size_t slash = rest.find('/'); slash != std::string::npos) rest.resize(slash);
  if (size_t at = rest.rfind('@'); at != std::string::npos) {
    const std::string userinfo = rest.substr(0, at);
    const size_t colon = userinfo.find(':');
    c->user_ = userinfo.substr(0, colon);
    c->password_ = colon == std::string::npos ? "" : userinfo.substr(colon + 1);
    if (!options.password.empty()) c->password_ = options.password;
    rest = rest.substr(at + 1);
  }
  const size_t colon = rest.rfind(':');
  const bool has_port = colon != std::string::npos && rest.back() != ']';
  const std::string port = has_port ? rest.substr(colon + 1) : (https ? "5989" : "5988");
  const std::string host = rest.substr(0, has_port ? colon : rest.size());
  const bool numeric =
      !port.empty() && port.size() <= 5 &&
      std::all_of(port.begin(), port.end(), [](unsigned char ch) { return std::isdigit(ch); });
  if (host.empty() || host == "[]" || !numeric) {
    return Status::InvalidArgument("no host or port in " + endpoint);
  }
  c->base_url_ = (https ? "https://" : "http://") + host + ":" + port;
  return c;
}

HttpClient::~HttpClient() {
  if (curl_) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

Result<HttpResponse> HttpClient::Post(const std::string& target, Headers headers,
                                      const std::string& body, std::chrono::milliseconds timeout) {
  if (!curl_) curl_ = curl_easy_init();
  CURL* c = static_cast<CURL*>(curl_);
  if (!c) return Status::Unavailable("cannot start libcurl");
  curl_easy_reset(c);  // options only: the connection stays for reuse
  std::unique_ptr<curl_slist, SlistFree> list;
  for (const auto& [k, v] : headers) {
    curl_slist* more = curl_slist_append(list.get(), (k + ": " + v).c_str());
    if (!more) return Status::Unavailable("out of memory");
    (void)list.release();
    list.reset(more);
  }
  const std::string url = base_url_ + target;
  Answer answer;
  char why[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  if (!unix_path_.empty()) curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, unix_path_.c_str());
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list.get());
  if (!user_.empty()) {
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
    curl_easy_setopt(c, CURLOPT_USERNAME, user_.c_str());
    curl_easy_setopt(c, CURLOPT_PASSWORD, password_.c_str());
  }
  curl_easy_setopt(c, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
  if (!options_.cacert.empty()) {
    // That CA alone: the system's store is neither loaded nor trusted.
    curl_easy_setopt(c, CURLOPT_CAINFO, options_.cacert.c_str());
    curl_easy_setopt(c, CURLOPT_CAPATH, nullptr);
  }
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &answer);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &answer);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, why);

  const CURLcode rc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_reset(c);  // it points into this frame; the connection stays
  const std::string where = unix_path_.empty() ? base_url_ : "unix:" + unix_path_;
  const std::string detail = why[0] ? why : curl_easy_strerror(rc);
  switch (rc) {
    case CURLE_OK:
      break;
    case CURLE_OPERATION_TIMEDOUT:
      return Status::Timeout("vmgroupd at " + where + " did not answer in time: " + detail);
    case CURLE_PEER_FAILED_VERIFICATION:
      return Status::Unavailable(
          "refusing " + where + ": it cannot prove it is that server (" + detail +
          "); if its certificate is signed by a CA of your own, trust that CA with --cacert FILE");
    case CURLE_SSL_CACERT_BADFILE:
      return Status::InvalidArgument("cannot use the CA file " + options_.cacert + ": " + detail);
    case CURLE_SSL_CONNECT_ERROR:
      return Status::Unavailable("TLS with " + where + " failed: " + detail);
    case CURLE_WRITE_ERROR:
      if (answer.too_large) {
        return Status::TooLarge("the answer of " + where + " is over " +
                                std::to_string(kMaxAnswerBytes) + " bytes");
      }
      [[fallthrough]];
    default:
      return Status::Unavailable("cannot reach vmgroupd at " + where + ": " + detail);
  }
  answer.response.status = static_cast<int>(status);
  return std::move(answer.response);
}

}  // namespace vmgroup::cim
