// test_io.cpp - the host's io.BaseIO: printf and iteration on top of a plugin's stream.
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "refhost.hpp"
#include "support.hpp"

using refhost::Gil;
using refhost::Host;
using refhost::ScriptError;
using refhost::Value;
using support::LeakGuard;
using support::TempDir;
using support::error_of;

TEST_SUITE("io") {

TEST_CASE("printf_formats_and_calls_write") {
    LeakGuard guard;
    TempDir dir;
    dir.install(support::fixture_so("fixture_ok"), "fixture_ok");
    Host h(support::options_for(dir.path()));
    Gil g(h);
    Value m = h.import("fixture_ok");
    Value s = h.call(h.getattr(m, "Stream"));
    Value color = h.getattr(m, "Color");
    Value written = h.call_method(s, "printf", {h.str("%s|%d|%i|%r|%r|%s|100%%|%s\n"), h.str("text"), h.integer(-3),
                                                h.integer(7), h.str("q"), h.bytes("\x01"), h.getattr(color, "RED"),
                                                h.call(h.getattr(m, "Counter"), {h.integer(9)})});
    std::string expected = "text|-3|7|'q'|b'\\x01'|fixture_ok.Color.RED|100%|Counter(9)\n";
    CHECK(h.to_str(h.getattr(s, "text")) == expected);
    CHECK(h.to_int(written) == static_cast<int64_t>(expected.size()));  // write's result

    ksp_error_kind kind;
    CHECK(error_of([&] { h.call_method(s, "printf", {h.str("%d"), h.str("x")}); }, &kind) ==
          "printf: %d needs an int, got str");
    CHECK(kind == KSP_ERR_TYPE);
    CHECK(error_of([&] { h.call_method(s, "printf", {h.str("%s %s"), h.integer(1)}); }, &kind) ==
          "printf: not enough arguments for the format");
    CHECK(kind == KSP_ERR_ARG);
    CHECK(error_of([&] { h.call_method(s, "printf", {h.str("x"), h.integer(1)}); }) ==
          "printf: not all arguments were used by the format");
    CHECK(error_of([&] { h.call_method(s, "printf", {h.str("%q"), h.integer(1)}); }) == "printf: unknown format '%q'");
    CHECK(h.to_str(h.getattr(s, "text")) == expected);  // failed calls wrote nothing
}

TEST_CASE("iteration_over_stream_yields_lines") {
    LeakGuard guard;
    TempDir dir;
    dir.install(support::fixture_so("fixture_ok"), "fixture_ok");
    Host h(support::options_for(dir.path()));
    Gil g(h);
    Value s = h.call(h.getattr(h.import("fixture_ok"), "Stream"));
    h.call_method(s, "write", {h.str("one\ntwo\n\nlast")});
    Value it = h.iter(s);
    CHECK(it.get() == s.get());  // BaseIO.__iter returns self
    std::vector<std::string> lines;
    for (int guard_count = 0; guard_count < 10; guard_count++) {
        Value line = h.next(it);
        if (!line) break;
        lines.push_back(h.to_str(line));
    }
    CHECK(lines == std::vector<std::string>{"one", "two", "", "last"});
}

}  // TEST_SUITE
