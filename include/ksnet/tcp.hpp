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
// at once. What every socket shares is SocketBase's, and what sockets whose callers make
// their own system calls share is CallerIoSocket's; a TCP socket adds that a descriptor
// the loop has not taken yet is closed at once (Handoff), and the option linemax.
#pragma once

#include <uv.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ksnet/address.hpp"
#include "ksnet/handover.hpp"
#include "ksnet/io_chunk.hpp"
#include "ksnet/options.hpp"
#include "ksnet/receive_buffer.hpp"
#include "ksnet/runtime.hpp"
#include "ksnet/caller_io_socket.hpp"

namespace ksnet {

class TcpSocket final : public CallerIoSocket {
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

    // close(), fileno(), set_option() and get_option(): see SocketBase.

    // True when the peer has finished sending and everything received has been read.
    bool eof();

    State state() const;
    Family family() const { return family_; }
    static const char *state_name(State s);
    const char *state_text() const override;
    // getsockname / getpeername; throw Error(State) when there is none.
    sockaddr_storage local_address() const override;
    sockaddr_storage peer_address() const override;

    // Live reload (ksp_handover). After Runtime::begin_handover: waits until no caller
    // uses the descriptor (each has left it; see end_handover) and fills the stream's
    // part of `out` (`out.fd` is this socket's descriptor, which it keeps). Throws
    // Error(State) if a caller does not leave within `limit`.
    void save(SocketState &out, Clock::duration limit) override;
    // The next version's socket: its own duplicate of `s.fd`, and what `s` says.
    static std::shared_ptr<TcpSocket> restore(std::shared_ptr<Runtime> rt, Family family, const SocketState &s);
    // end_handover(): see SocketBase. Calls on their way back from a socket that moved
    // raise Error(Moved) unless their result no longer needs the socket, and close() and
    // teardown close the descriptor without shutdown(): the connection lives on in the
    // duplicate.
    ~TcpSocket() override;

private:
    TcpSocket(std::shared_ptr<Runtime> rt, Family family);

    // A socket for `fd`; the loop takes the descriptor into the handle (posted lazily:
    // nobody waits for it, and the task holds the socket weakly, so a socket let go of
    // before then is freed, and its descriptor closed, by the thread that let go of it).
    static std::shared_ptr<TcpSocket> adopt(std::shared_ptr<Runtime> rt, Family family, int fd, State state);

    // Loop-thread halves.
    void open_handle_on_loop();
    uv_handle_t *handle() override;  // nullptr until uv_tcp_init
    void on_handle_closed() override;  // closes fd_ if libuv never took it

    bool set_own_option_locked(Option o, int64_t value) override;  // linemax
    std::optional<int64_t> own_option_locked(Option o) const override;
    bool release_descriptor_locked() override;  // ::close(fd_) if the loop never took it
    // One recv() of up to `max` bytes into `into` (waiting until there are some): the
    // bytes received, or 0 at end of stream or after an error (eof_ or read_error_ tells
    // which).
    ssize_t receive(std::unique_lock<std::mutex> &lk, char *into, size_t max, const Deadline &deadline);
    // The same into rbuf_, committed before the caller lets go of the descriptor, so
    // that a live reload hands the bytes over; raises Error(Moved) if it did.
    ssize_t receive_buffered(std::unique_lock<std::mutex> &lk, const Deadline &deadline);
    // The same into a small buffer on the stack, its bytes then copied into rbuf_ (which
    // takes a block only for bytes that came).
    ssize_t receive_staged(std::unique_lock<std::mutex> &lk, const Deadline &deadline);
    static constexpr size_t kStagedReceive = 2048;
    // Ends the connection with a reset (the peer's next read fails with ECONNRESET).
    void reset_connection_locked() override;
    // Waits for a connect under way; its result (SO_ERROR).
    int finish_connect_locked(std::unique_lock<std::mutex> &lk, const Deadline &deadline);
    // What becomes of receive_call's bytes: only in `into` (the caller's), or committed to
    // rbuf_, where `into` already lies (InPlace) or where they are copied from it (Copy).
    enum class Keep { No, InPlace, Copy };
    // recv() on fd_ into `into`, kept as `keep` says before the caller lets go of fd_.
    ssize_t receive_call(std::unique_lock<std::mutex> &lk, char *into, size_t max, const Deadline &deadline,
                         Keep keep);
    // With the reader's turn: buffered bytes first, else one recv(); 0 at end of stream.
    size_t read_some_locked(std::unique_lock<std::mutex> &lk, char *into, size_t cap, const Deadline &deadline);
    // Holds the reader's turn for one call and gives it back however the call ends.
    struct ReaderTurn;
    // One send() of (a first part of) `data`, waiting for room; adds what it sent to
    // writing_ before letting go of the descriptor.
    void send_some_locked(std::unique_lock<std::mutex> &lk, std::string_view data, const Deadline &deadline);
    void check_readable_locked(const char *op) const;
    size_t read_nothing() const;  // read(0): 0, or the error any read would raise first
    [[noreturn]] void throw_line_too_long_locked() const;
    // The peer while it is known, even after a reset (getpeername then fails); else the
    // socket's own address.
    std::string name_for_errors_locked() const override;
    void remember_peer_locked(const sockaddr_storage &peer);

    const Family family_;
    uv_tcp_t handle_{};
    bool handle_open_ = false;     // loop only: uv_tcp_init done
    bool fd_owned_by_uv_ = false;  // loop only: uv_tcp_open done (uv_close closes fd_)

    State state_ = State::Open;  // under mu_; SocketBase's closed_ stands for Closed

    // Handing the descriptor to the loop (under mu_): a socket closed before the loop
    // took it is closed right here, and the loop never hears of it.
    enum class Handoff { Pending, Taken, Cancelled };
    Handoff handoff_ = Handoff::Pending;

    // Receiving (under mu_; only the reader whose turn it is changes them).
    ReceiveBuffer rbuf_;    // bytes received by read_line() beyond the line it returned
    size_t scanned_ = 0;    // leading bytes of rbuf_ known to hold no '\n'
    size_t line_max_ = kDefaultLineMax;  // option linemax
    bool eof_ = false;
    bool write_shut_ = false;  // shutdown_write() was called
    // Live reload (under mu_; see save and end_handover). Beside the other flags: every
    // byte of an idle connection counts.
    bool connect_issued_ = false;  // connect() reached the kernel (state Connecting)
    bool connect_resume_ = false;  // a connect that left part-way: its retry waits for it
    int read_error_ = 0;

    sockaddr_in6 peer_{};  // Connected: the peer (an IPv4 one fits), for errors; else family 0

    // Taken from the kernel, not yet returned; oldest first. A vector, not a deque: it is
    // almost always empty, and an empty std::deque already holds a block of the heap.
    std::vector<AcceptedConnection> accepted_;
};

}  // namespace ksnet
