// socketio.cpp - net.SocketIO: each function converts its arguments, calls one core
// function on the ksnet::Socket in the instance's payload, and converts the result.
#include <limits>
#include <memory>

#include "arguments.hpp"
#include "enums.hpp"
#include "ksnet/socket.hpp"
#include "module.hpp"
#include "values.hpp"

namespace netplug {

namespace {

NetModule &mod(void *ctx) { return *static_cast<NetModule *>(ctx); }

// The instance's payload, which a SocketCall keeps for the length of the call.
SocketPayload &payload_of(NetModule &m, const Call &c, ksp_value self) {
    auto *p = static_cast<SocketPayload *>(m.host->object_payload(self, m.socket_type));
    if (!p) c.type_error("self", "a net.SocketIO", self);
    return *p;
}

// A new instance of `type` (SocketIO, or a host's subtype of it) that owns `s`.
ksp_value wrap(NetModule &m, std::unique_ptr<ksnet::Socket> s, ksp_value type) {
    ksnet::Socket *raw = s.get();
    std::unique_ptr<SocketPayload> payload(new_payload(std::move(s)));
    ksp_value obj = m.host->object_new(type, payload.get());
    if (!obj) {
        raw->close();
        throw AlreadyRaised{};
    }
    payload.release();  // the instance owns it now; finalize() frees it
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

// ---- constructor and finalizer ----

ksp_value construct(void *ctx, ksp_value type, size_t n, const ksp_value *a) {
    NetModule &m = mod(ctx);
    return guarded(m.host, [&] {
        Call c{m.host, "SocketIO()", n, a};
        c.expect_count(0, 3);
        int64_t fkv = enum_arg(m, c, 0, m.fk_enum, "argument 'fk'", "a member of net.FK", fk::INET4);
        int64_t skv = enum_arg(m, c, 1, m.sk_enum, "argument 'sk'", "a member of net.SK", sk::TCP);
        int64_t pkv = enum_arg(m, c, 2, m.pk_enum, "argument 'pk'", "a member of net.PK", pk::AUTO);
        return wrap(m, ksnet::Socket::open(m.rt, to_family(fkv), to_kind(skv), to_protocol(pkv)), type);
    });
}

void finalize(void *, void *payload) {
    // Runs even after teardown (the runtime is gone then and close() only marks it), so
    // it uses no ctx: teardown freed the module state. For a socket handed to the next
    // version, close() leaves the connection alone.
    auto *p = static_cast<SocketPayload *>(payload);
    try {
        p->socket->close();
    } catch (...) {
    }
    if (p->calls > 0) {
        p->finalized = true;  // a call on its way back still uses it (see SocketPayload)
        return;
    }
    delete p;
}

// ---- methods ----

#define NET_METHOD(fn_name, call_name, min_args, max_args)                                  \
    ksp_value fn_name(void *ctx, ksp_value self, size_t n, const ksp_value *a) {            \
        NetModule &m = mod(ctx);                                                             \
        return guarded(m.host, [&] {                                                         \
            Call c{m.host, call_name, n, a};                                                 \
            c.expect_count(min_args, max_args);                                              \
            SocketCall in(payload_of(m, c, self));                                           \
            return fn_name##_body(m, c, in.socket(), self);                                  \
        });                                                                                  \
    }

ksp_value bind_body(NetModule &m, const Call &c, ksnet::Socket &s, ksp_value) {
    s.bind(to_endpoint(c, s.family(), c.arg(0), "argument 'addr'"));
    return m.host->none();
}
NET_METHOD(bind, "SocketIO.bind()", 1, 1)

ksp_value connect_body(NetModule &m, const Call &c, ksnet::Socket &s, ksp_value) {
    ksnet::Endpoint ep = to_endpoint(c, s.family(), c.arg(0), "argument 'addr'");
    s.connect(ep, s.deadline(timeout_arg(c, 1, "argument 'timeout'")));
    return m.host->none();
}
NET_METHOD(connect, "SocketIO.connect()", 1, 2)

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

ksp_value accept_body(NetModule &m, const Call &c, ksnet::Socket &s, ksp_value) {
    auto [client, name] = s.accept(s.deadline(timeout_arg(c, 0, "argument 'timeout'")));
    Ref sock(m.host, wrap(m, std::move(client), m.socket_type));
    Ref str(m.host, str_value(m.host, name));
    ksp_value items[] = {sock.get(), str.get()};
    return checked(m.host, m.host->tuple_new(2, items)).release();
}
NET_METHOD(accept, "SocketIO.accept()", 0, 1)

ksp_value read_body(NetModule &m, const Call &c, ksnet::Socket &s, ksp_value) {
    size_t max = size_arg(c, 0, "argument 'sz'", ksnet::Socket::kAll);
    ksnet::Deadline deadline = s.deadline(timeout_arg(c, 1, "argument 'timeout'"));
    if (max == ksnet::Socket::kAll || !s.is_stream()) return bytes_value(m.host, s.read(max, deadline));
    // Received straight into the bytes object the script gets.
    return bytes_filled_by(m.host, std::min(max, ksnet::kIoChunk),
                           [&](char *into, size_t cap) { return s.read_into(into, cap, deadline); });
}
NET_METHOD(read, "SocketIO.read()", 0, 2)

ksp_value write_body(NetModule &m, const Call &c, ksnet::Socket &s, ksp_value) {
    std::string_view data = c.to_data(c.arg(0), "argument 'msg'");
    // `data` lives in the caller's argument for the whole call.
    s.write(data, s.deadline(timeout_arg(c, 1, "argument 'timeout'")));
    return checked(m.host, m.host->int_new(static_cast<int64_t>(data.size()))).release();
}
NET_METHOD(write, "SocketIO.write()", 1, 2)

ksp_value sendto_body(NetModule &m, const Call &c, ksnet::Socket &s, ksp_value) {
    std::string_view data = c.to_data(c.arg(0), "argument 'msg'");
    ksnet::Endpoint to = to_endpoint(c, s.family(), c.arg(1), "argument 'addr'");
    s.sendto(data, to, s.deadline(timeout_arg(c, 2, "argument 'timeout'")));
    return checked(m.host, m.host->int_new(static_cast<int64_t>(data.size()))).release();
}
NET_METHOD(sendto, "SocketIO.sendto()", 2, 3)

ksp_value recvfrom_body(NetModule &m, const Call &c, ksnet::Socket &s, ksp_value) {
    size_t max = size_arg(c, 0, "argument 'sz'", ksnet::Socket::kAll);
    auto [data, from] = s.recvfrom(max, s.deadline(timeout_arg(c, 1, "argument 'timeout'")));
    Ref bytes(m.host, bytes_value(m.host, data));
    Ref addr(m.host, address_tuple(m.host, from));
    ksp_value items[] = {bytes.get(), addr.get()};
    return checked(m.host, m.host->tuple_new(2, items)).release();
}
NET_METHOD(recvfrom, "SocketIO.recvfrom()", 0, 2)

ksp_value shutdown_body(NetModule &m, const Call &c, ksnet::Socket &s, ksp_value) {
    s.shutdown_write(s.deadline(timeout_arg(c, 0, "argument 'timeout'")));
    return m.host->none();
}
NET_METHOD(shutdown, "SocketIO.shutdown()", 0, 1)

ksp_value settimeout_body(NetModule &m, const Call &c, ksnet::Socket &s, ksp_value) {
    s.set_timeout(timeout_arg(c, 0, "argument 'timeout'"));
    return m.host->none();
}
NET_METHOD(settimeout, "SocketIO.settimeout()", 1, 1)

ksp_value gettimeout_body(NetModule &m, const Call &, ksnet::Socket &s, ksp_value) {
    auto t = s.timeout();
    if (!t) return m.host->none();
    return m.host->float_new(std::chrono::duration<double>(*t).count());
}
NET_METHOD(gettimeout, "SocketIO.gettimeout()", 0, 0)

ksp_value setopt_body(NetModule &m, const Call &c, ksnet::Socket &s, ksp_value) {
    ksnet::Option o = ksnet::option_from_name(c.to_str(c.arg(0), "argument 'name'"),
                                              std::string(c.name) + ": argument 'name'");
    s.set_option(o, c.to_int_or_bool(c.arg(1), "argument 'value'"));
    return m.host->none();
}
NET_METHOD(setopt, "SocketIO.setopt()", 2, 2)

ksp_value getopt_body(NetModule &m, const Call &c, ksnet::Socket &s, ksp_value) {
    ksnet::Option o = ksnet::option_from_name(c.to_str(c.arg(0), "argument 'name'"),
                                              std::string(c.name) + ": argument 'name'");
    return checked(m.host, m.host->int_new(s.get_option(o))).release();
}
NET_METHOD(getopt, "SocketIO.getopt()", 1, 1)

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
    // The line goes from the receive buffer straight into the bytes the script gets.
    ksp_value line = nullptr;
    auto take = [&](std::string_view l) { line = checked(m.host, m.host->bytes_new(l.data(), l.size())).release(); };
    if (!s.read_line_to(take, s.deadline())) throw HostError{KSP_ERR_STOP_ITER, "end of stream"};
    return line;
}
NET_METHOD(next, "SocketIO.__next()", 0, 0)

ksp_value repr_body(NetModule &m, const Call &, ksnet::Socket &s, ksp_value self) {
    // The instance's own type: a script's subtype of net.SocketIO names itself.
    std::string text = std::string("<") + m.host->type_name(self) + " " + s.describe() + ">";
    return checked(m.host, m.host->str_new(text.data(), text.size())).release();
}
NET_METHOD(repr, "SocketIO.__repr()", 0, 0)

#undef NET_METHOD

// ---- attributes ----

using AddressOf = std::optional<ksnet::NamePort> (ksnet::Socket::*)() const;

template <AddressOf which, bool want_port>
ksp_value address_part(void *ctx, ksp_value self) {
    NetModule &m = mod(ctx);
    return guarded(m.host, [&] {
        Call c{m.host, "SocketIO attribute", 0, nullptr};
        SocketCall in(payload_of(m, c, self));
        auto np = (in.socket().*which)();
        if (!np) return m.host->none();
        if (want_port) return m.host->int_new(np->port);
        return m.host->str_new(np->host.data(), np->host.size());
    });
}

template <ksp_value NetModule::*enum_type, int64_t (*value_of)(const ksnet::Socket &)>
ksp_value enum_attr(void *ctx, ksp_value self) {
    NetModule &m = mod(ctx);
    return guarded(m.host, [&] {
        Call c{m.host, "SocketIO attribute", 0, nullptr};
        SocketCall in(payload_of(m, c, self));
        return m.host->enum_member(m.*enum_type, value_of(in.socket()));
    });
}

int64_t fk_of(const ksnet::Socket &s) { return from_family(s.family()); }
int64_t sk_of(const ksnet::Socket &s) { return from_kind(s.kind()); }
int64_t pk_of(const ksnet::Socket &s) { return from_protocol(s.protocol()); }

ksp_value closed_attr(void *ctx, ksp_value self) {
    NetModule &m = mod(ctx);
    return guarded(m.host, [&] {
        Call c{m.host, "SocketIO attribute", 0, nullptr};
        SocketCall in(payload_of(m, c, self));
        return m.host->bool_new(in.socket().closed());
    });
}

// kscript's builtin SocketIO has `_fd`; scripts pass it to os.fstat and the like.
ksp_value fd_attr(void *ctx, ksp_value self) {
    NetModule &m = mod(ctx);
    return guarded(m.host, [&] {
        Call c{m.host, "SocketIO attribute", 0, nullptr};
        SocketCall in(payload_of(m, c, self));
        return m.host->int_new(in.socket().fileno());
    });
}

const ksp_method kMethods[] = {
    {"bind", bind, "bind(self, addr)",
     "Binds the socket to addr: (host, port) for FK.INET4; (host, port) or (host, port, flow, scope) "
     "for FK.INET6; (address, port) for FK.BT. Host '' means every local address; port 0 picks a "
     "free port."},
    {"connect", connect, "connect(self, addr, timeout=none)",
     "Connects to addr (same forms as bind). Host names are resolved without blocking other "
     "sockets. For SK.UDP it fixes the peer of write() and read(). Raises OSError naming the address "
     "and errno (e.g. ECONNREFUSED)."},
    {"listen", listen, "listen(self, num=16)",
     "Begins listening for connections; up to num may wait to be accepted before the kernel "
     "refuses more."},
    {"accept", accept, "accept(self, timeout=none)",
     "Waits for a connection and returns (sock, name): a new net.SocketIO connected to the client, "
     "and the client's address as a string 'host:port'."},
    {"read", read, "read(self, sz=none, timeout=none)",
     "Streams (SK.TCP): up to sz bytes as soon as any arrive; with sz none, everything up to the end "
     "of the stream (a reset before it raises OSError, and what arrived stays for read(sz)); an empty "
     "result means end of stream. Datagram kinds: the next datagram, whole; "
     "one longer than sz raises ValError and stays queued."},
    {"write", write, "write(self, msg, timeout=none)",
     "Writes all of msg (bytes, or str as UTF-8) and returns its length in bytes; for datagram "
     "kinds, as one datagram to the connected peer. Raises OSError (EPIPE, ECONNRESET) if the peer "
     "is gone."},
    {"sendto", sendto, "sendto(self, msg, addr, timeout=none)",
     "Sends msg as one datagram to addr (SK.UDP, SK.RAW, ...). Returns its length. A datagram "
     "larger than the protocol can carry raises ValError; it is never cut."},
    {"recvfrom", recvfrom, "recvfrom(self, sz=none, timeout=none)",
     "The next datagram and its sender: (bytes, (host, port)). A datagram longer than sz raises "
     "ValError and stays queued, so a retry with a larger sz gets it."},
    {"shutdown", shutdown, "shutdown(self, timeout=none)",
     "Half-closes a stream: sends end of stream to the peer once earlier writes are out; reading "
     "goes on until the peer's end of stream. A later write raises IOError."},
    {"settimeout", settimeout, "settimeout(self, timeout)",
     "Sets the default timeout, in seconds (int or float), of every blocking call on this socket; "
     "none waits as long as it takes. A call that runs out of time raises TimeoutError. Sockets "
     "from accept() start with the listener's timeout."},
    {"gettimeout", gettimeout, "gettimeout(self)", "The default timeout in seconds (float), or none."},
    {"setopt", setopt, "setopt(self, name, value)",
     "Sets a socket option: 'nodelay' (bool), 'keepalive' (0 off, or idle seconds before probes), "
     "'reuseaddr' (bool, before bind; off unless set), 'rcvbuf' and 'sndbuf' (bytes), "
     "'broadcast' (bool, datagram sockets), 'linemax' (bytes, streams: the longest line iteration "
     "buffers, 1048576 unless set; a longer line raises ValError naming it, and its bytes stay for "
     "read(); accepted connections start with the listener's), 'v6only' (bool, INET6, before bind: no IPv4 peers, so an INET4 socket may take the "
     "same port)."},
    {"getopt", getopt, "getopt(self, name)",
     "Reads a socket option (names as setopt) as an int, as the kernel reports it."},
    {"close", close, "close(self)",
     "Closes the socket. Closing twice is harmless; a thread blocked on the socket wakes with an "
     "IOError."},
    {"eof", eof, "eof(self)",
     "True once the peer has finished sending and every received byte has been read (streams); "
     "for datagram kinds, true once closed."},
    {"seek", seek, "seek(self, pos, whence=0)", "Always raises IOError: a socket cannot seek."},
    {"tell", tell, "tell(self)", "Always raises IOError: a socket cannot seek."},
    {"trunc", trunc, "trunc(self, sz=0)", "Always raises IOError: a socket cannot be truncated."},
    {"__iter", iter, "__iter(self)",
     "Iterating a stream socket yields each line received, as bytes without its '\\n' or "
     "'\\r\\n'; a last line without a newline is yielded too at end of stream. After a reset the "
     "complete lines come first, then OSError; the unfinished line stays for read(sz). Datagram "
     "kinds raise IOError."},
    {"__next", next, "__next(self)", "The next line (see __iter)."},
    {"__repr", repr, "__repr(self)", "Family, kind, state and addresses of the socket."},
};

const ksp_getter kGetters[] = {
    {"fk", enum_attr<&NetModule::fk_enum, fk_of>, "The family (a member of net.FK)."},
    {"sk", enum_attr<&NetModule::sk_enum, sk_of>, "The socket kind (a member of net.SK)."},
    {"pk", enum_attr<&NetModule::pk_enum, pk_of>, "The protocol (a member of net.PK)."},
    {"local_name", address_part<&ksnet::Socket::local_name, false>,
     "The local address's host (str), or none when the socket has no address."},
    {"local_port", address_part<&ksnet::Socket::local_name, true>,
     "The local port (int), or none when the socket has no address."},
    {"peer_name", address_part<&ksnet::Socket::peer_name, false>,
     "The peer's host (str), or none when not connected."},
    {"peer_port", address_part<&ksnet::Socket::peer_name, true>,
     "The peer's port (int), or none when not connected."},
    {"closed", closed_attr, "True once the socket is closed."},
    {"_fd", fd_attr,
     "The operating system's descriptor of the socket (int), as kscript's builtin net has it; -1 "
     "once closed. The socket keeps owning it: read it, never close it."},
};

}  // namespace

SocketPayload *new_payload(std::unique_ptr<ksnet::Socket> s) { return new SocketPayload{std::move(s)}; }

void add_socket_type(NetModule &m, ksp_value module) {
    const ksp_host *h = m.host;
    ksp_type_spec spec{};
    spec.size = sizeof spec;
    spec.name = "SocketIO";
    spec.doc =
        "SocketIO(fk=net.FK.INET4, sk=net.SK.TCP, pk=net.PK.AUTO): a network socket, an endpoint for "
        "sending and receiving data. A subtype of io.BaseIO: read, write, line iteration, eof, close "
        "and printf work as for other streams; seek, tell and trunc raise IOError. Every blocking "
        "method takes an optional timeout (seconds) and releases the interpreter lock while it "
        "waits; a socket may be used from any thread.";
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
