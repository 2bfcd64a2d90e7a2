#pragma once
/// @file Everything in lameduck's public API.

#include <lameduck/errors.hpp>
#include <lameduck/options.hpp>
#include <lameduck/request.hpp>
#include <lameduck/response.hpp>
#include <lameduck/router.hpp>
#include <lameduck/server.hpp>
#include <lameduck/signals.hpp>
#include <lameduck/systemd.hpp>
