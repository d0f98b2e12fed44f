// `import net` when the process has run out of descriptors: an ImportError, never a crash.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "net_fixture.hpp"

using namespace nettest;

TEST_CASE("import_without_descriptors_raises_import_error") {
    census::warm_up_libuv();  // libuv's process-wide pipe: it aborts if it cannot make it
    pid_t pid = ::fork();
    if (pid == 0) {
        // The loader needs a few descriptors of its own (the plugin's copy), the loop a
        // few more: free one more each time until the import goes through. Every
        // failure on the way must be an ImportError; one of them the loop's.
        Host host{refhost::HostOptions{{plugin_dir()}, false, false}};
        Gil gil(host);
        std::vector<int> taken = census::take_every_descriptor();
        bool loop_refused = false;
        for (;;) {
            try {
                host.import("net");
                break;
            } catch (const ScriptError &e) {
                if (e.kind != KSP_ERR_IMPORT) std::_Exit(2);
                if (std::string(e.what()).find("uv_loop_init") != std::string::npos) loop_refused = true;
            }
            if (taken.empty()) std::_Exit(3);
            ::close(taken.back());
            taken.pop_back();
        }
        host.unload("net");
        std::_Exit(loop_refused ? 0 : 4);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    REQUIRE(WIFEXITED(status));  // SIGSEGV before the fix
    CHECK(WEXITSTATUS(status) == 0);
}
