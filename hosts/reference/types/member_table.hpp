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
            if (e.hash == h && e.name == name) return &e.slot;
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

    // Most names fit in one word, so one multiply (a byte-at-a-time hash was a chain of
    // one multiply per byte, most of a lookup's time).
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
        uint64_t tail = 0;
        for (unsigned shift = 0; i < s.size(); i++, shift += 8)
            tail |= static_cast<uint64_t>(static_cast<unsigned char>(s[i])) << shift;
        h = (h ^ tail) * kMul;
        return h ^ (h >> 32);
    }
    void grow();

    std::vector<Entry> entries_;  // empty, or a power of two at most half used
    size_t used_ = 0;
};

}  // namespace refhost

#endif
