// ksphost - command-line front end of the reference host.
//
//   ksphost [-I DIR]... [--checking] COMMAND [ARGS...]
//
// Plugins are searched as an interpreter does (see usage()). To add a
// subcommand, write `int NAME_main(refhost::Host&, int, char**)` in its own file,
// declare it in commands.hpp and add a row to kCommands.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "cli/commands.hpp"

namespace {

struct Command {
    const char* name;
    const char* usage;
    const char* help;
    int (*run)(refhost::Host&, int, char**);
};

const Command kCommands[] = {
    {"describe", "describe NAME", "import module NAME and print its members, types, methods and docs", describe_main},
    {"demo", "demo [ARGS...]", "run the net demo", demo_main},
    {"serve", "serve [--port N]",
     "echo lines on 127.0.0.1:N (default: a free port); SIGHUP reloads net live (ksphost serve --help)", serve_main},
};

// Where plugins are looked for after the -I directories, as an interpreter looks: the
// current directory, the install's plugin directory, then $KSPATH (added by the host).
const char* const kStandardDirs[] = {".", KSPHOST_PLUGIN_DIR};

void usage(std::FILE* out) {
    std::fprintf(out,
                 "usage: ksphost [-I DIR]... [--checking] COMMAND [ARGS...]\n\n"
                 "  -I DIR      search DIR for plugins first; repeatable (also -IDIR)\n"
                 "  --checking  debug mode: catch double releases and stale handles\n\n"
                 "A plugin NAME is searched for as ksp_NAME.so, then NAME/ksp_NAME.so, in each of:\n"
                 "  the -I directories, in order; . (the current directory); %s (this\n"
                 "  install's plugin directory); then each directory of $KSPATH (colon-separated).\n\n"
                 "commands:\n",
                 KSPHOST_PLUGIN_DIR);
    for (const Command& c : kCommands) std::fprintf(out, "  %-16s %s\n", c.usage, c.help);
}

}  // namespace

int main(int argc, char** argv) {
    refhost::HostOptions options;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        std::string arg = argv[i];
        if (arg == "-h" || arg == "--help") {
            usage(stdout);
            return 0;
        } else if (arg == "--checking") {
            options.checking = true;
        } else if (arg == "-I") {
            if (i + 1 == argc) {
                std::fprintf(stderr, "ksphost: -I needs a directory after it (-I DIR or -IDIR)\n");
                return 2;
            }
            if (*argv[++i] == '\0') {  // an unset variable in -I "$DIR" would search /
                std::fprintf(stderr, "ksphost: -I needs a directory, not an empty string\n");
                return 2;
            }
            options.plugin_dirs.push_back(argv[i]);
        } else if (arg.rfind("-I", 0) == 0 && arg.size() > 2) {
            options.plugin_dirs.push_back(arg.substr(2));
        } else {
            std::fprintf(stderr, "ksphost: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (i == argc) {
        usage(stderr);
        return 2;
    }
    for (const char* dir : kStandardDirs) options.plugin_dirs.push_back(dir);
    for (const Command& c : kCommands) {
        if (std::strcmp(c.name, argv[i]) != 0) continue;
        try {
            refhost::Host host(options);
            return c.run(host, argc - i, argv + i);
        } catch (const refhost::ScriptError& e) {
            std::fprintf(stderr, "ksphost: %s: %s\n", refhost::error_kind_name(e.kind), e.what());
        } catch (const std::exception& e) {
            std::fprintf(stderr, "ksphost: %s\n", e.what());
        }
        return 1;
    }
    std::fprintf(stderr, "ksphost: unknown command '%s'\n", argv[i]);
    usage(stderr);
    return 2;
}
