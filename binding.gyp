{
  "targets": [
    {
      "target_name": "tsflow_native",
      "sources": ["native/tsflow_native.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "cflags_c": ["-std=gnu11"],
      "libraries": ["-lrt"]
    }
  ]
}
