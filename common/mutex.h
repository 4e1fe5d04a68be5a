#pragma once
// Mutex, MutexLock and CondVar: std::mutex and std::condition_variable
// carrying clang's thread-safety attributes, so that a clang build with
// -Wthread-safety (cmake -DPHX_THREAD_SAFETY_ANALYSIS=ON) checks at compile
// time that state marked GUARDED_BY(mu_) is only touched with mu_ held and
// that functions marked REQUIRES(mu_) are only called with it held. Under
// GCC the attributes expand to nothing and the classes cost what std's do.
//
// Use:
//   Mutex mu_;
//   int64_t count_ GUARDED_BY(mu_) = 0;
//   void Bump() EXCLUDES(mu_) { MutexLock lock(&mu_); ++count_; }
//   void BumpLocked() REQUIRES(mu_) { ++count_; }
//   // Predicates run with mu_ held, so say so (the analysis checks lambdas
//   // as functions of their own):
//   cv_.WaitFor(&mu_, timeout, [&]() REQUIRES(mu_) { return count_ > 0; });
//
// Thread-safety: a Mutex and a CondVar are shared by the threads they
// coordinate; a MutexLock belongs to the thread (and scope) that made it.

#include <chrono>
#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define PHX_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define PHX_THREAD_ANNOTATION(x)
#endif

// The names clang's documentation uses (and LevelDB's port/thread_annotations.h).
#define CAPABILITY(x) PHX_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY PHX_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) PHX_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) PHX_THREAD_ANNOTATION(pt_guarded_by(x))
#define REQUIRES(...) PHX_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define EXCLUDES(...) PHX_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define ACQUIRE(...) PHX_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) PHX_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) PHX_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) PHX_THREAD_ANNOTATION(assert_capability(x))
#define RETURN_CAPABILITY(x) PHX_THREAD_ANNOTATION(lock_returned(x))
#define NO_THREAD_SAFETY_ANALYSIS PHX_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace phalanx {

class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }
  bool TryLock() TRY_ACQUIRE(true) { return mu_.try_lock(); }
  // Tells the analysis that the caller holds this mutex (checks nothing at run time).
  void AssertHeld() const ASSERT_CAPABILITY(this) {}

 private:
  friend class CondVar;
  std::mutex mu_;
};

// Holds a Mutex for its scope.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() RELEASE() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// A condition variable waited on with a Mutex held (any Mutex, passed to each
// wait). Waits release the mutex while they sleep and hold it again when they
// return, as std::condition_variable's do; spurious wake-ups are possible
// for the waits without a predicate.
class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  void Wait(Mutex* mu) REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();  // still held: the caller's MutexLock unlocks it
  }
  // False when the deadline passed.
  bool WaitUntil(Mutex* mu, std::chrono::steady_clock::time_point deadline) REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    const bool woken = cv_.wait_until(lock, deadline) == std::cv_status::no_timeout;
    lock.release();
    return woken;
  }
  // Waits until pred() (called with mu held) or the timeout; returns pred().
  template <class Rep, class Period, class Predicate>
  bool WaitFor(Mutex* mu, const std::chrono::duration<Rep, Period>& timeout, Predicate pred)
      REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    const bool ok = cv_.wait_for(lock, timeout, std::move(pred));
    lock.release();
    return ok;
  }

  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace phalanx
