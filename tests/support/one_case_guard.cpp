// one_case_guard.cpp - for test programs that meson runs one case per process
// (`--test-case=NAME`, see tests/meson.build). doctest exits 0 when its filter matches
// nothing, so a renamed or mistyped case would pass without running. With
// KSNET_EXPECT_ONE_CASE set in the environment, this listener makes such a run fail.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>

namespace {

struct OneCaseGuard : doctest::IReporter {
    explicit OneCaseGuard(const doctest::ContextOptions &) {}

    void test_run_end(const doctest::TestRunStats &stats) override {
        if (std::getenv("KSNET_EXPECT_ONE_CASE") == nullptr) return;
        if (stats.numTestCasesPassingFilters == 0) {
            std::fprintf(stderr, "one_case_guard: no test case matched the filter (renamed or removed?)\n");
            std::fflush(nullptr);
            std::_Exit(3);
        }
    }

    void report_query(const doctest::QueryData &) override {}
    void test_run_start() override {}
    void test_case_start(const doctest::TestCaseData &) override {}
    void test_case_reenter(const doctest::TestCaseData &) override {}
    void test_case_end(const doctest::CurrentTestCaseStats &) override {}
    void test_case_exception(const doctest::TestCaseException &) override {}
    void subcase_start(const doctest::SubcaseSignature &) override {}
    void subcase_end() override {}
    void log_assert(const doctest::AssertData &) override {}
    void log_message(const doctest::MessageData &) override {}
    void test_case_skipped(const doctest::TestCaseData &) override {}
};

}  // namespace

REGISTER_LISTENER("one_case_guard", 1, OneCaseGuard);
