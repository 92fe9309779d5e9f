// NbdReader: one read-only client connection, through libnbd, to an export
// of an NBD server (QEMU's own, or a qemu-storage-daemon) on a unix socket,
// or over TCP with TLS (x509, a client certificate on either side),
// for what a backup session gives as data rather than as NBD: the export's
// size, and the ranges a metadata context marks — `qemu:dirty-bitmap:NAME`
// marks the blocks changed since a reference point — in the shape of
// Hyper-V's GetVirtualDiskChanges (ChangedByteOffsets/Lengths and
// ProcessedByteLength).
//
// Every call ends by its deadline, a point on `env`'s clock: libnbd's
// blocking calls wait without bound, so its asynchronous calls are driven
// here by poll(2) for the time left on that clock.
//
// Thread-compatible: one call at a time on a reader.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/env.h"
#include "base/result.h"

struct nbd_handle;

namespace vmgroup::storage {

struct ByteRange {
  uint64_t offset = 0;
  uint64_t length = 0;
  bool operator==(const ByteRange&) const = default;
};

// What NbdReader::Marked found.
struct MarkedRanges {
  // In order of offset, none empty, none adjacent to the next (merged).
  std::vector<ByteRange> ranges;
  // How many bytes from the offset asked for `ranges` account for: all of
  // the length asked, unless the bound on ranges stopped it, then up to the
  // start of the first range left out. Ask again from offset + processed.
  uint64_t processed = 0;
};

// The files libnbd's nbd_set_tls_certificates(3) reads from a directory to
// connect as a client (as QEMU's tls-creds-x509 endpoint=client does): the
// CA's certificate, which the server's must be signed by, and the client's
// own certificate, signed by the CA the server trusts, with its key.
inline constexpr const char* kNbdClientTlsFiles[] = {"ca-cert.pem", "client-cert.pem",
                                                     "client-key.pem"};
// OK when directory `dir` holds each of kNbdClientTlsFiles. NotFound naming
// every one it lacks (by name, in that order).
Status CheckNbdClientTlsDir(Env* env, const std::string& dir);

// A TCP server that admits only TLS clients with a certificate.
struct NbdTlsServer {
  // The numeric address or name to connect to; the server's certificate
  // must name it (libnbd verifies it against this).
  std::string host;
  int port = 0;
  // The client's certificate, key and CA (kNbdClientTlsFiles).
  std::string tls_dir;
};

class NbdReader {
 public:
  // Connects to export `export_name` of the NBD server listening on the unix
  // socket at `socket`, asking for metadata context `context` (none when
  // empty). OK: connected, and the server offers `context`.
  // NotFound: the server has no such export, or does not offer `context`
  // for it. Unavailable: nobody answers at `socket`, or the connection broke
  // during the handshake. Timeout: no handshake by `deadline`.
  // InvalidArgument: libnbd refused a name. Each names the export and the
  // socket, with libnbd's message where libnbd gave one.
  static Result<std::unique_ptr<NbdReader>> Open(Env* env, const std::string& socket,
                                                 const std::string& export_name,
                                                 const std::string& context, Deadline deadline);
  // As Open, over TCP to `server` with TLS required: the handshake verifies
  // the server's certificate against `server.host` and presents the
  // client's. InvalidArgument, before connecting: an empty host, a port
  // outside 1..65535, or a tls_dir not absolute. Unavailable also when the
  // TLS handshake fails (an unknown CA, a certificate that does not name
  // the host, or one the server refuses). NotSupported: this libnbd has no
  // TLS. Names the export, host and port.
  static Result<std::unique_ptr<NbdReader>> OpenTls(Env* env, const NbdTlsServer& server,
                                                    const std::string& export_name,
                                                    const std::string& context, Deadline deadline);
  // Closes the connection.
  ~NbdReader();
  NbdReader(const NbdReader&) = delete;
  NbdReader& operator=(const NbdReader&) = delete;

  // The export's size in bytes.
  uint64_t size() const { return size_; }

  // The ranges within [offset, offset + length) that the context marks
  // (bit 0 of its flags: for qemu:dirty-bitmap:*, changed), at most
  // `max_ranges` of them. A server may describe less than it was asked
  // for; this asks again until the range is covered or the bound is met.
  // InvalidArgument: no context was asked for at Open, `length` is 0, the
  // range ends past the export, or `max_ranges` is 0. Failed: the server
  // refused a request. Unavailable: the connection broke (the reader is of
  // no further use). Timeout: not covered by `deadline`.
  Result<MarkedRanges> Marked(uint64_t offset, uint64_t length, size_t max_ranges,
                              Deadline deadline);

 private:
  struct HandleCloser {
    void operator()(nbd_handle* h) const;
  };
  using Handle = std::unique_ptr<nbd_handle, HandleCloser>;

  // Open's and OpenTls's handshake once `connect` set `h` up for the
  // server (TLS) and began connecting it; `name` says which export where.
  static Result<std::unique_ptr<NbdReader>> Connect(
      Env* env, std::string name, const std::string& export_name, const std::string& context,
      Deadline deadline, const std::function<Status(nbd_handle*)>& connect);

  NbdReader(Env* env, Handle handle, std::string name, std::string context, uint64_t size)
      : env_(env),
        handle_(std::move(handle)),
        name_(std::move(name)),
        context_(std::move(context)),
        size_(size) {}

  Env* const env_;
  const Handle handle_;
  const std::string name_;  // "export E at S", for messages
  const std::string context_;
  const uint64_t size_;
};

}  // namespace vmgroup::storage
