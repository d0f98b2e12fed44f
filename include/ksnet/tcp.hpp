// ksnet/tcp.hpp - a blocking TCP socket backed by a uv_tcp_t on the runtime's loop.
//
// Every method may be called from any thread. Each blocking method hands its work to
// the loop thread and waits for the result with the interpreter lock released.
// Received bytes collect in a per-socket buffer filled on the loop thread; reading
// pauses at a high-water mark (backpressure) and resumes as the buffer drains.
#pragma once

#include <uv.h>

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "ksnet/address.hpp"
#include "ksnet/options.hpp"
#include "ksnet/runtime.hpp"

namespace ksnet {

struct WriteOp;

class TcpSocket final : public LoopResource, public std::enable_shared_from_this<TcpSocket> {
public:
    static constexpr size_t kReadAll = static_cast<size_t>(-1);
    static constexpr size_t kHighWater = 1024 * 1024;  // stop reading from the kernel here

    enum class State { Open, Connecting, Connected, Listening, Closed };

    // A new unconnected socket of that family (INET4 or INET6).
    static std::shared_ptr<TcpSocket> create(std::shared_ptr<Runtime> rt, Family family);

    void bind(const Endpoint &ep);
    void connect(const Endpoint &ep, const Deadline &deadline = {});
    void listen(int backlog);
    // The next incoming connection and the peer's name ("127.0.0.1:50312").
    std::pair<std::shared_ptr<TcpSocket>, std::string> accept(const Deadline &deadline = {});

    // Up to `max` bytes, as soon as any are there; kReadAll reads to end of stream.
    // An empty result means end of stream.
    std::string read(size_t max, const Deadline &deadline = {});
    // The next line without its "\n" or "\r\n"; a last line without a newline counts.
    // nullopt at end of stream.
    std::optional<std::string> read_line(const Deadline &deadline = {});
    // Returns once all of `data` has been handed to the kernel. `data` must stay valid
    // until then (it is not copied).
    void write(std::string_view data, const Deadline &deadline = {});

    // Half-close: sends FIN once every earlier write has gone out. Reading continues
    // until the peer's end of stream; a later write raises Error(State).
    void shutdown_write(const Deadline &deadline = {});

    // Socket options by name (ksnet/options.hpp).
    void set_option(Option o, int64_t value);
    int64_t get_option(Option o) const;

    // Harmless when already closed. Wakes every thread blocked on this socket.
    void close();
    // True when the peer has finished sending and everything received has been read.
    bool eof();

    State state() const;
    Family family() const { return family_; }
    static const char *state_name(State s);
    // getsockname / getpeername; throw Error(State) when there is none.
    sockaddr_storage local_address() const;
    sockaddr_storage peer_address() const;

    void abort_on_loop(const char *why) override;
    void pause_for_fork_on_loop() override;
    ~TcpSocket() override;

private:
    TcpSocket(std::shared_ptr<Runtime> rt, Family family);

    // Loop-thread halves of the operations.
    void start_reading_on_loop();
    void close_handle_on_loop();
    void accept_on_loop();
    static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
    static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
    static void on_connection(uv_stream_t *server, int status);
    static void on_close(uv_handle_t *h);
    static void complete_write(WriteOp &op, int status);

    // Caller-thread helpers; "_locked" ones need mu_ held.
    void throw_if_unusable_locked(const char *op) const;
    void want_more_locked();
    std::string take_locked(size_t n);
    size_t buffered_locked() const { return rbuf_.size() - rpos_; }
    std::string name_for_errors() const;
    void wait_or_throw(const std::function<bool()> &pred, const Deadline &deadline, const char *op);

    std::shared_ptr<Runtime> rt_;
    const Family family_;
    uv_tcp_t handle_{};
    int fd_ = -1;
    bool handle_closing_ = false;  // loop only

    mutable std::mutex mu_;
    std::condition_variable cv_;
    State state_ = State::Open;
    std::string close_reason_;  // why the runtime closed it, if it did

    // Receiving (under mu_).
    std::string rbuf_;
    size_t rpos_ = 0;      // bytes of rbuf_ already taken
    size_t scan_pos_ = 0;  // where the search for the next '\n' resumes
    bool reading_ = false;
    bool resume_posted_ = false;
    bool eof_ = false;
    int read_error_ = 0;
    int waiting_readers_ = 0;

    // Connecting (under mu_).
    bool connect_done_ = false;
    int connect_status_ = 0;

    // Accepting (under mu_).
    std::deque<std::shared_ptr<TcpSocket>> accepted_;
    bool connection_pending_ = false;
    int accept_error_ = 0;
    int accept_waiters_ = 0;

    int write_error_ = 0;
    bool write_shut_ = false;  // shutdown_write() was called
};

}  // namespace ksnet
