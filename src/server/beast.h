// Boost.Beast/Asio for the server, its benchmark and its tests, in one place. Boost 1.74's
// asio/awaitable.hpp uses std::exchange without including <utility>, so <utility> must come first;
// clang-format's include regrouping would sort it after <boost/...>, hence the guard.
#pragma once

// clang-format off
#include <utility>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
// clang-format on
