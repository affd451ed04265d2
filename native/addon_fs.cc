#include "addon_fs.h"

namespace ng {

void RegisterFs(Napi::Env, Napi::Object) {}

}  // namespace ng
