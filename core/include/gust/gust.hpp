// gust/gust.hpp: everything the core offers, in one include.
#pragma once

#include "gust/close_code.hpp"
#include "gust/connection.hpp"
#include "gust/drain.hpp"
#include "gust/error.hpp"
#include "gust/event.hpp"
#include "gust/handshake.hpp"
#include "gust/http.hpp"
#include "gust/prepared_message.hpp"
#include "gust/settings.hpp"
#include "gust/time.hpp"
