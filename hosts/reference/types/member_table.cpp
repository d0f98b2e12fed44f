// member_table.cpp - filling a MemberTable.
#include "types/member_table.hpp"

namespace refhost {

MemberSlot& MemberTable::slot_for(std::string_view name) {
    if (2 * (used_ + 1) > entries_.size()) grow();
    const uint64_t h = hash(name);
    const size_t mask = entries_.size() - 1;
    size_t i = h & mask;
    for (; entries_[i].used; i = (i + 1) & mask)
        if (entries_[i].hash == h && entries_[i].name == name) return entries_[i].slot;
    Entry& e = entries_[i];
    e.used = true;
    e.hash = h;
    e.name = name;
    used_++;
    return e.slot;
}

void MemberTable::grow() {
    std::vector<Entry> old;
    old.swap(entries_);
    entries_.resize(old.empty() ? 16 : 2 * old.size());
    const size_t mask = entries_.size() - 1;
    for (Entry& e : old) {
        if (!e.used) continue;
        size_t i = e.hash & mask;
        while (entries_[i].used) i = (i + 1) & mask;
        entries_[i] = e;
    }
}

}  // namespace refhost
