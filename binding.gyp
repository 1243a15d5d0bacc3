{
  # libdrm is optional. kw_libdrm is 1 when `pkg-config --exists libdrm` succeeds, 0 when
  # it fails, when pkg-config is missing, or when KEYWARDEN_LIBDRM=0 forces it off (also:
  # node-gyp rebuild -Dkw_libdrm=0). Without it the addon still builds: the libdrm KMS
  # backend then answers "built without libdrm" (native/kms.cc).
  "variables": {
    "variables": {
      "kw_pkg": "node -e \"var a=process.argv[1],e=process.env.KEYWARDEN_LIBDRM,cp=require('child_process');function q(x){try{return cp.execFileSync('pkg-config',x,{encoding:'utf8',stdio:['ignore','pipe','ignore']}).trim()}catch(err){return null}}var has=e!=='0'&&q(['--exists','libdrm'])!==null;if(a==='have')console.log(has?1:0);else if(has)console.log(q(['--'+a,'libdrm'])||'')\""
    },
    "kw_pkg": "<(kw_pkg)",
    "kw_libdrm%": "<!(<(kw_pkg) have)"
  },
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
        "native/cenc-worker.cc",
        "native/kms.cc",
        "native/kms-scripted.cc",
        "native/uevent.cc"
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
        ["node_shared_openssl=='true'", { "libraries": ["-lcrypto"] }],
        ["kw_libdrm==1", {
          "sources": ["native/kms-libdrm.cc"],
          "defines": ["KW_HAVE_LIBDRM", "KW_LIBDRM_VERSION=\"<!(<(kw_pkg) modversion)\""],
          "cflags_cc": ["<!@(<(kw_pkg) cflags)"],
          "libraries": ["<!@(<(kw_pkg) libs)"]
        }]
      ]
    }
  ]
}
