/*
 * tsflow_native: the few OS facilities Node.js does not expose, as plain N-API.
 *
 *   shmCreate(name, size) -> Buffer   POSIX shared memory, created exclusively
 *   shmOpen(name)         -> Buffer   map an existing segment (size from fstat)
 *   shmUnlink(name)                   remove the name; live mappings stay valid
 *   shmSize(name)         -> number
 *   getAffinity(tid)      -> number[] sched_getaffinity (tid 0 = calling thread)
 *   setAffinity(cpus, tid)            sched_setaffinity
 *   onlineCpus()          -> number   sysconf(_SC_NPROCESSORS_ONLN)
 *
 * Mechanism only: argument checks here just keep the C side memory safe; the
 * friendly validation and error wording live in src/native/index.ts.
 *
 * A failed system call throws an Error whose message is "<syscall>: <strerror>"
 * and which carries `syscall` (string) and `errno` (positive number), so the
 * TypeScript layer can rewrap it with the operation and segment name.
 *
 * The module keeps no global state, so it is safe to load in several contexts
 * (the main thread and any number of worker_threads) at once.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* CPU_SET and friends, sched_{get,set}affinity */
#endif

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <node_api.h>

/* Linux limits the part after the leading '/' to NAME_MAX bytes; one more for
 * the slash and one for the terminating NUL. */
#define SHM_NAME_BUF (NAME_MAX + 2)

/* Bail out of a napi_callback when an N-API call fails. N-API itself has
 * usually set a pending exception; if not, raise a generic one so JS never sees
 * a silent `undefined`. */
#define NAPI_CALL(env, call)                                                   \
  do {                                                                         \
    if ((call) != napi_ok) {                                                   \
      throw_napi_failure((env), #call);                                        \
      return NULL;                                                             \
    }                                                                          \
  } while (0)

static void throw_napi_failure(napi_env env, const char *what) {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) return;
  const napi_extended_error_info *info = NULL;
  const char *detail = "unknown N-API failure";
  if (napi_get_last_error_info(env, &info) == napi_ok && info != NULL &&
      info->error_message != NULL)
    detail = info->error_message;
  char msg[256];
  snprintf(msg, sizeof msg, "tsflow_native: %s failed: %s", what, detail);
  napi_throw_error(env, NULL, msg);
}

/* strerror() may use a static buffer; glibc's GNU strerror_r and the XSI one
 * differ in signature, so pick the right one. */
static const char *errno_text(int err, char *buf, size_t len) {
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
  return strerror_r(err, buf, len);
#else
  if (strerror_r(err, buf, len) != 0) snprintf(buf, len, "errno %d", err);
  return buf;
#endif
}

/* Throws Error("<syscall>: <strerror>") with .syscall and .errno set. */
static void throw_errno(napi_env env, const char *syscall, int err) {
  char text[128];
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", syscall, errno_text(err, text, sizeof text));

  napi_value message, error, syscall_value, errno_value;
  if (napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message) != napi_ok ||
      napi_create_error(env, NULL, message, &error) != napi_ok ||
      napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_value) != napi_ok ||
      napi_create_int32(env, err, &errno_value) != napi_ok ||
      napi_set_named_property(env, error, "syscall", syscall_value) != napi_ok ||
      napi_set_named_property(env, error, "errno", errno_value) != napi_ok) {
    throw_napi_failure(env, "creating an error object");
    return;
  }
  napi_throw(env, error);
}

/* Reads a shm name into `out`. Returns false (with a JS
 * exception pending) if it is not a string or does not fit. */
static bool get_name(napi_env env, napi_value value, char out[SHM_NAME_BUF]) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_string) {
    napi_throw_type_error(env, NULL, "shared memory name must be a string");
    return false;
  }
  size_t length = 0;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok) {
    throw_napi_failure(env, "reading the shared memory name");
    return false;
  }
  if (length >= SHM_NAME_BUF) {
    throw_errno(env, "shm_open", ENAMETOOLONG);
    return false;
  }
  size_t copied = 0;
  if (napi_get_value_string_utf8(env, value, out, SHM_NAME_BUF, &copied) != napi_ok) {
    throw_napi_failure(env, "reading the shared memory name");
    return false;
  }
  /* An embedded NUL would silently name a different segment. */
  if (strlen(out) != copied) {
    napi_throw_type_error(env, NULL, "shared memory name must not contain NUL characters");
    return false;
  }
  return true;
}

/* Reads a JS number that must be an integer in [min, max]. */
static bool get_integer(napi_env env, napi_value value, const char *what, double min,
                        double max, double *out) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_number) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s must be a number", what);
    napi_throw_type_error(env, NULL, msg);
    return false;
  }
  double d = 0;
  if (napi_get_value_double(env, value, &d) != napi_ok) {
    throw_napi_failure(env, "reading a number");
    return false;
  }
  if (!isfinite(d) || floor(d) != d || d < min || d > max) {
    char msg[160];
    snprintf(msg, sizeof msg, "%s must be an integer from %.0f to %.0f", what, min, max);
    napi_throw_range_error(env, NULL, msg);
    return false;
  }
  *out = d;
  return true;
}

