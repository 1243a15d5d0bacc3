{
  "targets": [
    {
      "target_name": "keywarden",
      "sources": [
        "native/addon.cc",
        "native/cenc.cc",
        "native/cenc-aes.cc",
        "native/cenc-args.cc",
        "native/cenc-crypt.cc",
        "native/cenc-map.cc",
        "native/cenc-worker.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      # CPP_EXCEPTIONS_ALL: a stray std::exception becomes a JS error, not std::terminate.
      # SWALLOW_UNTHROWABLE: a worker settling after its env began teardown
      # (worker.terminate()) must not abort the process.
      "defines": [
        "NAPI_VERSION=8",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "NAPI_CPP_EXCEPTIONS",
        "NODE_ADDON_API_CPP_EXCEPTIONS_ALL",
        "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"
      ],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-O3", "-Wall", "-Wextra", "-fvisibility=hidden"],
      # Node's own OpenSSL: its headers ship in include/node and the node binary exports
      # the EVP symbols, so link libcrypto only when Node itself links it dynamically.
      "conditions": [
        ["node_shared_openssl=='true'", { "libraries": ["-lcrypto"] }]
      ]
    }
  ]
}
