{
  "targets": [
    {
      "target_name": "nullgate",
      "sources": [
        "native/addon.cc",
        "native/addon_fs.cc",
        "native/socket_ops.cc",
        "native/peer_root.cc",
        "native/fs_ops.cc",
        "native/transfer_thread.cc",
        "native/sendfile.cc",
        "native/addon_sendfile.cc",
        "native/receive.cc",
        "native/addon_receive.cc",
        "native/small_file.cc",
        "native/addon_small.cc",
        "native/name_codec.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "defines": ["_GNU_SOURCE", "NAPI_VERSION=8"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-O2"],
      "cflags_cc!": ["-fno-exceptions"]
    }
  ]
}
