{
  "targets": [
    {
      "target_name": "misfm_native",
      "sources": ["src/addon.cc", "src/ops.cc", "src/checkpoint.cc", "src/dist.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "<!@(node config.cjs include)"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "<!@(node config.cjs defines)"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++1y", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-O2", "-Wno-unused-parameter", "-Wno-deprecated-declarations"],
      "libraries": ["<!@(node config.cjs libs)"]
    }
  ]
}
