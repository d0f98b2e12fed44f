#include "ksnet/loop_thread.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace ksnet {

namespace {

// The size a thread gets by default (RLIMIT_STACK, as glibc takes it): the loop runs
// libuv's callbacks and ours, nothing deeper than any other thread of the process.
size_t default_stack_size() {
    pthread_attr_t attr;
    size_t size = 0;
    if (pthread_attr_init(&attr) == 0) {
        pthread_attr_getstacksize(&attr, &size);
        pthread_attr_destroy(&attr);
    }
    return size >= static_cast<size_t>(PTHREAD_STACK_MIN) ? size : size_t{8} << 20;
}

}  // namespace

LoopThread::~LoopThread() {
    if (started_) detach();  // the owner joins first; this only keeps the stack mapped
}

void LoopThread::start(std::function<void()> body) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const size_t size = (default_stack_size() + page - 1) / page * page;
    // Reserved, not committed: pages are touched only as the stack grows.
    void *mem = mmap(nullptr, size + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                     -1, 0);
    if (mem == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "loop thread stack");
    mprotect(mem, page, PROT_NONE);  // a guard below it: an overflow faults instead of writing on
    pthread_attr_t attr;
    int rc = pthread_attr_init(&attr);
    if (rc == 0) {
        rc = pthread_attr_setstack(&attr, static_cast<char *>(mem) + page, size);
        body_ = std::move(body);
        if (rc == 0) rc = pthread_create(&id_, &attr, run, this);
        pthread_attr_destroy(&attr);
    }
    if (rc != 0) {
        munmap(mem, size + page);
        body_ = nullptr;
        throw std::system_error(rc, std::generic_category(), "loop thread");
    }
    stack_ = mem;
    mapped_ = size + page;
    started_ = true;
}

void *LoopThread::run(void *self) {
    static_cast<LoopThread *>(self)->body_();
    return nullptr;
}

void LoopThread::join() {
    if (!started_) return;
    pthread_join(id_, nullptr);
    started_ = false;
    free_stack();
}

void LoopThread::detach() {
    if (!started_) return;
    pthread_detach(id_);
    started_ = false;
    stack_ = nullptr;  // leaked on purpose: the thread may still be running on it
    mapped_ = 0;
}

void LoopThread::forget_in_child() {
    if (!started_) return;
    started_ = false;
    free_stack();
}

void LoopThread::free_stack() {
    if (stack_) munmap(stack_, mapped_);
    stack_ = nullptr;
    mapped_ = 0;
    body_ = nullptr;
}

}  // namespace ksnet
