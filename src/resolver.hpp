// resolver.hpp - turns an Endpoint into one socket address, on the loop thread.
#pragma once

#include <functional>
#include <memory>

#include "ksnet/address.hpp"
#include "ksnet/runtime.hpp"

namespace ksnet {

// Called on the loop thread with a libuv status and, when it is 0, the address.
using ResolveDone = std::function<void(int status, const sockaddr_storage &addr, socklen_t len)>;

// Numeric hosts resolve at once (nullptr); names go through uv_getaddrinfo, which runs
// in libuv's thread pool, so the loop never blocks on a DNS answer: the request, until
// `done` is called (uv_cancel takes it back while it is still queued). `passive` is for
// bind().
uv_getaddrinfo_t *resolve_on_loop(Runtime &rt, const Endpoint &ep, int socktype, bool passive, ResolveDone done);

// One caller's wait for a name. Its socket holds it meanwhile, so that close() ends the
// wait at once (stop_lookup, any thread).
struct PendingLookup;
std::shared_ptr<PendingLookup> new_lookup();
void stop_lookup(PendingLookup &lookup);

// resolve_on_loop for a caller off the loop: waits with the interpreter lock released.
// Throws os_error naming `op` and the endpoint, Error(Timeout), Error(Interrupted),
// Error(Closed) once `lookup` is stopped, or Error(Moved) when a live reload begins. A
// lookup the caller gives up on is cancelled if no pool thread has taken it yet: libuv
// runs only a few at a time, and the ones queued behind it would wait for it.
socklen_t resolve(Runtime &rt, const Endpoint &ep, int socktype, bool passive, const Deadline &deadline,
                  const char *op, sockaddr_storage &out, std::shared_ptr<PendingLookup> lookup = nullptr);

}  // namespace ksnet
