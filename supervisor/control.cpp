// The control protocol (being written).
#include "control.hpp"
