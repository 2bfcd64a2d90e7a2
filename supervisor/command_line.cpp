// The command line and the TOML file (being written).
#include "command_line.hpp"
