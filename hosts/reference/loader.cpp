// loader.cpp - plugin discovery and the load/unload sequence.
#include "loader.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "abi_table.hpp"
#include "elf_check.hpp"
#include "errors.hpp"
#include "types/module.hpp"

namespace refhost::detail {

namespace {

enum class PathKind { Missing, File, Other };

PathKind path_kind(const std::string& path) {
    struct stat st;
    if (stat(path.c_str(), &st) != 0) return PathKind::Missing;
    return S_ISREG(st.st_mode) ? PathKind::File : PathKind::Other;
}

// Every occurrence of `from` in `text` replaced by `to`.
std::string replace_all(std::string text, const std::string& from, const std::string& to) {
    for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
        text.replace(at, from.size(), to);
    return text;
}

bool valid_module_name(const std::string& name) {
    if (name.empty() || name == "." || name == "..") return false;
    return name.find('/') == std::string::npos && name.find('\0') == std::string::npos;
}

std::string version_text(unsigned major, unsigned minor) {
    return std::to_string(major) + "." + std::to_string(minor);
}

// Still the directory mkdtemp made: a directory (not a link), ours, and private.
bool still_our_private_dir(const std::string& path) {
    struct stat st;
    return lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid() &&
           (st.st_mode & 077) == 0;
}

// The private directory for copies, made on first use, and again if it went (a cleaner
// of /tmp under a long-running host would otherwise fail every later reload; whatever
// took its name since is not trusted).
bool ensure_copy_dir(HostState& st, std::string& error) {
    if (!st.copy_dir.empty() && still_our_private_dir(st.copy_dir)) return true;
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/refhost-XXXXXX";
    if (!mkdtemp(templ.data())) {
        error = "cannot create a directory for plugin copies (" + templ + "): " + std::strerror(errno);
        return false;
    }
    st.copy_dir = templ;
    return true;
}

// Copies all of `in` to `out`: in the kernel (copy_file_range) where the filesystems
// allow it, since the copy is most of what an import costs for a plugin with debug
// information; otherwise through a buffer.
bool copy_bytes(int in, int out, const std::string& from, const std::string& to, std::string& error) {
    for (;;) {
        ssize_t n = copy_file_range(in, nullptr, out, nullptr, size_t{1} << 30, 0);
        if (n == 0) return true;
        if (n > 0) continue;
        if (errno == EINTR) continue;
        if (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP) break;
        error = "cannot copy " + from + " to " + to + ": " + std::strerror(errno);
        return false;
    }
    char buf[1 << 16];
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n == 0) return true;
        if (n < 0) {
            if (errno == EINTR) continue;
            error = "cannot read " + from + ": " + std::strerror(errno);
            return false;
        }
        for (ssize_t done = 0; done < n;) {
            ssize_t w = write(out, buf + done, static_cast<size_t>(n - done));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) {
                error = "cannot write " + to + ": " + std::strerror(errno);
                return false;
            }
            done += w;
        }
    }
}

bool copy_file(const std::string& from, const std::string& to, std::string& error) {
    int in = open(from.c_str(), O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        error = "cannot open " + from + ": " + std::strerror(errno);
        return false;
    }
    int out = open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
    if (out < 0) {
        error = "cannot create " + to + ": " + std::strerror(errno);
        close(in);
        return false;
    }
    bool ok = copy_bytes(in, out, from, to, error);
    close(in);
    if (close(out) != 0 && ok) {
        error = "cannot write " + to + ": " + std::strerror(errno);
        ok = false;
    }
    if (!ok) unlink(to.c_str());
    return ok;
}

// Checks the copy's headers, then dlopen()s it. The copy is unlinked either way: the
// mapping keeps the code, and nothing is left behind in the directory. Messages name
// `original` (the user's file), never the private copy.
void* open_copy(const std::string& copy, const std::string& original, std::string& error) {
    int fd = open(copy.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        error = std::strerror(errno);
        unlink(copy.c_str());
        return nullptr;
    }
    error = elf_problem(fd);
    close(fd);
    void* handle = nullptr;
    if (error.empty()) {
        handle = dlopen(copy.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!handle) {
            const char* e = dlerror();
            error = "dlopen: " + replace_all(e ? e : "unknown error", copy, original);
        }
    }
    unlink(copy.c_str());
    return handle;
}

// After a failure: nothing of the library may run any more; unmap it unless objects it
// made are still alive (their finalizers need the code).
void retire(Library& lib) {
    lib.torn_down.store(true);
    lib.release_if_unused();
}

