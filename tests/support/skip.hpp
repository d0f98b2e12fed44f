// skip.hpp - a case that needs something this machine lacks (root, a kernel feature)
// reports SKIP, never a pass. meson runs each case alone (KSNET_EXPECT_ONE_CASE set,
// see tests/meson.build) and reads exit status 77 as SKIP. Run by hand with every case
// in one process, the case ends early with a SKIP message instead.
//
//   TEST_CASE("raw_...") { SKIP_UNLESS(geteuid() == 0, "needs root for a raw socket"); ... }
//
// Put it first in a case: an exit after some checks would hide their results.
#ifndef KSNET_TEST_SKIP_HPP
#define KSNET_TEST_SKIP_HPP

#include <cstdio>
#include <cstdlib>

#include <doctest/doctest.h>

namespace ksnet_test {

constexpr int kSkipExitStatus = 77;

// Exits with 77 when meson runs this case alone; otherwise returns so the case can end.
inline void skip_case(const char* reason) {
    if (std::getenv("KSNET_EXPECT_ONE_CASE")) {
        std::fprintf(stderr, "SKIP: %s\n", reason);
        std::fflush(nullptr);
        std::_Exit(kSkipExitStatus);
    }
    MESSAGE("SKIP: " << reason);
}

}  // namespace ksnet_test

#define SKIP_UNLESS(condition, reason)       \
    do {                                     \
        if (!(condition)) {                  \
            ::ksnet_test::skip_case(reason); \
            return;                          \
        }                                    \
    } while (0)

#endif
