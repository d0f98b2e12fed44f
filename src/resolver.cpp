#include "resolver.hpp"

#include <netdb.h>

#include <cstring>
#include <memory>
#include <string>

#include "ksnet/error.hpp"

namespace ksnet {

namespace {

// Tracked by the runtime while in flight, so that teardown cancels it rather than
// waiting for a DNS answer.
struct ResolveRequest final : LoopResource {
    uv_getaddrinfo_t req{};
    Runtime *rt = nullptr;
    Endpoint ep;
    ResolveDone done;  // emptied once called

    void answer(int status, const sockaddr_storage &addr, socklen_t len) {
        if (!done) return;
        auto cb = std::move(done);
        done = nullptr;
        cb(status, addr, len);
    }

    // A request still queued for libuv's thread pool is cancelled (on_resolved then
    // runs with UV_EAI_CANCELED); one a pool thread is running cannot be, and the loop
    // waits for it, but its caller hears now.
    void abort_on_loop(const char *) override {
        uv_cancel(reinterpret_cast<uv_req_t *>(&req));
        answer(UV_EAI_CANCELED, sockaddr_storage{}, 0);
    }
};

void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
    auto *r = static_cast<ResolveRequest *>(req->data);
    sockaddr_storage addr{};
    socklen_t len = 0;
    if (status == 0) {
        status = UV_EAI_NONAME;
        for (auto *ai = res; ai; ai = ai->ai_next) {
            if (ai->ai_family != family_to_af(r->ep.family)) continue;
            std::memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
            len = ai->ai_addrlen;
            if (ai->ai_family == AF_INET) {
                reinterpret_cast<sockaddr_in *>(&addr)->sin_port = htons(r->ep.port);  // see resolve_on_loop
            } else if (ai->ai_family == AF_INET6) {
                auto *sin6 = reinterpret_cast<sockaddr_in6 *>(&addr);
                sin6->sin6_port = htons(r->ep.port);
                sin6->sin6_flowinfo = htonl(r->ep.flow);
                if (r->ep.scope) sin6->sin6_scope_id = r->ep.scope;
            }
            status = 0;
            break;
        }
    }
    uv_freeaddrinfo(res);
    r->answer(status, addr, len);
    r->rt->untrack(r);  // the last reference: nothing after this
}

}  // namespace

uv_getaddrinfo_t *resolve_on_loop(Runtime &rt, const Endpoint &ep, int socktype, bool passive, ResolveDone done) {
    sockaddr_storage addr{};
    socklen_t len = 0;
    if (parse_numeric(ep, addr, len)) {
        done(0, addr, len);
        return nullptr;
    }
    auto request = std::make_shared<ResolveRequest>();
    ResolveRequest *r = request.get();
    r->req.data = r;
    r->rt = &rt;
    r->ep = ep;
    r->done = std::move(done);
    // glibc's getaddrinfo refuses every service for SOCK_RAW (EAI_SERVICE), so for kinds
    // other than streams and datagrams only the host is resolved; on_resolved sets the
    // port either way.
    bool with_service = socktype == SOCK_STREAM || socktype == SOCK_DGRAM;
    addrinfo hints{};
    hints.ai_family = family_to_af(ep.family);
    hints.ai_socktype = with_service ? socktype : 0;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    std::string service = std::to_string(ep.port);
    int rc = uv_getaddrinfo(rt.loop(), &r->req, on_resolved, r->ep.host.c_str(),
                            with_service ? service.c_str() : nullptr, &hints);
    if (rc < 0) {
        r->answer(rc, addr, 0);
        return nullptr;
    }
    rt.track(std::move(request));
    return &r->req;
}

struct PendingLookup {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false, stopped = false;  // under mu
    int status = 0;
    sockaddr_storage addr{};
    socklen_t len = 0;
    uv_getaddrinfo_t *request = nullptr;  // loop thread only: in libuv's hands until answered
};

std::shared_ptr<PendingLookup> new_lookup() { return std::make_shared<PendingLookup>(); }

void stop_lookup(PendingLookup &lookup) {
    std::lock_guard lk(lookup.mu);
    lookup.stopped = true;
    lookup.cv.notify_all();
}

socklen_t resolve(Runtime &rt, const Endpoint &ep, int socktype, bool passive, const Deadline &deadline,
                  const char *op, sockaddr_storage &out, std::shared_ptr<PendingLookup> lookup) {
    // Numeric hosts need no loop: a round trip to it cost two thread switches per connect.
    socklen_t len = 0;
    if (parse_numeric(ep, out, len)) return len;
    size_t percent = ep.family == Family::Inet6 ? ep.host.find('%') : std::string::npos;
    if (percent != std::string::npos && interface_index(ep.host.substr(percent + 1)) == 0) {
        throw Error(ErrorKind::Value, std::string(op) + " " + format_endpoint(ep) + ": no network interface '" +
                                          ep.host.substr(percent + 1) +
                                          "' (after '%' comes an interface's name or index)");
    }
    // Shared with the loop: the caller may give up before the answer comes.
    if (!lookup) lookup = new_lookup();
    bool posted = rt.post([&rt, ep, socktype, passive, lookup] {
        lookup->request = resolve_on_loop(rt, ep, socktype, passive,
                                          [lookup](int status, const sockaddr_storage &a, socklen_t len) {
                                              lookup->request = nullptr;
                                              std::lock_guard lk(lookup->mu);
                                              lookup->status = status;
                                              lookup->addr = a;
                                              lookup->len = len;
                                              lookup->done = true;
                                              lookup->cv.notify_all();
                                          });
    });
    if (!posted) throw Error(ErrorKind::Closed, std::string(op) + ": the net module was unloaded");
    bool moving = false;
    WaitResult waited = rt.wait(lookup->mu, lookup->cv,
                                [&] { return lookup->done || lookup->stopped || (moving = rt.handing_over()); }, deadline);
    std::unique_lock lk(lookup->mu);
    if (!lookup->done) {
        lk.unlock();
        rt.post([lookup] {
            if (lookup->request) uv_cancel(reinterpret_cast<uv_req_t *>(lookup->request));
        });
        if (waited == WaitResult::Ready) {
            if (moving && !lookup->stopped) throw moved_error(op);
            throw Error(ErrorKind::Closed, std::string(op) + ": the socket is closed");
        }
        throw_unless_ready(waited, op);
    }
    auto *answer = lookup.get();
    if (answer->status == UV_EAI_CANCELED) {
        throw Error(ErrorKind::Closed, std::string(op) + " " + format_endpoint(ep) +
                                           ": name resolution cancelled: the net module was unloaded");
    }
    check_uv(answer->status, op, format_endpoint(ep));
    out = answer->addr;
    return answer->len;
}

}  // namespace ksnet
