// ksnet/handover.hpp - what one version of the plugin hands the next for each socket at
// a live reload (ksp_handover in ksp/plugin_abi.h), and the bytes that carry it.
//
// The format is ours: a version number first, so that a version that cannot read a
// state refuses it (the host then rolls back) instead of misreading it.
#pragma once

#include <pthread.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ksnet {

// A write that left its socket part-way: the same thread calls again with the same
// bytes, and the new version skips the `sent` it already passed to the kernel.
struct WriteResume {
    uint64_t thread = 0;  // pthread_self() of the writer
    uint64_t total = 0;
    uint64_t sent = 0;
};

// A socket's writes across live reloads (under the socket's mutex; `sent()` only by the
// writer whose turn it is). A write that leaves part-way for a reload is handed over, or
// kept for the same thread's retry if the reload rolls back, and that retry (same
// thread, same bytes) begins past what was already sent.
class WriteProgress {
public:
    // Starts this thread's write of `total` bytes; returns where it begins.
    size_t begin(size_t total) {
        thread_ = ::pthread_self();
        total_ = total;
        sent_ = 0;
        if (left_ && left_->thread == static_cast<uint64_t>(thread_)) {
            if (left_->total == total) sent_ = static_cast<size_t>(left_->sent);
            left_.reset();
        }
        active_ = true;
        return sent_;
    }
    void add(size_t n) { sent_ += n; }
    size_t sent() const { return sent_; }
    // A write under way: some of its bytes may be out, even with sent() 0 (a blocking
    // send() in the kernel counts them only when it returns). Not sent_, which the
    // writer changes without the mutex.
    bool under_way() const { return active_; }
    // The write left for a reload: a retry on this version goes on from here.
    void keep_for_retry() { left_ = current(); }
    void end() { active_ = false; }
    // What a save hands over: the write in progress if it stopped part-way, else one
    // kept from a reload that rolled back.
    std::optional<WriteResume> for_save() const {
        if (active_ && sent_ < total_) return current();
        return left_;
    }
    void restore(const std::optional<WriteResume> &left) { left_ = left; }
    // A write left part-way by another thread, which must finish it before anyone else
    // writes (the stream would carry the other bytes between its two parts).
    bool held_for_another_thread() const { return left_ && left_->thread != static_cast<uint64_t>(::pthread_self()); }
    // In a child after fork(): the writes of the parent's other threads, which will never
    // come back here.
    void forget_other_threads() {
        if (held_for_another_thread()) left_.reset();
        if (active_ && !::pthread_equal(thread_, ::pthread_self())) active_ = false;
    }

private:
    WriteResume current() const { return WriteResume{static_cast<uint64_t>(thread_), total_, sent_}; }

    pthread_t thread_{};
    size_t total_ = 0;
    size_t sent_ = 0;
    bool active_ = false;
    std::optional<WriteResume> left_;
};

// A connection accept() took from the kernel whose caller had not returned yet.
struct AcceptedConnection {
    int fd = -1;
    sockaddr_storage peer{};
};

struct QueuedDatagram {
    std::string data;
    sockaddr_storage from{};
    int32_t error = 0;
    bool partial = false;
};

struct SocketState {
    uint8_t family = 0, kind = 0, protocol = 0;  // the enums' values
    int32_t os_af = 0, os_type = 0, os_protocol = 0;  // raw and packet sockets: socket()'s
    int64_t timeout_ns = -1;                    // -1: none
    int fd = -1;                                // the saving version's; -1: closed
    uint8_t state = 0;                          // the kind's State value
    // Streams.
    uint64_t line_max = 0;
    bool eof = false;
    int32_t read_error = 0;
    bool write_shut = false;
    std::string received;  // received and not yet read by the script
    std::optional<WriteResume> write_resume;
    bool connect_resume = false;  // a connect() left mid-way: its retry waits for it
    std::vector<AcceptedConnection> accepted;
    sockaddr_storage peer{};  // connected: the peer, for errors after a reset; family 0: unknown
    // Datagrams.
    std::vector<QueuedDatagram> datagrams;
    uint64_t dropped = 0;
};

// `format`: the layout's version, which the plugin names; a version that changes the
// layout raises it, and reads every format from kOldestStateFormat up to its own, so a
// reload to it from an older version keeps every socket. A reload to an older version
// is refused (tests build one with an older number to see that).
constexpr uint32_t kOldestStateFormat = 1;
// What each format added: 2, the peer of a connection.
constexpr uint32_t kStateFormatWithPeer = 2;
std::string encode_state(const SocketState &s, uint32_t format);
// Throws Error(Value) naming what it cannot read (a newer format, cut bytes).
SocketState decode_state(std::string_view bytes, uint32_t format);

}  // namespace ksnet
