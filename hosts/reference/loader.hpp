// loader.hpp - finding, loading and unloading plugins (kscript's discovery rules).
//
// Search: the configured plugin dirs in order, then each entry of $KSPATH (colon-
// separated). In each directory: DIR/ksp_NAME.so, then DIR/NAME/ksp_NAME.so.
//
// Load: the file is copied to a unique path in a private directory and that copy is
// dlopen'ed (RTLD_NOW | RTLD_LOCAL) and unlinked at once. glibc hands back the already
// loaded handle for a path (or inode) it has open, which would make reload a no-op; a
// fresh copy always loads fresh code. Then: entry symbol, ABI versions, name, init.
// Every failure is an ImportError saying what happened, and leaves nothing mapped.
#ifndef REFHOST_LOADER_HPP
#define REFHOST_LOADER_HPP

#include <string>
#include <vector>

#include "state.hpp"

namespace refhost::detail {

std::vector<std::string> search_dirs(const HostOptions& options);

// The first candidate that is a regular file, or "" (after adding every candidate to
// `tried`, and those that exist but are not files, e.g. directories, to `not_files`).
std::string find_plugin(const std::string& name, const std::vector<std::string>& dirs,
                        std::vector<std::string>& tried, std::vector<std::string>& not_files);

// Finds and loads a fresh copy of plugin `name`. False after raising ImportError.
bool load_plugin(HostState& st, const std::string& name, LoadedModule& out);

// Runs the plugin's teardown; the library is unmapped once no instance of its types is
// alive and no call into its code is in progress.
void tear_down_library(Library& lib);
// The same for the old version of a live reload, once no call returns through its code
// any more (at once if none does); no new call enters it meanwhile. `successor` is the
// version now serving in its place.
void tear_down_when_idle(Library& lib, const std::shared_ptr<Library>& successor);

// tear_down_library, and drops the module.
void unload_plugin(LoadedModule& loaded);

}  // namespace refhost::detail

#endif
