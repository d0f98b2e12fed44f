// handover.cpp - live reload (ksp_handover in ksp/plugin_abi.h): this version hands its
// sockets to the next one, or takes them from the one before.
//
// A call waiting when the reload begins leaves its socket at once (woken as for an
// interrupt) and, once it has the interpreter lock again, either returns what it already
// had (bytes received into the caller's memory, a finished write) or raises
// KSP_ERR_MOVED, on which the host calls the same method on the new version. Whatever
// such a call had done to the socket (bytes gathered for a line, part of a write sent,
// a connection accepted, a connect under way) is in the state the new version takes, so
// the retried call goes on where the first one stopped: a blocked call finishes on the
// new code, and no byte is read or written twice.
#include <chrono>
#include <string>

#include "ksnet/handover.hpp"
#include "arguments.hpp"
#include "module.hpp"
#include "values.hpp"

#ifndef KSNET_HANDOVER_FORMAT
#define KSNET_HANDOVER_FORMAT 2  // the state's layout (ksnet/handover.hpp says what each added)
#endif

namespace netplug {

namespace {

// A caller in a system call leaves within one wait slice even if no signal reaches it.
constexpr auto kLeaveLimit = std::chrono::seconds(5);

NetModule &mod(void *ctx) { return *static_cast<NetModule *>(ctx); }

void check_type(NetModule &m, ksp_value type) {
    if (type != m.socket_type) {
        throw HostError{KSP_ERR_TYPE, std::string("net: no live reload for instances of ") + m.host->type_name(type)};
    }
}

int begin(void *ctx) noexcept {
    mod(ctx).rt->begin_handover();
    return 0;
}

ksp_value save(void *ctx, ksp_value type, void *payload) noexcept {
    NetModule &m = mod(ctx);
    return guarded(m.host, [&] {
        check_type(m, type);
        std::shared_ptr<ksnet::Socket> s = static_cast<SocketPayload *>(payload)->socket;
        std::string state = ksnet::encode_state(s->save(kLeaveLimit), KSNET_HANDOVER_FORMAT);
        m.handing_over.push_back(std::move(s));
        return bytes_value(m.host, state);
    });
}

void *restore(void *ctx, ksp_value type, ksp_value state) noexcept {
    NetModule &m = mod(ctx);
    return guarded(m.host, [&]() -> void * {
        check_type(m, type);
        const void *data = nullptr;
        size_t len = 0;
        if (m.host->bytes_get(state, &data, &len) != 0) {
            throw HostError{KSP_ERR_TYPE, "net: a socket's state must be bytes"};
        }
        ksnet::SocketState s =
            ksnet::decode_state({static_cast<const char *>(data), len}, KSNET_HANDOVER_FORMAT);
        return new_payload(ksnet::Socket::restore(m.rt, s));
    });
}

void end(void *ctx, int committed) noexcept {
    NetModule &m = mod(ctx);
    for (const auto &s : m.handing_over) s->end_handover(committed != 0);
    m.handing_over.clear();
    m.rt->end_handover();
}

const ksp_handover kHandover = {sizeof(ksp_handover), begin, save, restore, end};

}  // namespace

const ksp_handover *net_handover() { return &kHandover; }

}  // namespace netplug
