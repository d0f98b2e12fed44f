// member_table.hpp - a type's methods and getters by name, its bases' included.
//
// Looked up on every method call, so it is a small open-addressing table (power-of-two
// size, linear probing, hashes stored with the entries, names hashed eight bytes at a
// time) rather than an std::unordered_map, whose out-of-line hashing, division and node
// hops cost more than the rest of a cheap call. Filled once when its type is made;
// read-only afterwards.
#ifndef REFHOST_TYPES_MEMBER_TABLE_HPP
#define REFHOST_TYPES_MEMBER_TABLE_HPP

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace refhost {

struct Method;
struct Getter;
struct TypeObject;

// What a name means on a type: the first method and the first getter of that name along
// the base chain, and which of the two an attribute lookup finds.
struct MemberSlot {
    const Method* method = nullptr;
    const TypeObject* method_owner = nullptr;
    const Getter* getter = nullptr;
    const TypeObject* getter_owner = nullptr;
    bool attribute_is_getter = false;
};

class MemberTable {
public:
    // The slot for `name`, added empty if absent. `name` must outlive the table.
    MemberSlot& slot_for(std::string_view name);
    // NULL if absent.
    const MemberSlot* find(std::string_view name) const {
        if (entries_.empty()) return nullptr;
        const uint64_t h = hash(name);
        const size_t mask = entries_.size() - 1;
        for (size_t i = h & mask;; i = (i + 1) & mask) {
            const Entry& e = entries_[i];
            if (!e.used) return nullptr;
            if (e.hash == h && same_name(e.name, name)) return &e.slot;
        }
    }
    void clear() {
        entries_.clear();
        used_ = 0;
    }

private:
    struct Entry {
        bool used = false;
        uint64_t hash = 0;
        std::string_view name;
        MemberSlot slot;
    };

    // The `n` bytes at `p` (n <= 8) in one word, read in at most two loads and never past
    // the end. Different bytes of the same length give different words: two 4-byte
    // windows cover 4 to 8 bytes, and the first, middle and last byte cover 1 to 3.
    static uint64_t short_word(const char* p, size_t n) {
        if (n >= 4) {
            uint32_t first, last;
            std::memcpy(&first, p, 4);
            std::memcpy(&last, p + n - 4, 4);
            return first | static_cast<uint64_t>(last) << 32;
        }
        if (n == 0) return 0;
        auto byte = [&](size_t i) { return static_cast<uint64_t>(static_cast<unsigned char>(p[i])); };
        return byte(0) | byte(n / 2) << 8 | byte(n - 1) << 16;
    }

    // Most names fit in one word, so one multiply, and their tail is read a word at a
    // time too (a byte-at-a-time tail was most of a short name's lookup).
    static uint64_t hash(std::string_view s) {
        constexpr uint64_t kMul = 0x9e3779b97f4a7c15u;
        uint64_t h = (s.size() + 1) * kMul;
        size_t i = 0;
        for (; i + 8 <= s.size(); i += 8) {
            uint64_t word;
            std::memcpy(&word, s.data() + i, 8);
            h = (h ^ word) * kMul;
            h ^= h >> 29;
        }
        h = (h ^ short_word(s.data() + i, s.size() - i)) * kMul;
        return h ^ (h >> 32);
    }

    // Names of up to eight bytes compare as words, not through a memcmp call.
    static bool same_name(std::string_view a, std::string_view b) {
        if (a.size() != b.size()) return false;
        if (a.size() <= 8) return short_word(a.data(), a.size()) == short_word(b.data(), b.size());
        return std::memcmp(a.data(), b.data(), a.size()) == 0;
    }
    void grow();

    std::vector<Entry> entries_;  // empty, or a power of two at most half used
    size_t used_ = 0;
};

}  // namespace refhost

#endif
