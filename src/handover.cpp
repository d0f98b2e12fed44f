#include "ksnet/handover.hpp"

#include <cstring>

#include "ksnet/error.hpp"

namespace ksnet {

namespace {

constexpr char kMagic[8] = {'k', 's', 'n', 'e', 't', 'H', 'O', '\0'};

class Writer {
public:
    template <class T>
    void put(T v) {
        out_.append(reinterpret_cast<const char *>(&v), sizeof v);
    }
    void put_bytes(std::string_view b) {
        put<uint64_t>(b.size());
        out_.append(b);
    }
    void put_address(const sockaddr_storage &a) { out_.append(reinterpret_cast<const char *>(&a), sizeof a); }
    std::string take() { return std::move(out_); }

private:
    std::string out_;
};

class Reader {
public:
    explicit Reader(std::string_view in) : in_(in) {}
    template <class T>
    T get() {
        T v;
        std::memcpy(&v, need(sizeof v), sizeof v);
        return v;
    }
    std::string get_bytes() {
        auto n = get<uint64_t>();
        if (n > in_.size()) cut();
        return std::string(need(static_cast<size_t>(n)), static_cast<size_t>(n));
    }
    sockaddr_storage get_address() {
        sockaddr_storage a;
        std::memcpy(&a, need(sizeof a), sizeof a);
        return a;
    }
    bool at_end() const { return in_.empty(); }

private:
    const char *need(size_t n) {
        if (in_.size() < n) cut();
        const char *p = in_.data();
        in_.remove_prefix(n);
        return p;
    }
    [[noreturn]] static void cut() { throw Error(ErrorKind::Value, "socket state: the bytes end too soon"); }
    std::string_view in_;
};

}  // namespace

std::string encode_state(const SocketState &s, uint32_t format) {
    Writer w;
    for (char c : kMagic) w.put(c);
    w.put<uint32_t>(format);
    w.put(s.family);
    w.put(s.kind);
    w.put(s.protocol);
    w.put(s.os_af);
    w.put(s.os_type);
    w.put(s.os_protocol);
    w.put(s.timeout_ns);
    w.put<int32_t>(s.fd);
    w.put(s.state);
    w.put(s.line_max);
    w.put<uint8_t>(s.eof);
    w.put(s.read_error);
    w.put<uint8_t>(s.write_shut);
    w.put_bytes(s.received);
    w.put<uint8_t>(s.write_resume.has_value());
    if (s.write_resume) {
        w.put(s.write_resume->thread);
        w.put(s.write_resume->total);
        w.put(s.write_resume->sent);
    }
    w.put<uint8_t>(s.connect_resume);
    w.put<uint64_t>(s.accepted.size());
    for (const AcceptedConnection &a : s.accepted) {
        w.put<int32_t>(a.fd);
        w.put_address(a.peer);
    }
    w.put<uint64_t>(s.datagrams.size());
    for (const QueuedDatagram &d : s.datagrams) {
        w.put_bytes(d.data);
        w.put_address(d.from);
        w.put(d.error);
        w.put<uint8_t>(d.partial);
    }
    w.put(s.dropped);
    if (format >= kStateFormatWithPeer) w.put_address(s.peer);
    return w.take();
}

SocketState decode_state(std::string_view bytes, uint32_t format) {
    Reader r(bytes);
    for (char c : kMagic) {
        if (r.get<char>() != c) throw Error(ErrorKind::Value, "socket state: not a net socket's state");
    }
    auto written = r.get<uint32_t>();
    if (written < kOldestStateFormat || written > format) {
        std::string reads = format == kOldestStateFormat
                                ? "format " + std::to_string(format)
                                : "formats " + std::to_string(kOldestStateFormat) + " to " + std::to_string(format);
        throw Error(ErrorKind::Value, "socket state: written in format " + std::to_string(written) +
                                          ", this version of net reads " + reads);
    }
    SocketState s;
    s.family = r.get<uint8_t>();
    s.kind = r.get<uint8_t>();
    s.protocol = r.get<uint8_t>();
    s.os_af = r.get<int32_t>();
    s.os_type = r.get<int32_t>();
    s.os_protocol = r.get<int32_t>();
    s.timeout_ns = r.get<int64_t>();
    s.fd = r.get<int32_t>();
    s.state = r.get<uint8_t>();
    s.line_max = r.get<uint64_t>();
    s.eof = r.get<uint8_t>() != 0;
    s.read_error = r.get<int32_t>();
    s.write_shut = r.get<uint8_t>() != 0;
    s.received = r.get_bytes();
    if (r.get<uint8_t>()) {
        WriteResume w;
        w.thread = r.get<uint64_t>();
        w.total = r.get<uint64_t>();
        w.sent = r.get<uint64_t>();
        s.write_resume = w;
    }
    s.connect_resume = r.get<uint8_t>() != 0;
    for (auto n = r.get<uint64_t>(); n > 0; --n) {
        AcceptedConnection a;
        a.fd = r.get<int32_t>();
        a.peer = r.get_address();
        s.accepted.push_back(a);
    }
    for (auto n = r.get<uint64_t>(); n > 0; --n) {
        QueuedDatagram d;
        d.data = r.get_bytes();
        d.from = r.get_address();
        d.error = r.get<int32_t>();
        d.partial = r.get<uint8_t>() != 0;
        s.datagrams.push_back(std::move(d));
    }
    s.dropped = r.get<uint64_t>();
    if (written >= kStateFormatWithPeer) s.peer = r.get_address();
    if (!r.at_end()) throw Error(ErrorKind::Value, "socket state: bytes left over after the state");
    return s;
}

}  // namespace ksnet
