// Clang's thread-safety annotations (-Wthread-safety), after leveldb's port/thread_annotations.h:
// a member marked GUARDED_BY(mutex_) may only be touched with mutex_ held, and clang checks it at
// compile time (scripts/test builds once with clang for this). Other compilers see nothing.
// In port/ (an interface library every other one links), as in leveldb.
#pragma once

#if defined(__clang__)
#define B24ES_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define B24ES_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) B24ES_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY B24ES_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) B24ES_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) B24ES_THREAD_ANNOTATION(pt_guarded_by(x))
#define ACQUIRE(...) B24ES_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) B24ES_THREAD_ANNOTATION(acquire_shared_capability(__VA_ARGS__))
#define RELEASE(...) B24ES_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) B24ES_THREAD_ANNOTATION(release_shared_capability(__VA_ARGS__))
#define REQUIRES(...) B24ES_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define EXCLUDES(...) B24ES_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define NO_THREAD_SAFETY_ANALYSIS B24ES_THREAD_ANNOTATION(no_thread_safety_analysis)
