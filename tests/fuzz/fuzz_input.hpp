// fuzz_input.hpp - reads typed values from a fuzzer's byte string. Running out of
// bytes yields zeros and empty strings, so every input decodes to something.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace fuzzin {

class Reader {
public:
    Reader(const uint8_t *data, size_t size) : p_(data), n_(size) {}

    uint8_t u8() {
        if (n_ == 0) return 0;
        --n_;
        return *p_++;
    }
    uint16_t u16() { return static_cast<uint16_t>(u8() | (u8() << 8)); }
    int64_t i64() {
        uint64_t v = 0;
        for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(u8()) << (8 * i);
        return static_cast<int64_t>(v);
    }
    // An integer that is often at an edge: 0, +-1, the type limits, powers of two.
    int64_t interesting_int() {
        switch (u8() % 12) {
        case 0: return 0;
        case 1: return 1;
        case 2: return -1;
        case 3: return INT64_MAX;
        case 4: return INT64_MIN;
        case 5: return int64_t{1} << (u8() % 63);
        case 6: return -(int64_t{1} << (u8() % 63));
        case 7: return u16();
        case 8: return 65535 + (u8() % 3);
        case 9: return int64_t{0xFFFFF} + (u8() % 3) - 1;
        case 10: return int64_t{0xFFFFFFFF} + (u8() % 3) - 1;
        default: return i64();
        }
    }
    double f64() {
        switch (u8() % 6) {
        case 0: return 0.0;
        case 1: return __builtin_nan("");
        case 2: return __builtin_inf();
        case 3: return -__builtin_inf();
        case 4: return static_cast<double>(u16()) / 1000.0;
        default: {
            int64_t bits = i64();
            double d;
            std::memcpy(&d, &bits, sizeof d);
            return d;
        }
        }
    }
    // Up to `max` bytes, length first.
    std::string str(size_t max) {
        size_t len = u16() % (max + 1);
        len = len < n_ ? len : n_;
        std::string s(reinterpret_cast<const char *>(p_), len);
        p_ += len;
        n_ -= len;
        return s;
    }
    // Whatever is left.
    std::string rest() {
        std::string s(reinterpret_cast<const char *>(p_), n_);
        p_ += n_;
        n_ = 0;
        return s;
    }
    bool empty() const { return n_ == 0; }

private:
    const uint8_t *p_;
    size_t n_;
};

}  // namespace fuzzin
