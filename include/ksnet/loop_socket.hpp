// ksnet/loop_socket.hpp - what UdpSocket and PollSocket share: their mutex, their close
// and their options.
//
// Both make every libuv call on the loop thread. close() (from any thread) marks the
// socket Closed under mu_, which wakes every blocked call, then posts the uv_close of the
// handle; the socket's memory goes only after the close callback, when the runtime lets
// go of it. TcpSocket and UdpSocket close their own way: their callers make system calls
// off the loop, and the descriptor waits for the last of them (UdpSocket::close hides
// this close).
//
// A template, so that the socket keeps its own State enum and its handle's callbacks
// find it from handle->data. The Socket makes LoopSocket<Socket> a friend and has:
//   State (with Closed) and state_, under mu_;
//   handle(): its uv handle, whose data points to the Socket;
//   name_for_errors_locked(): how error messages name it;
//   on_handle_closed() if it must do more once the handle is closed (loop thread).
#pragma once

#include <uv.h>

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "ksnet/error.hpp"
#include "ksnet/options.hpp"
#include "ksnet/runtime.hpp"

namespace ksnet {

template <class Socket>
class LoopSocket : public LoopResource, public std::enable_shared_from_this<Socket> {
public:
    // Harmless when already closed. Wakes every thread blocked on this socket.
    void close() {
        {
            std::lock_guard lk(mu_);
            if (closed_locked() || moved_out_) return;  // moved: teardown lets go of the handle
            socket().state_ = Socket::State::Closed;
            cv_.notify_all();
        }
        auto self = this->shared_from_this();
        rt_->post([self] { self->close_handle_on_loop(); });  // refused after shutdown: already closed
    }

    void abort_on_loop(const char *why) override {
        {
            std::lock_guard lk(mu_);
            // A socket that moved to another version keeps its state for calls on their
            // way back; only its handle (this version's descriptor) goes.
            if (moved_out_) why = nullptr;
            if (why) {
                if (!closed_locked()) close_reason_ = why;
                socket().state_ = Socket::State::Closed;
                cv_.notify_all();
            }
        }
        close_handle_on_loop();
    }

    // The OS descriptor, -1 once closed.
    int fileno() const {
        std::lock_guard lk(mu_);
        return closed_locked() ? -1 : fd_;
    }

    // Socket options by name (ksnet/options.hpp).
    void set_option(Option o, int64_t value) {
        std::lock_guard lk(mu_);  // while open, the loop cannot close fd_
        throw_if_closed_locked("setopt");
        ksnet::set_option(fd_, o, value, socket().name_for_errors_locked());
    }

    int64_t get_option(Option o) const {
        std::lock_guard lk(mu_);
        throw_if_closed_locked("getopt");
        return ksnet::get_option(fd_, o, socket().name_for_errors_locked());
    }

protected:
    explicit LoopSocket(std::shared_ptr<Runtime> rt) : rt_(std::move(rt)) {}

    // Loop thread. Requests still pending on the handle (queued UDP sends) complete with
    // UV_ECANCELED before on_close.
    void close_handle_on_loop() {
        if (handle_closing_) return;
        handle_closing_ = true;
        uv_close(socket().handle(), &LoopSocket::on_close);
    }

    // Hidden by a Socket that has more to do; nothing here.
    void on_handle_closed() {}

    // Caller thread, mu_ held. At the start of a call: the socket moved to another
    // version of the plugin (live reload), whose code the host calls instead.
    void throw_if_moved_locked(const char *op) const {
        if (moved_out_) throw moved_error(op);
    }

    void throw_if_closed_locked(const char *op) const {
        if (closed_locked()) {
            std::string msg = std::string(op) + ": ";
            msg += close_reason_.empty() ? "the socket is closed" : "socket closed because " + close_reason_;
            throw Error(ErrorKind::Closed, msg);
        }
    }

    std::shared_ptr<Runtime> rt_;
    int fd_ = -1;  // open while mu_ is held and the socket is not Closed (the loop closes it)
    bool handle_closing_ = false;  // loop only

    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::string close_reason_;  // why the runtime closed it, if it did
    bool moved_out_ = false;    // handed to another version of the plugin (live reload)

private:
    Socket &socket() { return static_cast<Socket &>(*this); }
    const Socket &socket() const { return static_cast<const Socket &>(*this); }
    bool closed_locked() const { return socket().state_ == Socket::State::Closed; }

    static void on_close(uv_handle_t *h) {
        auto *self = static_cast<Socket *>(h->data);
        self->on_handle_closed();
        self->rt_->untrack(self);  // may destroy self: nothing after this
    }
};

}  // namespace ksnet
