// ksnet/receive_buffer.hpp - bytes received ahead of the reader (line iteration reads more
// than one line at a time), with room at the end that recv() fills in place: no
// zero-filling and no second copy, which a std::string would cost.
#pragma once

#include <cstddef>
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

namespace ksnet {

class ReceiveBuffer {
public:
    size_t size() const { return end_ - begin_; }
    bool empty() const { return begin_ == end_; }
    const char *data() const { return storage_.get() + begin_; }

    // Room for `n` more bytes after the last one; write them there, then commit().
    char *reserve(size_t n) {
        if (capacity_ - end_ < n) make_room(n);
        return storage_.get() + end_;
    }
    void commit(size_t n) { end_ += n; }

    // Drops the first `n` bytes. An emptied buffer gives its memory back, so that an
    // idle connection holds none.
    void consume(size_t n) {
        begin_ += n;
        if (begin_ == end_) {
            storage_.reset();
            capacity_ = begin_ = end_ = 0;
        }
    }
    // Copies out the first `n` bytes and drops them.
    std::string take(size_t n) {
        std::string out(data(), n);
        consume(n);
        return out;
    }

private:
    void make_room(size_t n) {
        size_t live = size();
        if (begin_ > 0 && live + n <= capacity_) {  // slide the live bytes to the front
            std::memmove(storage_.get(), data(), live);
        } else {
            size_t capacity = std::max(capacity_ * 2, live + n);
            auto bigger = std::make_unique_for_overwrite<char[]>(capacity);
            if (live > 0) std::memcpy(bigger.get(), data(), live);
            storage_ = std::move(bigger);
            capacity_ = capacity;
        }
        begin_ = 0;
        end_ = live;
    }

    std::unique_ptr<char[]> storage_;
    size_t capacity_ = 0;
    size_t begin_ = 0;  // first unread byte
    size_t end_ = 0;    // one past the last received byte
};

}  // namespace ksnet
