// support.cpp - test helpers.
#include "support.hpp"

#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include <doctest/doctest.h>

#include "errors.hpp"
#include "process_census.hpp"
#include "library.hpp"
#include "object.hpp"

namespace support {

std::string fixture_so(const std::string& name) { return std::string(FIXTURE_BUILD_DIR) + "/ksp_" + name + ".so"; }
std::string fixture_source(const std::string& file) { return std::string(FIXTURE_SOURCE_DIR) + "/" + file; }

TempDir::TempDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/refhost-test-XXXXXX";
    if (!mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
    path_ = templ;
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

std::string TempDir::install(const std::string& file, const std::string& name, bool nested) const {
    std::string dir = nested ? path_ + "/" + name : path_;
    std::filesystem::create_directories(dir);
    std::string dest = dir + "/ksp_" + name + ".so";
    copy_file(file, dest);
    return dest;
}

// Writes through a temporary name and renames, as a build system replacing a file would.
void copy_file(const std::string& from, const std::string& to) {
    std::string tmp = to + ".tmp";
    std::filesystem::copy_file(from, tmp, std::filesystem::copy_options::overwrite_existing);
    std::filesystem::rename(tmp, to);
}

namespace {
void copy_first_bytes(const std::string& from, const std::string& to, size_t bytes, bool keep_size) {
    std::ifstream in(from, std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    size_t size = data.size();
    data.resize(std::min(bytes, size));
    if (keep_size) data.resize(size, '\0');
    std::ofstream out(to, std::ios::binary | std::ios::trunc);
    out << data;
}
}  // namespace

void copy_truncated(const std::string& from, const std::string& to, size_t bytes) {
    copy_first_bytes(from, to, bytes, false);
}

void copy_written_up_to(const std::string& from, const std::string& to, size_t bytes) {
    copy_first_bytes(from, to, bytes, true);
}

size_t file_size(const std::string& path) { return std::filesystem::file_size(path); }

// The file is native, so its header's fields are in this process's byte order.
void patch_elf_machine(const std::string& path, uint16_t machine) {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    REQUIRE(f.good());
    f.seekp(offsetof(ElfW(Ehdr), e_machine));
    f.write(reinterpret_cast<const char*>(&machine), sizeof machine);
    REQUIRE(f.good());
}

uint16_t native_machine() {
    std::ifstream f("/proc/self/exe", std::ios::binary);
    ElfW(Ehdr) eh{};
    f.read(reinterpret_cast<char*>(&eh), sizeof eh);
    REQUIRE(f.good());
    return eh.e_machine;
}

refhost::HostOptions options_for(const std::string& dir) {
    refhost::HostOptions o;
    o.plugin_dirs = {dir};
    o.use_kspath = false;
    o.checking = true;
    return o;
}

LeakGuard::LeakGuard() : fds_(census::open_fds()), threads_(census::threads()) {}

LeakGuard::~LeakGuard() {
    CHECK(census::open_fds() == fds_);
    CHECK(census::threads() == threads_);
    CHECK(refhost::live_object_count() == 0);
    CHECK(refhost::open_library_count() == 0);
    CHECK(census::mappings_of("/refhost-") == 0);
}

std::string take_raised(ksp_error_kind* kind) {
    if (!refhost::error_occurred()) return "";
    refhost::PendingError e = refhost::take_error();
    if (kind) *kind = e.kind;
    return e.message;
}

ChildResult run_in_child(const std::function<void()>& body) {
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    fflush(nullptr);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        // The child's abort is the expected outcome: keep doctest's crash handler and
        // report out of it, and capture stderr for the parent.
        signal(SIGABRT, SIG_DFL);
        close(fds[0]);
        dup2(fds[1], 2);
        close(fds[1]);
        int null_fd = open("/dev/null", O_WRONLY);
        dup2(null_fd, 1);
        close(null_fd);
        try {
            body();
        } catch (...) {
            _exit(3);
        }
        _exit(0);
    }
    close(fds[1]);
    ChildResult r;
    char buf[4096];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof buf)) > 0) r.err.append(buf, static_cast<size_t>(n));
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    r.aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
    if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
    return r;
}

}  // namespace support
