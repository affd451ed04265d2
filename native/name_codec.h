// File names are bytes; JS strings are UTF-16. Names cross between them the way Python's
// surrogateescape (PEP 383) carries them: valid UTF-8 is decoded as such, and each byte that is
// not part of valid UTF-8 becomes the lone surrogate U+DC80..U+DCFF; encoding does the reverse.
// So every name, valid UTF-8 or not, goes to JS and back to the same bytes, and a well-formed
// string (every string a user types) encodes exactly as UTF-8. Plain C++, no Napi.
#pragma once

#include <string>

namespace ng {

// Bytes → UTF-16 code units (surrogateescape).
std::u16string decode_name(const char* data, size_t size);

// UTF-16 code units → bytes: surrogate pairs as 4-byte UTF-8, U+DC80..U+DCFF as the byte they
// carry, any other lone surrogate as U+FFFD (what V8's own UTF-8 writer does).
std::string encode_name(const std::u16string& units);

}  // namespace ng
