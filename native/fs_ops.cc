#include "fs_ops.h"
