// ksnet/tcp.hpp - a blocking TCP socket backed by a uv_tcp_t on the runtime's loop.
//
// Every method may be called from any thread. The loop thread owns the handle (it
// takes the descriptor into a uv_tcp_t, tracks it, and closes it with uv_close) and
// resolves host names (uv_getaddrinfo). The calls themselves do not go through the
// loop: connect, accept, read and write are system calls on the caller's thread, with
// the interpreter lock released. Without a deadline they are blocking calls, one system
// call each as in a C program, on a descriptor whose SO_RCVTIMEO/SO_SNDTIMEO bring
// them back every wait slice to look at close() and host interrupts; with a deadline
// they are non-blocking, followed by poll() until the deadline. docs/design.md has the
// measurements behind each step.
// Readers are served one at a time, and so are writers; a reader and a writer may run
// at once. The descriptor is closed (uv_close) only once no caller is using it.
#pragma once

#include <uv.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "ksnet/address.hpp"
#include "ksnet/handover.hpp"
#include "ksnet/io_chunk.hpp"
#include "ksnet/options.hpp"
#include "ksnet/receive_buffer.hpp"
#include "ksnet/runtime.hpp"

namespace ksnet {

class TcpSocket final : public LoopResource, public std::enable_shared_from_this<TcpSocket> {
public:
    static constexpr size_t kReadAll = static_cast<size_t>(-1);

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
    // The same into `into` (up to `cap` bytes, at most kIoChunk at a time): returns
    // how many bytes it wrote, 0 at end of stream. The bytes are written with no lock
    // held, so `into` must belong to the caller alone.
    size_t read_into(char *into, size_t cap, const Deadline &deadline = {});
    // The next line without its "\n" or "\r\n"; at end of stream a last line without a
    // newline counts, then nullopt. After a reset the complete lines come first, then
    // the error; the unfinished line stays buffered for read(n). read(kReadAll) raises
    // such an error too, keeping what arrived. A line longer than the option linemax
    // raises Error(Value) naming it; its bytes stay buffered for read().
    std::optional<std::string> read_line(const Deadline &deadline = {});
    // The same, handing the line to `take` where it lies in the receive buffer (no copy
    // of its own): false at end of stream. `take` runs with the socket's lock held, so it
    // must not use this socket; if it throws, the line stays buffered.
    bool read_line_to(FunctionRef<void(std::string_view)> take, const Deadline &deadline = {});
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
    int fileno() const;  // the OS descriptor, -1 once closed
    static const char *state_name(State s);
    // getsockname / getpeername; throw Error(State) when there is none.
    sockaddr_storage local_address() const;
    sockaddr_storage peer_address() const;

    // Live reload (ksp_handover). After Runtime::begin_handover: waits until no caller
    // uses the descriptor (each has left it; see end_handover) and fills the stream's
    // part of `out` (`out.fd` is this socket's descriptor, which it keeps). Throws
    // Error(State) if a caller does not leave within `limit`.
    void save(SocketState &out, Clock::duration limit);
    // The next version's socket: its own duplicate of `s.fd`, and what `s` says.
    static std::shared_ptr<TcpSocket> restore(std::shared_ptr<Runtime> rt, Family family, const SocketState &s);
    // committed: the socket now belongs to the next version. Calls still on their way
    // back raise Error(Moved) unless their result no longer needs the socket, and close()
    // and teardown close the descriptor without shutdown(): the connection lives on in
    // the duplicate. Otherwise the socket serves on.
    void end_handover(bool committed);

    void abort_on_loop(const char *why) override;
    void mark_closing() override;
    ~TcpSocket() override;

private:
    TcpSocket(std::shared_ptr<Runtime> rt, Family family);

    // A socket for `fd`; the loop takes the descriptor into the handle (posted: nobody
    // waits for it, and the task queue runs it before any later close).
    static std::shared_ptr<TcpSocket> adopt(std::shared_ptr<Runtime> rt, Family family, int fd, State state);

    // Loop-thread halves.
    void open_handle_on_loop();
    void close_handle_on_loop();
    static void on_close(uv_handle_t *h);

