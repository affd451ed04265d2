// Beneath-root filesystem primitives (filled in by the file API work).
#pragma once
