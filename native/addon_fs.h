// Entry points of the beneath-root filesystem layer (openat2 RESOLVE_BENEATH and *at calls).
#pragma once

#include <napi.h>

namespace ng {

void RegisterFs(Napi::Env env, Napi::Object exports);

}  // namespace ng