    // Caller-thread helpers; "_locked" ones need mu_ held.
    // At the start of a call: closed, or moved to another version (Error(Moved)).
    void throw_if_unusable_locked(const char *op) const;
    // After a system call whose result the caller keeps: closed only.
    void throw_if_closed_locked(const char *op) const;
    // The same, and also once the runtime has marked the socket closing (unload).
    void throw_if_closing_locked(const char *op) const;
    [[noreturn]] void throw_closed_locked(const char *op) const;
    // Direct I/O on fd_ outside mu_: begin marks the descriptor in use (it cannot be
    // closed under the caller), end lets close() go ahead once nobody uses it.
    void begin_io_locked() { ++io_active_; }
    void end_io_locked();
    // Waits (mu_ released) until fd_ is ready; throws on timeout, interrupt or close.
    void wait_ready(std::unique_lock<std::mutex> &lk, short events, const Deadline &deadline, const char *op);
    // The one way a call uses fd_ outside mu_: Runtime::call_blocking with the
    // descriptor counted in use (and let go before the interpreter lock is taken back).
    // Returns what `call` returned, with errno in `err`; without `call`, waits until fd_
    // is ready. Throws on close, unload, interrupt or the deadline.
    ssize_t blocking_locked(std::unique_lock<std::mutex> &lk, short events, const char *op, const Deadline &deadline,
                            FunctionRef<ssize_t()> call, int &err, bool first_try_locked = false);
    // Makes callers blocked in the kernel on fd_ return now (close() from another thread).
    void wake_callers_locked();
    // Takes one turn as the reader / writer (waiting for the current one to finish).
    void take_turn(std::unique_lock<std::mutex> &lk, bool &busy, const Deadline &deadline, const char *op);
    // Gives a turn back, waking the callers waiting for one (only if there are any: a
    // broadcast per call costs a library call when, as usual, nobody waits).
    void end_turn_locked(bool &busy);
    // One recv() of up to `max` bytes into `into` (waiting until there are some): the
    // bytes received, or 0 at end of stream or after an error (eof_ or read_error_ tells
    // which).
    ssize_t receive(std::unique_lock<std::mutex> &lk, char *into, size_t max, const Deadline &deadline);
    // The same into rbuf_, committed before the caller lets go of the descriptor, so
    // that a live reload hands the bytes over; raises Error(Moved) if it did.
    ssize_t receive_buffered(std::unique_lock<std::mutex> &lk, const Deadline &deadline);
    // recv() on fd_ into `into`, and into rbuf_'s committed bytes if `buffered`.
    ssize_t receive_call(std::unique_lock<std::mutex> &lk, char *into, size_t max, const Deadline &deadline,
                         bool buffered);
    // With the reader's turn: buffered bytes first, else one recv(); 0 at end of stream.
    size_t read_some_locked(std::unique_lock<std::mutex> &lk, char *into, size_t cap, const Deadline &deadline);
    // Holds the reader's turn for one call and gives it back however the call ends.
    struct ReaderTurn;
    // One send() of (a first part of) `data`, waiting for room; adds what it sent to
    // writing_ before letting go of the descriptor.
    void send_some_locked(std::unique_lock<std::mutex> &lk, std::string_view data, const Deadline &deadline);
    void check_readable_locked(const char *op) const;
    [[noreturn]] void throw_line_too_long_locked() const;
    std::string name_for_errors() const;
    void wait_or_throw(FunctionRef<bool()> pred, const Deadline &deadline, const char *op);

    std::shared_ptr<Runtime> rt_;
    const Family family_;
    uv_tcp_t handle_{};
    int fd_ = -1;
    bool handle_open_ = false;     // loop only: uv_tcp_init done
    bool fd_owned_by_uv_ = false;  // loop only: uv_tcp_open done (uv_close closes fd_)
    bool handle_closing_ = false;  // loop only

    mutable std::mutex mu_;
    std::condition_variable cv_;
    State state_ = State::Open;
    std::string close_reason_;  // why the runtime closed it, if it did

    // Handing the descriptor to the loop (under mu_): a socket closed before the loop
    // took it is closed right here, and the loop never hears of it.
    enum class Handoff { Pending, Taken, Cancelled };
    Handoff handoff_ = Handoff::Pending;
    void close_descriptor_locked();  // ::close now if still Pending, else via the loop

    // Direct I/O (under mu_).
    int io_active_ = 0;          // callers inside recv/send/poll on fd_
    bool close_deferred_ = false;  // close() waits for io_active_ to reach 0
    std::atomic<bool> closing_{false};  // read without mu_ by waiting callers
    bool reader_busy_ = false;
    bool writer_busy_ = false;
    int turn_waiters_ = 0;  // callers in take_turn waiting for the other's turn to end

    // Receiving (under mu_; only the reader whose turn it is changes them).
    ReceiveBuffer rbuf_;    // bytes received by read_line() beyond the line it returned
    size_t scanned_ = 0;    // leading bytes of rbuf_ known to hold no '\n'
    size_t line_max_ = kDefaultLineMax;  // option linemax
    bool eof_ = false;
    int read_error_ = 0;

    bool write_shut_ = false;  // shutdown_write() was called

    // Live reload (under mu_; see save and end_handover).
    bool moved_out_ = false;
    WriteProgress writing_;  // `sent` grows while the writer has fd_
    bool connect_issued_ = false;  // connect() reached the kernel (state Connecting)
    bool connect_resume_ = false;  // a connect that left part-way: its retry waits for it
    std::deque<AcceptedConnection> accepted_;  // taken from the kernel, not yet returned
};

}  // namespace ksnet