/* Finalizer of the external Buffer: the length travels in the hint, so no
 * allocation is needed per mapping. V8 already counts an external Buffer's
 * length as external memory (which is what prompts collections), so the size is
 * not reported again with napi_adjust_external_memory: that would count each
 * mapping twice (measured; test/proxy/shm-memory.test.ts guards the behaviour). */
static void unmap_finalizer(napi_env env, void *data, void *hint) {
  (void)env;
  munmap(data, (size_t)(uintptr_t)hint);
}

/* Wraps a mapping in an external Buffer whose finalizer unmaps it. */
static napi_value wrap_mapping(napi_env env, void *addr, size_t size) {
  napi_value buffer;
  napi_status status = napi_create_external_buffer(env, size, addr, unmap_finalizer,
                                                   (void *)(uintptr_t)size, &buffer);
  if (status == napi_ok) return buffer;
  /* Once Node's Buffer::New has seen the pointer it owns it, even on failure
   * (e.g. too large: it runs the finalizer itself). Only the statuses returned
   * before that hand-off leave the mapping ours to release. */
  if (status == napi_invalid_arg || status == napi_no_external_buffers_allowed)
    munmap(addr, size);
  throw_napi_failure(env, "napi_create_external_buffer");
  return NULL;
}

static napi_value shm_create(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) {
    napi_throw_type_error(env, NULL, "shmCreate(name, size) needs two arguments");
    return NULL;
  }
  char name[SHM_NAME_BUF];
  if (!get_name(env, argv[0], name)) return NULL;
  double size_d;
  /* 2^53 - 1: beyond that a JS number cannot name every byte exactly. */
  if (!get_integer(env, argv[1], "size", 1, 9007199254740991.0, &size_d)) return NULL;
  if (size_d > (double)SIZE_MAX) { /* only reachable where size_t is 32 bits */
    throw_errno(env, "ftruncate", EFBIG);
    return NULL;
  }
  size_t size = (size_t)size_d;

  int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd < 0) {
    throw_errno(env, "shm_open", errno);
    return NULL;
  }
  if (ftruncate(fd, (off_t)size) != 0) {
    int err = errno;
    close(fd);
    shm_unlink(name); /* we created it, so a half-made segment is ours to remove */
    throw_errno(env, "ftruncate", err);
    return NULL;
  }
  void *addr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int err = errno;
  close(fd); /* the mapping keeps the object alive; the fd is no longer needed */
  if (addr == MAP_FAILED) {
    shm_unlink(name);
    throw_errno(env, "mmap", err);
    return NULL;
  }
  return wrap_mapping(env, addr, size);
}

static napi_value shm_open_existing(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) {
    napi_throw_type_error(env, NULL, "shmOpen(name) needs a name");
    return NULL;
  }
  char name[SHM_NAME_BUF];
  if (!get_name(env, argv[0], name)) return NULL;

  int fd = shm_open(name, O_RDWR, 0);
  if (fd < 0) {
    throw_errno(env, "shm_open", errno);
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    throw_errno(env, "fstat", err);
    return NULL;
  }
  /* A zero-size segment (e.g. opened between its creator's shm_open and
   * ftruncate) cannot be mapped; report it as mmap's own EINVAL instead of
   * handing out an empty Buffer that would silently share nothing. */
  if (st.st_size <= 0) {
    close(fd);
    throw_errno(env, "mmap", EINVAL);
    return NULL;
  }
  if ((uintmax_t)st.st_size > (uintmax_t)SIZE_MAX) {
    close(fd);
    throw_errno(env, "mmap", EFBIG);
    return NULL;
  }
  size_t size = (size_t)st.st_size;
  void *addr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int err = errno;
  close(fd);
  if (addr == MAP_FAILED) {
    throw_errno(env, "mmap", err);
    return NULL;
  }
  return wrap_mapping(env, addr, size);
}

static napi_value shm_unlink_name(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) {
    napi_throw_type_error(env, NULL, "shmUnlink(name) needs a name");
    return NULL;
  }
  char name[SHM_NAME_BUF];
  if (!get_name(env, argv[0], name)) return NULL;
  if (shm_unlink(name) != 0) {
    throw_errno(env, "shm_unlink", errno);
    return NULL;
  }
  napi_value undefined;
  NAPI_CALL(env, napi_get_undefined(env, &undefined));
  return undefined;
}

