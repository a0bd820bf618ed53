#pragma once
#include "gust/asio_loop.hpp"
