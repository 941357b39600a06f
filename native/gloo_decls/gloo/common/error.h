// See README.md: names c10d's ProcessGroupGloo.hpp mentions; nothing here is defined or called.
#pragma once
