// A cancel signal one coroutine hands to the work it starts, so that something else on the
// same executor — a client that disconnected — can abort that work in whatever phase it
// is: connecting, waiting for an upstream's first byte, or streaming. Whoever is doing the
// work at the moment registers how to stop it (close a socket, cancel a timer) and clears
// that when done; Cancel() runs the registered handler once.
//
// Not thread-safe: the signal, its handlers and Cancel() all belong to one executor (the
// request's I/O thread). The signal must outlive the work it was handed to.
#pragma once

#include <cstdint>
#include <functional>
#include <utility>

namespace chatd {

class CancelSignal {
 public:
  using Token = std::uint64_t;

  CancelSignal() = default;
  CancelSignal(const CancelSignal&) = delete;
  CancelSignal& operator=(const CancelSignal&) = delete;

  /// Aborts: runs the registered handler (if any) once; later registrations run at once.
  void Cancel() {
    if (cancelled_) return;
    cancelled_ = true;
    if (handler_) {
      auto handler = std::move(handler_);
      handler_ = nullptr;
      handler();
    }
  }
  bool cancelled() const { return cancelled_; }

  /// Makes `handler` what Cancel() does, replacing the previous one. Already cancelled:
  /// runs it now. The token identifies this registration for Clear().
  Token OnCancel(std::function<void()> handler) {
    const Token token = ++last_token_;
    if (cancelled_) {
      handler();
      return token;
    }
    handler_ = std::move(handler);
    current_ = token;
    return token;
  }
  /// Removes the handler registered as `token`, unless another replaced it since.
  void Clear(Token token) {
    if (current_ == token) handler_ = nullptr;
  }

 private:
  std::function<void()> handler_;
  Token current_ = 0;
  Token last_token_ = 0;
  bool cancelled_ = false;
};

}  // namespace chatd
