// Forwarding header: the backend factory moved to runtime/device.h (it sits above cpu/ and cuda/;
// core must not depend on a backend). Remove once tests/test_util.h, tests/test_causal.cpp and
// src/cli/bench_{generate,ops,vae,t5}.cpp include runtime/device.h.
#pragma once

#include "runtime/device.h"
