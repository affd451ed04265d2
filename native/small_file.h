// The small-file fast path: one call that opens a file beneath the root, fstats it and reads it
// whole — but only from the kernel's caches, so it may run on the JS thread without ever
// waiting for a disk. openat2 gets RESOLVE_CACHED (kernel >= 5.12: EAGAIN unless every lookup
// step is in the dentry cache) and preadv2 gets RWF_NOWAIT (EAGAIN, or a short read, unless the
// data is in the page cache). Any EAGAIN means "take the ordinary asynchronous path".
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>

#include "fs_ops.h"

namespace ng {

struct SmallFile {
  StatResult st;
  std::string data;
};

// Returns 0 with the whole content in out->data (a regular file of at most `max` bytes), 1 with
// only out->st filled (not a regular file, or larger than `max`), or -errno (-EAGAIN: not cached).
int fs_read_small_cached(int dir, const std::string& rel, size_t max, SmallFile* out);

}  // namespace ng
