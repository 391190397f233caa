# CPU-only build of the addon with node-gyp, for prebuildify (`npm run prebuild`).
# The main build is CMake (CMakeLists.txt) through cmake-js; this file mirrors its CPU part:
# ISA-specific kernels (*_avx512.cpp, *_avx2.cpp) are compiled in their own static libraries
# with their own flags and dispatched at run time.
{
  "variables": {
    "tk_cflags": ["-std=c++17", "-O3", "-fPIC", "-fexceptions"]
  },
  "targets": [
    {
      "target_name": "tunekit_avx512",
      "type": "static_library",
      "include_dirs": ["native"],
      "sources": ["<!@(node -p \"require('fs').readdirSync('native/cpu').filter(f => /_avx512\\.cpp$/.test(f)).map(f => 'native/cpu/' + f).join(' ')\")"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["<@(tk_cflags)", "-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx512bf16", "-mfma", "-mf16c"]
    },
    {
      "target_name": "tunekit_avx2",
      "type": "static_library",
      "include_dirs": ["native"],
      "sources": ["<!@(node -p \"require('fs').readdirSync('native/cpu').filter(f => /_avx2\\.cpp$/.test(f)).map(f => 'native/cpu/' + f).join(' ')\")"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["<@(tk_cflags)", "-mavx2", "-mfma", "-mf16c"]
    },
    {
      "target_name": "tunekit",
      "dependencies": ["tunekit_avx512", "tunekit_avx2"],
      "include_dirs": ["native", "<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "sources": [
        "<!@(node -p \"['core', 'cpu', 'napi'].flatMap(d => require('fs').readdirSync('native/' + d).filter(f => f.endsWith('.cpp') && !/_avx(512|2)\\.cpp$/.test(f)).map(f => 'native/' + d + '/' + f)).join(' ')\")"
      ],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["<@(tk_cflags)"],
      "libraries": ["-lpthread", "-ldl"]
    }
  ]
}
