// object_pool.cpp - memory for objects (Object::operator new and delete): a short
// per-thread list of freed blocks for each small size, so that an object made and
// dropped on every call (a line, the int a write returns) skips malloc and free, as
// CPython's free lists do. Larger objects, and every object in a sanitizer build (which
// must see each use after free), go to the global heap.
#include <cstddef>
#include <new>

#include "object.hpp"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define REFHOST_OBJECT_POOL 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define REFHOST_OBJECT_POOL 0
#endif
#endif
#ifndef REFHOST_OBJECT_POOL
#define REFHOST_OBJECT_POOL 1
#endif

namespace refhost::detail {

namespace {

constexpr size_t kStep = 16;     // size classes of 16, 32, ... bytes
constexpr size_t kClasses = 8;   // up to 128 bytes: every scalar, bytes, instance, method
constexpr unsigned kDepth = 32;  // blocks kept per class and thread

struct FreeBlock {
    FreeBlock* next;
};

// Plain data, so that the hot path reads it without a thread-local init check; the
// Reaper below frees what it holds when the thread ends.
struct Pool {
    FreeBlock* head[kClasses];
    unsigned count[kClasses];
    bool reaper_armed;
    bool gone;  // the thread is ending: free everything from now on
};
constinit thread_local Pool t_pool{};

struct Reaper {
    ~Reaper() {
        t_pool.gone = true;
        for (size_t c = 0; c < kClasses; c++) {
            while (FreeBlock* b = t_pool.head[c]) {
                t_pool.head[c] = b->next;
                ::operator delete(b);
            }
            t_pool.count[c] = 0;
        }
    }
};
thread_local Reaper t_reaper;

size_t class_of(size_t size) { return size == 0 ? 0 : (size - 1) / kStep; }

}  // namespace

void* object_alloc(size_t size) {
    if (REFHOST_OBJECT_POOL && size <= kStep * kClasses) {
        const size_t c = class_of(size);
        if (FreeBlock* b = t_pool.head[c]) {
            t_pool.head[c] = b->next;
            t_pool.count[c]--;
            return b;
        }
        return ::operator new((c + 1) * kStep);  // any block of the class fits any size in it
    }
    return ::operator new(size);
}

void object_free(void* p, size_t size) noexcept {
    if (REFHOST_OBJECT_POOL && size <= kStep * kClasses && !t_pool.gone) {
        const size_t c = class_of(size);
        if (t_pool.count[c] < kDepth) {
            if (!t_pool.reaper_armed) {
                t_pool.reaper_armed = true;
                (void)&t_reaper;  // constructs it: its destructor runs at thread exit
            }
            auto* b = static_cast<FreeBlock*>(p);
            b->next = t_pool.head[c];
            t_pool.head[c] = b;
            t_pool.count[c]++;
            return;
        }
    }
    ::operator delete(p);
}

}  // namespace refhost::detail
