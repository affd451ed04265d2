#pragma once

#include <napi.h>

namespace ng {

void RegisterSmallFile(Napi::Env env, Napi::Object exports);

}  // namespace ng