void run_teardown(Library& lib) {
    if (!lib.teardown) return;
    // A teardown deferred to the return of a version's last call runs on that call's
    // thread, between its error and its caller: the error goes on to the caller.
    std::optional<PendingError> callers_error;
    if (error_occurred()) callers_error = take_error();
    {
        LibraryScope scope(&lib);
        try {
            lib.teardown(lib.ctx);
        } catch (...) {
            fatal("teardown of module '" + lib.name + "' let a C++ exception escape");
        }
    }
    clear_error();  // teardown cannot report errors; do not let one leak into the caller
    if (callers_error) raise(callers_error->kind, std::move(callers_error->message), callers_error->os_errno);
}

// Calls init with `table` and checks what it handed back. False after raising ImportError.
bool run_init(const ksp_plugin_decl* decl, const ksp_host* table, Library& lib, LoadedModule& out,
              const std::string& prefix) {
    // A host of an older minor has a shorter ksp_init_result: a plugin sets only what
    // `size` covers. Zeroed, so a plugin that does not set `handover` leaves it NULL.
    const bool has_handover = table->abi_minor >= 4;
    ksp_init_result res{};
    res.size = has_handover ? sizeof res : offsetof(ksp_init_result, handover);
    int rc = -1;
    bool threw = false;
    clear_error();
    {
        LibraryScope scope(&lib);
        try {
            rc = decl->init(table, &res);
        } catch (...) {
            threw = true;
        }
    }
    std::string plugin_error = res.error ? res.error : "";
    std::free(res.error);  // made with host->strdup (malloc)
    std::string problem;
    if (threw) problem = "init let a C++ exception escape";
    else if (rc != 0) {
        if (!plugin_error.empty()) problem = "init failed: " + plugin_error;
        else if (error_occurred()) problem = "init failed: " + take_error().message;
        else problem = "init failed without a message";
    } else if (!res.module) {
        problem = "init reported success but returned no module";
    } else if (as_obj(res.module)->kind != ObjKind::Module) {
        problem = "init returned a " + as_obj(res.module)->type_name() + ", not a module";
    } else if (error_occurred()) {
        problem = "init reported success but left an error set: " + take_error().message;
    }
    if (problem.empty()) {
        lib.teardown = res.teardown;
        lib.ctx = res.ctx;
        if (has_handover) lib.handover = res.handover;
        out.module = as_obj(res.module);
        return true;
    }
    clear_error();
    decref(res.module);
    if (rc == 0 && !threw) {
        lib.teardown = res.teardown;
        lib.ctx = res.ctx;
        run_teardown(lib);
    }
    raise(KSP_ERR_IMPORT, prefix + problem);
    return false;
}

}  // namespace

std::vector<std::string> search_dirs(const HostOptions& options) {
    std::vector<std::string> dirs = options.plugin_dirs;
    const char* kspath = options.use_kspath ? std::getenv("KSPATH") : nullptr;
    if (kspath) {
        std::string all = kspath;
        size_t start = 0;
        while (start <= all.size()) {
            size_t end = all.find(':', start);
            if (end == std::string::npos) end = all.size();
            if (end > start) dirs.push_back(all.substr(start, end - start));
            start = end + 1;
        }
    }
    return dirs;
}

std::string find_plugin(const std::string& name, const std::vector<std::string>& dirs,
                        std::vector<std::string>& tried, std::vector<std::string>& not_files) {
    const std::string file = "ksp_" + name + ".so";
    for (std::string dir : dirs) {
        while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
        for (const std::string& candidate : {dir + "/" + file, dir + "/" + name + "/" + file}) {
            tried.push_back(candidate);
            switch (path_kind(candidate)) {
                case PathKind::File: return candidate;
                case PathKind::Other: not_files.push_back(candidate); break;
                case PathKind::Missing: break;
            }
        }
    }
    return {};
}

