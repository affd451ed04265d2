// Zero-copy body transfers (sendfile(2) on a dedicated thread): the JS entry points.
#pragma once

#include <napi.h>

namespace ng {

// Adds sendfileStart and sendfileCancel to the addon's exports.
void RegisterSendfile(Napi::Env env, Napi::Object exports);

}  // namespace ng
