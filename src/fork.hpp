// fork.hpp - keeps every running Runtime usable across fork().
//
// A forked child has only the thread that called fork(): the loop thread is gone. The
// pthread_atfork handlers park each loop thread outside uv_run before the fork (so the
// loop's state is whole), resume it in the parent, and restart it in the child.
#pragma once

namespace ksnet {

class Runtime;

struct ForkRegistry {
    // Called by Runtime::start and Runtime::shutdown. Registers the atfork handlers on
    // first use; glibc drops them when the library holding them is dlclose()d.
    static void add(Runtime *rt);
    static void remove(Runtime *rt);
    static Runtime *next(Runtime *rt);
};

}  // namespace ksnet
