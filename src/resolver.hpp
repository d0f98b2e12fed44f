// resolver.hpp - turns an Endpoint into one socket address, on the loop thread.
#pragma once

#include <functional>

#include "ksnet/address.hpp"
#include "ksnet/runtime.hpp"

namespace ksnet {

// Called on the loop thread with a libuv status and, when it is 0, the address.
using ResolveDone = std::function<void(int status, const sockaddr_storage &addr, socklen_t len)>;

// Numeric hosts resolve at once; names go through uv_getaddrinfo, which runs in libuv's
// thread pool, so the loop never blocks on a DNS answer. `passive` is for bind().
void resolve_on_loop(Runtime &rt, const Endpoint &ep, int socktype, bool passive, ResolveDone done);

// The same for a caller off the loop: waits with the interpreter lock released. Throws
// os_error naming `op` and the endpoint, or Error(Timeout).
socklen_t resolve(Runtime &rt, const Endpoint &ep, int socktype, bool passive, const Deadline &deadline,
                  const char *op, sockaddr_storage &out);

}  // namespace ksnet