bool load_plugin(HostState& st, const std::string& name, LoadedModule& out) {
    if (!valid_module_name(name)) {
        raise(KSP_ERR_IMPORT, "invalid module name '" + name + "'");
        return false;
    }
    std::vector<std::string> tried, not_files;
    std::string path = find_plugin(name, search_dirs(st.options), tried, not_files);
    if (path.empty() && !not_files.empty()) {
        // Something is there under the plugin's name: say what, not "no module named".
        raise(KSP_ERR_IMPORT, "cannot import '" + name + "' from " + not_files.front() +
                                  ": it is a directory (or other non-file), not a plugin file");
        return false;
    }
    if (path.empty()) {
        std::string msg = "no module named '" + name + "': tried ";
        for (size_t i = 0; i < tried.size(); i++) msg += (i ? ", " : "") + tried[i];
        if (tried.empty()) msg += "nothing (no plugin directories and no KSPATH)";
        raise(KSP_ERR_IMPORT, msg);
        return false;
    }
    const std::string prefix = "cannot import '" + name + "' from " + path + ": ";

    std::string error;
    if (!ensure_copy_dir(st, error)) {
        raise(KSP_ERR_IMPORT, prefix + error);
        return false;
    }
    std::string copy = st.copy_dir + "/ksp_" + name + "." + std::to_string(++st.copy_counter) + ".so";
    if (!copy_file(path, copy, error)) {
        raise(KSP_ERR_IMPORT, prefix + error);
        return false;
    }
    void* handle = open_copy(copy, path, error);
    if (!handle) {
        raise(KSP_ERR_IMPORT, prefix + "not a loadable plugin: " + error);
        return false;
    }

    auto lib = std::make_shared<Library>();
    lib->name = name;
    lib->source_path = path;
    lib->copy_path = copy;
    lib->handle = handle;
    note_library_opened();

    auto fail = [&](const std::string& problem) {
        retire(*lib);
        raise(KSP_ERR_IMPORT, prefix + problem);
        return false;
    };

    void* sym = dlsym(handle, KSP_PLUGIN_ENTRY_SYMBOL);
    if (!sym) return fail("the file does not export " KSP_PLUGIN_ENTRY_SYMBOL);
    auto entry = reinterpret_cast<ksp_plugin_entry_fn>(sym);
    const ksp_plugin_decl* decl = nullptr;
    try {
        decl = entry();
    } catch (...) {
        return fail(KSP_PLUGIN_ENTRY_SYMBOL " let a C++ exception escape");
    }
    if (!decl) return fail(KSP_PLUGIN_ENTRY_SYMBOL " returned NULL");
    // Only the first three fields are readable before the major is known to match. The
    // minor is the one this host presents (HostOptions::abi_minor), not its newest.
    const uint16_t host_minor = st.options.abi_minor;
    if (decl->abi_major != KSP_ABI_MAJOR)
        return fail("plugin ABI " + version_text(decl->abi_major, decl->abi_minor) + ", host ABI " +
                    version_text(KSP_ABI_MAJOR, host_minor) + " (the major versions must match)");
    if (decl->abi_minor > host_minor)
        return fail("plugin needs ABI " + version_text(decl->abi_major, decl->abi_minor) + ", host provides " +
                    version_text(KSP_ABI_MAJOR, host_minor));
    if (decl->size < offsetof(ksp_plugin_decl, init) + sizeof(decl->init))
        return fail("the plugin declaration is too small (" + std::to_string(decl->size) + " bytes)");
    if (!decl->name || name != decl->name)
        return fail(std::string("the plugin declares module '") + (decl->name ? decl->name : "(null)") +
                    "', not '" + name + "'");
    if (!decl->init) return fail("the plugin declaration has no init function");
    lib->version = decl->version ? decl->version : "?";

    out.lib = lib;
    if (!run_init(decl, abi_table(host_minor), *lib, out, prefix)) {
        out.lib.reset();
        retire(*lib);
        return false;
    }
    return true;
}

void tear_down_library(Library& lib) {
    run_teardown(lib);
    lib.torn_down.store(true);
    lib.release_if_unused();
}

void tear_down_when_idle(Library& lib, const std::shared_ptr<Library>& successor) {
    lib.superseded = true;
    if (!lib.lineage) lib.lineage = std::make_shared<Library::Lineage>();
    lib.lineage->serving = successor;
    successor->lineage = lib.lineage;
    if (lib.calls_in_progress.load() == 0) tear_down_library(lib);
    else {
        lib.teardown_when_idle = true;  // Library::became_idle runs it
        lib.self_until_torn_down = lib.shared_from_this();
    }
}

void unload_plugin(LoadedModule& loaded) {
    std::shared_ptr<Library> lib = std::move(loaded.lib);
    tear_down_library(*lib);
    decref(loaded.module);
    loaded.module = nullptr;
}

}  // namespace refhost::detail
