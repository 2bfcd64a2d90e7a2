// The supervisor's state machine (being written).
#include "config.hpp"