static napi_value shm_size(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) {
    napi_throw_type_error(env, NULL, "shmSize(name) needs a name");
    return NULL;
  }
  char name[SHM_NAME_BUF];
  if (!get_name(env, argv[0], name)) return NULL;
  /* Read-only is enough to fstat and works on segments we may not write. */
  int fd = shm_open(name, O_RDONLY, 0);
  if (fd < 0) {
    throw_errno(env, "shm_open", errno);
    return NULL;
  }
  struct stat st;
  int rc = fstat(fd, &st);
  int err = errno;
  close(fd);
  if (rc != 0) {
    throw_errno(env, "fstat", err);
    return NULL;
  }
  napi_value result;
  NAPI_CALL(env, napi_create_double(env, (double)st.st_size, &result));
  return result;
}

/* tid is a pid_t; 0 means the calling thread. */
static bool get_tid(napi_env env, size_t argc, napi_value *argv, size_t index, pid_t *out) {
  if (argc <= index) {
    *out = 0;
    return true;
  }
  napi_valuetype type;
  if (napi_typeof(env, argv[index], &type) != napi_ok) {
    throw_napi_failure(env, "napi_typeof");
    return false;
  }
  if (type == napi_undefined) {
    *out = 0;
    return true;
  }
  double d;
  if (!get_integer(env, argv[index], "tid", 0, (double)INT32_MAX, &d)) return false;
  *out = (pid_t)d;
  return true;
}

static napi_value get_affinity(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  pid_t tid;
  if (!get_tid(env, argc, argv, 0, &tid)) return NULL;

  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(tid, sizeof set, &set) != 0) {
    throw_errno(env, "sched_getaffinity", errno);
    return NULL;
  }
  napi_value result;
  NAPI_CALL(env, napi_create_array_with_length(env, (size_t)CPU_COUNT(&set), &result));
  uint32_t next = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
    if (!CPU_ISSET(cpu, &set)) continue;
    napi_value index;
    NAPI_CALL(env, napi_create_int32(env, cpu, &index));
    NAPI_CALL(env, napi_set_element(env, result, next++, index));
  }
  return result;
}

static napi_value set_affinity(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  bool is_array = false;
  if (argc < 1 || napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array) {
    napi_throw_type_error(env, NULL, "cpus must be an array of CPU indices");
    return NULL;
  }
  pid_t tid;
  if (!get_tid(env, argc, argv, 1, &tid)) return NULL;

  uint32_t length = 0;
  NAPI_CALL(env, napi_get_array_length(env, argv[0], &length));
  if (length == 0) {
    napi_throw_range_error(env, NULL, "cpus must name at least one CPU");
    return NULL;
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  for (uint32_t i = 0; i < length; i++) {
    napi_value element;
    NAPI_CALL(env, napi_get_element(env, argv[0], i, &element));
    double cpu;
    if (!get_integer(env, element, "each CPU index", 0, (double)(CPU_SETSIZE - 1), &cpu))
      return NULL;
    CPU_SET((int)cpu, &set);
  }
  if (sched_setaffinity(tid, sizeof set, &set) != 0) {
    throw_errno(env, "sched_setaffinity", errno);
    return NULL;
  }
  napi_value undefined;
  NAPI_CALL(env, napi_get_undefined(env, &undefined));
  return undefined;
}

static napi_value online_cpus(napi_env env, napi_callback_info info) {
  (void)info;
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1) {
    /* sysconf only sets errno for a bad name; treat "unknown" as an error too. */
    throw_errno(env, "sysconf", errno != 0 ? errno : EINVAL);
    return NULL;
  }
  napi_value result;
  NAPI_CALL(env, napi_create_int64(env, (int64_t)n, &result));
  return result;
}

/* prctl(PR_SET_PDEATHSIG): the kernel sends `signal` to this process when the thread that
 * created it (its parent) exits, however the parent ends. One system call, no thread. */
static napi_value set_parent_death_signal(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t signal_number = 0;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &signal_number) != napi_ok || signal_number < 0 || signal_number >= NSIG) {
    napi_throw_range_error(env, NULL, "signal must be a signal number (0 clears it)");
    return NULL;
  }
  if (prctl(PR_SET_PDEATHSIG, (unsigned long)signal_number, 0, 0, 0) != 0) {
    throw_errno(env, "prctl", errno);
    return NULL;
  }
  napi_value undefined;
  NAPI_CALL(env, napi_get_undefined(env, &undefined));
  return undefined;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_property_descriptor properties[] = {
      {"shmCreate", NULL, shm_create, NULL, NULL, NULL, napi_enumerable, NULL},
      {"shmOpen", NULL, shm_open_existing, NULL, NULL, NULL, napi_enumerable, NULL},
      {"shmUnlink", NULL, shm_unlink_name, NULL, NULL, NULL, napi_enumerable, NULL},
      {"shmSize", NULL, shm_size, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getAffinity", NULL, get_affinity, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setAffinity", NULL, set_affinity, NULL, NULL, NULL, napi_enumerable, NULL},
      {"onlineCpus", NULL, online_cpus, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setParentDeathSignal", NULL, set_parent_death_signal, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof properties / sizeof properties[0],
                             properties) != napi_ok) {
    throw_napi_failure(env, "napi_define_properties");
    return NULL;
  }
  return exports;
}
