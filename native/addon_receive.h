// Zero-copy request bodies (splice(2) from the socket into a file on a dedicated thread): the
// JS entry points.
#pragma once

#include <napi.h>

namespace ng {

// Adds receiveStart and receiveCancel to the addon's exports.
void RegisterReceive(Napi::Env env, Napi::Object exports);

}  // namespace ng
