// socketio.cpp - net.SocketIO: each function converts its arguments, calls one core
// function on the ksnet::Socket in the instance's payload, and converts the result.
#include <limits>
#include <memory>

#include "enums.hpp"
#include "ksnet/socket.hpp"
#include "module.hpp"
#include "values.hpp"

namespace netplug {

namespace {

NetModule &mod(void *ctx) { return *static_cast<NetModule *>(ctx); }

ksnet::Socket &socket_of(NetModule &m, const Call &c, ksp_value self) {
    auto *s = static_cast<ksnet::Socket *>(m.host->object_payload(self, m.socket_type));
    if (!s) c.type_error("self", "a net.SocketIO", self);
    return *s;
}

// A new SocketIO instance that owns `s`.
ksp_value wrap(NetModule &m, std::unique_ptr<ksnet::Socket> s) {
    ksp_value obj = m.host->object_new(m.socket_type, s.get());
    if (!obj) {
        s->close();
        throw AlreadyRaised{};
    }
    s.release();  // the instance owns it now; finalize() frees it
    return obj;
}

int64_t enum_arg(NetModule &m, const Call &c, size_t i, ksp_value enum_type, const char *what,
                 const char *expected, int64_t fallback) {
    ksp_value v = c.arg(i);
    if (!v) return fallback;
    int64_t out = 0;
    if (!m.host->enum_value(enum_type, v, &out)) c.type_error(what, expected, v);
    return out;
}

// (host, port) for INET4; (host, port) or (host, port, flow, scope) for INET6.
ksnet::Endpoint to_endpoint(const Call &c, ksnet::Family family, ksp_value addr) {
    const ksp_host *h = c.h;
    bool inet6 = family == ksnet::Family::Inet6;
    const char *form = inet6 ? "a tuple (host, port) or (host, port, flow, scope)" : "a tuple (host, port)";
    if (h->kind_of(addr) != KSP_KIND_TUPLE) c.type_error("argument 'addr'", form, addr);
    size_t n = h->seq_len(addr);
    if (!(n == 2 || (inet6 && n == 4))) {
        throw HostError{KSP_ERR_SIZE, std::string(c.name) + ": argument 'addr' must be " + form + " for FK." +
                                          ksnet::family_name(family) + ", not a tuple of " +
                                          std::to_string(n) + " items"};
    }
    ksnet::Endpoint ep;
    ep.family = family;
    std::string where = std::string(c.name) + ": argument 'addr'";
    ep.host = std::string(c.to_str(h->seq_item(addr, 0), "the host in argument 'addr'"));
    ksnet::check_host(ep.host, where);
    ep.port = ksnet::check_port(c.to_int(h->seq_item(addr, 1), "the port in argument 'addr'"), where);
    if (n == 4) {
        int64_t flow = c.to_int(h->seq_item(addr, 2), "the flow in argument 'addr'");
        int64_t scope = c.to_int(h->seq_item(addr, 3), "the scope in argument 'addr'");
        if (flow < 0 || flow > 0xFFFFF) {
            throw HostError{KSP_ERR_VAL, where + ": flow " + std::to_string(flow) +
                                             " is out of range (expected 0..1048575)"};
        }
        if (scope < 0 || scope > std::numeric_limits<uint32_t>::max()) {
            throw HostError{KSP_ERR_VAL, where + ": scope " + std::to_string(scope) +
                                             " is out of range (expected 0..4294967295)"};
        }
        ep.flow = static_cast<uint32_t>(flow);
        ep.scope = static_cast<uint32_t>(scope);
    }
    return ep;
}

ksp_value bytes_value(const ksp_host *h, const std::string &s) {
    return checked(h, h->bytes_new(s.data(), s.size())).release();
}

// ---- constructor and finalizer ----

ksp_value construct(void *ctx, ksp_value, size_t n, const ksp_value *a) {
    NetModule &m = mod(ctx);
    return guarded(m.host, [&] {
        Call c{m.host, "SocketIO()", n, a};
        c.expect_count(0, 3);
        int64_t fkv = enum_arg(m, c, 0, m.fk_enum, "argument 'fk'", "a member of net.FK", fk::INET4);
        int64_t skv = enum_arg(m, c, 1, m.sk_enum, "argument 'sk'", "a member of net.SK", sk::TCP);
        int64_t pkv = enum_arg(m, c, 2, m.pk_enum, "argument 'pk'", "a member of net.PK", pk::AUTO);
        return wrap(m, ksnet::Socket::open(m.rt, to_family(fkv), to_kind(skv), to_protocol(pkv)));
    });
}

void finalize(void *, void *payload) {
    // Runs even after teardown (the runtime is gone then and close() only marks it).
    auto *s = static_cast<ksnet::Socket *>(payload);
    try {
        s->close();
    } catch (...) {
    }
    delete s;
}

// ---- methods ----

#define NET_METHOD(fn_name, call_name, min_args, max_args)                                  \
    ksp_value fn_name(void *ctx, ksp_value self, size_t n, const ksp_value *a) {            \
        NetModule &m = mod(ctx);                                                             \
        return guarded(m.host, [&] {                                                         \
            Call c{m.host, call_name, n, a};                                                 \
            c.expect_count(min_args, max_args);                                              \
            ksnet::Socket &s = socket_of(m, c, self);                                        \
            return fn_name##_body(m, c, s, self);                                            \
        });                                                                                  \
    }

ksp_value bind_body(NetModule &m, const Call &c, ksnet::Socket &s, ksp_value) {
    s.bind(to_endpoint(c, s.family(), c.arg(0)));
    return m.host->none();
}
NET_METHOD(bind, "SocketIO.bind()", 1, 1)

ksp_value connect_body(NetModule &m, const Call &c, ksnet::Socket &s, ksp_value) {
    s.connect(to_endpoint(c, s.family(), c.arg(0)));
    return m.host->none();
}
NET_METHOD(connect, "SocketIO.connect()", 1, 1)

ksp_value listen_body(NetModule &m, const Call &c, ksnet::Socket &s, ksp_value) {
    int64_t num = c.arg(0) ? c.to_int(c.arg(0), "argument 'num'") : 16;
    if (num < 0 || num > std::numeric_limits<int>::max()) {
        throw HostError{KSP_ERR_VAL, std::string(c.name) + ": argument 'num' is " + std::to_string(num) +
                                         " (expected 0..2147483647)"};
    }
    s.listen(static_cast<int>(num));
    return m.host->none();
}
NET_METHOD(listen, "SocketIO.listen()", 0, 1)

ksp_value accept_body(NetModule &m, const Call &, ksnet::Socket &s, ksp_value) {
    auto [client, name] = s.accept();
    Ref sock(m.host, wrap(m, std::move(client)));
    Ref str = checked(m.host, m.host->str_new(name.data(), name.size()));
    ksp_value items[] = {sock.get(), str.get()};
    return checked(m.host, m.host->tuple_new(2, items)).release();
}
NET_METHOD(accept, "SocketIO.accept()", 0, 0)

ksp_value read_body(NetModule &m, const Call &c, ksnet::Socket &s, ksp_value) {
    size_t max = ksnet::TcpSocket::kReadAll;
    ksp_value sz = c.arg(0);
    if (sz && m.host->kind_of(sz) != KSP_KIND_NONE) {
        int64_t v = c.to_int(sz, "argument 'sz'");
        if (v < 0) {
            throw HostError{KSP_ERR_VAL, std::string(c.name) + ": argument 'sz' is " + std::to_string(v) +
                                             " (expected none or a size >= 0)"};
        }
        max = static_cast<size_t>(v);
    }
    return bytes_value(m.host, s.read(max));
}
NET_METHOD(read, "SocketIO.read()", 0, 1)

ksp_value write_body(NetModule &m, const Call &c, ksnet::Socket &s, ksp_value) {
    std::string_view data = c.to_data(c.arg(0), "argument 'msg'");
    s.write(data);  // `data` lives in the caller's argument for the whole call
    return checked(m.host, m.host->int_new(static_cast<int64_t>(data.size()))).release();
}
NET_METHOD(write, "SocketIO.write()", 1, 1)

ksp_value close_body(NetModule &m, const Call &, ksnet::Socket &s, ksp_value) {
    s.close();
    return m.host->none();
}
NET_METHOD(close, "SocketIO.close()", 0, 0)

ksp_value eof_body(NetModule &m, const Call &, ksnet::Socket &s, ksp_value) {
    return m.host->bool_new(s.eof());
}
NET_METHOD(eof, "SocketIO.eof()", 0, 0)

ksp_value cannot_seek_body(NetModule &, const Call &c, ksnet::Socket &, ksp_value) {
    throw HostError{KSP_ERR_IO, std::string(c.name) + ": a socket is a stream and cannot seek"};
}
#define seek_body cannot_seek_body
#define tell_body cannot_seek_body
#define trunc_body cannot_seek_body
NET_METHOD(seek, "SocketIO.seek()", 0, 2)
NET_METHOD(tell, "SocketIO.tell()", 0, 0)
NET_METHOD(trunc, "SocketIO.trunc()", 0, 1)
#undef seek_body
#undef tell_body
#undef trunc_body

ksp_value iter_body(NetModule &m, const Call &, ksnet::Socket &, ksp_value self) {
    m.host->incref(self);
    return self;
}
NET_METHOD(iter, "SocketIO.__iter()", 0, 0)

ksp_value next_body(NetModule &m, const Call &, ksnet::Socket &s, ksp_value) {
    auto line = s.read_line();
    if (!line) throw HostError{KSP_ERR_STOP_ITER, "end of stream"};
    return bytes_value(m.host, *line);
}
NET_METHOD(next, "SocketIO.__next()", 0, 0)

ksp_value repr_body(NetModule &m, const Call &, ksnet::Socket &s, ksp_value) {
    std::string text = "<net.SocketIO " + s.describe() + ">";
    return checked(m.host, m.host->str_new(text.data(), text.size())).release();
}
NET_METHOD(repr, "SocketIO.__repr()", 0, 0)

#undef NET_METHOD

// ---- attributes ----

using AddressOf = std::optional<sockaddr_storage> (ksnet::Socket::*)() const;

template <AddressOf which, bool want_port>
ksp_value address_part(void *ctx, ksp_value self) {
    NetModule &m = mod(ctx);
    return guarded(m.host, [&] {
        Call c{m.host, "SocketIO attribute", 0, nullptr};
        ksnet::Socket &s = socket_of(m, c, self);
        auto addr = (s.*which)();
        if (!addr) return m.host->none();
        auto *sa = reinterpret_cast<const sockaddr *>(&*addr);
        if (want_port) return m.host->int_new(ksnet::sockaddr_port(sa));
        std::string host = ksnet::format_host(sa);
        return m.host->str_new(host.data(), host.size());
    });
}

template <ksp_value NetModule::*enum_type, int64_t (*value_of)(const ksnet::Socket &)>
ksp_value enum_attr(void *ctx, ksp_value self) {
    NetModule &m = mod(ctx);
    return guarded(m.host, [&] {
        Call c{m.host, "SocketIO attribute", 0, nullptr};
        return m.host->enum_member(m.*enum_type, value_of(socket_of(m, c, self)));
    });
}

int64_t fk_of(const ksnet::Socket &s) { return from_family(s.family()); }
int64_t sk_of(const ksnet::Socket &s) { return from_kind(s.kind()); }
int64_t pk_of(const ksnet::Socket &s) { return from_protocol(s.protocol()); }

ksp_value closed_attr(void *ctx, ksp_value self) {
    NetModule &m = mod(ctx);
    return guarded(m.host, [&] {
        Call c{m.host, "SocketIO attribute", 0, nullptr};
        return m.host->bool_new(socket_of(m, c, self).closed());
    });
}

const ksp_method kMethods[] = {
    {"bind", bind, "bind(self, addr)",
     "Binds the socket to addr: (host, port) for FK.INET4; (host, port) or (host, port, flow, scope) "
     "for FK.INET6. Host '' means every local address; port 0 picks a free port."},
    {"connect", connect, "connect(self, addr)",
     "Connects to addr (same forms as bind). Host names are resolved without blocking other "
     "sockets. Raises OSError naming the address and errno (e.g. ECONNREFUSED)."},
    {"listen", listen, "listen(self, num=16)",
     "Begins listening for connections; up to num may wait to be accepted before the kernel "
     "refuses more."},
    {"accept", accept, "accept(self)",
     "Waits for a connection and returns (sock, name): a new net.SocketIO connected to the client, "
     "and the client's address as a string 'host:port'."},
    {"read", read, "read(self, sz=none)",
     "Returns bytes: with sz, up to sz bytes as soon as any arrive; with none, everything up to the "
     "end of the stream. An empty result means end of stream."},
    {"write", write, "write(self, msg)",
     "Writes all of msg (bytes, or str as UTF-8) and returns its length in bytes. Raises OSError "
     "(EPIPE, ECONNRESET) if the peer is gone."},
    {"close", close, "close(self)",
     "Closes the socket. Closing twice is harmless; a thread blocked on the socket wakes with an "
     "IOError."},
    {"eof", eof, "eof(self)",
     "True once the peer has finished sending and every received byte has been read."},
    {"seek", seek, "seek(self, pos, whence=0)", "Always raises IOError: a socket cannot seek."},
    {"tell", tell, "tell(self)", "Always raises IOError: a socket cannot seek."},
    {"trunc", trunc, "trunc(self, sz=0)", "Always raises IOError: a socket cannot be truncated."},
    {"__iter", iter, "__iter(self)",
     "Iterating a socket yields each line received, as bytes without its '\\n' or '\\r\\n'; a last "
     "line without a newline is yielded too."},
    {"__next", next, "__next(self)", "The next line (see __iter)."},
    {"__repr", repr, "__repr(self)", "Family, kind, state and addresses of the socket."},
};

const ksp_getter kGetters[] = {
    {"fk", enum_attr<&NetModule::fk_enum, fk_of>, "The family (a member of net.FK)."},
    {"sk", enum_attr<&NetModule::sk_enum, sk_of>, "The socket kind (a member of net.SK)."},
    {"pk", enum_attr<&NetModule::pk_enum, pk_of>, "The protocol (a member of net.PK)."},
    {"local_name", address_part<&ksnet::Socket::local_address, false>,
     "The local address's host (str), or none when the socket has no address."},
    {"local_port", address_part<&ksnet::Socket::local_address, true>,
     "The local port (int), or none when the socket has no address."},
    {"peer_name", address_part<&ksnet::Socket::peer_address, false>,
     "The peer's host (str), or none when not connected."},
    {"peer_port", address_part<&ksnet::Socket::peer_address, true>,
     "The peer's port (int), or none when not connected."},
    {"closed", closed_attr, "True once the socket is closed."},
};

}  // namespace

void add_socket_type(NetModule &m, ksp_value module) {
    const ksp_host *h = m.host;
    ksp_type_spec spec{};
    spec.size = sizeof spec;
    spec.name = "SocketIO";
    spec.doc =
        "SocketIO(fk=net.FK.INET4, sk=net.SK.TCP, pk=net.PK.AUTO): a network socket, an endpoint for "
        "sending and receiving data. A subtype of io.BaseIO: read, write, line iteration, eof, close "
        "and printf work as for other streams; seek, tell and trunc raise IOError. Every blocking "
        "method releases the interpreter lock while it waits, and a socket may be used from any "
        "thread.";
    spec.base = h->base_io_type();
    spec.constructor = construct;
    spec.constructor_signature = "SocketIO(fk=net.FK.INET4, sk=net.SK.TCP, pk=net.PK.AUTO)";
    spec.methods = kMethods;
    spec.nmethods = sizeof kMethods / sizeof kMethods[0];
    spec.getters = kGetters;
    spec.ngetters = sizeof kGetters / sizeof kGetters[0];
    spec.finalize = finalize;
    spec.ctx = &m;
    Ref type = checked(h, h->type_new(&spec));
    if (h->module_add(module, "SocketIO", type.get()) < 0) throw AlreadyRaised{};
    m.socket_type = type.release();
}

}  // namespace netplug
